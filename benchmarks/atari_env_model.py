"""Atari environment models: open-loop accuracy against copying the last frame, and cost.

For each environment-model checkpoint given (default: the shipped
`pretrained/breakout_spatial` and `pretrained/breakout_folded`), in one run on one machine:
  - open-loop error / copy-last-frame error at k = 1, 5, 15, on held-out Breakout-v5
    data collected with sticky actions (the v5 default) and without; the model imagines
    k steps from a real observation under the actions actually taken,
  - accuracy on the transitions with a non-zero reward,
  - the action effect: how much the imagined next frame depends on the action,
  - whether the imagined next frame draws Breakout's ball where it really goes: on the
    held-out rows where the ball is in open play and moves to another 2x2 cell, the
    share whose one-step frame has the ball in the right cell, within one cell, or not
    at all (copying the last frame scores 0 "right cell" there by construction; the
    error ratio alone rewards a model that erases the ball and draws nothing),
  - multiply-accumulates per imagined step, against the seed's pixel model,
  - I2A EnvRunner sampling (1 in-process EnvRunner x 8 envs, 1 ale-py + 1 torch
    thread) with the model, against the Nature-CNN baseline module's.
The held-out data is collected afresh into --work-dir (random play, seeds the shipped
model never saw) unless --sticky-data / --nosticky-data name datasets.

Writes docs/results/atari_env_model.json (or --json) and prints each ratio.

How to run this script
----------------------
`python benchmarks/atari_env_model.py [--checkpoint DIR ...] [--transitions 20000]`

Results to expect
-----------------
docs/results.md ("Atari environment model") holds the measured figures with the
command that produced the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ENV_ID = "ALE/Breakout-v5"
HORIZONS = (1, 5, 15)
# Breakout at 84x84: the open play area between the bricks (rows <= 37) and the paddle
# (rows >= 75), inside the side walls; the ball there is the only lit pixels (1x2 to
# 2x4 of them at 84x84, by where it sits against the resampling grid).
BALL_ROWS, BALL_COLS = slice(39, 75), slice(5, 79)
BALL_MAX_PIXELS, LIT = 12, 40
CELL = 2  # pixels: the spatial model's fold (one latent cell)
DEFAULT_CHECKPOINTS = [os.path.join(ROOT, "pretrained", name) for name in ("breakout_spatial", "breakout_folded")]


def held_out_dataset(path: str, transitions: int, sticky: bool, seed: int) -> str:
    """A random-play dataset at `path` (collected if not there yet)."""
    from i2a_rllib.data.collect import collect

    env_config = {} if sticky else {"repeat_action_probability": 0.0}
    collect(ENV_ID, path, transitions, num_actors=2, num_envs_per_actor=8, shard_size=1000,
            seed=seed, env_config=env_config)  # fmt: skip
    return path


def k_step_ratios(model, data: str, max_rows: int, max_windows: int) -> dict:
    from i2a_rllib.data.format import read_manifest, read_rows
    from i2a_rllib.pretrain.evaluate import action_effect, k_step_errors, reward_accuracy

    manifest = read_manifest(data)
    table = read_rows(data, sorted(manifest.shards), max_rows=max_rows)
    errors = k_step_errors(model, table, manifest.obs_shape, manifest.frame_channels,
                           horizon=max(HORIZONS), max_windows=max_windows)  # fmt: skip
    rewards = reward_accuracy(model, table, manifest.obs_shape, max_rows=max_rows)
    effect = action_effect(model, table, manifest.obs_shape, manifest.frame_channels)
    return {
        **effect,
        **{f"ratio_{k}": errors["model_error"][k - 1] / errors["copy_error"][k - 1] for k in HORIZONS},
        "model_error": errors["model_error"],
        "copy_error": errors["copy_error"],
        "windows": errors["num_windows"],
        "reward_accuracy_nonzero": rewards["reward_accuracy_nonzero"],
        "nonzero_reward_rows": rewards["nonzero_reward_rows"],
        "reward_signal_auc": rewards["reward_signal_auc"],
        **ball_drawn(model, table, manifest.obs_shape, max_rows),
    }


def ball_cell(frame) -> Optional[Tuple[int, int]]:
    """(row, column) of the 2x2 cell holding the centre of Breakout's ball in an 84x84
    uint8 frame, or None where the play area holds no ball (or more than a ball's
    worth of lit pixels, e.g. a smear)."""
    import numpy as np

    rows, cols = np.nonzero(frame[BALL_ROWS, BALL_COLS] > LIT)
    if not 0 < len(rows) <= BALL_MAX_PIXELS:
        return None
    return (int(rows.mean() + BALL_ROWS.start) // CELL, int(cols.mean() + BALL_COLS.start) // CELL)


def ball_scores(predicted, real, last) -> dict:
    """How often `predicted` next frames (N, 84, 84) uint8 draw the ball where the `real`
    ones have it, over the rows where the ball moved to another cell since `last`."""
    right = near = missing = rows = 0
    for guess_frame, real_frame, last_frame in zip(predicted, real, last):
        target, before = ball_cell(real_frame), ball_cell(last_frame)
        if target is None or before is None or target == before:
            continue
        rows += 1
        guess = ball_cell(guess_frame)
        missing += guess is None
        right += guess == target
        near += guess is not None and max(abs(guess[0] - target[0]), abs(guess[1] - target[1])) <= 1
    share = (lambda count: count / rows if rows else float("nan"))
    return {"ball_rows": rows, "ball_right_cell": share(right), "ball_within_one_cell": share(near),
            "ball_not_drawn": share(missing)}  # fmt: skip


def ball_drawn(model, table, obs_shape, max_rows: int) -> dict:
    """`ball_scores` of the model's one-step imagined frames on held-out rows."""
    import numpy as np
    import torch

    from i2a_rllib.data.format import decode_frames
    from i2a_rllib.models.model_free import to_float_frames

    n = min(table.num_rows, max_rows)
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False)[:n], tuple(obs_shape))
    real = decode_frames(table.column("next_frame").to_numpy(zero_copy_only=False)[:n], (1, *obs_shape[1:]))
    actions = torch.from_numpy(table.column("action").to_numpy()[:n].astype(np.int64))
    predicted = []
    with torch.no_grad():
        for begin in range(0, n, 256):
            frames = to_float_frames(torch.from_numpy(obs[begin : begin + 256]))
            imagined, _ = model.predict_frames(frames, actions[begin : begin + 256, None])
            predicted.append((imagined[:, 0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return ball_scores(np.concatenate(predicted), real[:, 0], obs[:, -1])


def sampling_steps_per_second(checkpoint, seconds: float) -> float:
    """1 EnvRunner x 8 envs, 1 ale-py + 1 torch thread; baseline module if no checkpoint."""
    import torch

    from benchmarks.sampling import env_runner_steps_per_second
    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    torch.set_num_threads(1)
    env_config = {"num_threads": 1}
    if checkpoint is None:
        config = baseline_ppo_config(ENV_ID, env_config=env_config)
    else:
        config = configure_environment(I2AConfig(), ENV_ID, env_config=env_config).imagination(
            env_model_checkpoint=checkpoint, rollout_depth=5, imagination_image_interval=0
        )  # depth 5: what its table measured before the spatial models' default became 3
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=8)
    return env_runner_steps_per_second(config, seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="env-model checkpoint(s); default: the shipped Breakout models")  # fmt: skip
    parser.add_argument("--work-dir", default=os.path.expanduser("~/i2a-runs/atari_env_model"))
    parser.add_argument("--sticky-data", default=None)
    parser.add_argument("--nosticky-data", default=None)
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--max-windows", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0, help="per sampling row")
    parser.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "atari_env_model.json"))
    args = parser.parse_args()
    checkpoints = args.checkpoint or DEFAULT_CHECKPOINTS
    from i2a_rllib.checkpoints import load_env_model, read_env_model_metadata

    for path in checkpoints:
        read_env_model_metadata(path)  # a missing or foreign checkpoint fails here, in one line

    import torch

    from i2a_rllib.experiment import init_ray
    from i2a_rllib.models.env_models import build_env_model
    from i2a_rllib.models.env_models.cost import macs_per_imagined_step

    torch.set_num_threads(1)
    pixel_macs = macs_per_imagined_step(build_env_model("pixel", (4, 84, 84), 4))
    datasets = {"sticky": args.sticky_data, "nosticky": args.nosticky_data}
    for name, seed in (("sticky", 1_000_001), ("nosticky", 1_000_002)):
        if datasets[name] is None:
            init_ray(num_cpus=2)
            datasets[name] = held_out_dataset(
                os.path.join(args.work_dir, f"held_out_{name}"), args.transitions, name == "sticky", seed
            )
    baseline_sampling = sampling_steps_per_second(None, args.seconds)
    print(f"baseline module: {baseline_sampling:,.0f} env steps/s (1 EnvRunner x 8 envs, 1+1 threads)")
    results = []
    for path in checkpoints:
        model, metadata = load_env_model(path)
        model.eval()
        macs = macs_per_imagined_step(model)
        row = {
            "checkpoint": os.path.relpath(path, ROOT) if path.startswith(ROOT) else path,
            "kind": metadata["kind"],
            "hparams": metadata.get("hparams"),
            "macs_per_imagined_step": macs,
            "macs_ratio_to_pixel_model": macs / pixel_macs,
        }
        for name, data in datasets.items():
            row[name] = k_step_ratios(model, data, args.max_rows, args.max_windows)
            print(f"{row['checkpoint']} {name:>8}: " + "  ".join(
                f"k={k} {row[name][f'ratio_{k}']:.3f}" for k in HORIZONS
            ) + f"  (x copy error; {row[name]['windows']} windows), non-zero reward accuracy "
                f"{row[name]['reward_accuracy_nonzero']:.2f} of {row[name]['nonzero_reward_rows']} (imagined reward's "
                f"AUC {row[name]['reward_signal_auc']:.2f}), action "
                f"effect {row[name]['action_effect']:.4f} (real one-step change {row[name]['real_step_change']:.3f}); "
                f"ball drawn in the right cell {row[name]['ball_right_cell']:.3f}, within one cell "
                f"{row[name]['ball_within_one_cell']:.3f}, not drawn {row[name]['ball_not_drawn']:.3f} "
                f"of {row[name]['ball_rows']} rows where it moved")  # fmt: skip
        rate = sampling_steps_per_second(path, args.seconds)
        row["sampling_steps_per_s"] = rate
        row["sampling_ratio_to_baseline"] = rate / baseline_sampling
        print(f"{row['checkpoint']}: {macs / 1e6:.1f} MMAC per imagined step = "
              f"{macs / pixel_macs:.3f} of the pixel model's; I2A sampling {rate:,.0f} steps/s = "
              f"{rate / baseline_sampling:.2f} of the baseline's")  # fmt: skip
        results.append(row)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}",
        "env_id": ENV_ID,
        "held_out_data": datasets,
        "pixel_model_macs_per_imagined_step": pixel_macs,
        "baseline_sampling_steps_per_s": baseline_sampling,
        "models": results,
    }
    write_report(args.json, report)
    print(f"wrote {args.json}")


def write_report(path: str, report: dict) -> None:
    """Writes `report` to `path`, keeping the keys of an existing file that this
    benchmark does not write (the one-off trials recorded beside its figures)."""
    kept = {}
    if os.path.exists(path):
        with open(path) as f:
            kept = {key: value for key, value in json.load(f).items() if key not in report}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({**report, **kept}, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
