"""I2A forward cost on CPU: latent I2A vs the Nature CNN, batched vs the seed's loop, memory.

In one run, same machine, same process settings:
  1. states/s of one forward pass at batch 8 (Breakout: 4 actions, depth 5) of
     the latent I2A network vs the model-free Nature-CNN baseline (target ratio >= 1/3;
     the seed's design reached ~1/430),
  2. pixel I2A: batched imagination (one env-model call per depth step for all
     B x A rollouts) vs the seed's per-action Python loop, same weights (target >= 2x),
  3. the env model's weights and maps channels-last vs NCHW, I2A forward at batch 8,
     for the latent, spatial, folded and pixel models (same results; the RLModule keeps
     its frozen env model channels-last),
  4. peak memory (RSS growth) of one forward + backward at batch 256, latent I2A.
Each is measured with 1 torch thread (what a 1-CPU EnvRunner actor gets) and with
all cores.

How to run this script
----------------------
`python benchmarks/imagination.py [--seconds 3] [--device cuda [--device-only]]`
(`--device cuda` adds 1 and 2 on the card at batch 8 and 256, `--cudnn-benchmark` the
same with cuDNN's autotuner; `--device-only` skips the CPU rows, which take minutes.)

Results to expect
-----------------
Latent I2A at ~0.4-0.5 of the Nature CNN's states/s; peak memory of a batch-256 update
well under 2 GiB. On a CPU, batched pixel imagination runs at ~0.7-1x the seed loop
(the pixel model is compute-bound there); on an H200 ~3x at batch 8, ~1.1x at 256.
Measured figures are in docs/benchmarks.md.
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

import numpy as np
import torch

# The repository root: the seed's loop is the tests' reference implementation, one copy.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from i2a_rllib.models.env_models import build_env_model  # noqa: E402
from i2a_rllib.models.i2a import I2ANetwork  # noqa: E402
from i2a_rllib.models.model_free import ActorCriticHeads, ConvTrunk  # noqa: E402
from tests.seed_reference import seed_loop_imagination_code  # noqa: E402

OBS_SHAPE = (4, 84, 84)
NUM_ACTIONS = 4
DEPTH = 5


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def states_per_second(fn, batch: int, seconds: float, device: torch.device = torch.device("cpu")) -> float:
    with torch.no_grad():
        for _ in range(3):
            fn()
        _synchronize(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            count += batch
        _synchronize(device)
    return count / (time.perf_counter() - start)


def forward_comparison(seconds: float, device: torch.device = torch.device("cpu"), batch: int = 8) -> dict:
    torch.manual_seed(0)
    obs = torch.randint(0, 256, (batch, *OBS_SHAPE), dtype=torch.uint8, device=device)
    trunk, heads = ConvTrunk(OBS_SHAPE).to(device), ActorCriticHeads(512, NUM_ACTIONS).to(device)
    latent = I2ANetwork(build_env_model("latent", OBS_SHAPE, NUM_ACTIONS), rollout_depth=DEPTH).eval().to(device)
    spatial = I2ANetwork(build_env_model("spatial", OBS_SHAPE, NUM_ACTIONS), rollout_depth=DEPTH).eval().to(device)
    nature = states_per_second(lambda: heads.logits(trunk(obs)), batch, seconds, device)
    i2a = states_per_second(lambda: latent(obs), batch, seconds, device)
    spatial_i2a = states_per_second(lambda: spatial(obs), batch, seconds, device)
    return {
        "nature_cnn_states_per_s": nature,
        "latent_i2a_states_per_s": i2a,
        "ratio": i2a / nature,
        "spatial_i2a_states_per_s": spatial_i2a,
        "spatial_ratio": spatial_i2a / nature,
    }


def channels_last_comparison(seconds: float, pairs: int = 4) -> dict:
    """I2A forward at batch 8 with the env model's weights (and so its maps) channels-last
    vs NCHW (oneDNN's layouts for small-channel convolutions), same weights and rollout
    noise, in alternating pairs (the order flips each pair: drift and warm-up hit both)."""
    rows = {}
    for name, kind, hparams in (
        ("latent", "latent", {}),
        ("spatial", "spatial", {}),
        ("folded", "spatial", {"architecture": "folded"}),
        ("pixel", "pixel", {}),
    ):
        torch.manual_seed(0)
        obs = torch.randint(0, 256, (8, *OBS_SHAPE), dtype=torch.uint8)
        net = I2ANetwork(build_env_model(kind, OBS_SHAPE, NUM_ACTIONS, hparams=hparams), rollout_depth=DEPTH).eval()
        noise = net.imagination.sample_noise(8)
        logits, ratios = {}, []
        for pair in range(pairs):
            rates = {}
            for layout in (torch.contiguous_format, torch.channels_last)[:: 1 if pair % 2 else -1]:
                net.env_model.to(memory_format=layout)
                rates[layout] = states_per_second(lambda: net(obs, noise=noise), 8, seconds / 2)
                with torch.no_grad():
                    logits[layout] = net(obs, noise=noise)[0]
            ratios.append(rates[torch.channels_last] / rates[torch.contiguous_format])
        difference = (logits[torch.channels_last] - logits[torch.contiguous_format]).abs().max()
        rows[name] = {
            "channels_last_over_nchw_per_pair": ratios,
            "median_ratio": float(np.median(ratios)),
            "max_abs_logit_difference": float(difference),
        }
    return rows


def pixel_imagination_comparison(seconds: float, device: torch.device = torch.device("cpu"), batch: int = 8) -> dict:
    torch.manual_seed(0)
    obs = torch.randint(0, 256, (batch, *OBS_SHAPE), dtype=torch.uint8, device=device)
    net = I2ANetwork(build_env_model("pixel", OBS_SHAPE, NUM_ACTIONS), rollout_depth=DEPTH).eval().to(device)
    noise = net.imagination.sample_noise(batch, device=device)
    batched = states_per_second(lambda: net.encode_imagination(net.imagine(obs, noise)), batch, seconds, device)
    looped = states_per_second(lambda: seed_loop_imagination_code(net, obs, noise), batch, seconds, device)
    with torch.no_grad():
        difference = (net.encode_imagination(net.imagine(obs, noise)) - seed_loop_imagination_code(net, obs, noise)).abs().max()
    return {
        "batched_states_per_s": batched,
        "seed_loop_states_per_s": looped,
        "ratio": batched / looped,
        "max_abs_difference": float(difference),
    }


def _peak_memory_child() -> None:
    torch.manual_seed(0)
    net = I2ANetwork(build_env_model("latent", OBS_SHAPE, NUM_ACTIONS), rollout_depth=DEPTH)
    obs = torch.randint(0, 256, (256, *OBS_SHAPE), dtype=torch.uint8)
    with open("/proc/self/statm") as f:  # current RSS (pages); ru_maxrss is a past peak
        before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
    logits, features = net(obs)
    loss = logits.logsumexp(-1).mean() + net.values(features).pow(2).mean()
    loss = loss + net.rollout_policy_logits(obs).logsumexp(-1).mean()
    loss.backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_growth_mib": (after - before) / 1024, "peak_rss_mib": after / 1024}))


def peak_memory() -> dict:
    # A fresh process, so that the peak RSS belongs to this one update only.
    out = subprocess.run(
        [sys.executable, __file__, "--peak-memory-child"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "imagination.json"))
    parser.add_argument(
        "--device",
        default=None,
        help="also time pixel imagination on this torch device (e.g. cuda), where batching pays",
    )
    parser.add_argument(
        "--device-only",
        action="store_true",
        help="time only the --device rows, not the CPU rows and memory (benchmarks/gpu.sh, short of device time)",
    )
    parser.add_argument(
        "--cudnn-benchmark", action="store_true", help="also time the --device cuda rows with cuDNN's autotuner"
    )
    parser.add_argument("--peak-memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device_only and not args.device:
        parser.exit(2, "imagination.py: error: --device-only needs --device (e.g. --device cuda)\n")
    if args.device and torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, f"imagination.py: error: --device {args.device}: torch sees no CUDA device on this machine\n")
    if args.peak_memory_child:
        _peak_memory_child()
        return
    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}"}
    for threads in () if args.device_only else (1, os.cpu_count()):
        torch.set_num_threads(threads)
        forward = forward_comparison(args.seconds)
        pixel = pixel_imagination_comparison(args.seconds)
        layouts = channels_last_comparison(args.seconds)
        results[f"threads_{threads}"] = {
            "forward_batch_8": forward,
            "pixel_imagination_batch_8": pixel,
            "env_model_channels_last_batch_8": layouts,
        }
        print(f"--- torch threads: {threads}")
        print(
            f"Nature CNN {forward['nature_cnn_states_per_s']:8,.0f} states/s | latent I2A "
            f"{forward['latent_i2a_states_per_s']:8,.0f} states/s | ratio {forward['ratio']:.2f} (target >= 0.33)"
        )
        print(
            f"spatial I2A (the Atari default) {forward['spatial_i2a_states_per_s']:8,.0f} states/s | "
            f"ratio to the Nature CNN {forward['spatial_ratio']:.3f}"
        )
        print(
            f"pixel imagination: batched {pixel['batched_states_per_s']:6,.1f} states/s | seed loop "
            f"{pixel['seed_loop_states_per_s']:6,.1f} states/s | ratio {pixel['ratio']:.2f} (target >= 2) "
            f"| max |difference| {pixel['max_abs_difference']:.1e}"
        )
        for name, row in layouts.items():
            print(
                f"{name} I2A, env model channels-last / NCHW states/s per pair "
                + " ".join(f"{r:.2f}" for r in row["channels_last_over_nchw_per_pair"])
                + f" | median {row['median_ratio']:.2f} | max |logit difference| {row['max_abs_logit_difference']:.1e}"
            )
    if args.device:
        device = torch.device(args.device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
        results[f"device_{device.type}"] = {"device": name}
        # Batch 8 is the module issue's setting (and an EnvRunner's 8 envs); 256 is a
        # learner chunk, where a GPU fills. --cudnn-benchmark repeats them with cuDNN's
        # autotuner, which picks convolution algorithms by timing them (off in torch by
        # default; on an H200 it changed nothing beyond the run-to-run spread).
        for autotuned in (False, True) if device.type == "cuda" and args.cudnn_benchmark else (False,):
            torch.backends.cudnn.benchmark = autotuned
            rows = results[f"device_{device.type}"].setdefault("cudnn_benchmark" if autotuned else "default", {})
            for batch in (8, 256):
                forward = forward_comparison(args.seconds, device, batch)
                pixel = pixel_imagination_comparison(args.seconds, device, batch)
                rows[f"forward_batch_{batch}"] = forward
                rows[f"pixel_imagination_batch_{batch}"] = pixel
                print(
                    f"--- {name}, batch {batch}{', cudnn autotuned' if autotuned else ''}: Nature CNN "
                    f"{forward['nature_cnn_states_per_s']:,.0f} | latent I2A {forward['latent_i2a_states_per_s']:,.0f}"
                    f" | spatial I2A {forward['spatial_i2a_states_per_s']:,.0f} states/s; pixel imagination batched "
                    f"{pixel['batched_states_per_s']:,.1f} | seed loop {pixel['seed_loop_states_per_s']:,.1f} states/s"
                    f" | ratio {pixel['ratio']:.2f} (target >= 2) | max |difference| {pixel['max_abs_difference']:.1e}",
                    flush=True,
                )
        torch.backends.cudnn.benchmark = False
    if not args.device_only:
        memory = peak_memory()
        results["latent_forward_backward_batch_256"] = memory
        print(
            f"latent I2A forward+backward at batch 256: peak RSS growth {memory['peak_rss_growth_mib']:,.0f} MiB "
            f"(process peak {memory['peak_rss_mib']:,.0f} MiB; target < 2048 MiB)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
