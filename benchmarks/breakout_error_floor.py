"""Where Breakout's 1-step copy-last-frame error lives, and how much of it is predictable.

The env-model target compares a model's 1-step frame error with "copy the last frame".
This script looks at the data instead of a model, on the held-out split that
pretraining uses:
  1. the share of the copy error in each band of rows (the paddle rows 75-77 carry
     most of it),
  2. the paddle's next move given what a model can see: the table of next moves
     conditioned on (action, last move, move before) is fitted on the training shards,
     and its MSE-optimal prediction (the mixture of shifted paddle bands) is scored on
     the held-out shards. With sticky actions (p=0.25) and ALE's paddle emulation (the
     controller keeps moving past the walls) the next move is partly hidden; this is
     the error even a perfect model of these features keeps on the paddle rows,
  3. the same with the true move (an "oracle"): what the shift rendering itself
     costs (frames are max-pooled over the last two emulator frames, so a moving
     paddle is smeared, which a shift does not reproduce), to be set against (2).

How to run this script
----------------------
`python benchmarks/breakout_error_floor.py DATASET_DIR` (a dataset from `i2a collect`
on ALE/Breakout-v5; ~1 min for 30k transitions)

Results to expect
-----------------
On random-play data: ~70% of the copy error in the paddle rows; the conditional-move
prediction leaves ~0.3 of the total copy error on the paddle rows alone, of which
~0.15 is the rendering approximation. docs/results.md has the measured figures.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from i2a_rllib.data.format import (  # noqa: E402
    DatasetError,
    decode_frames,
    read_manifest,
    read_rows,
    split_shards,
)

PADDLE_ROWS = slice(75, 78)
PLAYFIELD_COLUMNS = (5, 79)  # inside the side walls
CONDITIONS = {
    "action": lambda a, m1, m2: (a,),
    "action, last move": lambda a, m1, m2: (a, m1),
    "action, last two moves": lambda a, m1, m2: (a, m1, m2),
}
MIN_COUNT = 5  # rarer conditions fall back to the action alone
MOVE_STEPS = 2  # moves are measured in 1/MOVE_STEPS columns


def load(uri, shards, obs_shape):
    table = read_rows(uri, shards)
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False), tuple(obs_shape))
    nxt = decode_frames(table.column("next_frame").to_numpy(zero_copy_only=False), (1, *obs_shape[1:]))
    return obs.astype(np.float32) / 255, nxt[:, 0].astype(np.float32) / 255, table.column("action").to_numpy()


def paddle_x(frames: np.ndarray) -> np.ndarray:
    """Intensity-weighted column of the paddle rows (sub-pixel)."""
    left, right = PLAYFIELD_COLUMNS
    band = frames[..., PADDLE_ROWS, left:right].mean(-2)
    columns = np.arange(left, right)
    return (band * columns).sum(-1) / np.maximum(band.sum(-1), 1e-6)


def shift_playfield(band: np.ndarray, move: float) -> np.ndarray:
    """The paddle rows with the playfield shifted by `move` columns (walls stay);
    fractional moves blend the two nearest whole-column shifts (frames are resized,
    so the paddle sits between columns)."""
    whole = int(np.floor(move))
    fraction = move - whole
    if fraction:
        return (1 - fraction) * _shift_whole(band, whole) + fraction * _shift_whole(band, whole + 1)
    return _shift_whole(band, whole)


def _shift_whole(band: np.ndarray, move: int) -> np.ndarray:
    left, right = PLAYFIELD_COLUMNS
    out, inner = band.copy(), band[..., left:right]
    moved = np.zeros_like(inner)
    if move >= 0:
        moved[..., move:] = inner[..., : inner.shape[-1] - move]
    else:
        moved[..., :move] = inner[..., -move:]
    out[..., left:right] = moved
    return out


def moves(obs, nxt):
    x = [paddle_x(obs[:, k]) for k in range(obs.shape[1])] + [paddle_x(nxt)]
    rounded = lambda d: np.rint(d * MOVE_STEPS) / MOVE_STEPS  # noqa: E731
    return rounded(x[-1] - x[-2]), rounded(x[-2] - x[-3]), rounded(x[-3] - x[-4])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="dataset directory written by `i2a collect` on Breakout")
    args = parser.parse_args()
    try:
        manifest = read_manifest(args.dataset)
    except DatasetError as e:
        sys.exit(f"{args.dataset}: {e}")
    if "Breakout" not in manifest.env_id or manifest.frame_channels != 1:
        sys.exit(f"{args.dataset}: needs a Breakout dataset of gray frames, got {manifest.env_id}.")
    train_shards, held_shards = split_shards(sorted(manifest.shards), 0.1)
    obs, nxt, actions = load(args.dataset, train_shards, manifest.obs_shape)
    h_obs, h_nxt, h_actions = load(args.dataset, held_shards, manifest.obs_shape)
    print(f"{len(actions):,} training / {len(h_actions):,} held-out transitions of {manifest.env_id}")

    copy_sq = (h_nxt - h_obs[:, -1]) ** 2
    total = copy_sq.sum()
    print("share of the held-out copy-last-frame error by rows:")
    for top in range(0, 84, 12):
        print(f"  rows {top:2d}-{top + 11:2d}: {copy_sq[:, top : top + 12].sum() / total:.3f}")
    band_last, band_true = h_obs[:, -1, PADDLE_ROWS], h_nxt[:, PADDLE_ROWS]
    paddle_copy = ((band_true - band_last) ** 2).sum()
    print(f"paddle rows {PADDLE_ROWS.start}-{PADDLE_ROWS.stop - 1}: {paddle_copy / total:.3f} of it")

    next_move, last_move, move_before = moves(obs, nxt)
    h_next, h_last, h_before = moves(h_obs, h_nxt)
    oracle = sum(((band_true[i] - shift_playfield(band_last[i], h_next[i])) ** 2).sum() for i in range(len(h_actions)))
    print(f"oracle (true move, shifted band): paddle-rows error = {oracle / total:.3f} of the total copy error")
    for name, condition in CONDITIONS.items():
        table = collections.defaultdict(collections.Counter)
        by_action = collections.defaultdict(collections.Counter)
        for i in range(len(actions)):
            table[condition(actions[i], last_move[i], move_before[i])][next_move[i]] += 1
            by_action[actions[i]][next_move[i]] += 1
        error, modal_hits = 0.0, 0
        for i in range(len(h_actions)):
            counts = table.get(condition(h_actions[i], h_last[i], h_before[i]))
            if not counts or sum(counts.values()) < MIN_COUNT:
                counts = by_action[h_actions[i]]
            n = sum(counts.values())
            modal_hits += counts.most_common(1)[0][0] == h_next[i]
            predicted = sum(c / n * shift_playfield(band_last[i], m) for m, c in counts.items())
            error += ((band_true[i] - predicted) ** 2).sum()
        print(
            f"given ({name}): paddle-rows error = {error / paddle_copy:.3f} of the paddle rows' copy "
            f"error = {error / total:.3f} of the total copy error; the most likely move is the "
            f"true one in {modal_hits / len(h_actions):.0%} of held-out steps"
        )


if __name__ == "__main__":
    main()
