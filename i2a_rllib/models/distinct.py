"""Finding the distinct rows of a batch, to run a network once per distinct row.

Pure torch (and numpy), no Ray. Inputs repeat a lot where boards are small and moves
often change nothing (Sokoban 5x5: ~40 distinct observations in a 256-row minibatch,
~110 distinct imagined frames among 2,560), and a network whose output for a row
depends on that row alone can run once per distinct row, exactly: the outputs are
gathered back, and autograd adds up the gradients of repeats.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def distinct_rows(rows: torch.Tensor):
    """(first, where) for the distinct rows of a 2-D uint8 or integer tensor: `rows[first]`
    are the distinct rows and `rows[first][where]` is `rows`; None when all differ."""
    if rows.is_cuda:
        return _distinct_rows_by_hash(rows)
    # On a CPU numpy sorts whole rows as raw bytes (memcmp): for 5,120 84x84 frames
    # 0.2-0.4x the time of torch.unique(dim=0), which compares them element by element,
    # when frames repeat (as imagined ones do); 1.4x when all differ (docs/benchmarks.md).
    array = np.ascontiguousarray(rows.numpy())
    as_bytes = array.view(np.dtype((np.void, array.shape[1] * array.itemsize)))[:, 0]
    _, first, where = np.unique(as_bytes, return_index=True, return_inverse=True)
    if len(first) == len(rows):
        return None
    return torch.from_numpy(first), torch.from_numpy(where.reshape(-1))


_HASH_WEIGHTS = {}


def row_hashes(rows: torch.Tensor) -> torch.Tensor:
    """One int64 per row of a 2-D integer tensor, equal for equal rows: the row's bytes
    as 16-bit words times fixed random odd 64-bit weights, summed (wrapping). Rows that
    differ in one word never collide (odd weights); in more, with probability ~2^-48 at
    most (a difference of two 16-bit words has at most 15 factors of 2, and the weights
    have 62 random bits). A collision only costs `distinct_rows` its fallback."""
    data = rows.contiguous().view(torch.uint8)
    data = F.pad(data, (0, data.shape[1] % 2)).view(torch.int16)
    key = (data.shape[1], data.device)
    if key not in _HASH_WEIGHTS:
        generator = torch.Generator().manual_seed(data.shape[1])
        weights = torch.randint(-(2**62), 2**62, (data.shape[1],), generator=generator) | 1
        _HASH_WEIGHTS[key] = weights.to(data.device)
    return (data.long() * _HASH_WEIGHTS[key]).sum(1)


def _distinct_rows_by_hash(rows: torch.Tensor):
    """`distinct_rows` by a 1-D unique over row hashes, then a check that every row equals
    its group's first row (exact: a hash collision falls back to comparing whole rows).
    torch.unique(dim=0) sorts rows by comparing them element by element; on a GPU that
    merge sort took ~90% of pixel imagination's time (docs/benchmarks.md)."""
    if len(rows) < 2:
        return None
    _, where = torch.unique(row_hashes(rows), return_inverse=True)
    found = _first_of_groups(where, len(rows))
    if found is None:  # distinct hashes: distinct rows
        return None
    first, where = found
    if not torch.equal(rows[first][where], rows):
        _, where = torch.unique(rows, dim=0, return_inverse=True)
        return _first_of_groups(where, len(rows))
    return first, where


def _first_of_groups(where: torch.Tensor, count: int):
    """(first row of each group, where) for group ids `where`; None when every row is
    its own group."""
    groups = int(where.max()) + 1
    if groups == count:
        return None
    first = torch.full((groups,), count, dtype=torch.long, device=where.device)
    return first.scatter_reduce(0, where, torch.arange(count, device=where.device), "amin"), where


# Rows of at most this many values (small boards: Sokoban 5x5's 7 x 5 x 5) run padded to
# `padded_count` rows. Their convolutions cost oneDNN's per-shape setup more than
# arithmetic; on Atari frames (84 x 84) padding only added rows (the rollout encoder's
# forward + backward ~1.0-1.1x slower padded, docs/benchmarks.md).
PADDED_ROW_VALUES = 1024


def padded_count(count: int) -> int:
    """`count` rounded up to one of four sizes per doubling (..., 32, 40, 48, 56, 64, 80,
    ...). oneDNN builds its convolution kernels for each batch shape and keeps ~1,024 of
    them: with a new number of distinct rows on almost every call, a small conv stack's
    forward + backward took ~1.8x as long as with a few repeating sizes
    (docs/benchmarks.md)."""
    if count <= 8:
        return count
    step = 1 << (count.bit_length() - 3)
    return -(-count // step) * step


def groups_of(rows: torch.Tensor, padded: Optional[bool] = None):
    """(`first`, `where`, count) for the distinct rows of a batch of any shape and dtype
    (rows compared bit for bit): `rows[first[:count]]` are the distinct rows, and small
    rows' `first` (`padded`: None for rows of at most PADDED_ROW_VALUES values) is padded
    to `padded_count` with copies of its first index (outputs of the copies are dropped:
    no effect on outputs or gradients). None where every row should run: no repeats,
    fewer than 2 rows, a padded count that reaches the batch's, or under torch.compile
    (compiled exploration), whose tracing cannot follow the numpy grouping and whose
    data-dependent shapes would not compile well."""
    if len(rows) < 2 or torch.compiler.is_compiling():
        return None
    keys = rows.flatten(1).contiguous()
    if keys.is_floating_point():
        keys = keys.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[keys.element_size()])
    found = distinct_rows(keys)
    if found is None:
        return None
    first, where = found
    count = len(first)
    if padded is None:
        padded = rows[0].numel() <= PADDED_ROW_VALUES
    if padded:
        size = padded_count(count)
        if size >= len(rows):
            return None
        first = padded_with_first(first, size)
    return first, where, count


def padded_with_first(rows: torch.Tensor, size: int) -> torch.Tensor:
    """`rows` followed by copies of its first row, `size` rows in all."""
    return torch.cat([rows, rows[:1].expand(size - len(rows), *rows.shape[1:])])


def embed_distinct(net: nn.Module, frames: torch.Tensor):
    """(`net` of each distinct row of a uint8 batch, each row's index into them):
    imagined frames are quantised to uint8 and repeat a lot. (`net(frames)`, None) when
    every row differs or the batch is not uint8 (latent maps and vectors rarely repeat
    exactly)."""
    found = groups_of(frames) if frames.dtype == torch.uint8 else None
    if found is None:
        return net(frames), None
    first, where, count = found
    return net(frames[first])[:count], where


def once_per_distinct_row(net: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """`net(rows)` with `net` run once per distinct row (any dtype): for networks whose
    output for a row depends on that row alone (no batch statistics)."""
    found = groups_of(rows)
    if found is None:
        return net(rows)
    first, where, _ = found
    return net(rows[first])[where]
