"""Which observation and action spaces the agents take, and the one-line refusals.

Pure gymnasium (no Ray, no torch): the RLModules check their spaces with these, and so
does every entry point before Ray starts (`i2a_rllib.envs.rllib_env_settings`), so a
user hears the same sentence whichever way in.

- Observations: (C, H, W) image boxes (Atari frame stacks, boards) or flat (D,) boxes
  (CartPole). Dict, Tuple, Discrete and boxes of other ranks are refused.
- Actions: Discrete only; I2A imagines one rollout per action.
"""

from __future__ import annotations

from typing import Tuple

import gymnasium as gym


def observation_shape(space: gym.Space, what: str) -> Tuple[int, ...]:
    """The shape of an image (C, H, W) or flat (D,) Box; ValueError for anything else."""
    shape = getattr(space, "shape", None)
    if isinstance(space, gym.spaces.Box) and shape is not None and len(shape) in (1, 3):
        return tuple(int(d) for d in shape)
    if isinstance(space, gym.spaces.Box):
        kind = f"a {len(shape)}-dimensional Box of shape {tuple(shape)}"
    else:
        kind = f"a {type(space).__name__} space"
    raise ValueError(
        f"{what} takes image observations (a Box of shape (C, H, W)) or flat vectors (a Box "
        f"of shape (D,)), got {kind} ({space}). Flatten it with a gymnasium wrapper "
        "(e.g. gymnasium.wrappers.FlattenObservation) in your env creator."
    )


def num_discrete_actions(space: gym.Space, what: str) -> int:
    """The number of actions of a Discrete space; ValueError for anything else."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    raise ValueError(
        f"{what} needs a discrete action space (gymnasium.spaces.Discrete), got {space}. "
        "I2A imagines one rollout per action, so continuous actions are not supported."
    )


def check_agent_spaces(
    observation_space: gym.Space, action_space: gym.Space, what: str
) -> Tuple[Tuple[int, ...], int]:
    """(observation shape, number of actions), or the ValueError of the first misfit."""
    return observation_shape(observation_space, what), num_discrete_actions(action_space, what)
