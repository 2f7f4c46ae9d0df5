"""Rollout policy: chooses actions inside imagination, over the model's own state.

Pure torch, no Ray. Reads frames (pixel/copy models) with a small conv stack, latent
maps (spatial model) with a pooled conv, latent or observed vectors (latent and mlp
models) with an MLP. Trained by distillation towards the I2A policy
(the paper) or restored from a model-free agent and frozen (the seed's stage 2).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from i2a_rllib.models.model_free import ScaleFrames, conv_output_size, frame_convs

ROLLOUT_ACTION_CHOICES = ("sample", "argmax")


# Half the Nature CNN's channels by default: these nets run on every imagined step (A x
# depth times per decision, and again in every learner epoch), so they are kept light.
# `conv_channels` below sets the first convolution's; the next two have twice as many.
IMAGINED_FRAME_CONV_CHANNELS = 16
LATENT_MAP_CHANNELS = 16
LATENT_MAP_SIZE = 11


def state_feature_net(
    state_shape: Sequence[int],
    hidden_size: int,
    frames: bool = True,
    conv_channels: int = IMAGINED_FRAME_CONV_CHANNELS,
) -> nn.Module:
    """What the rollout policy and encoder put in front of their layers. Output: hidden_size.

    Frames (uint8 or [0, 1]): a light conv stack of (c, 2c, 2c) channels, c =
    `conv_channels`, + FC. Latent maps (`frames=False`, e.g. the spatial model's
    C x 42 x 42): average-pooled to ~11 x 11, one 3x3 conv + FC.
    Vectors, latent or observed (the mlp model's CartPole states): one FC layer, so the
    rollout policy is a one-hidden-layer MLP.
    """
    state_shape = tuple(state_shape)
    if len(state_shape) == 1:
        return nn.Sequential(nn.Linear(state_shape[0], hidden_size), nn.ReLU())
    if len(state_shape) == 3 and frames:
        convs = frame_convs(state_shape, (conv_channels, 2 * conv_channels, 2 * conv_channels))
        return nn.Sequential(
            ScaleFrames(),
            convs,
            nn.Linear(conv_output_size(convs, state_shape), hidden_size),
            nn.ReLU(),
        )
    if len(state_shape) == 3:
        # Average-pooled to at most LATENT_MAP_SIZE cells a side first: these nets run on
        # every imagined step, and where things are on a coarse grid is what they need.
        pool = -(-min(state_shape[1:]) // LATENT_MAP_SIZE)
        convs = nn.Sequential(
            AsFloat(),
            # Identity (no parameters either way, so the layer indices stay) where the
            # view is already that coarse, e.g. the spatial model's 10 x 10 views.
            nn.AvgPool2d(pool) if pool > 1 else nn.Identity(),
            nn.Conv2d(state_shape[0], LATENT_MAP_CHANNELS, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        return nn.Sequential(
            convs, nn.Linear(conv_output_size(convs, state_shape), hidden_size), nn.ReLU()
        )
    raise ValueError(
        f"Model states must be (C, H, W) frames or maps, or (D,) latents, got {state_shape}."
    )


class AsFloat(nn.Module):
    """float16 views (how imagined latent maps are kept) -> float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def sample_with_noise(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Categorical sample by inverse CDF: the same `uniform` noise gives the same action.

    Passing the noise in (instead of drawing it inside) lets the learner replay exactly
    the imagined actions an EnvRunner took when it acted.
    """
    cdf = logits.softmax(-1).cumsum(-1)
    index = torch.searchsorted(cdf, uniform.to(cdf.dtype).reshape(-1, 1).contiguous()).squeeze(-1)
    return index.clamp_(max=logits.shape[-1] - 1)


class RolloutPolicy(nn.Module):
    """pi_hat(a | model state): small network, logits over the A actions."""

    def __init__(
        self,
        state_shape: Sequence[int],
        num_actions: int,
        hidden_size: int = 256,
        states_are_frames: bool = True,
        conv_channels: int = IMAGINED_FRAME_CONV_CHANNELS,
    ):
        super().__init__()
        self.state_shape = tuple(state_shape)
        self.num_actions = int(num_actions)
        self.features = state_feature_net(self.state_shape, hidden_size, states_are_frames, conv_channels)
        self.logits_layer = nn.Linear(hidden_size, num_actions)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.logits_layer(self.features(state))

    def act(
        self,
        state: torch.Tensor,
        choice: str = "sample",
        uniform: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Action per state: argmax, or a sample driven by `uniform` noise (B,) in [0, 1)."""
        logits = self.forward(state)
        if choice == "argmax":
            return logits.argmax(-1)
        if uniform is None:
            uniform = torch.rand(logits.shape[0], device=logits.device)
        return sample_with_noise(logits, uniform)

    def replace_network(self, features: nn.Module, logits_layer: nn.Linear) -> None:
        """Acts with another network (e.g. a pretrained model-free agent's trunk + policy)."""
        if logits_layer.out_features != self.num_actions:
            raise ValueError(
                f"The replacement policy has {logits_layer.out_features} actions, the "
                f"environment model {self.num_actions}."
            )
        self.features = features
        self.logits_layer = logits_layer
