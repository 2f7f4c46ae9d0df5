"""The seed's environment model for flat observation vectors: a residual MLP.

Pure torch, no Ray. The seed's `EnvironmentModel(obs_size, act_size)`: an MLP over
[state, action] predicts the change of the state, `next_state = state + f(state, a)`,
and a second MLP the reward. The state is the observation itself (CartPole's 4 numbers),
so a model-free policy can read imagined states, and the copy control is the same model
with f = 0.

Scales come from the dataset (`i2a pretrain` measures them on the training shards and
they are stored as hparams, i.e. in the checkpoint's metadata): the network reads the
state normalised by the observations' mean and standard deviation, and predicts the
change in units of the per-step changes' spread, so that a small per-step change (the
cart moves about 0.01 a step) is not drowned by the state's own range (+-2.4). The
state loss is the squared error in those same units.

Rewards: classes when the data has few distinct values (CartPole: always +1), a
regression otherwise (`reward_values` empty).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ObservationStateModel

# A regressed reward counts as right within this share of the rewards' standard deviation.
REWARD_TOLERANCE = 0.1


def _vector_or_default(values: Optional[Sequence[float]], size: int, default: float, name: str):
    if values is None:
        return torch.full((size,), float(default))
    values = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if values.shape != (size,):
        raise ValueError(f"{name} has {values.numel()} values; the observations have {size}.")
    return values


class ResidualMLPEnvModel(ObservationStateModel):
    """next state = state + delta_mean + delta_std * f([normalised state, one-hot action]).

    Args:
        hidden_size / num_layers: The MLPs' width and number of hidden ReLU layers (the
            seed: 256, 2 for the state, 1 for the reward).
        obs_mean / obs_std: Per-feature statistics of the observations (input scaling).
        delta_mean / delta_std: Per-feature statistics of one step's change (output
            scaling and loss units).
        reward_std: Spread of the rewards, for the regression's loss and tolerance.
    """

    kind = "mlp"
    observation_ranks = (1,)
    data_statistics = ("obs_mean", "obs_std", "delta_mean", "delta_std", "reward_std")

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = (),
        hidden_size: int = 256,
        num_layers: int = 2,
        obs_mean: Optional[Sequence[float]] = None,
        obs_std: Optional[Sequence[float]] = None,
        delta_mean: Optional[Sequence[float]] = None,
        delta_std: Optional[Sequence[float]] = None,
        reward_std: float = 1.0,
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        size = self.obs_shape[0]
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.reward_std = float(reward_std)
        for name, values, default in (
            ("obs_mean", obs_mean, 0.0),
            ("obs_std", obs_std, 1.0),
            ("delta_mean", delta_mean, 0.0),
            ("delta_std", delta_std, 1.0),
        ):
            self.register_buffer(name, _vector_or_default(values, size, default, name))
        if (self.obs_std <= 0).any() or (self.delta_std <= 0).any() or not self.reward_std > 0:
            raise ValueError("obs_std, delta_std and reward_std must be > 0.")

        def mlp(layers: int, outputs: int) -> nn.Sequential:
            modules, width = [], size + self.num_actions
            for _ in range(layers):
                modules += [nn.Linear(width, self.hidden_size), nn.ReLU()]
                width = self.hidden_size
            return nn.Sequential(*modules, nn.Linear(width, outputs))

        self.transition_mlp = mlp(self.num_layers, size)
        # Untrained, the model is the copy model plus the mean change: imagination starts
        # from "nothing happens" rather than from noise.
        nn.init.zeros_(self.transition_mlp[-1].weight)
        nn.init.zeros_(self.transition_mlp[-1].bias)
        self.reward_mlp = mlp(1, max(1, len(self.reward_values)))

    @classmethod
    def hparams_from_data(cls, obs, next_frames, rewards) -> Dict[str, Any]:
        """Means and spreads of the observations, of one step's change and of rewards.

        Spreads have floors: a constant feature keeps unit scale, and a feature that
        never changes gets a change scale of 1e-3 of its own spread, so its loss term
        stays finite.
        """
        obs = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        change = np.asarray(next_frames, dtype=np.float64).reshape(len(obs), -1) - obs
        obs_std = obs.std(0)
        obs_std = np.where(obs_std > 1e-6, obs_std, 1.0)
        change_std = np.maximum(change.std(0), 1e-3 * obs_std)
        reward_std = float(np.std(rewards))
        return {
            "obs_mean": obs.mean(0).tolist(),
            "obs_std": obs_std.tolist(),
            "delta_mean": change.mean(0).tolist(),
            "delta_std": change_std.tolist(),
            "reward_std": reward_std if reward_std > 1e-6 else 1.0,
        }

    @property
    def regresses_reward(self) -> bool:
        """True without reward classes: the reward head outputs the reward itself."""
        return len(self.reward_values) == 0

    def hparams(self):
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "delta_mean": self.delta_mean.tolist(),
            "delta_std": self.delta_std.tolist(),
            "reward_std": self.reward_std,
        }

    def initial_state(self, frames):
        return frames.float()

    def transition(self, state, action):
        inputs = torch.cat(
            [(state - self.obs_mean) / self.obs_std, F.one_hot(action, self.num_actions).float()],
            dim=-1,
        )
        change = self.delta_mean + self.delta_std * self.transition_mlp(inputs)
        return state + change, self.reward_mlp(inputs)

    # --- Rewards: classes or a regression ----------------------------------------------
    def expected_reward(self, reward_logits):
        if self.regresses_reward:
            return reward_logits.squeeze(-1)
        return super().expected_reward(reward_logits)

    def reward_hits(self, predicted, rewards):
        if self.regresses_reward:
            return (predicted - rewards).abs() <= REWARD_TOLERANCE * self.reward_std
        return super().reward_hits(predicted, rewards)

    def reward_loss(self, reward_logits, rewards):
        if not self.regresses_reward:
            return super().reward_loss(reward_logits, rewards)
        predicted = reward_logits.squeeze(-1)
        with torch.no_grad():
            accuracy = self.reward_hits(predicted, rewards).float().mean()
        return F.mse_loss(predicted / self.reward_std, rewards / self.reward_std), accuracy

    def frame_loss(self, frame, next_frame, previous=None):
        """Squared error in units of one step's change, per feature (already scaled to
        the change: no change weighting)."""
        return (((frame - next_frame) / self.delta_std) ** 2).mean()
