"""Environments: vectorized Atari (ale-py) for RLlib, plus registration helpers."""

from __future__ import annotations

from typing import Any, Dict, Optional

from i2a_rllib.envs.atari import (
    ATARI_ENV,
    DEFAULT_ATARI_GAME,
    atari_env_config,
    is_atari_id,
    make_atari_vector_env,
    rllib_atari_env_creator,
)

_REGISTERED = False


def register_envs() -> None:
    """Registers the project's env creators with Ray Tune's registry (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from ray.tune.registry import register_env

    register_env(ATARI_ENV, rllib_atari_env_creator)
    _REGISTERED = True


def rllib_env_settings(env_id: str, env_config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What `AlgorithmConfig.environment()` and `.env_runners()` need for `env_id`.

    Returns a dict with keys `env`, `env_config`, `gym_env_vectorize_mode` and
    `clip_rewards` (Atari scores are clipped to their sign for the update only).

    Raises:
        ValueError: for an unknown env id, before anything starts.
    """
    register_envs()
    if is_atari_id(env_id) or env_id == ATARI_ENV:
        config = dict(env_config or {})
        game = config.pop("game", env_id if env_id != ATARI_ENV else DEFAULT_ATARI_GAME)
        return {
            "env": ATARI_ENV,
            "env_config": atari_env_config(game, **config),
            "gym_env_vectorize_mode": "vector_entry_point",
            "clip_rewards": True,
        }
    raise ValueError(
        f"Unknown environment {env_id!r}. Use an Atari id such as 'ALE/Breakout-v5' "
        "(list them with `i2a envs`)."
    )


def make_vector_env(env_id: str, num_envs: int, env_config: Optional[Dict[str, Any]] = None):
    """Builds the same vector env an EnvRunner would, outside RLlib (collection, eval)."""
    settings = rllib_env_settings(env_id, env_config)
    if settings["env"] == ATARI_ENV:
        return make_atari_vector_env({**settings["env_config"], "num_envs": num_envs})
    raise AssertionError("unreachable")  # rllib_env_settings raised already


def make_rllib_vector_env(env: str, env_config: Optional[Dict[str, Any]], num_envs: int):
    """Builds the vector env for an RLlib (`config.env`, `config.env_config`) pair."""
    if env == ATARI_ENV:
        return make_atari_vector_env({**(env_config or {}), "num_envs": num_envs})
    return make_vector_env(env, num_envs, env_config)


def probe_spaces(env: str, env_config: Optional[Dict[str, Any]] = None):
    """(single observation space, single action space) of an env, from one instance."""
    vector_env = make_rllib_vector_env(env, env_config, 1)
    try:
        return vector_env.single_observation_space, vector_env.single_action_space
    finally:
        vector_env.close()


def env_id_of(env: str, env_config: Optional[Dict[str, Any]]) -> str:
    """The user-facing id ('ALE/Breakout-v5') of an RLlib env + env_config pair."""
    if env == ATARI_ENV:
        from i2a_rllib.envs.atari import resolve_rom_id, _ale_id

        return _ale_id(resolve_rom_id((env_config or {}).get("game", DEFAULT_ATARI_GAME)))
    return env


__all__ = [
    "ATARI_ENV",
    "DEFAULT_ATARI_GAME",
    "register_envs",
    "rllib_env_settings",
    "make_vector_env",
    "make_rllib_vector_env",
    "probe_spaces",
    "env_id_of",
]
