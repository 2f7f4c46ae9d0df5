"""Learner update throughput and memory: I2A vs the model-free baseline, same batch.

Samples one train batch of Breakout episodes with an EnvRunner, then times RLlib
`Learner.update()` (GAE, imagination precomputation for I2A, PPO epochs and
minibatches, distillation) on that same batch for the Nature-CNN baseline and for the
latent I2A module, each in a fresh process (so peak RSS is the learner's own):
  - update samples/s = batch rows x epochs / update seconds (target: I2A >= 1/3 of
    the baseline's),
  - peak RSS of the learner process with a train batch of 4,000 steps (target
    <= 4 GiB on CPU),
  - the share of the update spent imagining (I2A).

How to run this script
----------------------
`python benchmarks/learner.py [--batch 4000] [--epochs 4] [--minibatch 256]`

Results to expect
-----------------
I2A at roughly 0.4-0.6 of the baseline's update throughput on CPU (its model-free
path is the baseline's network; imagination adds the rollout encoder and heads);
peak RSS around 2-3 GiB. docs/benchmarks.md has the measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def _child(kind: str, batch: int, epochs: int, minibatch: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    if kind == "baseline":
        config = baseline_ppo_config("ALE/Breakout-v5")
    else:
        config = configure_environment(I2AConfig(), "ALE/Breakout-v5").imagination(
            env_model="latent", rollout_depth=5, imagination_image_interval=0
        )
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=8).training(
        train_batch_size_per_learner=batch, minibatch_size=minibatch, num_epochs=epochs
    )
    runner = SingleAgentEnvRunner(config=config)
    episodes = runner.sample(num_timesteps=batch, explore=True)
    rows = sum(len(e) for e in episodes)
    learner = config.build_learner(env=runner.env.unwrapped, spaces=runner.get_spaces())
    timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: rows}
    # Warm-up update on a small slice (first-call allocations, connector setup).
    learner.update(episodes=episodes[:2], timesteps=timesteps, num_epochs=1, minibatch_size=minibatch)
    start = time.perf_counter()
    results = learner.update(
        episodes=episodes,
        timesteps=timesteps,
        num_epochs=epochs,
        minibatch_size=minibatch,
        shuffle_batch_per_epoch=True,
    )
    seconds = time.perf_counter() - start
    share = None
    module_results = results.get("default_policy", {})
    if "imagination_time_share" in module_results:
        share = float(module_results["imagination_time_share"].peek())
    return {
        "kind": kind,
        "rows": rows,
        "update_seconds": seconds,
        "samples_per_s": rows * epochs / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "imagination_time_share": share,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.batch, args.epochs, args.minibatch, args.threads)))
        return
    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs", "settings": vars(args)}
    for kind in ("baseline", "i2a"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--batch", str(args.batch), "--epochs",
             str(args.epochs), "--minibatch", str(args.minibatch), "--threads", str(args.threads)],
            capture_output=True, text=True,
        )
        if out.returncode:
            sys.stderr.write(out.stderr[-3000:])
            raise SystemExit(f"{kind} run failed")
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[kind]
        print(
            f"{kind:8s}: {r['rows']} rows x {args.epochs} epochs in {r['update_seconds']:.1f}s = "
            f"{r['samples_per_s']:,.0f} samples/s, peak RSS {r['peak_rss_mib']:,.0f} MiB"
            + (f", imagining {100 * r['imagination_time_share']:.1f}% of the update" if r["imagination_time_share"] else ""),
            flush=True,
        )
    ratio = results["i2a"]["samples_per_s"] / results["baseline"]["samples_per_s"]
    results["ratio_i2a_to_baseline"] = ratio
    print(f"ratio I2A / baseline update throughput: {ratio:.2f} (target >= 0.33)")
    print(f"I2A learner peak RSS: {results['i2a']['peak_rss_mib'] / 1024:.2f} GiB (target <= 4 GiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
