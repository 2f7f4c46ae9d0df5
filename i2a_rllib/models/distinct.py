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


# Batches of fewer rows run whole: a small network costs about the same for any count
# below this (a conv over 8 or 40 Sokoban boards: ~50 or ~110 us, one thread), less
# than the ~30-40 us of finding the repeats (an EnvRunner's calls that miss its
# `OutputMemo` bring a few new boards each).
GROUPED_MIN_ROWS = 16


def groups_of(rows: torch.Tensor, padded: Optional[bool] = None):
    """(`first`, `where`, count) for the distinct rows of a batch of any shape and dtype
    (rows compared bit for bit): `rows[first[:count]]` are the distinct rows, and small
    rows' `first` (`padded`: None for rows of at most PADDED_ROW_VALUES values) is padded
    to `padded_count` with copies of its first index (outputs of the copies are dropped:
    no effect on outputs or gradients). None where every row should run: no repeats,
    fewer than GROUPED_MIN_ROWS rows, a padded count that reaches the batch's, or
    under torch.compile (compiled exploration), whose tracing cannot follow the numpy
    grouping and whose data-dependent shapes would not compile well."""
    if len(rows) < GROUPED_MIN_ROWS or torch.compiler.is_compiling():
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


class WeightsWatch:
    """Tells when a module's parameters or buffers may have changed, cheaply enough for
    every call: their (storage, version) pairs change when one is written in place (a
    weight sync) or moved to new storage. The tensors are listed once (walking the
    module tree on every call cost ~0.1-0.2 ms of an I2A exploring call) and again after
    each `load_state_dict` (which may assign new tensors); a parameter replaced by plain
    attribute assignment afterwards goes unseen."""

    def __init__(self, module: nn.Module):
        self.module = module
        self._tensors = None
        self._seen = None  # the signature at the last `moved()`
        module.register_load_state_dict_post_hook(self._forget)

    def _forget(self, *_) -> None:
        self._tensors = None

    def tensors(self):
        if self._tensors is None:
            self._tensors = list(self.module.parameters()) + list(self.module.buffers())
        return self._tensors

    def signature(self):
        return tuple((t.data_ptr(), t._version) for t in self.tensors())

    def moved(self) -> bool:
        """Whether any tensor was written or moved since the last call (True the first
        time)."""
        signature = self.signature()
        moved, self._seen = signature != self._seen, signature
        return moved


class OutputMemo:
    """A network's output per distinct input row, kept while its weights stay the same.

    An EnvRunner meets the same small boards again and again between two weight syncs
    (Sokoban 5x5 under PPO: ~130-240 distinct boards among the 1,024 of a round), and
    a policy's output for a board depends on the board and the weights alone. So each
    row's output is computed once per weight version and read back afterwards: equal
    to computing it again up to float rounding (the row ran in another batch), as with
    `once_per_distinct_row`. Emptied when a parameter or buffer of `module` changes
    (`WeightsWatch`) and when it holds `max_rows` rows. Rows are compared whole after
    the hash lookup, so a hash collision only costs a plain call.
    """

    def __init__(self, module: nn.Module, max_rows: int = 1 << 16):
        self.max_rows = int(max_rows)
        self._watch = WeightsWatch(module)
        self._slots = {}
        self._rows: Optional[torch.Tensor] = None
        self._outputs: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self._slots)

    def __call__(self, rows: torch.Tensor, compute) -> torch.Tensor:
        """`compute(rows)` for a 2-D or larger integer batch, with `compute` (rows ->
        outputs, one per row) run only on rows not kept yet."""
        if self._watch.moved():
            self._slots.clear()
        flat = rows.flatten(1)
        keys = row_hashes(flat).tolist()
        new = {key: index for index, key in enumerate(keys) if key not in self._slots}
        if len(self._slots) + len(new) > self.max_rows:
            self._slots.clear()
            new = {key: index for index, key in enumerate(keys)}
            if len(new) > self.max_rows:
                return compute(rows)
        if new:
            self._keep(rows, flat, new, compute)
        slots = torch.tensor([self._slots[key] for key in keys], device=rows.device)
        if not torch.equal(self._rows[slots], flat):
            return compute(rows)
        return self._outputs[slots]

    def _keep(self, rows, flat, new, compute) -> None:
        first = torch.tensor(list(new.values()), device=rows.device)
        count = len(first)
        padded = padded_with_first(first, padded_count(count))  # a few batch sizes
        outputs = compute(rows[padded])[:count]
        start = len(self._slots)
        if self._outputs is None or self._outputs.dtype != outputs.dtype or self._rows.shape[1:] != flat.shape[1:]:
            self._slots.clear()
            start, self._rows, self._outputs = 0, flat[:0], outputs[:0]
        needed = start + count
        if needed > len(self._rows):  # grow by doubling
            capacity = min(self.max_rows, max(needed, 2 * len(self._rows), 256))
            self._rows = torch.cat([self._rows[:start], flat.new_empty((capacity - start, *flat.shape[1:]))])
            self._outputs = torch.cat(
                [self._outputs[:start], outputs.new_empty((capacity - start, *outputs.shape[1:]))]
            )
        self._rows[start:needed] = flat[first]
        self._outputs[start:needed] = outputs
        for offset, key in enumerate(new):
            self._slots[key] = start + offset
