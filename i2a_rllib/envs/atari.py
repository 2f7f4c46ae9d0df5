"""Vectorized Atari for RLlib EnvRunners through ale-py's C++ `AtariVectorEnv`.

One `AtariVectorEnv` steps all of an EnvRunner's sub-environments in C++ threads and
already does the standard DeepMind preprocessing: 84x84 grayscale, max-pool over the
last two of 4 skipped frames, a 4-frame stack, noop-max and fire on reset. Observations
are uint8 arrays of shape (num_envs, 4, 84, 84): frames stay uint8 end to end (4x less
memory and object-store traffic than float32) and the modules scale them.

Rewards are the *unclipped* game score, so the `episode_return_mean` that RLlib reports
is the score users know. Clipping to {-1, 0, +1} for the update happens inside the
learner (`i2a_rllib.learner.ClipRewards`), and the clipped return is reported under
its own name by `i2a_rllib.callbacks.ClippedReturnCallback`.
"""

from __future__ import annotations

import difflib
from typing import Any, Dict, Optional

from i2a_rllib.envs.settings import (
    check_bool,
    check_int,
    check_known_keys,
    check_number,
    check_seed,
)

# Name under which the vector env creator is registered with Ray Tune's registry.
ATARI_ENV = "i2a_atari"

DEFAULT_ATARI_GAME = "ALE/Breakout-v5"
# The v5 standard: with probability 0.25 the previous action repeats (Machado et al.).
DEFAULT_STICKY_ACTION_PROBABILITY = 0.25

# `AtariVectorEnv` settings users may pass through `env_config`, with the values ale-py
# 0.12 accepts (checked by trying them: a 0 for num_envs, stack_num or an image side
# kills the process in C++, negative ones fail there with "cannot create std::vector",
# floats and strings with a pybind11 signature dump). Integer settings: the minimum, and
# a hint.
_INT_SETTINGS = {
    "num_envs": (1, "RLlib sets it from num_envs_per_env_runner"),
    "frameskip": (1, "emulator frames per action, default 4"),
    "stack_num": (1, "frames per observation, default 4"),
    "img_height": (1, "observation height in pixels, default 84"),
    "img_width": (1, "observation width in pixels, default 84"),
    "noop_max": (0, "random no-ops after a reset, default 30, 0 turns them off"),
    "max_num_frames_per_episode": (1, "episodes are truncated there, default 108000"),
    "num_threads": (0, "0 (the default) uses one thread per core, up to num_envs"),
}
_BOOL_SETTINGS = {
    "use_fire_reset": "press FIRE after a reset where the game needs it, default true",
    "episodic_life": "end the episode at every lost life, default false",
    "full_action_space": "all 18 actions instead of the game's own, default false",
}
_ENV_CONFIG_KEYS = {"game", "repeat_action_probability", "seed", *_INT_SETTINGS, *_BOOL_SETTINGS}


class UnknownAtariGameError(ValueError):
    """Raised for a game id that no ROM in ale-py matches."""


