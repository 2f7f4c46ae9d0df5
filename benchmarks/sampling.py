"""EnvRunner sampling throughput vs the raw vector env, in one run on one machine.

Measures, one after the other in this process (torch with 1 thread, as inside a
1-CPU EnvRunner actor):
  1. raw ale-py `AtariVectorEnv` steps/s (N envs, random actions),
  2. an RLlib `SingleAgentEnvRunner` sampling over the same vector env with the
     model-free baseline module (Nature CNN, uint8 frames),
  3. the same EnvRunner with the I2A module (latent env model, depth 5),
  4. one 1-CPU EnvRunner actor per core (RLlib's way of using the machine) with the
     baseline module, total steps/s,
and prints steps/s and the ratios 2/1 (target >= 0.5; also against the raw env on one
thread, the CPU share a 1-CPU EnvRunner actor has), 4/1, and 3/2 (target >= 0.5).

How to run this script
----------------------
`python benchmarks/sampling.py [--num-envs 8] [--seconds 20] [--env ALE/Breakout-v5]`

Results to expect
-----------------
On the 2-core development VM (docs/benchmarks.md): raw ~4,800-5,000 steps/s; one
EnvRunner per core with 16 envs each at ~0.51 of it, one EnvRunner at ~0.53-0.62 of the
raw env on one thread; I2A at ~0.6 of the baseline's EnvRunner throughput.
docs/benchmarks.md holds the measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def raw_env_steps_per_second(
    env_id: str, num_envs: int, seconds: float, num_threads: int = 0
) -> float:
    """Random-action steps/s of one AtariVectorEnv; num_threads=0: ale-py's default
    (one C++ thread per core, up to num_envs)."""
    from i2a_rllib.envs import make_vector_env

    env = make_vector_env(env_id, num_envs, {"num_threads": num_threads})
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n = env.single_action_space.n
    for _ in range(50):
        env.step(rng.integers(0, n, num_envs))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(rng.integers(0, n, num_envs))
        steps += num_envs
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def env_runner_steps_per_second(config, seconds: float) -> float:
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    runner = SingleAgentEnvRunner(config=config)
    runner.sample(num_timesteps=256, explore=True)  # warm-up (env reset, first calls)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        episodes = runner.sample(num_timesteps=512, explore=True)
        steps += sum(len(e) for e in episodes)
    rate = steps / (time.perf_counter() - start)
    runner.stop()
    return rate


def env_runner_group_steps_per_second(config, seconds: float) -> float:
    """Total steps/s of the config's remote EnvRunner actors sampling concurrently."""
    algo = config.build_algo()
    group = algo.env_runner_group
    try:
        sample = lambda runner: sum(len(e) for e in runner.sample(num_timesteps=1024, explore=True))  # noqa: E731
        group.foreach_env_runner(sample, local_env_runner=False)  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sum(group.foreach_env_runner(sample, local_env_runner=False))
        return steps / (time.perf_counter() - start)
    finally:
        algo.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    def sampling_config(config):
        return config.env_runners(num_env_runners=0, num_envs_per_env_runner=args.num_envs)

    baseline = sampling_config(baseline_ppo_config(args.env))
    i2a = sampling_config(
        configure_environment(I2AConfig(), args.env).imagination(env_model="latent", rollout_depth=5)
    )
    raw = raw_env_steps_per_second(args.env, args.num_envs, args.seconds)
    print(f"raw AtariVectorEnv x{args.num_envs}, all cores:      {raw:8,.0f} steps/s", flush=True)
    raw_1 = raw_env_steps_per_second(args.env, args.num_envs, args.seconds, num_threads=1)
    print(f"raw AtariVectorEnv x{args.num_envs}, 1 thread:       {raw_1:8,.0f} steps/s", flush=True)
    base = env_runner_steps_per_second(baseline, args.seconds)
    print(f"1 EnvRunner + Nature-CNN baseline module: {base:8,.0f} steps/s", flush=True)
    i2a_rate = env_runner_steps_per_second(i2a, args.seconds)
    print(f"1 EnvRunner + I2A module (latent, d=5):   {i2a_rate:8,.0f} steps/s", flush=True)

    # The machine's cores used the RLlib way: one 1-CPU EnvRunner actor per core.
    import ray

    cores = os.cpu_count()
    ray.init(address="local", num_cpus=cores + 1, include_dashboard=False, log_to_driver=False)
    group_config = baseline_ppo_config(args.env).env_runners(
        num_env_runners=cores, num_envs_per_env_runner=args.num_envs
    )
    group = env_runner_group_steps_per_second(group_config, args.seconds)
    ray.shutdown()
    print(f"{cores} EnvRunner actors + baseline module:    {group:8,.0f} steps/s", flush=True)
    figures = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})",
        "env": args.env,
        "num_envs": args.num_envs,
        "raw_steps_per_s": raw,
        "raw_one_thread_steps_per_s": raw_1,
        "baseline_env_runner_steps_per_s": base,
        "i2a_env_runner_steps_per_s": i2a_rate,
        "baseline_env_runner_group_steps_per_s": group,
        "ratio_baseline_to_raw": base / raw,
        "ratio_baseline_to_raw_one_thread": base / raw_1,
        "ratio_group_to_raw": group / raw,
        "ratio_i2a_to_baseline": i2a_rate / base,
    }
    print(f"ratio {cores} EnvRunners(baseline) / raw env, all cores: {group / raw:.2f}  (target >= 0.5)")
    print(f"ratio 1 EnvRunner(baseline) / raw env, 1 thread:    {base / raw_1:.2f}  (target >= 0.5)")
    print(f"ratio 1 EnvRunner(baseline) / raw env, all cores:   {base / raw:.2f}  (one actor vs the machine)")
    print(f"ratio EnvRunner(I2A) / EnvRunner(baseline):        {i2a_rate / base:.2f}  (target >= 0.5)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
