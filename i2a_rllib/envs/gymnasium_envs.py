"""Generic gymnasium ids (CartPole-v1, Acrobot-v1, MountainCar-v0, a user's own).

Any id in gymnasium's registry whose observations are flat vectors (or images) and
whose actions are discrete. RLlib's EnvRunners take the gymnasium id itself as
`config.env` and vectorize it with gymnasium's `SyncVectorEnv`
(`gym_env_vectorize_mode="sync"`): classic-control envs cost microseconds a step, so
one process steps all of an EnvRunner's sub-envs. `env_config` holds the env's own
keyword arguments, as `gym.make` takes them.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import gymnasium as gym

from i2a_rllib.spaces import check_agent_spaces

# How RLlib vectorizes these envs (gymnasium.VectorizeMode's value).
GYMNASIUM_VECTORIZE_MODE = "sync"


def is_gymnasium_id(env_id: Any) -> bool:
    """True for an id in gymnasium's registry (ALE ids are handled by `envs.atari`)."""
    return isinstance(env_id, str) and env_id in gym.registry


def check_gymnasium_env(
    env_id: str, env_config: Optional[Mapping[str, Any]] = None
) -> Tuple[int, ...]:
    """Builds one env to check its keyword arguments and spaces; returns the
    observation shape.

    Raises:
        ValueError: one line naming a bad keyword, a missing dependency, or a space the
            agents do not take (continuous actions; Dict, Tuple, Discrete or
            multi-dimensional non-image observations).
    """
    try:
        env = gym.make(env_id, **dict(env_config or {}))
    except TypeError as e:  # an unknown or mistyped keyword of the env's constructor
        raise ValueError(f"env_config {dict(env_config or {})} for {env_id!r}: {e}.") from None
    except gym.error.DependencyNotInstalled as e:
        raise ValueError(f"{env_id!r} cannot be built here: {e}") from None
    try:
        obs_shape, _ = check_agent_spaces(
            env.observation_space, env.action_space, f"I2A on {env_id!r}"
        )
    finally:
        env.close()
    return obs_shape


def make_gymnasium_vector_env(env_id: str, env_config: Optional[Dict[str, Any]], num_envs: int):
    """The vector env an EnvRunner builds for `env_id` (gymnasium's SyncVectorEnv)."""
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=GYMNASIUM_VECTORIZE_MODE,
        **dict(env_config or {}),
    )


def classic_control_ids() -> list[str]:
    """The newest version of gymnasium's classic-control envs that the agents take (what
    `i2a envs` lists; any other registered id with fitting spaces works too)."""
    newest: Dict[str, Tuple[int, str]] = {}
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if not entry.startswith("gymnasium.envs.classic_control") or "Vector" in entry:
            continue
        if spec.name not in newest or (spec.version or 0) > newest[spec.name][0]:
            newest[spec.name] = (spec.version or 0, env_id)
    ids = []
    for _, env_id in sorted(newest.values(), key=lambda item: item[1]):
        try:
            check_gymnasium_env(env_id)
        except ValueError:  # continuous actions (Pendulum, MountainCarContinuous)
            continue
        ids.append(env_id)
    return ids


__all__ = [
    "GYMNASIUM_VECTORIZE_MODE",
    "check_gymnasium_env",
    "classic_control_ids",
    "is_gymnasium_id",
    "make_gymnasium_vector_env",
]
