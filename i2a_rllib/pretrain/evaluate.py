"""Evaluation of an environment model on held-out trajectories.

- Open-loop k-step prediction error (the seed's "compounding error"): from a real
  observation, the model imagines k steps under the actions actually taken; the error
  is the per-pixel mean-squared error of the k-th predicted frame against the real
  one, beside the "copy the last frame" baseline (predict frame t+k = frame t). For
  flat-vector observations: the per-feature mean-squared error of the k-th predicted
  state, beside "copy the last state".
  Stochastic models (`codes` > 0) are scored on one draw per window (what imagination
  sees) and on the mean of `MEAN_DRAWS` draws (their mean prediction, which compares
  with a deterministic model's).
- Reward prediction accuracy (overall, and on the transitions with a non-zero reward).
- Action effect: how much the one-step imagined frame depends on the action (the largest
  per-pixel difference between actions, averaged over held-out states), beside how much
  a real frame changes in one step: a model that ignores the action scores 0, and
  imagination then cannot tell the actions' futures apart.
- Pictures: a PNG strip of real vs imagined frames, the error curve as a PNG, and both
  (with the scalars) in TensorBoard via tensorboardX.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from i2a_rllib.data.format import Manifest, decode_frames, read_rows
from i2a_rllib.data.windows import table_window_rows
from i2a_rllib.models.env_models import EnvironmentModel
from i2a_rllib.models.env_models.cost import macs_per_imagined_step
from i2a_rllib.models.model_free import to_float_frames
from i2a_rllib.pictures import real_vs_imagined_strip, save_png

HORIZONS = (1, 5, 10, 15)
# Draws averaged into a stochastic model's mean prediction.
MEAN_DRAWS = 8


def _predicted_thing(obs_shape: Sequence[int]) -> Tuple[str, str]:
    """What is predicted and what the error is averaged over: ("frame", "pixel"), or
    ("state", "feature") for flat vectors. The baseline copies the last of the first."""
    return ("state", "feature") if len(obs_shape) == 1 else ("frame", "pixel")


@torch.no_grad()
def k_step_errors(
    model: EnvironmentModel,
    table,
    obs_shape: Sequence[int],
    frame_channels: int,
    horizon: int = max(HORIZONS),
    max_windows: int = 256,
    chunk: int = 32,
) -> Dict[str, Any]:
    windows = table_window_rows(table, horizon, max_windows)
    while not len(windows) and horizon > 1:
        # Tiny datasets: fall back to the longest horizon the held-out runs allow.
        horizon -= 1
        windows = table_window_rows(table, horizon, max_windows)
    if not len(windows):
        raise ValueError(
            "The held-out data has no two consecutive steps of one episode; collect more "
            "data."
        )
    obs = table.column("obs").to_numpy(zero_copy_only=False)
    next_frames = table.column("next_frame").to_numpy(zero_copy_only=False)
    actions = table.column("action").to_numpy().astype(np.int64)
    frame_shape = (frame_channels, *obs_shape[1:])
    model_sq, copy_sq, mean_sq = np.zeros(horizon), np.zeros(horizon), np.zeros(horizon)
    stochastic = getattr(model, "codes", 0) > 0
    example = None
    for begin in range(0, len(windows), chunk):
        rows = np.stack(windows[begin : begin + chunk])
        start = to_float_frames(torch.from_numpy(decode_frames(obs[rows[:, 0]], tuple(obs_shape))))
        real = decode_frames(next_frames[rows.reshape(-1)], frame_shape)
        real = to_float_frames(torch.from_numpy(real.reshape(*rows.shape, *frame_shape)))
        taken = torch.from_numpy(actions[rows])
        predicted, _ = model.predict_frames(start, taken)
        copy = model.newest_frame(start).unsqueeze(1)
        # Mean over pixels (or features) of each step: (B, K).
        model_sq += ((predicted - real) ** 2).flatten(2).mean(-1).sum(0).numpy()
        if stochastic:
            mean = predicted.clone()
            for _ in range(MEAN_DRAWS - 1):
                mean += model.predict_frames(start, taken)[0]
            mean_sq += ((mean / MEAN_DRAWS - real) ** 2).flatten(2).mean(-1).sum(0).numpy()
        copy_sq += ((copy - real) ** 2).flatten(2).mean(-1).sum(0).numpy()
        if example is None:
            example = (real[0].numpy(), predicted[0].numpy())
    count = len(windows)
    return {
        "model_error": (model_sq / count).tolist(),
        "mean_error": (mean_sq / count).tolist() if stochastic else None,
        "copy_error": (copy_sq / count).tolist(),
        "num_windows": count,
        "example": example,
    }


@torch.no_grad()
def reward_accuracy(model: EnvironmentModel, table, obs_shape, max_rows: int = 4096) -> Dict[str, float]:
    n = min(table.num_rows, max_rows)
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False)[:n], tuple(obs_shape))
    actions = torch.from_numpy(table.column("action").to_numpy()[:n].astype(np.int64))
    rewards = torch.from_numpy(table.column("reward").to_numpy()[:n].astype(np.float32))
    predicted = []
    for begin in range(0, n, 256):
        frames = to_float_frames(torch.from_numpy(obs[begin : begin + 256]))
        _, reward = model.step(model.initial_state(frames), actions[begin : begin + 256])
        predicted.append(reward)
    predicted = torch.cat(predicted)
    correct = model.reward_hits(predicted, rewards).float()
    nonzero = rewards != 0
    return {
        "reward_accuracy": float(correct.mean()),
        "reward_accuracy_nonzero": float(correct[nonzero].mean()) if nonzero.any() else float("nan"),
        "nonzero_reward_rows": int(nonzero.sum()),
        # Imagination hands the rollout encoder the expected reward, not the argmax class:
        # whether it is larger where the game really scored says if that input carries
        # anything, even where no argmax ever names a reward.
        "reward_signal_auc": separation_auc(predicted.abs()[nonzero], predicted.abs()[~nonzero]),
    }


def separation_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a positive row scores above a negative one), ties counting half: 0.5 is no
    signal, 1 a perfect ranking (the ROC curve's area); NaN without both kinds."""
    from scipy.stats import mannwhitneyu  # scipy comes with ray[rllib]

    if not len(positive) or not len(negative):
        return float("nan")
    # The Mann-Whitney U of the positives counts exactly those pairs (from ranks, not
    # from all P x N pairs, so held-out sets where many rows score stay cheap).
    u = mannwhitneyu(positive.cpu().numpy(), negative.cpu().numpy()).statistic
    return float(u / (len(positive) * len(negative)))


