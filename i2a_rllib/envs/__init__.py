"""Environments: vectorized Atari (ale-py), the paper's Sokoban and MiniPacman, and any
gymnasium id with flat observations and discrete actions (CartPole-v1).

All of them reach RLlib EnvRunners as *vector* envs: ours through the vector entry
point (`gym_env_vectorize_mode="vector_entry_point"`: one object steps all sub-envs of
an EnvRunner, ale-py's C++ threads or numpy over many boards), gymnasium's own ids
through gymnasium's SyncVectorEnv (`"sync"`).

User-facing ids:
    'ALE/<Game>-v5'        any ALE game (Breakout is the default)
    'I2A/Sokoban-v0'       procedural Sokoban (paper: 10x10, 4 boxes)
    'I2A/MiniPacman-v0'    MiniPacman, env_config {"task": "regular" | "avoid" | ...}
    'CartPole-v1', ...     any gymnasium id whose observations are flat vectors (or
                           images) and whose actions are discrete; env_config holds
                           the env's keyword arguments
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional, Tuple

from i2a_rllib.envs.atari import (
    ATARI_ENV,
    DEFAULT_ATARI_GAME,
    atari_env_config,
    is_atari_id,
    make_atari_vector_env,
    rllib_atari_env_creator,
    validate_atari_env_config,
)
from i2a_rllib.envs.gymnasium_envs import (
    GYMNASIUM_VECTORIZE_MODE,
    check_gymnasium_env,
    is_gymnasium_id,
    make_gymnasium_vector_env,
)

SOKOBAN_ID = "I2A/Sokoban-v0"
MINIPACMAN_ID = "I2A/MiniPacman-v0"
# user-facing id -> (Tune registry name, module with make_vector_env, its BoardVectorEnv)
BOARD_ENVS: Dict[str, Tuple[str, str, str]] = {
    SOKOBAN_ID: ("i2a_sokoban", "i2a_rllib.envs.sokoban", "SokobanVectorEnv"),
    MINIPACMAN_ID: ("i2a_minipacman", "i2a_rllib.envs.minipacman", "MiniPacmanVectorEnv"),
}
_REGISTRY_NAMES = {ATARI_ENV: None, **{name: env_id for env_id, (name, *_) in BOARD_ENVS.items()}}

_REGISTERED = False


def _board_module(env_id: str):
    return importlib.import_module(BOARD_ENVS[env_id][1])


def _board_class(env_id: str):
    return getattr(_board_module(env_id), BOARD_ENVS[env_id][2])


def _board_creator(env_id: str):
    module_name = BOARD_ENVS[env_id][1]

    def creator(env_context):
        return importlib.import_module(module_name).make_vector_env(dict(env_context))

    return creator


def register_envs() -> None:
    """Registers the project's env creators with Ray Tune's registry (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from ray.tune.registry import register_env

    register_env(ATARI_ENV, rllib_atari_env_creator)
    for env_id, (name, *_) in BOARD_ENVS.items():
        register_env(name, _board_creator(env_id))
    _REGISTERED = True


def known_env_ids() -> str:
    return (
        "'ALE/<Game>-v5' (e.g. 'ALE/Breakout-v5'), "
        + ", ".join(repr(i) for i in BOARD_ENVS)
        + ", and gymnasium ids with flat observations and discrete actions (e.g. 'CartPole-v1')"
    )


def rllib_env_settings(env_id: str, env_config: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What `AlgorithmConfig.environment()` and `.env_runners()` need for `env_id`.

    Returns a dict with keys `env` (Tune registry name, or the gymnasium id),
    `env_config`, `gym_env_vectorize_mode`, `clip_rewards` (Atari scores are clipped to
    their sign for the update only; the other environments keep their rewards) and
    `flat_observations` (observations are (D,) vectors, e.g. CartPole's).

    Raises:
        ValueError: for an unknown env id or bad settings, before anything starts.
    """
    register_envs()
    config = dict(env_config or {})
    if is_atari_id(env_id) or env_id == ATARI_ENV:
        game = config.pop("game", env_id if env_id != ATARI_ENV else DEFAULT_ATARI_GAME)
        return {
            "env": ATARI_ENV,
            "env_config": atari_env_config(game, **config),
            "gym_env_vectorize_mode": "vector_entry_point",
            "clip_rewards": True,
            "flat_observations": False,
        }
    if env_id in _REGISTRY_NAMES and env_id != ATARI_ENV:  # a registry name was passed
        env_id = _REGISTRY_NAMES[env_id]
    if env_id in BOARD_ENVS:
        _board_class(env_id).check_env_config(config)  # raises on bad settings
        return {
            "env": BOARD_ENVS[env_id][0],
            "env_config": config,
            "gym_env_vectorize_mode": "vector_entry_point",
            "clip_rewards": False,
            "flat_observations": False,
        }
    if is_gymnasium_id(env_id):
        obs_shape = check_gymnasium_env(env_id, config)  # raises on bad kwargs or spaces
        return {
            "env": env_id,
            "env_config": config,
            "gym_env_vectorize_mode": GYMNASIUM_VECTORIZE_MODE,
            "clip_rewards": False,
            "flat_observations": len(obs_shape) == 1,
        }
    raise ValueError(f"Unknown environment {env_id!r}. Known ids: {known_env_ids()}.")


def validate_rllib_env(env: Any, env_config: Optional[Dict[str, Any]]) -> None:
    """Checks the env_config of an RLlib (`config.env`, `config.env_config`) pair whose env
    is one of ours (without building it) or a gymnasium id (one env is built to check its
    spaces); other envs (a user's own creator) are left to RLlib and the RLModule.

    Raises:
        ValueError: Naming the bad key and the valid values.
    """
    if env == ATARI_ENV:
        validate_atari_env_config(dict(env_config or {}))
    elif isinstance(env, str) and _REGISTRY_NAMES.get(env, env) in BOARD_ENVS:
        _board_class(_REGISTRY_NAMES.get(env, env)).check_env_config(env_config)
    elif is_gymnasium_id(env):
        check_gymnasium_env(env, env_config)


def make_rllib_vector_env(env: str, env_config: Optional[Dict[str, Any]], num_envs: int):
    """Builds the vector env for an RLlib (`config.env`, `config.env_config`) pair."""
    config = {**(env_config or {}), "num_envs": num_envs}
    if env == ATARI_ENV:
        return make_atari_vector_env(config)
    env_id = _REGISTRY_NAMES.get(env, env)
    if env_id in BOARD_ENVS:
        return _board_module(env_id).make_vector_env(config)
    if is_gymnasium_id(env):
        return make_gymnasium_vector_env(env, env_config, num_envs)
    raise ValueError(f"Unknown environment {env!r}. Known ids: {known_env_ids()}.")


def make_vector_env(env_id: str, num_envs: int, env_config: Optional[Dict[str, Any]] = None):
    """Builds the same vector env an EnvRunner would, outside RLlib (collection, eval)."""
    settings = rllib_env_settings(env_id, env_config)
    return make_rllib_vector_env(settings["env"], settings["env_config"], num_envs)


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
        from i2a_rllib.envs.atari import _ale_id, resolve_rom_id

        return _ale_id(resolve_rom_id((env_config or {}).get("game", DEFAULT_ATARI_GAME)))
    return _REGISTRY_NAMES.get(env, env) or env


__all__ = [
    "ATARI_ENV",
    "DEFAULT_ATARI_GAME",
    "MINIPACMAN_ID",
    "SOKOBAN_ID",
    "env_id_of",
    "known_env_ids",
    "make_rllib_vector_env",
    "make_vector_env",
    "probe_spaces",
    "register_envs",
    "rllib_env_settings",
    "validate_rllib_env",
]
