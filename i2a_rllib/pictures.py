"""Pictures people would rather look at: imagination strips, real-vs-imagined strips, GIFs.

Numpy + PIL + torch only (no Ray; matplotlib for flat-vector states, which are drawn
as curves, one panel per feature): callers hand in networks and frames.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Sequence

import numpy as np
import torch
from PIL import Image

from i2a_rllib.models.model_free import to_float_frames

SEPARATOR = 2  # pixels between tiles


def frame_to_gray_uint8(frame: np.ndarray) -> np.ndarray:
    """(fc, H, W) frame in [0, 1] or uint8 -> (H, W) or (H, W, 3) uint8 for display.

    One channel is shown as gray; several channels (one per entity) are shown as a
    colour-coded map so boards stay readable.
    """
    frame = np.asarray(frame, dtype=np.float32)
    if frame.max(initial=0.0) > 1.0:
        frame = frame / 255.0
    if frame.shape[0] == 1:
        return (frame[0].clip(0, 1) * 255).astype(np.uint8)
    if frame.shape[0] == 3:
        return (frame.transpose(1, 2, 0).clip(0, 1) * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    palette = rng.integers(40, 255, size=(frame.shape[0], 3)).astype(np.float32)
    rgb = np.tensordot(frame.clip(0, 1).transpose(1, 2, 0), palette, axes=1)
    return rgb.clip(0, 255).astype(np.uint8)


def _to_rgb(tile: np.ndarray) -> np.ndarray:
    return np.repeat(tile[..., None], 3, axis=-1) if tile.ndim == 2 else tile


def grid(rows: Sequence[Sequence[np.ndarray]], scale: int = 2) -> np.ndarray:
    """Tiles a list of rows of images (H, W[, 3]) into one RGB uint8 image."""
    tiles = [[_to_rgb(t) for t in row] for row in rows]
    height, width = tiles[0][0].shape[:2]
    num_rows, num_cols = len(tiles), max(len(r) for r in tiles)
    out = np.full(
        (num_rows * (height + SEPARATOR) - SEPARATOR, num_cols * (width + SEPARATOR) - SEPARATOR, 3),
        255,
        dtype=np.uint8,
    )
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            y, x = i * (height + SEPARATOR), j * (width + SEPARATOR)
            out[y : y + height, x : x + width] = tile
    return out.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else out


def save_png(image: np.ndarray, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def save_gif(frames: Iterable[np.ndarray], path: str, fps: int = 15, scale: int = 2) -> str:
    images = [
        Image.fromarray(_to_rgb(f).repeat(scale, 0).repeat(scale, 1)) for f in frames
    ]
    if not images:
        raise ValueError("save_gif needs at least one frame.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
    )
    return path


def state_curves(
    curves: Sequence[Sequence[np.ndarray]], labels: Sequence[str], title: str, first_step: int = 0
) -> np.ndarray:
    """Flat-vector states as pictures: one panel per feature, one line per curve.

    Args:
        curves: Each a sequence of states (T, D) (e.g. real states, imagined states).
        labels: A legend entry per curve.
        first_step: The step number of each curve's first state.

    Returns:
        An RGB uint8 image (H, W, 3).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = [np.asarray(c, dtype=np.float32).reshape(len(c), -1) for c in curves]
    features = arrays[0].shape[1]
    columns = min(features, 4)
    rows = -(-features // columns)
    size = (2.6 * columns, 2.0 * rows + 0.5)
    fig, axes = plt.subplots(rows, columns, figsize=size, dpi=100, squeeze=False)
    for feature, ax in enumerate(axes.flat):
        if feature >= features:
            ax.axis("off")
            continue
        for values, label in zip(arrays, labels):
            steps = np.arange(first_step, first_step + len(values))
            ax.plot(steps, values[:, feature], marker=".", label=label)
        ax.set_title(f"feature {feature}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


@torch.no_grad()
def imagination_strip(net, obs: np.ndarray, seed: int = 0) -> np.ndarray:
    """One imagination of an `I2ANetwork`: a row per action, real frame then imagined ones
    (latent models' states decoded into frames); for flat-vector states, a panel per
    feature with the real state and each action's imagined trajectory.

    Args:
        net: An `I2ANetwork` (or anything with `.imagination`, `.env_model`).
        obs: One observation (C, H, W), uint8, or (D,) float.
    """
    env_model = net.env_model
    frames = to_float_frames(torch.as_tensor(np.asarray(obs))[None])
    generator = torch.Generator().manual_seed(seed)
    noise = None
    if net.imagination.action_choice == "sample":
        noise = torch.rand(net.imagination.noise_shape(1), generator=generator)
    imagination = net.imagination(env_model.initial_state(frames), noise, keep_states=True)
    states = imagination.states[0]  # (A, T, *state)
    num_actions, depth = states.shape[:2]
    canvas = env_model.newest_frame(frames)
    flat = states.reshape(num_actions * depth, *states.shape[2:])
    decoded = env_model.frame_of(flat, canvas.expand(flat.shape[0], *canvas.shape[1:]))
    views = decoded.view(num_actions, depth, *decoded.shape[1:])
    if env_model.observes_vectors:
        start = canvas.numpy()
        return state_curves(
            [np.concatenate([start, views[action].numpy()]) for action in range(num_actions)],
            [f"first action {action}" for action in range(num_actions)],
            f"imagined {env_model.kind} rollouts from one real state (step 0)",
        )
    real = frame_to_gray_uint8(canvas[0].numpy())
    rows: List[List[np.ndarray]] = []
    for action in range(num_actions):
        rows.append([real] + [frame_to_gray_uint8(v.numpy()) for v in views[action]])
    return grid(rows)


def real_vs_imagined_strip(real: np.ndarray, imagined: np.ndarray) -> np.ndarray:
    """Two rows: real frames (K, fc, H, W) above the model's open-loop predictions;
    for flat-vector states (K, D), their curves."""
    if np.asarray(real).ndim == 2:
        labels = ["real", "imagined (open loop)"]
        return state_curves([real, imagined], labels, "held-out states", first_step=1)
    return grid(
        [[frame_to_gray_uint8(f) for f in real], [frame_to_gray_uint8(f) for f in imagined]]
    )
