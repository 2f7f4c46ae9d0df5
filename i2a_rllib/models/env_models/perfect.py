"""The perfect Sokoban model: the game's own rules in torch, behind the env-model interface.

The I2A paper's third agent ("I2A + perfect environment model") separates what a
learned model's errors cost from what the architecture gives. This model decodes the
board from Sokoban's 'channels' observation (one channel per cell type), applies the
rules of `SokobanVectorEnv._advance` (move, push a box when the cell behind it is free,
blocked moves change nothing) to a whole batch at once, re-encodes the frame and returns
the exact reward (-0.1 per step, +1 onto a target, -1 off one, +10 on the solve).

What it cannot know: the next level after an episode ends. A solved board is absorbing
in imagination (the same frame, reward 0), as is an episode's step limit (not modelled:
the observation does not show the step count).

Pure torch, no Ray.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from i2a_rllib.envs.board import ACTION_MOVES
from i2a_rllib.envs.sokoban import (
    BOX,
    BOX_ON_TARGET,
    CHANNELS,
    FLOOR,
    PLAYER,
    PLAYER_ON_TARGET,
    REWARD_BOX_OFF_TARGET,
    REWARD_BOX_ON_TARGET,
    REWARD_SOLVED,
    REWARD_STEP,
    TARGET,
    WALL,
)
from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, ObservationStateModel

# Every reward one step can give: a step, with a box moved onto/off a target, and the solve.
SOKOBAN_REWARD_VALUES = tuple(
    sorted(
        {
            round(REWARD_STEP + change + solve, 6)
            for change in (0.0, REWARD_BOX_ON_TARGET, REWARD_BOX_OFF_TARGET)
            for solve in (0.0, REWARD_SOLVED)
        }
        | {0.0}  # the absorbing solved state
    )
)


class PerfectSokobanModel(ObservationStateModel):
    """Sokoban's rules: exact next frames and rewards; nothing to learn.

    Args:
        obs_shape: (7, H, W): Sokoban's 'channels' observation.
        num_actions: 5 (no-op, up, down, left, right).

    Raises:
        ValueError: For any other observation or action space.
    """

    kind = "perfect"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = len(CHANNELS),
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    ):
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 3 or obs_shape[0] != len(CHANNELS) or int(num_actions) != len(ACTION_MOVES):
            raise ValueError(
                f"The 'perfect' environment model knows only Sokoban's rules: it needs "
                f"I2A/Sokoban-v0's (7, H, W) 'channels' observations and 5 actions, got "
                f"observations of shape {obs_shape} and {num_actions} actions. Use a learned "
                "model ('pixel', 'auto') for other environments."
            )
        super().__init__(obs_shape, num_actions, len(CHANNELS), SOKOBAN_REWARD_VALUES)
        height, width = obs_shape[1:]
        self.register_buffer(
            "offsets", torch.tensor([dr * width + dc for dr, dc in ACTION_MOVES]), persistent=False
        )

    def step(self, state: torch.Tensor, action: torch.Tensor):
        """(B, 7, H, W) frames in [0, 1], (B,) actions -> next frames, exact rewards (B,)."""
        batch, _, height, width = state.shape
        codes = state.argmax(1).flatten(1)  # (B, H*W): one channel is set per cell
        walls = codes == WALL
        targets = (codes == TARGET) | (codes == BOX_ON_TARGET) | (codes == PLAYER_ON_TARGET)
        boxes = (codes == BOX) | (codes == BOX_ON_TARGET)
        player = ((codes == PLAYER) | (codes == PLAYER_ON_TARGET)).float().argmax(1)
        already_solved = ~(boxes & ~targets).any(1)

        rows = torch.arange(batch, device=state.device)
        offsets = self.offsets[action.long()]
        target = player + offsets
        # Only read when `target` holds a box, never on the wall border: the clip only
        # keeps the index legal for the other boards.
        beyond = (target + offsets).clamp(0, height * width - 1)
        target_is_box = boxes[rows, target]
        beyond_free = ~(walls[rows, beyond] | boxes[rows, beyond])
        push = target_is_box & beyond_free & ~already_solved
        moves = ~walls[rows, target] & (~target_is_box | beyond_free) & ~already_solved
        boxes = boxes.clone()
        boxes[rows[push], target[push]] = False
        boxes[rows[push], beyond[push]] = True
        player = torch.where(moves, target, player)

        box_change = push.long() * (targets[rows, beyond].long() - targets[rows, target].long())
        solved = ~(boxes & ~targets).any(1)
        reward = (
            REWARD_STEP
            + REWARD_BOX_ON_TARGET * (box_change > 0)
            + REWARD_BOX_OFF_TARGET * (box_change < 0)
            + REWARD_SOLVED * solved
        ).to(state.dtype)
        reward = torch.where(already_solved, torch.zeros_like(reward), reward)

        # Re-encode: static cell (wall, floor, target) + 2 on boxes + 4 under the player.
        static = torch.where(walls, WALL, torch.where(targets, TARGET, FLOOR))
        next_codes = static + 2 * boxes.long()
        next_codes[rows, player] += PLAYER - FLOOR
        frames = F.one_hot(next_codes, len(CHANNELS)).to(state.dtype)
        return frames.transpose(1, 2).reshape(batch, len(CHANNELS), height, width), reward

    def transition(self, state, action):
        next_state, reward = self.step(state, action)
        logits = torch.full(
            (state.shape[0], len(self.reward_values)), -1e4, dtype=state.dtype, device=state.device
        )
        logits[torch.arange(state.shape[0]), self.reward_class(reward)] = 0.0
        return next_state, logits

    def loss(self, frames, actions, rewards, next_frame):
        raise ValueError(
            "The perfect Sokoban model is the game's rules and has nothing to learn; "
            "pretrain a 'pixel' model to compare against it."
        )

    sequence_loss = loss
