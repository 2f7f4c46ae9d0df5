"""Imagination core: one imagined rollout per action, batched over actions.

Pure torch, no Ray. For B start states and A actions the core tiles the states into
B*A rows (row b*A + a is state b imagining action a first) and makes one environment
model call per depth step for all of them, instead of the seed's A x depth calls on B
rows. The first step takes the row's own action, later steps the rollout policy's.

Nothing here needs gradients: the environment model is frozen and actions are
discrete, so imagination runs under `torch.no_grad()` and its output (what the
rollout encoder reads, and the predicted rewards) can be computed once per train
batch and reused across epochs and minibatches.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from i2a_rllib.models.env_models import EnvironmentModel
from i2a_rllib.models.imagination_memo import REPLAY_MIN_ROWS, FirstStepsMemo
from i2a_rllib.models.rollout_policy import ROLLOUT_ACTION_CHOICES, RolloutPolicy


@dataclass
class Imagination:
    """Output of the imagination core for B start states.

    Attributes:
        views: (B, A, depth, *view_shape). Imagined frames are stored as uint8 (the
            precision of real frames; 4x smaller when reused across epochs), latent
            maps as float16, latent vectors as float32.
        rewards: (B, A, depth) predicted rewards.
        states: (B, A, depth, *state_shape) the imagined model states, when asked for.
    """

    views: torch.Tensor
    rewards: torch.Tensor
    states: Optional[torch.Tensor] = None


# "bf16": the rollouts (env model steps, the rollout policy acting in them) run in
# bfloat16 autocast; what they return is float32 rewards and the usual view dtypes.
# "auto": bf16 where it was measured to pay and to learn as fp32 does, fp32 elsewhere:
# the spatial family's models (the Atari default) on a CPU with AMX tiles (Breakout,
# 3 seeds each, docs/benchmarks.md). On GPUs bf16 did not pay at these sizes, on CPUs
# without AMX autocast is slower, and no frame or vector model was checked for learning.
IMAGINATION_PRECISIONS = ("auto", "fp32", "bf16")
AUTO_BF16_KINDS = ("spatial",)

# Imagined steps per rollout. "auto": 2 for the spatial family's models (the Atari
# default), where each imagined step costs ~1 s per 1,024 env steps on a 2-core CPU
# (sampling and update): on Breakout depth 2 is the one depth that trains at >= 0.5 of
# PPO's speed, and it passed its pre-registered learning check on a second look (6 seeds,
# 10.06 +- 2.65 at 5e5 steps; depth 3: 11.28, depth 5: 10.73 over 3 seeds; docs/benchmarks.md
# "Rollout depth on Breakout"); the paper's 5 for every other model (on Sokoban deeper
# rollouts did better in the paper).
PAPER_ROLLOUT_DEPTH = 5
AUTO_ROLLOUT_DEPTHS = {"spatial": 2}


def resolve_rollout_depth(depth, kind: str) -> int:
    """`depth`, or for "auto" the default of this env-model kind."""
    return AUTO_ROLLOUT_DEPTHS.get(kind, PAPER_ROLLOUT_DEPTH) if depth == "auto" else depth


@functools.lru_cache(maxsize=None)
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, on which oneDNN runs bf16 convolutions."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def quantize_frames(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 levels, like real observations (in float32: bfloat16's
    8 significant bits would misplace levels near 255 by one)."""
    return frames.float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


