"""Pixel environment models: the state is the frame stack, each step paints the next frame.

The paper's (and the seed's) family: an action-conditional conv encoder-decoder over
frames. Faithful and expensive (~250 MMAC per call at 84x84). Two architectures (hparam
`architecture`): the seed's `encoder_decoder` (default), and `dilated`, which keeps
Atari frames' resolution so few-pixel objects stay sharp. Pure torch, no Ray.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, ObservationStateModel, folded_conv
from i2a_rllib.models.env_models.frame_heads import build_frame_head
from i2a_rllib.models.model_free import NATURE_CNN_MIN_SIZE


class _TransposedConv(nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` (same parameters and checkpoint keys). At stride 1 (small
    boards) the transposed convolution is a plain one with the kernel flipped and its
    in/out channels swapped, and oneDNN runs that ~1.8x faster on 5x5 boards (the same
    sums in another order). A module call either way, so forward hooks (the MAC count of
    `env_models.cost`) see it."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        padding = tuple(k - 1 - p for k, p in zip(self.kernel_size, self.padding))
        plain = self.stride == (1, 1) and self.dilation == (1, 1) and self.output_padding == (0, 0)
        if plain and self.groups == 1 and min(padding) >= 0:
            return F.conv2d(x, self.weight.transpose(0, 1).flip(-2, -1), self.bias, padding=padding)
        return super().forward(x, output_size=output_size)


def _downsampling_conv_args(obs_shape: Sequence[int]) -> Dict[str, int]:
    """Stride-2 4x4 convolutions on large frames, size-keeping 3x3 ones on small boards."""
    if min(obs_shape[1:]) >= NATURE_CNN_MIN_SIZE:
        return {"kernel_size": 4, "stride": 2, "padding": 1}
    return {"kernel_size": 3, "stride": 1, "padding": 1}


class _FrameStateModel(ObservationStateModel):
    """A pixel model: its state is the frame stack, each step paints the next frame.

    The action enters through the first convolution, which is linear in its input:
    conv([frames, action plane]) = conv_frames(frames) + conv_plane(plane). The plane
    part is computed once per action, so `step_every_action` convolves each state once
    for all A actions. Subclasses give `_state_features`, `_action_effects` and
    `_decode`.
    """

    kind = "pixel"

    def _state_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, channels, H1, W1): the first convolution's response to the frames."""
        raise NotImplementedError

    def _action_effects(self) -> torch.Tensor:
        """(A, channels, H1, W1): the first convolution's response to each action."""
        raise NotImplementedError

    def _decode(self, first_layer: torch.Tensor, frames: torch.Tensor):
        """First-layer pre-activations -> next frame (B, fc, H, W), reward logits."""
        raise NotImplementedError

    def predict(self, frames, actions):
        """Next frame (B, fc, H, W) in [0, 1] and reward logits (B, n_reward_classes)."""
        first = self._state_features(frames) + self._action_effects()[actions]
        return self._decode(first, frames)

    def transition(self, state, action):
        frame, reward_logits = self.predict(state, action)
        return self.push_frame(state, frame), reward_logits

    def step_every_action(self, state):
        num_actions = self.num_actions
        per_state = self._state_features(state)  # once per state, not once per action
        first = (per_state.unsqueeze(1) + self._action_effects().unsqueeze(0)).flatten(0, 1)
        tiled = state.repeat_interleave(num_actions, dim=0)
        frame, reward_logits = self._decode(first, tiled)
        return self.push_frame(tiled, frame), self.expected_reward(reward_logits)


