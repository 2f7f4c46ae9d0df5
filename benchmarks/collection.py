"""Transition collection and env-model pretraining throughput, in one run.

Measures, on this machine:
  1. raw AtariVectorEnv steps/s with the same total number of envs (one process),
  2. `i2a collect` throughput with 2 Ray actors (random policy, Parquet shards written
     atomically) -> ratio to (1) (target >= 0.5: writing must not be the bottleneck),
  3. on-disk size per 10k Breakout transitions (uint8 frames, zstd Parquet),
  4. pretraining samples/s of the latent and pixel models with 1 and 2 CPU Ray
     Train workers (DDP), from the per-epoch metrics.

How to run this script
----------------------
`python benchmarks/collection.py [--transitions 20000] [--pretrain-transitions 4000]`

Results to expect
-----------------
Collection at >= 0.5 of the raw env's steps/s; a few MB per 10k Breakout transitions;
pretraining at ~100-200 samples/s for the latent model on 2 cores. docs/benchmarks.md
has the measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.sampling import raw_env_steps_per_second  # noqa: E402


def directory_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--envs-per-actor", type=int, default=8)
    parser.add_argument("--pretrain-transitions", type=int, default=4_000)
    parser.add_argument(
        "--kinds",
        default="latent,pixel,pixel-dilated",
        help="env models to time; pixel-dilated = the pixel kind's full-resolution architecture",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import ray

    from i2a_rllib.data.collect import collect
    from i2a_rllib.pretrain.train import pretrain

    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs"}
    raw = raw_env_steps_per_second(args.env, 2 * args.envs_per_actor, 10.0)
    results["raw_steps_per_s"] = raw
    print(f"raw AtariVectorEnv x{2 * args.envs_per_actor}: {raw:,.0f} steps/s", flush=True)

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    workdir = tempfile.mkdtemp(prefix="i2a-bench-")
    try:
        data = os.path.join(workdir, "data")
        # Warm-up: actor start-up and the first reset are not collection throughput.
        collect(args.env, data, 2_000, num_actors=2, num_envs_per_actor=args.envs_per_actor, progress=lambda _: None)
        start = time.perf_counter()
        collect(
            args.env,
            data,
            2_000 + args.transitions,
            num_actors=2,
            num_envs_per_actor=args.envs_per_actor,
            progress=lambda _: None,
        )
        rate = args.transitions / (time.perf_counter() - start)
        size_per_10k = directory_size(data) / (2_000 + args.transitions) * 10_000
        results.update(
            collect_transitions_per_s=rate,
            collect_ratio_to_raw=rate / raw,
            megabytes_per_10k_transitions=size_per_10k / 2**20,
            raw_megabytes_per_10k_transitions=10_000 * (4 * 84 * 84 + 84 * 84 + 32) / 2**20,
        )
        print(
            f"collect, 2 actors x {args.envs_per_actor} envs: {rate:,.0f} transitions/s "
            f"(ratio to raw {rate / raw:.2f}, target >= 0.5); "
            f"{size_per_10k / 2**20:.1f} MB per 10k transitions on disk "
            f"({results['raw_megabytes_per_10k_transitions']:.0f} MB uncompressed)",
            flush=True,
        )
        small = os.path.join(workdir, "small")
        collect(args.env, small, args.pretrain_transitions, num_actors=2, shard_size=max(100, args.pretrain_transitions // 10), progress=lambda _: None)
        for name in args.kinds.split(","):
            kind, _, architecture = name.partition("-")
            hparams = {"architecture": architecture} if architecture else None
            for workers in (1, 2):
                summary = pretrain(
                    small,
                    os.path.join(workdir, f"pretrain_{name}_{workers}"),
                    kind=kind,
                    hparams=hparams,
                    epochs=1,
                    num_workers=workers,
                    evaluate=False,
                    log_every=10**9,
                )
                rate = summary["metrics"]["samples_per_second"]
                results[f"pretrain_{name}_{workers}_workers_samples_per_s"] = rate
                print(f"pretrain {name}, {workers} CPU worker(s): {rate:,.0f} samples/s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
