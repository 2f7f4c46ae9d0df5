"""EnvRunner sampling throughput vs the raw vector env, in one run on one machine.

Every row states its thread budget: ale-py's C++ threads stepping the vector env
(`num_threads` of `AtariVectorEnv`) and torch's threads for inference. Each ratio
compares rows with the same budget. For one thread budget T (1, then all cores),
measured one after the other in this process:
  1. raw ale-py `AtariVectorEnv` steps/s (N envs, random actions, T env threads),
  2. an in-process RLlib `SingleAgentEnvRunner` over the same vector env (T env
     threads) with the model-free baseline module (Nature CNN, uint8 frames, T torch
     threads),
  3. the same EnvRunner with the I2A module (latent env model, depth 5),
then
  4. the overlapping EnvRunner (`--overlap-sampling`: two half vector envs of N/2, 1
     ale-py thread each, one steps while the module acts for the other) with the
     baseline and the I2A module, 1 torch thread; it keeps up to 2 threads busy at
     once (one env half + inference), so its fair budget is the raw env on 2 threads,
  5. one 1-CPU EnvRunner actor per core (RLlib's way of using the machine), each with
     1 env thread and 1 torch thread (Ray sets OMP_NUM_THREADS=1 for a 1-CPU actor;
     the actors report it), baseline module, total steps/s, against row 1 at all cores.
Ratios: 2/1 at each budget (target >= 0.5), 3/2 at each budget (target >= 0.5), 4 /
raw env on 2 threads (target >= 0.7), 4 / 2 at 1 thread (the overlap's gain), 5/1 at
all cores (target >= 0.5). Inside an EnvRunner env stepping and inference take turns,
so T env threads + T torch threads keep at most T cores busy, like the raw env's T.

How to run this script
----------------------
`python benchmarks/sampling.py [--num-envs 8] [--seconds 20] [--env ALE/Breakout-v5]
[--env-runner-device cuda] [--json FILE]`; `--seconds 2` for a quick check.
`--env-runner-device cuda` (machines with a GPU; `benchmarks/gpu.sh`): the in-process
EnvRunners' modules infer on the card (RLlib's `num_gpus_per_env_runner`), so the
overlap ratio shows what the two-core ceiling of the CPU rows leaves out; the
actor row (5), a CPU layout, is skipped.

Results to expect
-----------------
On the 2-core development VM (docs/benchmarks.md): raw ~2,600 steps/s on one thread and
~4,800-5,000 on two; one EnvRunner at ~0.5-0.6 of the raw env with the same single
thread; one EnvRunner per core at ~0.5 of the raw env on both cores; I2A at ~0.6 of the
baseline's EnvRunner throughput. docs/benchmarks.md holds the measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch


def raw_env_steps_per_second(env_id: str, num_envs: int, seconds: float, num_threads: int) -> float:
    """Random-action steps/s of one AtariVectorEnv stepped by `num_threads` C++ threads."""
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


def env_runner_steps_per_second(config, seconds: float):
    """(steps/s of one in-process EnvRunner, the device its module ran on)."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    # RLlib gives an EnvRunner the GPUs it asks for unless it is the local one (index 0).
    worker_index = 1 if config.num_gpus_per_env_runner else 0
    runner = (config.env_runner_cls or SingleAgentEnvRunner)(config=config, worker_index=worker_index)
    device = next(runner.module.parameters()).device.type
    runner.sample(num_timesteps=256, explore=True)  # warm-up (env reset, first calls)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        episodes = runner.sample(num_timesteps=512, explore=True)
        steps += sum(len(e) for e in episodes)
    rate = steps / (time.perf_counter() - start)
    runner.stop()
    return rate, device


def env_runner_group_steps_per_second(config, seconds: float):
    """Total steps/s of the config's remote EnvRunner actors sampling concurrently, and
    the torch thread count each actor reports."""
    algo = config.build_algo()
    group = algo.env_runner_group
    try:
        torch_threads = group.foreach_env_runner(lambda runner: torch.get_num_threads(), local_env_runner=False)
        sample = lambda runner: sum(len(e) for e in runner.sample(num_timesteps=1024, explore=True))  # noqa: E731
        group.foreach_env_runner(sample, local_env_runner=False)  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sum(group.foreach_env_runner(sample, local_env_runner=False))
        return steps / (time.perf_counter() - start), torch_threads
    finally:
        algo.stop()