class PixelEnvModel(_FrameStateModel):
    """Action-conditional conv encoder-decoder over frames (the seed's `AtariEnvironmentModel`).

    The action enters as a learned plane per action, concatenated to the frames like in
    the seed. On Atari frames the encoder halves the resolution twice. The decoder's
    last layer also sees the newest input frame (a skip connection), so static
    background costs no capacity.
    """

    architecture = "encoder_decoder"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        channels: int = 64,
        frame_head: str = "gate",
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        self.channels = int(channels)
        in_channels, height, width = self.obs_shape
        conv = _downsampling_conv_args(self.obs_shape)
        wide = 2 * self.channels
        self.action_planes = nn.Parameter(torch.randn(num_actions, 1, height, width) * 0.1)
        self.frames_conv = nn.Conv2d(in_channels, self.channels, **conv)
        self.plane_conv = nn.Conv2d(1, self.channels, bias=False, **conv)
        self.encoder = nn.Sequential(
            nn.Conv2d(self.channels, wide, **conv),
            nn.ReLU(),
            nn.Conv2d(wide, wide, 3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.reward_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(wide, 64),
            nn.ReLU(),
            nn.Linear(64, len(self.reward_values)),
        )
        self.decoder_1 = _TransposedConv(wide, self.channels, **conv)
        self.decoder_2 = _TransposedConv(self.channels, 32, **conv)
        self.frame_head = str(frame_head)
        self.frame_out = build_frame_head(self.frame_head, 32, frame_channels)

    def hparams(self):
        return {"channels": self.channels, "frame_head": self.frame_head}

    def _state_features(self, frames):
        return self.frames_conv(frames)

    def _action_effects(self):
        return self.plane_conv(self.action_planes)

    def _decode(self, first_layer, frames):
        hidden_1 = F.relu(first_layer)
        encoded = self.encoder(hidden_1)
        reward_logits = self.reward_head(encoded)
        x = F.relu(self.decoder_1(encoded, hidden_1.shape[-2:]))
        x = F.relu(self.decoder_2(x, frames.shape[-2:]))
        return self.frame_out(x, self.newest_frame(frames)), reward_logits


class DilatedPixelEnvModel(_FrameStateModel):
    """A pixel model that keeps the frame's resolution: for Atari's few-pixel objects.

    Breakout's ball is 2x4 pixels and the paddle moves a few pixels per step; the
    seed's encoder-decoder squeezes 84x84 to 21x21 and paints them back blurred. Here
    frames are folded space-to-depth by `factor` (84x84x4 -> 42x42x16, lossless),
    stepped by residual 3x3 convolutions whose growing dilations see the whole board
    (receptive field ~70 pixels with the defaults), and unfolded with a pixel shuffle
    before the canvas head. Same state, interface and checkpoint kind as the seed's
    model ('pixel'); `architecture: "dilated"` in the hparams picks it.
    """

    architecture = "dilated"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        channels: int = 48,
        dilations: Sequence[int] = (1, 2, 4, 8, 1),
        factor: int = 2,
        frame_head: str = "logit",
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        in_channels, height, width = self.obs_shape
        if factor < 1 or height % factor or width % factor:
            raise ValueError(
                f"architecture='dilated' with factor={factor} needs frames whose height and "
                f"width it divides; got {height}x{width}. Choose a factor that divides both "
                "(1 keeps the full resolution)."
            )
        self.channels, self.factor = int(channels), int(factor)
        self.dilations = tuple(int(d) for d in dilations)
        folded = (height // factor, width // factor)
        self.action_planes = nn.Parameter(torch.randn(num_actions, 1, *folded) * 0.1)
        self.frames_conv = nn.Conv2d(in_channels * factor**2, self.channels, 3, padding=1)
        self.plane_conv = nn.Conv2d(1, self.channels, 3, padding=1, bias=False)
        self.body = nn.ModuleList(
            nn.Conv2d(self.channels, self.channels, 3, padding=d, dilation=d)
            for d in self.dilations
        )
        self.reward_head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1),  # a reward is one brick hit somewhere: max, not mean
            nn.Flatten(),
            nn.Linear(self.channels, len(self.reward_values)),
        )
        head_channels = 16
        self.unfold = nn.Conv2d(self.channels, head_channels * factor**2, 3, padding=1)
        self.frame_head = str(frame_head)
        self.frame_out = build_frame_head(self.frame_head, head_channels, frame_channels)

    def hparams(self):
        return {
            "architecture": self.architecture,
            "channels": self.channels,
            "dilations": list(self.dilations),
            "factor": self.factor,
            "frame_head": self.frame_head,
        }

    def _state_features(self, frames):
        return folded_conv(self.frames_conv, frames, self.factor)

    def _action_effects(self):
        return self.plane_conv(self.action_planes)

    def _decode(self, first_layer, frames):
        x = F.relu(first_layer)
        for conv in self.body:
            x = x + F.relu(conv(x))
        reward_logits = self.reward_head(x)
        x = F.relu(F.pixel_shuffle(self.unfold(x), self.factor))
        return self.frame_out(x, self.newest_frame(frames)), reward_logits
