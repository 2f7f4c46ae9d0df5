"""Rollout encoder: one imagined trajectory -> one fixed-size rollout code.

Pure torch, no Ray. Per imagined step it embeds what the model imagined (the newest
frame, or the latent vector or map, never re-decoded into frames) and appends the predicted reward; an LSTM then reads the steps
in *reverse* order, last to first, as the paper does ("mimicking Bellman backups"), and
its final hidden state is the rollout code.

Imagined frames repeat a lot (a move into a wall, a solved board, the copy model's
every step, the same board in several rollouts): the per-step embedding runs once per
distinct frame of a batch, which is exact (a row's embedding depends on that row alone;
gradients of repeats add up as before). On Sokoban 5x5 with the perfect model, 289 of
the 6,400 imagined frames of 256 states (played on 16 boards) were distinct. The LSTM
then runs with its own weights one step at a time over the tree of distinct prefixes of
the reading order: read last step first, rollouts that end alike share their first LSTM
steps (equal rollouts are read once), and the input projection runs once per distinct
frame (same weights, same result up to rounding; float views, which rarely repeat, go
through the fused layer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.rollout_policy import state_feature_net


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


def embed_distinct(net: nn.Module, frames: torch.Tensor):
    """(`net` of each distinct row of a uint8 batch, each row's index into them):
    imagined frames are quantised to uint8 and repeat a lot. (`net(frames)`, None) when
    every row differs or the batch is not uint8 (latent maps and vectors rarely repeat
    exactly)."""
    # Under torch.compile (compiled exploration) the numpy grouping cannot be traced and
    # its data-dependent shapes would not compile well: every row is embedded.
    if frames.dtype != torch.uint8 or len(frames) < 2 or torch.compiler.is_compiling():
        return net(frames), None
    found = distinct_rows(frames.flatten(1))
    if found is None:
        return net(frames), None
    first, where = found
    return net(frames[first]), where


def shared_prefixes(keys: torch.Tensor):
    """(N, T, K) integer keys of what N sequences read at each step -> the prefix tree
    they share: per step, (`first`, `parent`) for each distinct prefix that ends there
    (a sequence with that prefix; the prefix one step shorter, as an index into the
    previous step's prefixes), and each sequence's prefix at the last step."""
    nodes = torch.zeros(len(keys), dtype=torch.long, device=keys.device)  # the empty prefix
    steps = []
    for t in range(keys.shape[1]):
        found = distinct_rows(torch.cat([nodes.unsqueeze(1), keys[:, t]], dim=1))
        if found is None:
            first = where = torch.arange(len(keys), device=keys.device)
        else:
            first, where = found
        steps.append((first, nodes[first]))
        nodes = where
    return steps, nodes


class RolloutEncoder(nn.Module):
    """(N, T, *view_shape) imagined views + (N, T) rewards -> (N, hidden_size) codes."""

    def __init__(
        self,
        view_shape: Sequence[int],
        feature_size: int = 256,
        hidden_size: int = 256,
        reverse: bool = True,
        views_are_frames: bool = True,
    ):
        super().__init__()
        self.view_shape = tuple(view_shape)
        self.features = state_feature_net(self.view_shape, feature_size, views_are_frames)
        self.lstm = nn.LSTM(feature_size + 1, hidden_size, batch_first=True)
        self.output_size = hidden_size
        # Only tests turn this off, to show that the order matters.
        self.reverse = reverse

    def _read(self, features: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """(N, T, F) step features + (N, T) rewards -> (N, hidden_size) codes: every step
        of every rollout through the fused LSTM."""
        steps = torch.cat([features, rewards.unsqueeze(-1).to(features.dtype)], dim=-1)
        if self.reverse:
            steps = steps.flip(1)
        return self.lstm(steps)[1][0][-1]

    def _read_shared(self, features: torch.Tensor, view_ids: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """`_read` of (D, F) distinct views' features, (N, T) each step's view among them
        and (N, T) rewards, with the LSTM's own weights one step at a time: the input
        projection once per distinct view, the recurrence once per distinct prefix of
        the reading order (read in reverse, rollouts that end alike share their first
        steps; equal rollouts are one). Exact up to rounding."""
        if rewards.requires_grad:
            # A reward with a gradient (a model trained with the agent) needs every
            # rollout's own read for its gradient.
            return self._read(features[view_ids], rewards)
        if self.reverse:
            view_ids, rewards = view_ids.flip(1), rewards.flip(1)
        reward_bits = rewards.float().contiguous().view(torch.int32).to(torch.int64)
        steps, last = shared_prefixes(torch.stack([view_ids, reward_bits], dim=2))
        lstm = self.lstm
        projected = F.linear(features, lstm.weight_ih_l0[:, :-1])
        reward_weight, bias = lstm.weight_ih_l0[:, -1], lstm.bias_ih_l0 + lstm.bias_hh_l0
        for t, (first, parent) in enumerate(steps):
            reward = rewards[first, t].unsqueeze(1).to(projected.dtype)
            gates = projected.index_select(0, view_ids[first, t]) + reward * reward_weight + bias
            if t > 0:  # the first step starts from zero state
                gates = gates + F.linear(hidden.index_select(0, parent), lstm.weight_hh_l0)
            in_gate, forget_gate, candidate, out_gate = gates.chunk(4, dim=1)  # PyTorch's order
            written = torch.sigmoid(in_gate) * torch.tanh(candidate)
            cell = written if t == 0 else torch.sigmoid(forget_gate) * cell.index_select(0, parent) + written
            hidden = torch.sigmoid(out_gate) * torch.tanh(cell)
        return hidden.index_select(0, last)

    def forward(self, views: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        num_rollouts, depth = views.shape[:2]
        features, view_ids = embed_distinct(self.features, views.flatten(0, 1))
        if view_ids is None:
            return self._read(features.view(num_rollouts, depth, -1), rewards)
        return self._read_shared(features, view_ids.view(num_rollouts, depth), rewards)

    def forward_repeated_view(self, view: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """`forward` for rollouts that repeat one view at every step: (N, *view_shape)
        views + (N, T) rewards -> (N, hidden_size) codes, the view embedded once (the
        copy model's imagination)."""
        num_rollouts, depth = rewards.shape
        features, view_ids = embed_distinct(self.features, view)
        if torch.compiler.is_compiling():
            return self._read(features.unsqueeze(1).expand(-1, depth, -1), rewards)
        if view_ids is None:
            view_ids = torch.arange(num_rollouts, device=view.device)
        return self._read_shared(features, view_ids.unsqueeze(1).expand(-1, depth), rewards)