@torch.no_grad()
def action_effect(model: EnvironmentModel, table, obs_shape, frame_channels: int, max_states: int = 256) -> Dict[str, float]:
    """Mean over held-out states of the largest per-pixel (per-feature, for vectors)
    difference between the one-step frames imagined for different actions, and of the
    largest change between a real frame and the next: the scale of what the actions'
    futures can differ by."""
    n = min(table.num_rows, max_states)
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False)[:n], tuple(obs_shape))
    frame_shape = (frame_channels, *obs_shape[1:])
    next_frames = decode_frames(table.column("next_frame").to_numpy(zero_copy_only=False)[:n], frame_shape)
    frames = to_float_frames(torch.from_numpy(obs))
    newest = model.newest_frame(frames)
    next_states, _ = model.step_every_action(model.initial_state(frames))
    imagined = model.frame_of(next_states, newest.repeat_interleave(model.num_actions, 0))
    imagined = imagined.reshape(n, model.num_actions, -1)
    real_change = (to_float_frames(torch.from_numpy(next_frames)) - newest).flatten(1).abs().amax(1)
    return {
        "action_effect": float((imagined - imagined[:, :1]).abs().amax(dim=(1, 2)).mean()),
        "real_step_change": float(real_change.mean()),
    }


def _plot_curve(
    model_error, copy_error, path: str, thing: str = "frame", unit: str = "pixel"
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(model_error) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(steps, model_error, "o-", label="environment model")
    ax.plot(steps, copy_error, "s--", label=f"copy last {thing}")
    ax.set_xlabel("open-loop steps k")
    ax.set_ylabel(f"per-{unit} MSE of {thing} t+k")
    ax.set_title("k-step prediction error (held-out)")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_env_model(
    model: EnvironmentModel,
    data: str,
    shards: List[str],
    manifest: Manifest,
    output_dir: str,
    max_rows: int = 6000,
) -> Dict[str, Any]:
    """Evaluates on the held-out `shards`; writes PNGs, TensorBoard files and metrics.json."""
    from tensorboardX import SummaryWriter

    model.eval()
    thing, unit = _predicted_thing(manifest.obs_shape)
    table = read_rows(data, shards, max_rows=max_rows)
    errors = k_step_errors(model, table, manifest.obs_shape, manifest.frame_channels)
    metrics: Dict[str, Any] = {}
    horizons = [k for k in HORIZONS if k <= len(errors["model_error"])]
    if len(horizons) < len(HORIZONS):
        print(
            f"[evaluate] held-out runs are only {len(errors['model_error'])} steps long; "
            f"reporting horizons {horizons}"
        )
    for k in horizons:
        metrics[f"frame_error_{k}_step"] = errors["model_error"][k - 1]
        metrics[f"copy_error_{k}_step"] = errors["copy_error"][k - 1]
        metrics[f"error_ratio_{k}_step"] = errors["model_error"][k - 1] / max(
            errors["copy_error"][k - 1], 1e-12
        )
        if errors["mean_error"] is not None:
            metrics[f"mean_error_ratio_{k}_step"] = errors["mean_error"][k - 1] / max(
                errors["copy_error"][k - 1], 1e-12
            )
    metrics.update(reward_accuracy(model, table, manifest.obs_shape))
    metrics.update(action_effect(model, table, manifest.obs_shape, manifest.frame_channels))
    metrics["num_windows"] = errors["num_windows"]
    metrics["macs_per_imagined_step"] = macs_per_imagined_step(model)

    os.makedirs(output_dir, exist_ok=True)
    real, imagined = errors["example"]
    strip = real_vs_imagined_strip(real[:8], imagined[:8])
    files = {
        "strip": save_png(strip, os.path.join(output_dir, "real_vs_imagined.png")),
        "curve": _plot_curve(
            errors["model_error"],
            errors["copy_error"],
            os.path.join(output_dir, "k_step_error.png"),
            thing,
            unit,
        ),
    }
    with SummaryWriter(os.path.join(output_dir, "tensorboard")) as writer:
        for k, (m, c) in enumerate(zip(errors["model_error"], errors["copy_error"]), start=1):
            writer.add_scalars("k_step_error", {"model": m, f"copy_last_{thing}": c}, k)
        for key, value in metrics.items():
            # NaN marks a figure the held-out data cannot give (e.g. no scoring step):
            # TensorBoard would print a warning per NaN and plot nothing.
            if math.isfinite(value):
                writer.add_scalar(f"evaluation/{key}", value)
        writer.add_image("real_vs_imagined", strip, dataformats="HWC")
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump({**metrics, "model_error": errors["model_error"], "copy_error": errors["copy_error"]}, f, indent=2)
    print(f"[evaluate] k-step {thing} error on held-out trajectories (per-{unit} MSE):")
    for k in horizons:
        print(
            f"[evaluate]   {k:2d} step(s): model {metrics[f'frame_error_{k}_step']:.6f}   "
            f"copy-last-{thing} {metrics[f'copy_error_{k}_step']:.6f}   "
            f"ratio {metrics[f'error_ratio_{k}_step']:.3f}"
            + (
                f"   (mean of {MEAN_DRAWS} draws: ratio {metrics[f'mean_error_ratio_{k}_step']:.3f})"
                if errors["mean_error"] is not None
                else ""
            )
        )
    print(f"[evaluate] {metrics['macs_per_imagined_step'] / 1e6:.1f} MMAC per imagined step")
    print(
        f"[evaluate] reward accuracy {metrics['reward_accuracy']:.3f} "
        f"(non-zero rewards: {metrics['reward_accuracy_nonzero']:.3f} over "
        f"{metrics['nonzero_reward_rows']} rows; imagined reward tells them from the rest "
        f"with AUC {metrics['reward_signal_auc']:.2f}, 0.5 = no signal)"
    )
    print(
        f"[evaluate] action effect {metrics['action_effect']:.4f} (largest {unit} difference "
        f"between the actions' imagined next {thing}s; a real {thing} changes by up to "
        f"{metrics['real_step_change']:.4f} in one step)"
    )
    print(f"[evaluate] pictures: {files['strip']}, {files['curve']}", flush=True)
    return {"metrics": metrics, "files": files}
