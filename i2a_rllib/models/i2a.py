"""The whole I2A network: model-free path + imagination + rollout encoder + heads.

Pure torch, no Ray; `i2a_rllib.rl_module.I2ARLModule` is the thin RLlib wrapper.

    obs --> model-free trunk (CNN / MLP) ------------------------------+
     |                                                                  |--> FC --> pi, V
     +--> env_model.initial_state --> ImaginationCore --> RolloutEncoder (A codes, concat)
                    |
                    +--> rollout policy logits (distilled towards pi)
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from i2a_rllib.models.distinct import groups_of
from i2a_rllib.models.env_models import EnvironmentModel
from i2a_rllib.models.imagination import Imagination, ImaginationCore
from i2a_rllib.models.model_free import (
    ActorCriticHeads,
    model_free_trunk,
    relu_layers_init_,
    to_float_frames,
)
from i2a_rllib.models.rollout_encoder import RolloutEncoder
from i2a_rllib.models.rollout_policy import IMAGINED_FRAME_CONV_CHANNELS, RolloutPolicy


class I2ANetwork(nn.Module):
    """Imagination-Augmented Agent (Weber et al., 2017) over (C, H, W) frames or (D,)
    vectors (the model-free trunk is a CNN or an MLP, `model_free_trunk`).

    Args:
        env_model: A pretrained (or copy) environment model; frozen here.
        rollout_depth: Imagined steps per rollout.
        action_choice: 'sample' (the paper) or 'argmax' for the rollout policy.
        snap_frames: Round imagined frames to 0 or 1 (one-hot boards; `ImaginationCore`).
        imagination_precision: 'fp32', 'bf16' (the rollouts in bfloat16 autocast) or
            'auto' (bf16 for spatial models on CPUs with AMX; `ImaginationCore`).
        model_free_hidden: Width of the model-free path's FC layer.
        rollout_policy_hidden: Width of the rollout policy.
        encoder_feature_size / encoder_hidden: Rollout encoder per-step features and
            LSTM size (the rollout code).
        head_hidden: FC layer over [model-free features, imagination code]; 0: none,
            the policy and value heads read that concatenation directly.
        imagined_frame_conv_channels: First convolution's channels of the rollout
            policy's and encoder's conv stacks over imagined frames (then 2x, 2x).
    """

    def __init__(
        self,
        env_model: EnvironmentModel,
        *,
        rollout_depth: int = 5,
        action_choice: str = "sample",
        snap_frames: bool = False,
        imagination_precision: str = "fp32",
        model_free_hidden: int = 512,
        rollout_policy_hidden: int = 128,
        encoder_feature_size: int = 128,
        encoder_hidden: int = 128,
        head_hidden: int = 256,
        imagined_frame_conv_channels: int = IMAGINED_FRAME_CONV_CHANNELS,
    ):
        super().__init__()
        obs_shape, num_actions = env_model.obs_shape, env_model.num_actions
        env_model.requires_grad_(False)
        env_model.eval()
        self.imagination = ImaginationCore(
            env_model,
            RolloutPolicy(
                env_model.state_shape,
                num_actions,
                rollout_policy_hidden,
                states_are_frames=env_model.states_are_frames,
                conv_channels=imagined_frame_conv_channels,
            ),
            rollout_depth=rollout_depth,
            action_choice=action_choice,
            snap_frames=snap_frames,
            precision=imagination_precision,
        )
        self.model_free = model_free_trunk(obs_shape, model_free_hidden)
        self.rollout_encoder = RolloutEncoder(
            env_model.view_shape,
            encoder_feature_size,
            encoder_hidden,
            views_are_frames=env_model.views_are_frames,
            conv_channels=imagined_frame_conv_channels,
        )
        joined = model_free_hidden + num_actions * encoder_hidden
        # head_hidden 0: no layer between the joined features and the policy and value
        # heads, which then read them as PPO's heads read its trunk's.
        self.head_fc = nn.Identity()
        if head_hidden:
            self.head_fc = relu_layers_init_(nn.Sequential(nn.Linear(joined, head_hidden), nn.ReLU()))
        self.heads = ActorCriticHeads(head_hidden or joined, num_actions)

    @property
    def env_model(self) -> EnvironmentModel:
        return self.imagination.env_model

    @property
    def rollout_policy(self) -> RolloutPolicy:
        return self.imagination.rollout_policy

    def train(self, mode: bool = True):
        super().train(mode)
        self.env_model.eval()  # frozen: never in training mode
        return self

    @torch.no_grad()
    def model_state(self, obs: torch.Tensor) -> torch.Tensor:
        """The environment model's state of real observations (no gradient)."""
        return self.env_model.initial_state(to_float_frames(obs))

    def imagine(
        self,
        obs: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
        model_state: Optional[torch.Tensor] = None,
    ) -> Imagination:
        if model_state is None:
            model_state = self.model_state(obs)
        return self.imagination(model_state, noise)

    def encode_imagination(self, imagination: Imagination) -> torch.Tensor:
        """(B, A, depth, ...) -> (B, A * encoder_hidden): the A codes, concatenated."""
        batch, num_actions = imagination.rewards.shape[:2]
        if self.env_model.imagines_no_change:
            # The A rollouts of a state are one view repeated with the same rewards: one
            # code per state, the same for every action (exact; autograd sums the
            # gradient of the A copies, as the per-rollout path did).
            code = self.rollout_encoder.forward_repeated_view(
                imagination.views[:, 0, 0], imagination.rewards[:, 0]
            )
            return code.repeat(1, num_actions)
        codes = self.rollout_encoder(
            imagination.views.flatten(0, 1), imagination.rewards.flatten(0, 1)
        )
        return codes.view(batch, num_actions * codes.shape[-1])

    def forward(
        self,
        obs: torch.Tensor,
        imagination: Optional[Imagination] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Policy logits (B, A) and features (B, head_hidden, or the concatenation's
        width at head_hidden 0) for the value head."""
        if imagination is None:
            imagination = self.imagine(obs, noise)
        found, boards_alone = self._distinct_inputs(obs, imagination)
        if found is None:
            # Grouped by board and nothing to group (no repeats, or too few rows): the
            # trunk's own grouping would find nothing to do either.
            features = self._features(to_float_frames(obs), imagination, rows_distinct=boards_alone)
        else:
            # Only the distinct rows are scaled to floats (~1/3 of a minibatch's rows).
            first, where, _ = found
            distinct = Imagination(views=imagination.views[first], rewards=imagination.rewards[first])
            features = self._features(to_float_frames(obs[first]), distinct, rows_distinct=True)[where]
        return self.heads.logits(features), features

    def _features(self, frames: torch.Tensor, imagination: Imagination, rows_distinct: bool = False):
        model_free = self.model_free(frames, rows_distinct=True) if rows_distinct else self.model_free(frames)
        return self.head_fc(torch.cat([model_free, self.encode_imagination(imagination)], dim=-1))

    def _distinct_inputs(self, obs: torch.Tensor, imagination: Imagination):
        """(`groups_of` the rows, whether they were grouped by board alone), or (None,
        False) where no grouping applies. A row's features depend on its observation and
        imagination alone, so the network runs once per distinct row (exact, as
        `once_per_distinct_row`), for the small boards whose trunk runs so anyway
        (Sokoban 5x5: ~40 distinct observations in a 256-row minibatch). At depth 1 a
        board's imagination is fixed (the frozen model's one step per action), so the
        board alone is the key: one grouping serves the whole network, as the trunk's
        did before (an EnvRunner's boards rarely repeat). Deeper, sampled rollouts make
        rows of one board differ: observation, imagined frames and rewards together."""
        if not (
            getattr(self.model_free, "once_per_distinct_row", False)
            and obs.dtype == torch.uint8
            and imagination.views.dtype == torch.uint8
            and obs.device.type == "cpu"
        ):
            return None, False
        if self.imagination.rollout_depth == 1:
            return groups_of(obs.flatten(1), padded=True), True
        rewards = imagination.rewards.float().flatten(1).contiguous().view(torch.uint8)
        keys = torch.cat([obs.flatten(1), imagination.views.flatten(1), rewards], dim=1)
        return groups_of(keys, padded=True), False

    def values(self, features: torch.Tensor) -> torch.Tensor:
        return self.heads.values(features)

    def rollout_policy_logits(
        self, obs: torch.Tensor, model_state: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """pi_hat(. | o) on real observations, for the distillation loss."""
        if model_state is None:
            model_state = self.model_state(obs)
        return self.rollout_policy(model_state)
