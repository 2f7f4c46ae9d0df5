"""Shared glue of the board environments: a single-board `gym.Env` over a 1-board vector
env, and the creator RLlib calls. numpy + gymnasium only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


class SingleBoardEnv(gym.Env):
    """One board of `vector_env_class` as a `gymnasium.Env`; call `reset()` after an
    episode ends, as for any `gymnasium.Env`.

    Args:
        render_mode: None, "rgb_array" or "ansi".
        seed: Default seed of the first reset.
        **settings: The vector env's settings.
    """

    vector_env_class: ClassVar[type]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, *, seed: int | None = None, **settings: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r}; use None or one of {self.metadata['render_modes']}."
            )
        self.render_mode = render_mode
        self._vector = self.vector_env_class(1, seed=seed, **settings)
        self.observation_space = self._vector.single_observation_space
        self.action_space = self._vector.single_action_space

    def _info(self, infos: dict[str, Any]) -> dict[str, Any]:
        """Board 0's entries of the vector env's info arrays."""
        return {key: value[0].item() for key, value in infos.items() if not key.startswith("_")}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, infos = self._vector.reset(seed=seed)
        return obs[0], self._info(infos)

    def step(self, action: int):
        obs, rewards, terminated, truncated, infos = self._vector.step(np.array([action]))
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self._info(infos)

    def render(self):
        if self.render_mode == "rgb_array":
            return self._vector.render_rgb()[0]
        if self.render_mode == "ansi":
            return self._vector.render_ascii(0)
        return None


def make_board_vector_env(vector_env_class: type, env_config: Mapping[str, Any] | None):
    """What RLlib calls: `env_config` holds the settings plus `num_envs` (and `seed`).

    Raises:
        ValueError: For unknown keys or bad settings, before anything is stepped.
    """
    config = dict(env_config or {})
    num_envs = config.pop("num_envs", 1)
    seed = config.pop("seed", None)
    return vector_env_class(num_envs, seed=seed, **config)
