"""Rollout encoder: one imagined trajectory -> one fixed-size rollout code.

Pure torch, no Ray. Per imagined step it embeds what the model imagined (the newest
frame, or the latent vector or map, never re-decoded into frames) and appends the predicted reward; an LSTM then reads the steps
in *reverse* order, last to first, as the paper does ("mimicking Bellman backups"), and
its final hidden state is the rollout code.

Imagined frames repeat a lot (a move into a wall, a solved board, the copy model's
every step, the same board in several rollouts): the per-step embedding runs once per
distinct frame of a batch and is gathered back, which is exact (a row's embedding
depends on that row alone; gradients of repeats add up as before). On Sokoban 5x5 with
the perfect model, 289 of the 6,400 imagined frames of 256 states (played on 16 boards)
were distinct. Whole rollouts repeat too (the same board in several states, moves into
walls): the LSTM reads each distinct rollout (same frames, same rewards) once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from i2a_rllib.models.rollout_policy import state_feature_net


# Up to this many bytes per frame (Sokoban's boards), rows are told apart in numpy.
SMALL_ROW_BYTES = 1024


def distinct_rows(rows: torch.Tensor):
    """(first, where) for the distinct rows of a 2-D uint8 or integer tensor: `rows[first]`
    are the distinct rows and `rows[first][where]` is `rows`; None when all differ."""
    if rows.is_cuda or rows.shape[1] * rows.element_size() > SMALL_ROW_BYTES:
        _, where = torch.unique(rows, dim=0, return_inverse=True)
        if int(where.max()) + 1 == len(rows):
            return None
        # The first row of each group, so `rows[first]` is the distinct set.
        first = torch.full((int(where.max()) + 1,), len(rows), dtype=torch.long, device=rows.device)
        first = first.scatter_reduce(0, where, torch.arange(len(rows), device=rows.device), "amin")
        return first, where
    # Small rows: numpy compares whole rows as raw bytes, ~5x faster than
    # torch.unique(dim=0) (which compares them row by row).
    array = np.ascontiguousarray(rows.numpy())
    as_bytes = array.view(np.dtype((np.void, array.shape[1] * array.itemsize)))[:, 0]
    _, first, where = np.unique(as_bytes, return_index=True, return_inverse=True)
    if len(first) == len(rows):
        return None
    return torch.from_numpy(first), torch.from_numpy(where.reshape(-1))


def once_per_distinct(net: nn.Module, frames: torch.Tensor):
    """`net(frames)`, computed once per distinct row of a uint8 batch (imagined frames
    are quantised to uint8), and each row's group id (None when every row differs or
    the batch is not uint8: latent maps and vectors rarely repeat exactly)."""
    # Under torch.compile (compiled exploration) the numpy grouping cannot be traced and
    # its data-dependent shapes would not compile well: every row is embedded.
    if frames.dtype != torch.uint8 or len(frames) < 2 or torch.compiler.is_compiling():
        return net(frames), None
    found = distinct_rows(frames.flatten(1))
    if found is None:
        return net(frames), None
    first, where = found
    return net(frames[first])[where], where


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

    def _read(self, features: torch.Tensor, rewards: torch.Tensor, frame_ids) -> torch.Tensor:
        """(N, T, F) step features + (N, T) rewards -> (N, hidden_size) codes; `frame_ids`
        (N, T) name each step's distinct view (None: all differ)."""
        steps = torch.cat([features, rewards.unsqueeze(-1).to(features.dtype)], dim=-1)
        if self.reverse:
            steps = steps.flip(1)
        same = None
        if frame_ids is not None and not rewards.requires_grad:
            # Two rollouts with the same frames and rewards get the same code: the LSTM
            # reads each distinct rollout once (exact; rewards from a trained model
            # carry no gradient here, so every copy's gradient reaches the shared row).
            reward_bits = rewards.detach().float().contiguous().view(torch.int32).to(torch.int64)
            same = distinct_rows(torch.cat([frame_ids, reward_bits], dim=1))
        if same is None:
            return self.lstm(steps)[1][0][-1]
        first, where = same
        return self.lstm(steps[first])[1][0][-1][where]

    def forward(self, views: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        num_rollouts, depth = views.shape[:2]
        features, frame_ids = once_per_distinct(self.features, views.flatten(0, 1))
        if frame_ids is not None:
            frame_ids = frame_ids.view(num_rollouts, depth)
        return self._read(features.view(num_rollouts, depth, -1), rewards, frame_ids)

    def forward_repeated_view(self, view: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """`forward` for rollouts that repeat one view at every step: (N, *view_shape)
        views + (N, T) rewards -> (N, hidden_size) codes, the view embedded once (the
        copy model's imagination)."""
        depth = rewards.shape[1]
        features, frame_ids = once_per_distinct(self.features, view)
        if frame_ids is not None:
            frame_ids = frame_ids.unsqueeze(1).expand(-1, depth)
        return self._read(features.unsqueeze(1).expand(-1, depth, -1), rewards, frame_ids)