class ImaginationCore(nn.Module):
    """Runs the A rollouts of depth `rollout_depth` for a batch of model states."""

    def __init__(
        self,
        env_model: EnvironmentModel,
        rollout_policy: RolloutPolicy,
        rollout_depth: int = 5,
        action_choice: str = "sample",
        snap_frames: bool = False,
        precision: str = "fp32",
        memoize: bool = True,
    ):
        """`snap_frames`: imagined frames are rounded to 0 or 1 before they are
        quantised (boards of one-hot channels, e.g. Sokoban's, whose real frames are
        exactly that); only what the rollout encoder reads changes, the model steps on
        its own output as before. `precision` 'bf16': the rollouts run in bfloat16
        autocast (CPUs with AMX, GPUs): on an AMX Xeon, compiled EnvRunner sampling of
        the shipped Breakout models took 1.24-1.30x less time and training ran
        1.09-1.18x faster end to end, imagined maps within ~0.4% of fp32's
        (docs/benchmarks.md); 'fp32' leaves the caller's precision; 'auto' is 'bf16'
        for a spatial model imagining on a CPU with AMX, 'fp32' otherwise. `memoize`:
        the first two steps of models over small boards are kept per start state
        (`FirstStepsMemo`; results equal up to float rounding)."""
        super().__init__()
        if rollout_depth < 1:
            raise ValueError(f"rollout_depth must be >= 1, got {rollout_depth}.")
        if action_choice not in ROLLOUT_ACTION_CHOICES:
            raise ValueError(
                f"Unknown rollout action choice {action_choice!r}; use one of "
                f"{list(ROLLOUT_ACTION_CHOICES)}."
            )
        self.env_model = env_model
        self.rollout_policy = rollout_policy
        self.rollout_depth = int(rollout_depth)
        self.action_choice = action_choice
        self.snap_frames = bool(snap_frames)
        if precision not in IMAGINATION_PRECISIONS:
            raise ValueError(
                f"Unknown imagination precision {precision!r}; use one of {list(IMAGINATION_PRECISIONS)}."
            )
        self.precision = precision
        self._auto_bf16 = precision == "auto" and env_model.kind in AUTO_BF16_KINDS
        # A plain attribute, not a submodule: the memo is no part of the weights.
        self.memo = (
            FirstStepsMemo(
                env_model,
                self._view,
                keep_second_states=self.rollout_depth > 2,
                min_rows=1 if self.rollout_depth == 1 else REPLAY_MIN_ROWS,
            )
            if memoize and FirstStepsMemo.applies_to(env_model)
            else None
        )

    @property
    def num_actions(self) -> int:
        return self.env_model.num_actions


    def noise_shape(self, batch_size: int) -> Tuple[int, int, int]:
        """Uniform noise that drives the rollout policy's sampled actions."""
        return (batch_size, self.num_actions, max(self.rollout_depth - 1, 0))

    @property
    def draws_noise(self) -> bool:
        """Whether imagining draws random numbers: a sampling rollout policy that acts (at
        depth 1 none does: there is nothing for noise to drive, and an empty column
        would still travel with every step)."""
        return self.action_choice == "sample" and self.rollout_depth >= 2

    def sample_noise(self, batch_size: int, device=None) -> Optional[torch.Tensor]:
        if not self.draws_noise:
            return None
        return torch.rand(self.noise_shape(batch_size), device=device)

    def _view(self, state: torch.Tensor) -> torch.Tensor:
        view = self.env_model.view(state)
        if self.env_model.views_are_frames:
            return quantize_frames(view.round() if self.snap_frames else view)
        # Latent maps are large (B x A x depth of them are kept per train batch): half
        # precision, rounded the same way on EnvRunners and learners.
        return view.half() if view.dim() == 4 else view.float()

    def bf16_on(self, device: torch.device) -> bool:
        """Whether rollouts imagined on `device` run in bfloat16 autocast."""
        if self.precision == "bf16":
            return True
        return self._auto_bf16 and device.type == "cpu" and cpu_has_amx()

    def _autocast(self, device: torch.device):
        if self.bf16_on(device):
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def forward(
        self, state: torch.Tensor, noise: Optional[torch.Tensor] = None, keep_states: bool = False
    ) -> Imagination:
        """Imagines from B model states; `noise` (B, A, depth-1) fixes sampled actions.
        `keep_states` also returns the imagined model states (for pictures)."""
        with self._autocast(state.device):
            return self._imagine(state, noise, keep_states)

    def _imagine(self, state, noise, keep_states) -> Imagination:
        batch, num_actions, depth = state.shape[0], self.num_actions, self.rollout_depth
        if self.env_model.imagines_no_change:
            # Every rollout is the start state repeated with reward 0 whatever the actions:
            # no model or rollout-policy call; broadcast views, no copies.
            def repeated(x):
                return x[:, None, None].expand(batch, num_actions, depth, *x.shape[1:])

            return Imagination(
                views=repeated(self._view(state)),
                rewards=state.new_zeros(batch, num_actions, depth),
                states=repeated(state) if keep_states else None,
            )
        # The memo serves the first two steps, except for pictures (which want every
        # state) and under torch.compile (which cannot trace its dictionary).
        slots = None
        if self.memo is not None and not keep_states and not torch.compiler.is_compiling():
            slots = self.memo.slots(state)
        if slots is not None:
            current, view, reward = self.memo.first_steps(slots)
        else:
            current, reward = self.env_model.step_every_action(state)
            view = self._view(current)
        views, rewards, states = [view], [reward.float()], [current]
        for step in range(1, depth):
            uniform = None if noise is None else noise[:, :, step - 1].reshape(-1)
            action = self.rollout_policy.act(current, self.action_choice, uniform)
            if slots is not None and step == 1:
                current, view, reward = self.memo.second_steps(slots, action)
            else:
                current, reward = self.env_model.step(current, action)
                view = self._view(current)
            views.append(view)
            rewards.append(reward.float())
            states.append(current)

        def per_rollout(steps):
            # Outside autocast: under bf16 autocast `stack` refuses float16 maps.
            with torch.autocast(state.device.type, enabled=False):
                stacked = torch.stack(steps, dim=1)
            return stacked.view(batch, num_actions, depth, *stacked.shape[2:])

        return Imagination(
            views=per_rollout(views),
            rewards=per_rollout(rewards),
            states=per_rollout(states).float() if keep_states else None,
        )
