"""Pictures people would rather look at: imagination strips, real-vs-imagined strips, GIFs.

Numpy + PIL + torch only (no Ray): callers hand in networks and frames.
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


@torch.no_grad()
def imagination_strip(net, obs: np.ndarray, seed: int = 0) -> np.ndarray:
    """One imagination of an `I2ANetwork`: a row per action, real frame then imagined ones
    (latent models' states decoded into frames).

    Args:
        net: An `I2ANetwork` (or anything with `.imagination`, `.env_model`).
        obs: One observation (C, H, W), uint8.
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
    decoded = env_model.frame_of(flat, canvas.expand(flat.shape[0], -1, -1, -1))
    views = decoded.view(num_actions, depth, *decoded.shape[1:])
    real = frame_to_gray_uint8(canvas[0].numpy())
    rows: List[List[np.ndarray]] = []
    for action in range(num_actions):
        rows.append([real] + [frame_to_gray_uint8(v.numpy()) for v in views[action]])
    return grid(rows)


def real_vs_imagined_strip(real: np.ndarray, imagined: np.ndarray) -> np.ndarray:
    """Two rows: real frames (K, fc, H, W) above the model's open-loop predictions."""
    return grid(
        [[frame_to_gray_uint8(f) for f in real], [frame_to_gray_uint8(f) for f in imagined]]
    )
