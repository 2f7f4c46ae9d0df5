"""The paper's control agent: an environment model that predicts "nothing changes".

Pure torch, no Ray.
"""

from __future__ import annotations

from typing import Optional, Sequence

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, EnvironmentModel

class CopyEnvModel(EnvironmentModel):
    """The paper's control: next state = state, reward = 0.

    With `base=None` the state is the observation (the paper's copy model: the frame
    stack, or a flat vector). Given a latent model as `base`, its (frozen) encoder makes
    the state, so a latent I2A and its copy control differ only in the transition.
    """

    kind = "copy"
    observation_ranks = (3, 1)

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        base: Optional[EnvironmentModel] = None,
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

    @property
    def states_are_frames(self):
        return self.base is None

    @property
    def views_are_frames(self):
        if self.base is not None:
            return self.base.views_are_frames
        return not self.observes_vectors  # vectors stay float, frames become uint8

    @property
    def imagines_no_change(self):
        return True

    def initial_state(self, frames):
        return self.base.initial_state(frames) if self.base is not None else frames

    def view(self, state):
        return self.base.view(state) if self.base is not None else self.newest_frame(state)

    def frame_of(self, state, canvas):
        return self.base.frame_of(state, canvas) if self.base is not None else self.newest_frame(state)

    def step(self, state, action):
        return state, state.new_zeros(state.shape[0])

    def loss(self, frames, actions, rewards, next_frame):
        raise ValueError(
            "The copy model has nothing to learn; pretrain a 'pixel', 'latent', 'spatial' "
            "or 'mlp' model."
        )

    sequence_loss = loss

    def predict_frames(self, frames, actions):
        batch, steps = actions.shape
        newest = self.newest_frame(frames)
        return (
            newest.unsqueeze(1).expand(batch, steps, *newest.shape[1:]),
            frames.new_zeros(batch, steps),
        )