def markdown_table(rows) -> str:
    lines = ["| what | processes | ale-py threads each | torch threads each | steps/s |", "|---|---|---|---|---|"]
    for r in rows:
        torch_threads = "-" if r["torch_threads"] is None else r["torch_threads"]
        lines.append(f"| {r['what']} | {r['processes']} | {r['ale_threads']} | {torch_threads} | {r['steps_per_s']:,.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per row")
    parser.add_argument("--env-runner-device", choices=("cpu", "cuda"), default="cpu",
                        help="where the in-process EnvRunners' modules infer (cuda: one GPU)")
    parser.add_argument("--json", default=None, help="also write the rows and ratios here")
    args = parser.parse_args()
    on_gpu = args.env_runner_device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        print("sampling.py: --env-runner-device cuda needs a GPU that torch can see; this machine "
              "has none (leave the flag out to measure on the CPU)", file=sys.stderr)
        sys.exit(2)

    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    def sampling_config(config, num_env_runners: int = 0):
        return config.env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=args.num_envs,
                                  num_gpus_per_env_runner=1 if on_gpu and not num_env_runners else 0)

    cores = os.cpu_count()
    rows, ratios = [], []

    # Rows whose module infers on the card say so. RLlib finds the card through Ray's
    # runtime context, which would otherwise start a default Ray instance of its own.
    where = " (module on cuda)" if on_gpu else ""
    if on_gpu:
        import ray

        ray.init(address="local", num_cpus=cores, num_gpus=1, include_dashboard=False, log_to_driver=False)

    def add(what: str, rate, ale_threads: int, torch_threads, processes: int = 1) -> float:
        """Records a row; `rate` is steps/s, or (steps/s, module device) of an in-process EnvRunner."""
        rate, device = rate if isinstance(rate, tuple) else (rate, None)
        rows.append(dict(what=what, processes=processes, ale_threads=ale_threads, torch_threads=torch_threads,
                         steps_per_s=rate, **({"module_device": device} if device else {})))  # fmt: skip
        print(f"{what:<44s} {processes} process(es), ale-py {ale_threads} / torch {torch_threads or '-'} "
              f"thread(s) each: {rate:8,.0f} steps/s", flush=True)  # fmt: skip
        return rate

    def ratio(name: str, value: float, target: str) -> None:
        ratios.append(dict(name=name, value=value, target=target))

    raw_by_budget, plain_by_budget = {}, {}
    for threads in sorted({1, cores}):
        env_config = {"num_threads": threads}
        torch.set_num_threads(threads)  # the in-process EnvRunner's inference
        raw = add(f"raw AtariVectorEnv x{args.num_envs}", raw_env_steps_per_second(
            args.env, args.num_envs, args.seconds, threads), threads, None)  # fmt: skip
        baseline = sampling_config(baseline_ppo_config(args.env, env_config=env_config))
        base = add("1 EnvRunner + Nature-CNN baseline module" + where,
                   env_runner_steps_per_second(baseline, args.seconds), threads, threads)  # fmt: skip
        i2a = sampling_config(
            configure_environment(I2AConfig(), args.env, env_config=env_config).imagination(
                env_model="latent", rollout_depth=5
            )
        )
        i2a_rate = add("1 EnvRunner + I2A module (latent, depth 5)" + where,
                       env_runner_steps_per_second(i2a, args.seconds), threads, threads)  # fmt: skip
        raw_by_budget[threads] = raw
        ratio(f"1 EnvRunner (baseline) / raw env, {threads} thread(s) each", base / raw, ">= 0.5")
        ratio(f"1 EnvRunner (I2A) / 1 EnvRunner (baseline), {threads} thread(s) each", i2a_rate / base, ">= 0.5")
        plain_by_budget[threads] = (base, i2a_rate)

    # One EnvRunner that overlaps env stepping with inference: 1 ale-py thread per half,
    # 1 torch thread; at most one half steps while the module runs.
    torch.set_num_threads(1)
    overlap = dict(env_config={"num_threads": 1}, num_envs_per_env_runner=args.num_envs, overlap_sampling=True)
    overlapped = add("1 EnvRunner, overlapped halves + baseline module" + where, env_runner_steps_per_second(
        sampling_config(baseline_ppo_config(args.env, **overlap)),
        args.seconds), 1, 1)  # fmt: skip
    overlapped_i2a = add("1 EnvRunner, overlapped halves + I2A module (latent, depth 5)" + where, env_runner_steps_per_second(
        sampling_config(configure_environment(I2AConfig(), args.env, **overlap)
                        .imagination(env_model="latent", rollout_depth=5)), args.seconds), 1, 1)  # fmt: skip
    two = max(t for t in raw_by_budget if t <= 2)
    ratio(f"1 EnvRunner overlapped (baseline) / raw env, {two} threads (its env + torch threads)",
          overlapped / raw_by_budget[two], ">= 0.7")  # fmt: skip
    ratio("1 EnvRunner overlapped (baseline) / raw env, 1 thread", overlapped / raw_by_budget[1], "")
    ratio("1 EnvRunner overlapped / not overlapped (baseline), 1 env + 1 torch thread",
          overlapped / plain_by_budget[1][0], "")  # fmt: skip
    ratio("1 EnvRunner overlapped / not overlapped (I2A), 1 env + 1 torch thread",
          overlapped_i2a / plain_by_budget[1][1], "")  # fmt: skip

    # The machine's cores used the RLlib way: one 1-CPU EnvRunner actor per core, each
    # stepping its envs on one ale-py thread, against the raw env on all cores (a CPU
    # layout: not measured when the modules infer on a GPU).
    if not on_gpu:
        import ray

        ray.init(address="local", num_cpus=cores + 1, include_dashboard=False, log_to_driver=False)
        group_config = sampling_config(baseline_ppo_config(args.env, env_config={"num_threads": 1}), cores)
        group, actor_threads = env_runner_group_steps_per_second(group_config, args.seconds)
        ray.shutdown()
        add("EnvRunner actors (1 CPU each) + baseline, total", group, 1, max(actor_threads), processes=cores)
        ratio(f"{cores} EnvRunner actors (baseline) / raw env, {cores} thread(s) in all", group / raw_by_budget[cores],
              ">= 0.5")  # fmt: skip
    else:
        ray.shutdown()

    print()
    print(markdown_table(rows))
    print()
    for r in ratios:
        print(f"ratio {r['name']}: {r['value']:.2f}" + (f"  (target {r['target']})" if r["target"] else ""))
    if args.json:
        figures = {
            "machine": f"{platform.node()} {cores} CPUs ({platform.processor() or platform.machine()})",
            "env": args.env,
            "num_envs": args.num_envs,
            "env_runner_device": args.env_runner_device,
            "seconds_per_row": args.seconds,
            "rows": rows,
            "ratios": ratios,
        }
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
