"""Learner update throughput and memory: I2A vs the model-free baseline, same batch.

Samples one train batch of Breakout episodes with an EnvRunner (I2A module) in a first
process and saves it; then times RLlib `Learner.update()` (GAE, imagination
precomputation for I2A, PPO epochs and minibatches, distillation) on that exact batch
for the Nature-CNN baseline and for the latent I2A module, each in a fresh process (so
peak RSS is the learner's own) with the same torch thread count:
  - update samples/s = batch rows x epochs / update seconds (target: I2A >= 1/3 of
    the baseline's),
  - peak RSS of the learner process with a train batch of 4,000 steps (target
    <= 4 GiB on CPU),
  - the share of the update spent imagining (I2A).
Both learners print the batch they loaded (rows, episodes, a checksum of observations,
actions, rewards and rollout noise); the script stops if they differ.

The batch is sampled with the I2A module so that it carries the rollout noise of I2A's
sampling rollout policy (`ROLLOUT_NOISE`): the I2A learner replays the imagination the
EnvRunner acted on, as in training. The baseline learner gets the same columns:
RLlib's learner connector turns every extra model output into a batch column, and the
Nature-CNN module never reads the noise (4 x 4 floats a row, carried along unused); its
PPO ratio is taken against I2A's action log-probs, which changes values, not the work.

How to run this script
----------------------
`python benchmarks/learner.py [--batch 4000] [--epochs 4] [--minibatch 256] [--threads N]
 [--device cpu|cuda] [--precisions fp32,bf16]` (bf16: autocast of the forward passes,
`learner_config_dict["precision"]`; the losses and weights stay float32)

Results to expect
-----------------
I2A at roughly 0.4-0.8 of the baseline's update throughput on CPU (its model-free
path is the baseline's network; imagination adds the rollout encoder and heads);
peak RSS around 1-2 GiB. docs/benchmarks.md has the measured figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time

# The repository root, for runs where the project is not installed (benchmarks/gpu.sh).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ENV_ID = "ALE/Breakout-v5"
ENVS_PER_RUNNER = 8


def _config(kind: str, batch: int, epochs: int, minibatch: int, device: str = "cpu", precision: str = "fp32"):
    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    if kind == "baseline":
        config = baseline_ppo_config(ENV_ID)
    else:
        config = configure_environment(I2AConfig(), ENV_ID).imagination(
            env_model="latent", rollout_depth=5, imagination_image_interval=0
        )
    config.learners(
        num_gpus_per_learner=1 if device == "cuda" else 0,
        learner_config_dict={**config.learner_config_dict, "precision": precision},
    )
    return config.env_runners(num_env_runners=0, num_envs_per_env_runner=ENVS_PER_RUNNER).training(
        train_batch_size_per_learner=batch, minibatch_size=minibatch, num_epochs=epochs
    )


def _sample_child(batch_file: str, batch: int, epochs: int, minibatch: int) -> dict:
    """Samples the shared batch with I2A's EnvRunner; saves episodes and module spaces."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    runner = SingleAgentEnvRunner(config=_config("i2a", batch, epochs, minibatch))
    episodes = runner.sample(num_timesteps=batch, explore=True)
    with open(batch_file, "wb") as f:
        pickle.dump({"episodes": episodes, "spaces": runner.get_spaces()}, f)
    return batch_fingerprint(episodes)


def batch_fingerprint(episodes) -> dict:
    """Rows, episodes and a sha256 over every episode's observations, actions, rewards
    and extra model outputs (the rollout noise among them), in order."""
    digest = hashlib.sha256()
    for episode in episodes:
        columns = [episode.get_observations(), episode.get_actions(), episode.get_rewards()]
        columns += [episode.get_extra_model_outputs(key) for key in sorted(episode.extra_model_outputs)]
        for column in columns:
            digest.update(memoryview(column.tobytes()))
    return {
        "rows": sum(len(e) for e in episodes),
        "episodes": len(episodes),
        "extra_columns": sorted(episodes[0].extra_model_outputs),
        "sha256": digest.hexdigest()[:16],
    }


