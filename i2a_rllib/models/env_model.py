"""Environment models behind one interface: `(state, action) -> (next_state, reward)`.

Pure torch, no Ray. Three kinds:

- `pixel`: the paper's (and the seed's) action-conditional conv encoder-decoder. Its
  state is the frame stack; each step predicts the next frame, which is pushed into the
  stack. Faithful and expensive (~250 MMAC per call at 84x84). Two architectures
  (hparam `architecture`): the seed's `encoder_decoder` (default), and `dilated`,
  which keeps Atari frames' resolution so few-pixel objects stay sharp.
- `latent`: the state-space model of Buesing et al. (2018): the observation is encoded
  once into a latent vector and a GRU cell steps it in latent space. A decoder turns
  latents back into frames for training and pictures only; imagination never decodes.
- `copy`: the paper's control agent. Returns its input and reward 0, so the rest of
  I2A keeps its parameters and compute but the "imagination" carries no information.

Frame loss. Pixels are modelled as Bernoulli variables (binary cross-entropy on the
[0, 1] intensities), the choice the I2A paper argues for: Sokoban, MiniPacman and
Atari frames are close to binary, and the cross-entropy keeps thin objects such as
Breakout's ball sharp where a mean-squared error would blur them away. Errors are
*reported* as per-pixel mean-squared error so they compare with the copy-last-frame
baseline.

Frame heads. Every pixel model paints its prediction over the newest real frame (the
"canvas"), so an untrained model predicts "nothing moves". Hparam `frame_head` picks
how: `logit` (default for the dilated architecture) adds a learned correction to the
canvas in logit space; `gate` (the seed architecture's default, and every pixel
checkpoint written before the choice existed) blends canvas and new content through a
per-pixel gate.

Rewards are classes over a fixed set of values (`reward_values`), e.g. {-1, 0, +1} for
clipped Atari rewards; the model's reward is the expected value under its softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.model_free import (
    NATURE_CNN_MIN_SIZE,
    conv_output_size,
    frame_convs,
)

ENV_MODEL_KINDS = ("pixel", "latent", "copy")
ATARI_REWARD_VALUES = (-1.0, 0.0, 1.0)


def default_frame_channels(obs_shape: Sequence[int]) -> int:
    """Channels of one frame: Atari-sized inputs are stacks of 1-channel gray frames;
    small boards (Sokoban, MiniPacman) are one frame with a channel per entity."""
    return 1 if min(obs_shape[1:]) >= NATURE_CNN_MIN_SIZE else int(obs_shape[0])


@dataclass
class EnvModelLoss:
    """What one training step of an environment model produces."""

    total: torch.Tensor
    frame: torch.Tensor
    reward: torch.Tensor
    consistency: torch.Tensor
    reward_accuracy: torch.Tensor
    frame_mse: torch.Tensor


class EnvironmentModel(nn.Module):
    """Base class: metadata, reward classes and the shared step API.

    Args:
        obs_shape: (C, H, W) of one observation.
        num_actions: Size of the discrete action space.
        frame_channels: Channels of one frame. Atari stacks 4 gray frames (C=4,
            frame_channels=1); Sokoban has one frame with one channel per entity
            (frame_channels=C).
        reward_values: The reward classes the model predicts among.
    """

    kind: str = ""

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    ):
        super().__init__()
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 3:
            raise ValueError(
                f"Environment models need (C, H, W) image observations, got shape "
                f"{obs_shape}."
            )
        if obs_shape[0] % frame_channels:
            raise ValueError(
                f"frame_channels={frame_channels} must divide the observation's "
                f"{obs_shape[0]} channels (a stack of whole frames)."
            )
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}.")
        self.obs_shape = obs_shape
        self.num_actions = int(num_actions)
        self.frame_channels = int(frame_channels)
        self.register_buffer(
            "reward_values", torch.tensor(sorted(reward_values), dtype=torch.float32)
        )

    # --- What imagination uses -------------------------------------------------------
    @property
    def state_shape(self) -> Tuple[int, ...]:
        """Shape of one model state (frames or a latent vector)."""
        raise NotImplementedError

    @property
    def view_shape(self) -> Tuple[int, ...]:
        """Shape of what the rollout encoder reads of each imagined state."""
        raise NotImplementedError

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        """Float frames in [0, 1] (B, C, H, W) -> model state (B, *state_shape)."""
        raise NotImplementedError

    def step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One imagined step: (B, *state_shape), (B,) -> next state, expected reward (B,)."""
        raise NotImplementedError

    def step_every_action(self, state: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Steps each of B states with each of the A actions: rows b*A + a.

        Subclasses may share work across the A copies of one state (the pixel model
        computes its state convolution once instead of A times).
        """
        tiled = state.repeat_interleave(self.num_actions, dim=0)
        actions = torch.arange(self.num_actions, device=state.device).repeat(state.shape[0])
        return self.step(tiled, actions)

    def view(self, state: torch.Tensor) -> torch.Tensor:
        """The part of a state the rollout encoder reads (the newest frame, or the latent)."""
        raise NotImplementedError

    # --- Training and pictures ------------------------------------------------------
    def reward_class(self, reward: torch.Tensor) -> torch.Tensor:
        """Index of the closest reward class for each real reward."""
        return (reward.float().unsqueeze(-1) - self.reward_values).abs().argmin(-1)

    def expected_reward(self, reward_logits: torch.Tensor) -> torch.Tensor:
        return reward_logits.softmax(-1) @ self.reward_values

    def loss(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_frame: torch.Tensor,
    ) -> EnvModelLoss:
        """Loss of one batch of transitions; frames in [0, 1], next_frame (B, fc, H, W)."""
        raise NotImplementedError

    def predict_frames(
        self, frames: torch.Tensor, actions: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Open-loop prediction for pictures and k-step errors.

        Args:
            frames: (B, C, H, W) real start observation in [0, 1].
            actions: (B, K) actions to take.

        Returns:
            Predicted newest frames (B, K, fc, H, W) in [0, 1], expected rewards (B, K).
        """
        raise NotImplementedError

    def metadata(self) -> Dict[str, Any]:
        """What a checkpoint must record to rebuild this model and check compatibility."""
        return {
            "kind": self.kind,
            "obs_shape": list(self.obs_shape),
            "num_actions": self.num_actions,
            "frame_channels": self.frame_channels,
            "reward_values": [float(v) for v in self.reward_values.tolist()],
            "hparams": self.hparams(),
        }

    def hparams(self) -> Dict[str, Any]:
        return {}

    def newest_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, -self.frame_channels :]

    def push_frame(self, frames: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Drops the oldest frame of the stack and appends `frame`."""
        if frames.shape[1] == self.frame_channels:
            return frame
        return torch.cat([frames[:, self.frame_channels :], frame], dim=1)


class CanvasFrameHead(nn.Module):
    """Predicts the next frame as a per-pixel blend of the current frame and new content.

    prediction = g * canvas + (1 - g) * sigmoid(content), with the gate g and the
    content read off the decoder features and the canvas (the newest real frame). The
    gate starts almost closed on the canvas, so an untrained model already predicts
    "nothing moves" (the copy baseline) and training only has to learn what changes.
    """

    def __init__(self, feature_channels: int, frame_channels: int, initial_gate: float = 5.0):
        super().__init__()
        self.frame_channels = frame_channels
        self.conv = nn.Conv2d(feature_channels + frame_channels, 2 * frame_channels, 3, padding=1)
        with torch.no_grad():
            self.conv.bias[frame_channels:].fill_(initial_gate)

    def forward(self, features: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        content, gate = self.conv(torch.cat([features, canvas], dim=1)).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        return gate * canvas + (1.0 - gate) * torch.sigmoid(content)


class LogitResidualFrameHead(nn.Module):
    """Predicts the next frame as a correction to the current frame in logit space.

    prediction = sigmoid(logit(canvas) + delta), with delta read off the decoder
    features and the canvas and starting at exactly zero, so an untrained model
    predicts "nothing moves" like `CanvasFrameHead`. Unlike the gated blend, the
    Bernoulli loss's gradient reaches delta undamped (d loss / d delta = prediction -
    target), where a gate opened only 0.7% at the start scales it by 0.007: on
    Breakout the gated dilated model spent its first ~20k samples at the copy
    baseline, this head leaves it within 3k.
    """

    def __init__(self, feature_channels: int, frame_channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = float(eps)
        self.conv = nn.Conv2d(feature_channels + frame_channels, frame_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        delta = self.conv(torch.cat([features, canvas], dim=1))
        return torch.sigmoid(torch.logit(canvas, eps=self.eps) + delta)


FRAME_HEADS = {"gate": CanvasFrameHead, "logit": LogitResidualFrameHead}


def _frame_head(name: str, feature_channels: int, frame_channels: int) -> nn.Module:
    if name not in FRAME_HEADS:
        raise ValueError(
            f"Unknown frame_head {name!r}; choose one of {list(FRAME_HEADS)} ('logit' "
            "corrects the last frame in logit space and learns fastest, 'gate' is the "
            "blend of earlier checkpoints)."
        )
    return FRAME_HEADS[name](feature_channels, frame_channels)


def _downsampling_conv_args(obs_shape: Sequence[int]) -> Dict[str, int]:
    """Stride-2 4x4 convolutions on large frames, size-keeping 3x3 ones on small boards."""
    if min(obs_shape[1:]) >= NATURE_CNN_MIN_SIZE:
        return {"kernel_size": 4, "stride": 2, "padding": 1}
    return {"kernel_size": 3, "stride": 1, "padding": 1}


class _FrameStateModel(EnvironmentModel):
    """A pixel model: its state is the frame stack, each step paints the next frame.

    The action enters through the first convolution, which is linear in its input:
    conv([frames, action plane]) = conv_frames(frames) + conv_plane(plane). The plane
    part is computed once per action, so `step_every_action` convolves each state once
    for all A actions. Subclasses give `_state_features`, `_action_effects` and
    `_decode`.
    """

    kind = "pixel"

    @property
    def state_shape(self):
        return self.obs_shape

    @property
    def view_shape(self):
        return (self.frame_channels, *self.obs_shape[1:])

    def initial_state(self, frames):
        return frames

    def view(self, state):
        return self.newest_frame(state)

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

    def step(self, state, action):
        frame, reward_logits = self.predict(state, action)
        return self.push_frame(state, frame), self.expected_reward(reward_logits)

    def step_every_action(self, state):
        num_actions = self.num_actions
        per_state = self._state_features(state)  # once per state, not once per action
        first = (per_state.unsqueeze(1) + self._action_effects().unsqueeze(0)).flatten(0, 1)
        tiled = state.repeat_interleave(num_actions, dim=0)
        frame, reward_logits = self._decode(first, tiled)
        return self.push_frame(tiled, frame), self.expected_reward(reward_logits)

    def loss(self, frames, actions, rewards, next_frame):
        frame, reward_logits = self.predict(frames, actions)
        return _loss_terms(self, frame, reward_logits, rewards, next_frame)

    def predict_frames(self, frames, actions):
        state, predicted, rewards = frames, [], []
        for k in range(actions.shape[1]):
            state, reward = self.step(state, actions[:, k])
            predicted.append(self.newest_frame(state))
            rewards.append(reward)
        return torch.stack(predicted, 1), torch.stack(rewards, 1)


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
        self.decoder_1 = nn.ConvTranspose2d(wide, self.channels, **conv)
        self.decoder_2 = nn.ConvTranspose2d(self.channels, 32, **conv)
        self.frame_head = str(frame_head)
        self.frame_out = _frame_head(self.frame_head, 32, frame_channels)

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
        x = F.relu(self.decoder_1(encoded, output_size=hidden_1.shape[-2:]))
        x = F.relu(self.decoder_2(x, output_size=frames.shape[-2:]))
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
        self.frame_out = _frame_head(self.frame_head, head_channels, frame_channels)

    def hparams(self):
        return {
            "architecture": self.architecture,
            "channels": self.channels,
            "dilations": list(self.dilations),
            "factor": self.factor,
            "frame_head": self.frame_head,
        }

    def _state_features(self, frames):
        return self.frames_conv(F.pixel_unshuffle(frames, self.factor))

    def _action_effects(self):
        return self.plane_conv(self.action_planes)

    def _decode(self, first_layer, frames):
        x = F.relu(first_layer)
        for conv in self.body:
            x = x + F.relu(conv(x))
        reward_logits = self.reward_head(x)
        x = F.relu(F.pixel_shuffle(self.unfold(x), self.factor))
        return self.frame_out(x, self.newest_frame(frames)), reward_logits


PIXEL_ARCHITECTURES = {
    PixelEnvModel.architecture: PixelEnvModel,
    DilatedPixelEnvModel.architecture: DilatedPixelEnvModel,
}


def _loss_terms(model, frame, reward_logits, rewards, next_frame, consistency=None):
    """Bernoulli (binary cross-entropy) frame loss + reward classification (+ consistency)."""
    frame_loss = F.binary_cross_entropy(frame.clamp(1e-6, 1.0 - 1e-6), next_frame)
    reward_targets = model.reward_class(rewards)
    reward_loss = F.cross_entropy(reward_logits, reward_targets)
    consistency = consistency if consistency is not None else frame_loss.new_zeros(())
    with torch.no_grad():
        accuracy = (reward_logits.argmax(-1) == reward_targets).float().mean()
        frame_mse = F.mse_loss(frame, next_frame)
    return EnvModelLoss(
        total=frame_loss + reward_loss + consistency,
        frame=frame_loss,
        reward=reward_loss,
        consistency=consistency,
        reward_accuracy=accuracy,
        frame_mse=frame_mse,
    )


class _TransposedConvs(nn.Module):
    """Mirror of a conv stack: maps its output feature map back to the input size."""

    def __init__(self, convs: nn.Sequential, input_shape: Sequence[int], out_channels: int):
        super().__init__()
        conv_layers = [m for m in convs if isinstance(m, nn.Conv2d)]
        sizes, x = [], torch.zeros(1, *input_shape)
        for module in convs:
            if isinstance(module, nn.Conv2d):
                sizes.append(tuple(x.shape[-2:]))
            if isinstance(module, nn.Flatten):
                break
            x = module(x)
        self.bottleneck_shape = tuple(x.shape[1:])
        self.output_sizes = list(reversed(sizes))
        layers = []
        for i, conv in enumerate(reversed(conv_layers)):
            last = i == len(conv_layers) - 1
            layers.append(
                nn.ConvTranspose2d(
                    conv.out_channels,
                    out_channels if last else conv.in_channels,
                    conv.kernel_size,
                    stride=conv.stride,
                    padding=conv.padding,
                )
            )
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for i, (layer, size) in enumerate(zip(self.layers, self.output_sizes)):
            x = layer(x, output_size=size)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class LatentEnvModel(EnvironmentModel):
    """State-space model: encode once, step a GRU cell in latent space.

    initial_state: z0 = tanh(W conv(frames)); step: z' = GRUCell(onehot(a), z), reward
    from [z, z']. Training adds a consistency term ||z' - sg(encode(next obs))||^2 so
    that multi-step rollouts stay on the encoder's manifold. The decoder paints the
    newest frame from a latent, with the start observation's newest frame as a canvas
    (the agent never needs pixels; pictures and the frame loss do).
    """

    kind = "latent"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        latent_size: int = 128,
        consistency_coeff: float = 1.0,
        encoder_channels: Sequence[int] = (16, 32, 32),
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        self.latent_size = int(latent_size)
        self.consistency_coeff = float(consistency_coeff)
        # Half the Nature CNN's channels: the encoder runs on every EnvRunner step
        # beside the model-free path, and a 128-d latent needs no more.
        self.encoder_channels = tuple(int(c) for c in encoder_channels)
        convs = frame_convs(self.obs_shape, self.encoder_channels)
        self.encoder = nn.Sequential(
            convs,
            nn.Linear(conv_output_size(convs, self.obs_shape), self.latent_size),
            nn.Tanh(),
        )
        self.transition = nn.GRUCell(num_actions, self.latent_size)
        self.reward_head = nn.Sequential(
            nn.Linear(2 * self.latent_size, 64),
            nn.ReLU(),
            nn.Linear(64, len(self.reward_values)),
        )
        decoder_channels = self.encoder_channels[0]
        self.decoder_convs = _TransposedConvs(convs, self.obs_shape, decoder_channels)
        self.decoder_fc = nn.Linear(
            self.latent_size, int(torch.tensor(self.decoder_convs.bottleneck_shape).prod())
        )
        self.frame_out = CanvasFrameHead(decoder_channels, frame_channels)

    @property
    def state_shape(self):
        return (self.latent_size,)

    @property
    def view_shape(self):
        return (self.latent_size,)

    def hparams(self):
        return {
            "latent_size": self.latent_size,
            "consistency_coeff": self.consistency_coeff,
            "encoder_channels": list(self.encoder_channels),
        }

    def initial_state(self, frames):
        return self.encoder(frames)

    def view(self, state):
        return state

    def _transition(self, latent, action):
        next_latent = self.transition(F.one_hot(action, self.num_actions).float(), latent)
        reward_logits = self.reward_head(torch.cat([latent, next_latent], dim=-1))
        return next_latent, reward_logits

    def step(self, state, action):
        next_latent, reward_logits = self._transition(state, action)
        return next_latent, self.expected_reward(reward_logits)

    def decode(self, latent: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        """The newest frame (B, fc, H, W) in [0, 1] a latent stands for, over `canvas`."""
        x = F.relu(self.decoder_fc(latent)).view(-1, *self.decoder_convs.bottleneck_shape)
        x = F.relu(self.decoder_convs(x))
        return self.frame_out(x, canvas)

    def loss(self, frames, actions, rewards, next_frame):
        latent = self.encoder(frames)
        next_latent, reward_logits = self._transition(latent, actions)
        frame = self.decode(next_latent, self.newest_frame(frames))
        with torch.no_grad():
            target = self.encoder(self.push_frame(frames, next_frame))
        consistency = self.consistency_coeff * F.mse_loss(next_latent, target)
        return _loss_terms(self, frame, reward_logits, rewards, next_frame, consistency)

    def predict_frames(self, frames, actions):
        latent, canvas = self.encoder(frames), self.newest_frame(frames)
        predicted, rewards = [], []
        for k in range(actions.shape[1]):
            latent, reward = self.step(latent, actions[:, k])
            predicted.append(self.decode(latent, canvas))
            rewards.append(reward)
        return torch.stack(predicted, 1), torch.stack(rewards, 1)


class CopyEnvModel(EnvironmentModel):
    """The paper's control: next state = state, reward = 0.

    With `base=None` the state is the frame stack (the paper's copy model). Given a
    latent model as `base`, its (frozen) encoder makes the state, so a latent I2A and
    its copy control differ only in the transition.
    """

    kind = "copy"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        base: Optional[LatentEnvModel] = None,
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        self.base = base

    @property
    def state_shape(self):
        return self.base.state_shape if self.base is not None else self.obs_shape

    @property
    def view_shape(self):
        if self.base is not None:
            return self.base.view_shape
        return (self.frame_channels, *self.obs_shape[1:])

    def hparams(self):
        return {"base": self.base.metadata() if self.base is not None else None}

    def initial_state(self, frames):
        return self.base.initial_state(frames) if self.base is not None else frames

    def view(self, state):
        return state if self.base is not None else self.newest_frame(state)

    def step(self, state, action):
        return state, state.new_zeros(state.shape[0])

    def loss(self, frames, actions, rewards, next_frame):
        raise ValueError(
            "The copy model has nothing to learn; pretrain a 'pixel' or 'latent' model."
        )

    def predict_frames(self, frames, actions):
        batch, steps = actions.shape
        newest = self.newest_frame(frames)
        return (
            newest.unsqueeze(1).expand(batch, steps, *newest.shape[1:]),
            frames.new_zeros(batch, steps),
        )


def _construct(model_class, obs_shape, num_actions, common, hparams) -> EnvironmentModel:
    """Builds `model_class`; an hparam it does not take is named in the error."""
    import inspect

    accepted = set(inspect.signature(model_class.__init__).parameters) - {
        "self", "obs_shape", "num_actions", *common,
    }
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown hparams {unknown} for {model_class.__name__}; it takes "
            f"{sorted(accepted)}."
        )
    return model_class(obs_shape, num_actions, **common, **hparams)


def build_env_model(
    kind: str,
    obs_shape: Sequence[int],
    num_actions: int,
    *,
    frame_channels: int = 1,
    reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    hparams: Optional[Dict[str, Any]] = None,
) -> EnvironmentModel:
    """Builds an environment model of `kind` ('pixel', 'latent' or 'copy')."""
    hparams = dict(hparams or {})
    common = dict(frame_channels=frame_channels, reward_values=reward_values)
    if kind == "pixel":
        architecture = hparams.pop("architecture", PixelEnvModel.architecture)
        if architecture not in PIXEL_ARCHITECTURES:
            raise ValueError(
                f"Unknown pixel architecture {architecture!r}; choose one of "
                f"{list(PIXEL_ARCHITECTURES)} ('encoder_decoder' is the seed's model, "
                "'dilated' keeps Atari frames' resolution)."
            )
        return _construct(PIXEL_ARCHITECTURES[architecture], obs_shape, num_actions, common, hparams)
    if kind == "latent":
        return _construct(LatentEnvModel, obs_shape, num_actions, common, hparams)
    if kind == "copy":
        base = hparams.pop("base", None)
        if isinstance(base, dict):
            base = build_env_model_from_metadata(base)
        return CopyEnvModel(obs_shape, num_actions, **common, base=base)
    raise ValueError(
        f"Unknown environment model kind {kind!r}; choose one of {list(ENV_MODEL_KINDS)} "
        "('latent' is the fast default for Atari, 'pixel' the paper's frame model, "
        "'copy' the paper's no-model control)."
    )


def build_env_model_from_metadata(metadata: Dict[str, Any]) -> EnvironmentModel:
    hparams = dict(metadata.get("hparams") or {})
    if metadata["kind"] == "pixel" and "frame_head" not in hparams:
        hparams["frame_head"] = "gate"  # checkpoints written before the head was a choice
    return build_env_model(
        metadata["kind"],
        metadata["obs_shape"],
        metadata["num_actions"],
        frame_channels=metadata["frame_channels"],
        reward_values=metadata["reward_values"],
        hparams=hparams,
    )