def _normalise(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def all_rom_ids() -> list[str]:
    """The snake_case ROM ids that ale-py ships (e.g. 'breakout', 'space_invaders')."""
    from ale_py import roms

    return sorted(roms.get_all_rom_ids())


def resolve_rom_id(game: str) -> str:
    """Maps 'ALE/Breakout-v5', 'BreakoutNoFrameskip-v4', 'Breakout' or 'breakout' to 'breakout'.

    Raises:
        UnknownAtariGameError: If no ROM matches, with close matches and how to list all.
    """
    if not isinstance(game, str) or not game:
        raise UnknownAtariGameError(
            f"Atari game id must be a non-empty string, got {game!r}. "
            f"Use an id such as '{DEFAULT_ATARI_GAME}'."
        )
    name = game.split("/")[-1]
    for suffix in ("-v5", "-v4", "-v0", "NoFrameskip", "Deterministic"):
        name = name.replace(suffix, "")
    rom_ids = all_rom_ids()
    by_normalised = {_normalise(rom): rom for rom in rom_ids}
    rom = by_normalised.get(_normalise(name))
    if rom is not None:
        return rom
    close = difflib.get_close_matches(_normalise(name), list(by_normalised), n=3, cutoff=0.6)
    hint = (
        f" Did you mean {', '.join(repr(_ale_id(by_normalised[c])) for c in close)}?"
        if close
        else ""
    )
    raise UnknownAtariGameError(
        f"Unknown Atari game id {game!r}: ale-py has no ROM named like it.{hint} "
        "Valid ids look like 'ALE/Breakout-v5'; list all of them with `i2a envs` or "
        "`python -c \"import ale_py.roms as r; print(r.get_all_rom_ids())\"`."
    )


def _ale_id(rom_id: str) -> str:
    from ale_py.registration import rom_id_to_name

    return f"ALE/{rom_id_to_name(rom_id)}-v5"


def is_atari_id(env_id: str) -> bool:
    """True for ids such as 'ALE/Pong-v5' that name an ALE game."""
    return isinstance(env_id, str) and env_id.startswith("ALE/")


def atari_env_config(
    game: str = DEFAULT_ATARI_GAME,
    *,
    repeat_action_probability: float = DEFAULT_STICKY_ACTION_PROBABILITY,
    **overrides: Any,
) -> Dict[str, Any]:
    """Builds (and checks) the `env_config` for `ATARI_ENV`.

    Args:
        game: Any ALE game id ('ALE/Breakout-v5', 'Pong', ...).
        repeat_action_probability: Sticky-action probability (v5 standard: 0.25).
        **overrides: Further `AtariVectorEnv` settings (frameskip, noop_max, ...).
    """
    config = {"game": game, "repeat_action_probability": repeat_action_probability}
    config.update(overrides)
    validate_atari_env_config(config)
    return config


def validate_atari_env_config(env_config: Dict[str, Any]) -> None:
    """Raises a clear one-line ValueError for a bad `env_config`, before any actor starts:
    the key, the bad value and what is valid."""
    check_known_keys("Atari env_config key(s)", env_config, _ENV_CONFIG_KEYS)
    resolve_rom_id(env_config.get("game", DEFAULT_ATARI_GAME))
    check_number(
        "repeat_action_probability",
        env_config.get("repeat_action_probability", DEFAULT_STICKY_ACTION_PROBABILITY),
        "the v5 standard is 0.25, 0.0 turns sticky actions off",
        minimum=0.0,
        maximum=1.0,
        maximum_included=False,
    )
    for key, (minimum, hint) in _INT_SETTINGS.items():
        if key in env_config:
            check_int(key, env_config[key], minimum, hint)
    for key, hint in _BOOL_SETTINGS.items():
        if key in env_config:
            check_bool(key, env_config[key], hint)
    check_seed(env_config.get("seed"))


def make_atari_vector_env(env_config: Optional[Dict[str, Any]] = None, num_envs: int = 1):
    """Creates ale-py's `AtariVectorEnv` with unclipped rewards.

    Args:
        env_config: See `atari_env_config`. RLlib adds `num_envs` when it builds the
            env through the vector entry point.
        num_envs: Number of sub-environments if `env_config` does not say.
    """
    from ale_py.vector_env import AtariVectorEnv

    env_config = dict(env_config or {})
    validate_atari_env_config(env_config)
    rom = resolve_rom_id(env_config.pop("game", DEFAULT_ATARI_GAME))
    num_envs = int(env_config.pop("num_envs", num_envs))
    env_config.pop("seed", None)
    env_config.setdefault("repeat_action_probability", DEFAULT_STICKY_ACTION_PROBABILITY)
    # Threads beyond the machine's cores only add contention; ale-py picks
    # min(num_envs, hardware threads) when num_threads=0.
    env_config.setdefault("num_threads", 0)
    return AtariVectorEnv(rom, num_envs, reward_clipping=False, **env_config)


def rllib_atari_env_creator(env_context):
    """Creator registered with Tune: RLlib calls it with `env_config | {num_envs: N}`."""
    return make_atari_vector_env(dict(env_context))
