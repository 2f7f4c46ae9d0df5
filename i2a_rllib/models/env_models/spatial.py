"""The spatial-latent environment model: imagination in a small feature map, not in frames.

Pure torch, no Ray. Atari's objects are a few pixels large (Breakout's ball is 1x2 at
84x84), so the latent keeps space: frames are folded space-to-depth (84x84x4 ->
42x42x16, lossless) and encoded into a `channels` x 42 x 42 map. An imagined step is
an action-conditioned residual conv transition on that map (the action scales and
shifts the features channel-wise, the multiplicative action interaction of Oh et al.
2015 in FiLM form); rewards are read off the old and new maps. Imagination never
decodes: the rollout encoder reads a pooled, quantised view of the map. A decoder
paints frames for the training loss and for pictures only, through the logit frame
head over the last real frame.

Trained over several open-loop steps (`sequence_loss`): the map is stepped with the
actions actually taken and, at every step, the decoded frame, the reward and the
map itself (against the encoding of the real observation, "latent consistency") are
scored, so errors that compound over the rollout depth are trained away.

Cost per imagined step with the defaults (16 channels, 3 dilated blocks): ~21 MMAC,
a twelfth of the seed's pixel model (~250 MMAC).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, EnvironmentModel
from i2a_rllib.models.env_models.frame_heads import build_frame_head


class SpatialLatentEnvModel(EnvironmentModel):
    """Encode once into a feature map, step it with an action-conditioned conv net.

    Args:
        channels: Feature-map channels (the per-step cost grows with their square).
        factor: Space-to-depth fold of the frames (2: 84x84 -> 42x42, lossless).
        dilations: One residual 3x3 block per entry, with that dilation; the growing
            dilations let a step see ~2 * sum(dilations) folded cells around each cell.
        view_pool: The rollout encoder reads the map average-pooled by this factor.
        consistency_coeff: Weight of ||z_k - sg(encode(o_k))||^2 in the training loss.
        frame_head: 'logit' (correction of the last real frame in logit space).
        change_weight: The pixels that change count 1 + change_weight times in the frame
            loss (base.py); 0 weighs every pixel the same.
    """

    kind = "spatial"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        channels: int = 8,
        factor: int = 2,
        dilations: Sequence[int] = (1, 2),
        view_pool: int = 2,
        consistency_coeff: float = 1.0,
        frame_head: str = "logit",
        change_weight: float = 0.0,
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        in_channels, height, width = self.obs_shape
        if factor < 1 or height % factor or width % factor:
            raise ValueError(
                f"spatial model: factor={factor} must divide the frame's height and width "
                f"({height}x{width}); 1 keeps the full resolution."
            )
        folded = (height // factor, width // factor)
        if view_pool < 1 or folded[0] % view_pool or folded[1] % view_pool:
            raise ValueError(
                f"spatial model: view_pool={view_pool} must divide the folded map "
                f"{folded[0]}x{folded[1]}."
            )
        self.channels, self.factor = int(channels), int(factor)
        self.dilations = tuple(int(d) for d in dilations)
        self.view_pool = int(view_pool)
        self.consistency_coeff = float(consistency_coeff)
        self.frame_head = str(frame_head)
        if not change_weight >= 0:
            raise ValueError(f"spatial model: change_weight={change_weight} must be >= 0.")
        self.change_weight = float(change_weight)
        self.map_size = folded
        c = self.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels * factor**2, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )
        # Transition: z' = z + body(FiLM_a(conv(z))).
        self.transition_in = nn.Conv2d(c, c, 3, padding=1)
        self.action_scale = nn.Embedding(num_actions, c)
        self.action_shift = nn.Embedding(num_actions, c)
        nn.init.zeros_(self.action_scale.weight)
        nn.init.normal_(self.action_shift.weight, std=0.1)
        self.transition_body = nn.ModuleList(
            nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in self.dilations
        )
        self.transition_out = nn.Conv2d(c, c, 3, padding=1)
        # Rewards, read off the transition's features (which see the old map and the
        # action): a brick hit is one place on the map, so max over space, not mean.
        self.reward_out = nn.Linear(c, len(self.reward_values))
        # Decoder (losses and pictures only): map -> frame logits correction. Few
        # channels at full resolution: the decoder runs at every step of every training
        # window, and 4 (not 16) halves the training time at the same error.
        head_channels = 4
        self.decoder = nn.Sequential(
            nn.Conv2d(c, head_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_channels, head_channels * factor**2, 3, padding=1),
        )
        self.frame_out = build_frame_head(self.frame_head, head_channels, frame_channels)

    # --- Interface ------------------------------------------------------------------
    @property
    def state_shape(self) -> Tuple[int, ...]:
        return (self.channels, *self.map_size)

    @property
    def view_shape(self) -> Tuple[int, ...]:
        return (self.channels, self.map_size[0] // self.view_pool, self.map_size[1] // self.view_pool)

    def hparams(self):
        return {
            "channels": self.channels,
            "factor": self.factor,
            "dilations": list(self.dilations),
            "view_pool": self.view_pool,
            "consistency_coeff": self.consistency_coeff,
            "frame_head": self.frame_head,
            "change_weight": self.change_weight,
        }

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        # Bounded encodings: the consistency term cannot be lowered by shrinking (or
        # blow up by growing) the scale of the encoder's output.
        return torch.tanh(self.encoder(F.pixel_unshuffle(frames, self.factor)))

    def view(self, state: torch.Tensor) -> torch.Tensor:
        # Optionally pooled (view_pool**2 fewer values for the rollout encoder to read
        # and for the learner to keep per imagined step).
        return state if self.view_pool == 1 else F.avg_pool2d(state, self.view_pool)

    def _transition(self, state, first_layer, action):
        scale = 1.0 + self.action_scale(action)[:, :, None, None]
        x = F.relu(torch.addcmul(self.action_shift(action)[:, :, None, None], first_layer, scale))
        for conv in self.transition_body:
            x = x + F.relu(conv(x))
        next_state = state + self.transition_out(x)
        reward_logits = self.reward_out(F.adaptive_max_pool2d(x, 1).flatten(1))
        return next_state, reward_logits

    def transition(self, state, action):
        return self._transition(state, self.transition_in(state), action)

    def step_every_action(self, state):
        # The first convolution does not depend on the action: once per state.
        num_actions = self.num_actions
        first = self.transition_in(state).repeat_interleave(num_actions, dim=0)
        tiled = state.repeat_interleave(num_actions, dim=0)
        actions = torch.arange(num_actions, device=state.device).repeat(state.shape[0])
        next_state, reward_logits = self._transition(tiled, first, actions)
        return next_state, self.expected_reward(reward_logits)

    def frame_of(self, state, canvas):
        features = F.relu(F.pixel_shuffle(self.decoder(state), self.factor))
        return self.frame_out(features, canvas)

    def consistency(self, state, real_obs):
        with torch.no_grad():
            target = self.initial_state(real_obs)
        return self.consistency_coeff * F.mse_loss(state, target)