def _learner_child(kind: str, batch_file: str, batch: int, epochs: int, minibatch: int, threads: int,
                   device: str = "cpu", precision: str = "fp32") -> dict:  # fmt: skip
    import torch

    torch.set_num_threads(threads)
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    with open(batch_file, "rb") as f:
        saved = pickle.load(f)
    episodes, fingerprint = saved["episodes"], batch_fingerprint(saved["episodes"])
    learner = _config(kind, batch, epochs, minibatch, device, precision).build_learner(spaces=saved["spaces"])
    timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: fingerprint["rows"]}
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
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    share = None
    module_results = results.get("default_policy", {})
    if "imagination_time_share" in module_results:
        share = float(module_results["imagination_time_share"].peek())
    return {
        "kind": kind,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "precision": precision,
        "batch": fingerprint,
        "torch_threads": torch.get_num_threads(),
        "update_seconds": seconds,
        "samples_per_s": fingerprint["rows"] * epochs / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "imagination_time_share": share,
    }


def _run_child(role: str, batch_file: str, args, precision: str = "fp32") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", role, "--batch-file", batch_file, "--batch", str(args.batch),
         "--epochs", str(args.epochs), "--minibatch", str(args.minibatch), "--threads", str(args.threads),
         "--device", args.device, "--precisions", precision],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"{role} run failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of both learners")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both learners update")
    parser.add_argument("--precisions", default="fp32",
                        help="comma-separated, of fp32,bf16: each learner runs once per precision")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        parser.exit(2, f"learner.py: error: --precisions {args.precisions!r}: use fp32 and/or bf16\n")
    if args.device == "cuda" and not args.child:
        import torch

        if not torch.cuda.is_available():
            parser.exit(2, "learner.py: error: --device cuda: torch sees no CUDA device here\n")
    if args.child == "sample":
        print(json.dumps(_sample_child(args.batch_file, args.batch, args.epochs, args.minibatch)))
        return
    if args.child:
        print(json.dumps(_learner_child(args.child, args.batch_file, args.batch, args.epochs, args.minibatch,
                                        args.threads, args.device, precisions[0])))  # fmt: skip
        return
    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs", "settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="i2a_learner_bench_") as tmp:
        batch_file = os.path.join(tmp, "episodes.pkl")
        sampled = _run_child("sample", batch_file, args)
        print(f"sampled once (I2A EnvRunner, {ENVS_PER_RUNNER} envs): {sampled['rows']} rows in "
              f"{sampled['episodes']} episode chunks, extra columns {sampled['extra_columns']}, "
              f"sha256 {sampled['sha256']}", flush=True)  # fmt: skip
        for precision in precisions:
            for kind in ("baseline", "i2a"):
                # fp32 rows keep their old keys ("baseline", "i2a"); others are suffixed.
                key = kind if precision == "fp32" else f"{kind}_{precision}"
                results[key] = r = _run_child(kind, batch_file, args, precision)
                print(
                    f"{key:13s}: batch {r['batch']['rows']} rows, sha256 {r['batch']['sha256']}; "
                    f"x {args.epochs} epochs on {r['device']} in {r['update_seconds']:.1f}s with "
                    f"{r['torch_threads']} torch threads = {r['samples_per_s']:,.0f} samples/s, "
                    f"peak RSS {r['peak_rss_mib']:,.0f} MiB"
                    + (f", peak GPU memory {r['peak_gpu_mib']:,.0f} MiB" if r["peak_gpu_mib"] else "")
                    + (f", imagining {100 * r['imagination_time_share']:.1f}% of the update" if r["imagination_time_share"] else ""),
                    flush=True,
                )
                if r["batch"] != sampled:
                    raise SystemExit(f"{key} learner loaded a different batch: {r['batch']} != {sampled}")
    results["batch"] = sampled
    for precision in precisions:
        suffix = "" if precision == "fp32" else f"_{precision}"
        ratio = results[f"i2a{suffix}"]["samples_per_s"] / results[f"baseline{suffix}"]["samples_per_s"]
        results[f"ratio_i2a_to_baseline{suffix}"] = ratio
        print(f"ratio I2A / baseline update throughput ({precision}), same batch ({sampled['sha256']}), "
              f"{args.threads} torch threads each: {ratio:.2f} (target >= 0.33)")  # fmt: skip
        if precision != "fp32" and "fp32" in precisions:
            for kind in ("baseline", "i2a"):
                gain = results[f"{kind}{suffix}"]["samples_per_s"] / results[kind]["samples_per_s"]
                results[f"{kind}_{precision}_over_fp32"] = gain
                print(f"{kind} {precision} / fp32 update throughput: {gain:.2f}")
    first = "i2a" if "fp32" in precisions else f"i2a_{precisions[0]}"
    print(f"I2A learner peak RSS: {results[first]['peak_rss_mib'] / 1024:.2f} GiB (target <= 4 GiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
