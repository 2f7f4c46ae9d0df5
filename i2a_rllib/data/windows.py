"""Multi-step training windows: K consecutive transitions of one episode.

Pure pyarrow + numpy (no Ray). A window starts at a real observation and holds the K
actions taken, the K rewards received and the K real frames that followed, which is
all an environment model needs to be trained open loop over K steps (the real
observations in between are rebuilt by pushing the real frames into the stack).

A window never crosses an episode end: only its last step may be terminated or
truncated. Windows are cut from one shard at a time (`shard_windows`), so they never
cross a shard boundary either.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pyarrow as pa


def window_rows(
    actor: np.ndarray,
    episode: np.ndarray,
    step: np.ndarray,
    ended: np.ndarray,
    horizon: int,
    max_windows: Optional[int] = None,
) -> np.ndarray:
    """Row indices (W, horizon) of every run of `horizon` consecutive steps of one episode.

    Args:
        actor, episode, step: where each row comes from (episode ids are unique per actor).
        ended: terminated | truncated per row; only a window's last step may end.
        max_windows: keep at most this many, spread evenly over the data.
    """
    if horizon < 1:
        raise ValueError(f"horizon={horizon} must be >= 1.")
    order = np.lexsort((step, episode, actor))
    count = len(order) - horizon + 1
    if count <= 0:
        return np.zeros((0, horizon), dtype=np.int64)
    starts = np.arange(count)
    rows = order[starts[:, None] + np.arange(horizon)]  # (count, horizon) candidate runs
    same_episode = (actor[rows] == actor[rows[:, :1]]).all(1) & (
        episode[rows] == episode[rows[:, :1]]
    ).all(1)
    consecutive = (step[rows] == step[rows[:, :1]] + np.arange(horizon)).all(1)
    not_ended = ~ended[rows[:, :-1]].any(1)
    windows = rows[same_episode & consecutive & not_ended]
    if max_windows is not None and len(windows) > max_windows:
        windows = windows[np.linspace(0, len(windows) - 1, max_windows).astype(int)]
    return windows


def _fixed_width_rows(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size binary column -> (N, width) uint8, a fixed-size list column (float
    vectors) -> (N, size) of its values; without per-row Python objects."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        return array.flatten().to_numpy().reshape(len(array), array.type.list_size)
    width = array.type.byte_width
    buffer = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    start = array.offset * width
    return buffer[start : start + len(array) * width].reshape(len(array), width)


def table_window_rows(
    table: pa.Table, horizon: int, max_windows: Optional[int] = None
) -> np.ndarray:
    """`window_rows` of a table of transitions (reads only its small columns)."""
    ended = table.column("terminated").to_numpy() | table.column("truncated").to_numpy()
    return window_rows(
        table.column("actor").to_numpy(),
        table.column("episode").to_numpy(),
        table.column("step").to_numpy(),
        ended,
        horizon,
        max_windows,
    )


# What `table_window_rows` reads of a shard.
INDEX_COLUMNS = ["actor", "episode", "step", "terminated", "truncated"]


def shard_windows(table: pa.Table, horizon: int) -> Dict[str, np.ndarray]:
    """Every window of `horizon` steps in one shard, as numpy columns:

    obs (W, obs_bytes) uint8, actions (W, K) int64, rewards (W, K) float32 (unclipped),
    next_frames (W, K, frame_bytes) uint8; for vector datasets obs (W, D) and
    next_frames (W, K, D) float32.
    """
    rows = table_window_rows(table, horizon)
    obs = _fixed_width_rows(table.column("obs"))
    next_frames = _fixed_width_rows(table.column("next_frame"))
    return {
        "obs": obs[rows[:, 0]],
        "actions": table.column("action").to_numpy().astype(np.int64)[rows],
        "rewards": table.column("reward").to_numpy().astype(np.float32)[rows],
        "next_frames": next_frames[rows],
    }
