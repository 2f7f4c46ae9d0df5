"""The model-free path: a convolutional trunk over raw frames, an MLP over flat vectors.

Pure torch, no Ray. Used three ways: as the PPO baseline's whole network, as the
model-free path of I2A, and (smaller) inside the rollout policy and rollout encoder.
`model_free_trunk` picks the trunk for an observation shape (the one "auto" rule).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from i2a_rllib.models.distinct import once_per_distinct_row

# Frames at least this large get the Nature-CNN strides; smaller boards (Sokoban,
# MiniPacman) keep full resolution, since an 8x8/4 kernel would erase a 10x10 board.
NATURE_CNN_MIN_SIZE = 36


def to_float_frames(obs: torch.Tensor) -> torch.Tensor:
    """uint8 frames in [0, 255] -> float32 in [0, 1]; float input passes through.

    Frames travel as uint8 everywhere (4x less memory and object-store traffic);
    scaling happens here, inside the network.
    """
    if obs.dtype == torch.uint8:
        return obs.float().div_(255.0)
    return obs.float()


class ScaleFrames(nn.Module):
    """`to_float_frames` as a layer, for stacks that may receive uint8 frames."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return to_float_frames(frames)


def conv_output_size(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features `module` produces for one input of `input_shape`."""
    with torch.no_grad():
        return int(module(torch.zeros(1, *input_shape)).numel())


NATURE_CNN_CHANNELS = (32, 64, 64)


def nature_cnn_convs(in_channels: int, channels=NATURE_CNN_CHANNELS) -> nn.Sequential:
    """Mnih et al. (2015): 32-8x8/4, 64-4x4/2, 64-3x3/1, each followed by ReLU."""
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
    )


def small_frame_convs(in_channels: int, channels=NATURE_CNN_CHANNELS) -> nn.Sequential:
    """For boards of a few dozen cells: full-resolution 3x3 convs, one 2x downsample."""
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=1, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )


def frame_convs(
    obs_shape: Tuple[int, int, int], channels: Sequence[int] = NATURE_CNN_CHANNELS
) -> nn.Sequential:
    """The conv stack suited to (C, H, W) frames: Nature CNN or the small-board stack."""
    in_channels, height, width = obs_shape
    if min(height, width) >= NATURE_CNN_MIN_SIZE:
        return nature_cnn_convs(in_channels, channels)
    return small_frame_convs(in_channels, channels)


def relu_layers_init_(module: nn.Module) -> nn.Module:
    """Orthogonal weights with gain sqrt(2) and zero biases for every convolution and
    linear layer in `module` (OpenAI baselines' and CleanRL's PPO init for ReLU layers).

    With PyTorch's default init (uniform weights ~2.4x smaller per layer) the features reaching
    the heads start ~10x smaller (rms ~0.02 against ~0.2 on Sokoban boards) and the policy
    leaves uniform late: the clock-tuned PPO on Sokoban 5x5 reached 0.8 solved after
    303-330k env steps with it, 130-196k with this init (five seeds each;
    docs/benchmarks.md "The standard PPO init for the trunk").
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(layer.weight, gain=2**0.5)
            nn.init.zeros_(layer.bias)
    return module


class ConvTrunk(nn.Module):
    """Conv stack + one fully connected layer: (B, C, H, W) frames -> (B, hidden_size).

    With 84x84 input this is exactly the Nature CNN (32-8x8/4, 64-4x4/2, 64-3x3/1, 512).
    """

    def __init__(self, obs_shape: Tuple[int, int, int], hidden_size: int = 512):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.convs = frame_convs(self.obs_shape)
        self.fc = nn.Sequential(
            nn.Linear(conv_output_size(self.convs, self.obs_shape), hidden_size),
            nn.ReLU(),
        )
        relu_layers_init_(self)
        self.output_size = hidden_size
        # The Nature CNN reads its frames channels-last: oneDNN's gradient of the 8x8/4
        # convolution runs ~2.3x faster so on an AMX Xeon (2026-12-04: the trunk's
        # forward + backward on 256 frames 163 -> 124 ms, 1 thread; same outputs to
        # 1e-7); end to end on Breakout PPO 1.15x, I2A 1.07x (docs/benchmarks.md).
        # Inference on a few frames: no change.
        self.channels_last = min(self.obs_shape[1:]) >= NATURE_CNN_MIN_SIZE
        # Small boards repeat (Sokoban 5x5: ~40 distinct observations in a 256-row
        # minibatch, moves into walls change nothing): run once per distinct one, exact
        # (`once_per_distinct_row`). Atari frames rarely repeat, and finding repeats among
        # 256 stacked 84x84 frames would cost ~10 ms. CPU tensors only: on a GPU finding
        # them needs a host sync per call, for convolutions that cost little there (not
        # measured).
        self.once_per_distinct_row = not self.channels_last

    def _forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames = to_float_frames(frames)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.fc(self.convs(frames))

    def forward(self, frames: torch.Tensor, rows_distinct: bool = False) -> torch.Tensor:
        """`rows_distinct`: the caller already ran this batch once per distinct row."""
        if self.once_per_distinct_row and not rows_distinct and frames.device.type == "cpu":
            return once_per_distinct_row(self._forward, frames)
        return self._forward(frames)


def vector_mlp(input_size: int, hidden_size: int, num_layers: int = 2) -> nn.Sequential:
    """`num_layers` tanh layers of `hidden_size` over a flat vector: CleanRL's and RLlib's
    classic-control networks (tanh keeps raw, unnormalised observations bounded)."""
    layers, width = [], int(input_size)
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_size), nn.Tanh()]
        width = hidden_size
    return nn.Sequential(*layers)


class MLPTrunk(nn.Module):
    """Two tanh layers over flat observation vectors: (B, D) -> (B, hidden_size)."""

    def __init__(self, obs_shape: Tuple[int], hidden_size: int = 512):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.mlp = vector_mlp(self.obs_shape[0], hidden_size)
        self.output_size = hidden_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp(obs.float())


def model_free_trunk(obs_shape: Sequence[int], hidden_size: int = 512) -> nn.Module:
    """The trunk for `obs_shape`: `ConvTrunk` for (C, H, W) frames, `MLPTrunk` for (D,)
    vectors. Other shapes are refused before this is reached (`i2a_rllib.spaces`)."""
    obs_shape = tuple(int(d) for d in obs_shape)
    if len(obs_shape) == 1:
        return MLPTrunk(obs_shape, hidden_size)
    return ConvTrunk(obs_shape, hidden_size)


class ActorCriticHeads(nn.Module):
    """Policy logits and state value over a feature vector."""

    def __init__(self, feature_size: int, num_actions: int):
        super().__init__()
        self.policy = nn.Linear(feature_size, num_actions)
        self.value = nn.Linear(feature_size, 1)
        # Small initial logits give a near-uniform first policy (common PPO practice).
        nn.init.orthogonal_(self.policy.weight, gain=0.01)
        nn.init.zeros_(self.policy.bias)
        nn.init.orthogonal_(self.value.weight, gain=1.0)
        nn.init.zeros_(self.value.bias)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy(features)

    def values(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(features).squeeze(-1)
