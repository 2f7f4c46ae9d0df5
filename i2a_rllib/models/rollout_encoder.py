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

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.distinct import GROUPED_MIN_ROWS, distinct_rows, embed_distinct
from i2a_rllib.models.rollout_policy import IMAGINED_FRAME_CONV_CHANNELS, state_feature_net


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
        conv_channels: int = IMAGINED_FRAME_CONV_CHANNELS,
    ):
        super().__init__()
        self.view_shape = tuple(view_shape)
        self.features = state_feature_net(self.view_shape, feature_size, views_are_frames, conv_channels)
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
        if len(view_ids) < GROUPED_MIN_ROWS:
            # A few rollouts (an EnvRunner's call with a few new boards): finding the
            # prefixes they share costs more than reading each.
            arange = torch.arange(len(view_ids), device=view_ids.device)
            steps, last = [(arange, arange)] * view_ids.shape[1], arange
        else:
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
        if view_ids is None and num_rollouts < GROUPED_MIN_ROWS and not torch.compiler.is_compiling():
            # A few rollouts (an EnvRunner's call with a few new boards): the LSTM's
            # own weights one step at a time cost less than the fused LSTM's call
            # (ten one-step rollouts: 66 -> 43 us, 1 thread).
            view_ids = torch.arange(num_rollouts * depth, device=views.device)
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
