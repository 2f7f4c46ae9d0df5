"""The vector-latent environment model (Buesing et al. 2018): encode once, step a GRU.

Pure torch, no Ray. A decoder turns latents back into frames for training and pictures
only; imagination never decodes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, EnvironmentModel
from i2a_rllib.models.env_models.frame_heads import build_frame_head
from i2a_rllib.models.model_free import conv_output_size, frame_convs

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


def _rename_old_keys(state_dict, prefix, *args):
    for key in [k for k in state_dict if k.startswith(prefix + "transition.")]:
        state_dict[prefix + "gru." + key[len(prefix + "transition.") :]] = state_dict.pop(key)


class LatentEnvModel(EnvironmentModel):
    """State-space model: encode once, step a GRU cell in latent space.

    initial_state: z0 = tanh(W conv(frames)); step: z' = GRUCell(onehot(a), z), reward
    from [z, z']. Training adds a consistency term ||z' - sg(encode(next obs))||^2 so
    that multi-step rollouts stay on the encoder's manifold. The decoder paints the
    newest frame from a latent, with the start observation's newest frame as a canvas
    (the agent never needs pixels; pictures and the frame loss do) through the logit
    frame head (`frame_head="gate"`: the blend of checkpoints written before the choice,
    whose gradient starts damped ~150x).
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
        frame_head: str = "logit",
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
        self.gru = nn.GRUCell(num_actions, self.latent_size)
        # Checkpoints written before `transition` became a method named the cell so.
        self._register_load_state_dict_pre_hook(_rename_old_keys)
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
        self.frame_head = str(frame_head)
        self.frame_out = build_frame_head(self.frame_head, decoder_channels, frame_channels)

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
            "frame_head": self.frame_head,
        }

    def initial_state(self, frames):
        return self.encoder(frames)

    def view(self, state):
        return state

    def transition(self, state, action):
        next_latent = self.gru(F.one_hot(action, self.num_actions).float(), state)
        reward_logits = self.reward_head(torch.cat([state, next_latent], dim=-1))
        return next_latent, reward_logits

    def frame_of(self, state, canvas):
        """The newest frame (B, fc, H, W) in [0, 1] a latent stands for, over `canvas`."""
        x = F.relu(self.decoder_fc(state)).view(-1, *self.decoder_convs.bottleneck_shape)
        x = F.relu(self.decoder_convs(x))
        return self.frame_out(x, canvas)

    def consistency(self, state, real_obs):
        with torch.no_grad():
            target = self.encoder(real_obs)
        return self.consistency_coeff * F.mse_loss(state, target)
