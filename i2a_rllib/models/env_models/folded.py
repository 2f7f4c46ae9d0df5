"""The folded-frame model: a spatial model whose state keeps the frames themselves.

Pure torch, no Ray. An architecture of the `spatial` kind (`{"architecture":
"folded"}`): the state is the frame stack folded space-to-depth (84x84x4 -> 42x42x16,
lossless) plus the last step's feature map. A step reads the folded frames with the
action (a learned per-action bias map added to the first convolution, as the pixel
family's action planes), runs residual dilated 3x3 convolutions, corrects the newest
frame in logit space at the folded resolution and pushes it onto the stack. The rollout
encoder reads the feature map average-pooled (`view_pool`), never the frames, so
imagination costs the I2A update what the `conv` spatial model's maps cost.

Why: on Breakout 70% of a step's copy-last-frame error is the paddle, whose next
position follows from the velocity the frame stack shows and the action. With the same
width and reach as the shipped `conv` model (8 channels, dilations 1-2), this layout
learns it: one step 0.35 of the copy error after 3,000 steps of 64 with sticky actions
off, action effect 0.47, where the `conv` model, which steps an encoded map and paints
from the next map alone, stayed at 0.81 with an action effect of 0.01. Through
`i2a pretrain` on sticky random play (horizon 3, then 8): 0.62 / 0.60 / 0.92 of the copy
error at 1 / 5 / 15 steps (docs/results.md, "What kept the folded model blind"),
shipped as `pretrained/breakout_folded`; `--laptop` (make run) pretrains this layout.
Trained open loop like every model (`sequence_loss`); there is no latent consistency
term, since the state carries its own frames.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, EnvironmentModel
from i2a_rllib.models.env_models.frame_heads import LOGIT_EPS
from i2a_rllib.models.env_models.spatial import check_loss_settings, folded_size


class FoldedFrameEnvModel(EnvironmentModel):
    """Steps the folded frame stack itself; imagination reads pooled feature maps.

    Args:
        channels: Feature-map channels (the per-step cost grows with their square).
        factor: Space-to-depth fold of the frames (2: 84x84 -> 42x42, lossless).
        dilations: One residual 3x3 block per entry, with that dilation.
        view_pool: The rollout encoder reads the feature map average-pooled by this
            factor (4: 10 x 10 cells, as the `conv` spatial model's views).
        change_weight: The pixels that change count 1 + change_weight times in the frame
            loss (base.py); 0 weighs every pixel the same.
        step_weighting: 'mean' or 'inverse' (step k of a window weighs 1/k; base.py).
        reward_head: 'frames' (two convolutions over the stack and the predicted frame,
            trained with the rest; 3.5 MMAC per step on Breakout) or 'map' (two stride-2
            convolutions over the folded stack before the step, max, linear; ~0.6 MMAC),
            which pretraining fits afterwards on half-scoring batches, as the spatial
            model's 'map' head (pretrain/reward_head.py). `pretrained/breakout_folded`
            has the 'map' head since 2026-12-04 (scoring steps by argmax 0% -> 67% on
            fresh random play; docs/results.md).
        reward_prior: The reward classes' frequencies in the training data, recorded by
            that fit: they shift the 'map' head's logits back to the data's odds.
    """

    kind = "spatial"
    architecture = "folded"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        channels: int = 8,
        factor: int = 2,
        dilations: Sequence[int] = (1, 2),
        view_pool: int = 4,
        change_weight: float = 0.0,
        step_weighting: str = "mean",
        reward_head: str = "frames",
        reward_prior: Sequence[float] = (),
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        in_channels, height, width = self.obs_shape
        self.map_size = folded_size(height, width, factor, view_pool, "folded spatial model")
        if channels < 1:
            raise ValueError(f"folded spatial model: channels={channels} must be >= 1.")
        check_loss_settings(change_weight, step_weighting, "folded spatial model")
        self.channels, self.factor, self.view_pool = int(channels), int(factor), int(view_pool)
        self.dilations = tuple(int(d) for d in dilations)
        self.change_weight = float(change_weight)
        self.step_weighting = str(step_weighting)
        if reward_head not in ("frames", "map"):
            raise ValueError(
                f"folded spatial model: reward_head={reward_head!r}: 'frames' (the stack and "
                "the predicted frame) or 'map' (a conv head over the stack before the step)."
            )
        self.reward_head = str(reward_head)
        self.reward_prior = self.checked_reward_prior(reward_prior, "folded spatial model")
        # Folded channels of the whole stack, and of its newest frame (the last ones).
        self.stack_channels = in_channels * self.factor**2
        self.newest_channels = self.frame_channels * self.factor**2
        c = self.channels
        self.frames_conv = nn.Conv2d(self.stack_channels, c, 3, padding=1)
        # Per action, a bias map on the first layer: starts as a per-channel shift (like
        # one-hot action planes through a convolution) and may learn where it applies.
        shift = torch.randn(self.num_actions, c, 1, 1) * 0.1
        self.action_bias = nn.Parameter(shift.expand(-1, -1, *self.map_size).clone())
        self.body = nn.ModuleList(nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in self.dilations)
        # Logit correction of the newest frame, folded; zero at the start: "nothing moves".
        self.frame_out = nn.Conv2d(c, self.newest_channels, 3, padding=1)
        nn.init.zeros_(self.frame_out.weight)
        nn.init.zeros_(self.frame_out.bias)
        # The reward has its own two convolutions over the stack and the predicted frame,
        # both detached (from a window's second step the stack holds imagined frames),
        # max-pooled (a reward is one brick hit somewhere). Read off the transition's
        # features, the reward loss held the frames near copy (Breakout, 1,000 steps:
        # k=1 0.79 of the copy error, action effect 0.06, against 0.49 / 0.47 with the
        # reward loss kept out of them; why, not measured; docs/results.md).
        # The 'map' head reads the real or imagined stack alone, so it costs a step once
        # per state, whatever the action, and balanced batches can fit it on real frames.
        if self.reward_head == "map":
            self.reward_map = nn.Sequential(
                nn.Conv2d(self.stack_channels, c, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.ReLU(),
            )
        else:
            self.reward_stack_conv = nn.Conv2d(self.stack_channels, c, 3, padding=1)
            self.reward_frame_conv = nn.Conv2d(self.newest_channels, c, 3, padding=1, bias=False)
            self.reward_body = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.reward_out = nn.Linear(c, len(self.reward_values))
        self.register_buffer("reward_logit_shift", self.balanced_logit_shift(self.reward_prior), persistent=False)

    # --- Interface ------------------------------------------------------------------
    @property
    def state_shape(self) -> Tuple[int, ...]:
        return (self.stack_channels + self.channels, *self.map_size)

    @property
    def view_shape(self) -> Tuple[int, ...]:
        return (self.channels, self.map_size[0] // self.view_pool, self.map_size[1] // self.view_pool)

    def hparams(self):
        return {
            "architecture": self.architecture,
            "channels": self.channels,
            "factor": self.factor,
            "dilations": list(self.dilations),
            "view_pool": self.view_pool,
            "change_weight": self.change_weight,
            "step_weighting": self.step_weighting,
            "reward_head": self.reward_head,
            "reward_prior": self.reward_prior,
        }

    def _features(self, first_layer: torch.Tensor) -> torch.Tensor:
        x = F.relu(first_layer)
        for conv in self.body:
            x = x + F.relu(conv(x))
        return x

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        # The features of a real observation are those of its frames with no action, so
        # the rollout policy reads start and imagined states alike.
        stack = F.pixel_unshuffle(frames, self.factor)
        return torch.cat([stack, self._features(self.frames_conv(stack))], 1)

    def view(self, state: torch.Tensor) -> torch.Tensor:
        features = state[:, self.stack_channels :]
        return features if self.view_pool == 1 else F.avg_pool2d(features, self.view_pool)

    def reward_head_inputs(self, frames):
        return F.pixel_unshuffle(frames, self.factor)

    def map_reward_logits(self, stack):
        return self.reward_out(self.reward_map(stack).amax((2, 3)))

    def _step(self, stack: torch.Tensor, first_layer: torch.Tensor, reward_first: torch.Tensor = None):
        """`reward_first`: the 'frames' head's convolution of the stack (None for 'map')."""
        features = self._features(first_layer)
        newest = stack[:, -self.newest_channels :]
        # Folding is a permutation of pixels, so the logit correction can be made folded.
        frame = torch.sigmoid(torch.logit(newest, eps=LOGIT_EPS) + self.frame_out(features))
        next_stack = torch.cat([stack[:, self.newest_channels :], frame], 1)
        if reward_first is None:
            return torch.cat([next_stack, features], 1), None
        r = F.relu(reward_first + self.reward_frame_conv(frame.detach()))
        r = r + F.relu(self.reward_body(r))
        reward_logits = self.reward_out(F.adaptive_max_pool2d(r, 1).flatten(1))
        return torch.cat([next_stack, features], 1), reward_logits

    def _map_reward(self, stack):
        return self.map_reward_logits(stack.detach()) + self.reward_logit_shift

    def transition(self, state, action):
        stack = state[:, : self.stack_channels]
        first = self.frames_conv(stack) + self.action_bias[action]
        if self.reward_head == "map":
            return self._step(stack, first)[0], self._map_reward(stack)
        return self._step(stack, first, self.reward_stack_conv(stack.detach()))

    def step_every_action(self, state):
        # The convolutions of the stack do not depend on the action: once per state.
        num_actions = self.num_actions
        stack = state[:, : self.stack_channels]
        first = (self.frames_conv(stack).unsqueeze(1) + self.action_bias.unsqueeze(0)).flatten(0, 1)
        stacks = stack.repeat_interleave(num_actions, 0)
        if self.reward_head == "map":
            rewards = self.expected_reward(self._map_reward(stack)).repeat_interleave(num_actions, 0)
            return self._step(stacks, first)[0], rewards
        reward_first = self.reward_stack_conv(stack.detach()).repeat_interleave(num_actions, 0)
        next_state, reward_logits = self._step(stacks, first, reward_first)
        return next_state, self.expected_reward(reward_logits)

    def frame_of(self, state, canvas):
        # The state holds its newest frame: imagined frames are painted over the model's
        # own previous one, not over the last real frame.
        newest = state[:, self.stack_channels - self.newest_channels : self.stack_channels]
        return F.pixel_shuffle(newest, self.factor)
