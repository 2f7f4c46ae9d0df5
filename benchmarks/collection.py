"""Transition collection and env-model pretraining throughput, in one run.

Measures, on this machine:
  1. raw AtariVectorEnv steps/s with the same total number of envs (one process),
  2. `i2a collect` throughput with 2 Ray actors (random policy, Parquet shards written
     atomically) -> ratio to (1) (target >= 0.5: writing must not be the bottleneck),
  3. on-disk size per 10k Breakout transitions (uint8 frames, zstd Parquet),
  4. pretraining samples/s of each env model with 1 and 2 CPU Ray Train workers (DDP),
     from the per-epoch metrics, at horizon 1 and (`--horizon K`, by fine-tuning the
     2-worker model for an epoch of K-step windows) at K;
  5. the same arithmetic alone: the model's open-loop loss, backward and Adam on windows
     already in memory, in this process on 2 torch threads with the 2 workers' batch
     together, and the pipeline's share of it (2-worker samples/s / the arithmetic's):
     what Ray Train, Ray Data and DDP cost on top of the model.

How to run this script
----------------------
`python benchmarks/collection.py [--transitions 20000] [--pretrain-transitions 4000]
 [--kinds spatial,latent,pixel,pixel-dilated] [--horizon 8] [--json FILE]`

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
from i2a_rllib.commands import positive_int_arg  # noqa: E402


def directory_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def arithmetic_samples_per_s(model_dir: str, data: str, horizon: int, batch: int, threads: int, steps: int = 12) -> float:
    """Pretraining's arithmetic alone: `steps` updates (after 2 warm-up ones) of the model
    in `model_dir` on random batches of `horizon`-step windows of `data`, held in memory,
    in this process on `threads` torch threads (what each Train worker computes, without
    Ray Data, Ray Train or DDP)."""
    import glob

    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from i2a_rllib.checkpoints import load_env_model
    from i2a_rllib.data.windows import shard_windows
    from i2a_rllib.pretrain.train import GRAD_CLIP, EnvModelLossModule, _to_tensors, update_step

    model = load_env_model(model_dir)[0]
    parts = [shard_windows(pq.read_table(path), horizon) for path in sorted(glob.glob(os.path.join(data, "*.parquet")))]
    windows = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    module = EnvModelLossModule(model).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for step in range(2 + steps):
            if step == 2:
                start = time.perf_counter()
            rows = rng.integers(0, len(windows["actions"]), batch)
            tensors = _to_tensors({k: v[rows] for k, v in windows.items()}, model.obs_shape, model.frame_channels, "cpu", horizon)
            update_step(module, optimizer, tensors, GRAD_CLIP)
        return steps * batch / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--envs-per-actor", type=int, default=8)
    parser.add_argument("--pretrain-transitions", type=int, default=4_000)
    parser.add_argument(
        "--kinds",
        default="spatial,latent,pixel,pixel-dilated",
        help="env models to time; pixel-dilated = the pixel kind's full-resolution architecture",
    )
    parser.add_argument("--horizon", type=positive_int_arg("--horizon"), default=8,
                        help="also time an epoch of windows of this many steps (1: horizon 1 only)")
    parser.add_argument("--batch-size", type=positive_int_arg("--batch-size"), default=32, help="windows per Train worker and update")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import ray

    from i2a_rllib.data.collect import collect
    from i2a_rllib.pretrain.train import pretrain

    import torch

    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
    results["command"] = "python benchmarks/collection.py " + " ".join(sys.argv[1:])
    raw = raw_env_steps_per_second(args.env, 2 * args.envs_per_actor, 10.0, num_threads=os.cpu_count())
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
                output = os.path.join(workdir, f"pretrain_{name}_{workers}")
                summary = pretrain(
                    small, output, kind=kind, hparams=hparams, epochs=1, batch_size=args.batch_size,
                    num_workers=workers, evaluate=False, log_every=10**9,
                )  # fmt: skip
                rate = summary["metrics"]["samples_per_second"]
                results[f"pretrain_{name}_{workers}_workers_samples_per_s"] = rate
                print(f"pretrain {name}, {workers} CPU worker(s): {rate:,.0f} samples/s", flush=True)
            model_dir = os.path.join(output, "env_model")
            horizons = [1] + ([args.horizon] if args.horizon > 1 else [])
            for horizon in horizons:
                if horizon > 1:  # an epoch of K-step windows: fine-tune the 2-worker model
                    summary = pretrain(
                        small, os.path.join(workdir, f"pretrain_{name}_h{horizon}"), epochs=1, horizon=horizon,
                        batch_size=args.batch_size, num_workers=2, evaluate=False, log_every=10**9,
                        init_from=model_dir, lr=1e-4,
                    )  # fmt: skip
                    rate = summary["metrics"]["samples_per_second"]
                    results[f"pretrain_{name}_h{horizon}_2_workers_samples_per_s"] = rate
                alone = arithmetic_samples_per_s(model_dir, small, horizon, 2 * args.batch_size, threads=2)
                results[f"pretrain_{name}_h{horizon}_arithmetic_samples_per_s"] = alone
                results[f"pretrain_{name}_h{horizon}_pipeline_share"] = rate / alone
                print(
                    f"pretrain {name}, horizon {horizon}: 2 CPU workers {rate:,.0f} samples/s, the arithmetic "
                    f"alone (one process, 2 threads, batch {2 * args.batch_size}) {alone:,.0f}: share {rate / alone:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
