"""Vectorized Atari through ale-py's AtariVectorEnv: shapes, seeding, scores, errors."""

import numpy as np
import pytest

from i2a_rllib.envs import rllib_env_settings
from i2a_rllib.envs.atari import (
    UnknownAtariGameError,
    atari_env_config,
    make_atari_vector_env,
    resolve_rom_id,
)


def test_observations_are_uint8_frame_stacks():
    env = make_atari_vector_env({"game": "ALE/Breakout-v5", "num_envs": 3})
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
        assert env.single_observation_space.shape == (4, 84, 84)
        assert env.single_action_space.n == 4
        obs, rewards, terminated, truncated, _ = env.step(np.zeros(3, dtype=np.int64))
        assert obs.shape == (3, 4, 84, 84) and rewards.shape == (3,)
        assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    finally:
        env.close()


def _rollout(seed, steps=60):
    env = make_atari_vector_env({"game": "ALE/Breakout-v5", "num_envs": 2})
    rng = np.random.default_rng(123)
    try:
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for _ in range(steps):
            obs, *_ = env.step(rng.integers(0, 4, size=2))
            frames.append(obs)
        return np.stack(frames)
    finally:
        env.close()


def test_same_seed_same_trajectory_other_seed_differs():
    first, again, other = _rollout(7), _rollout(7), _rollout(8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_rewards_are_the_unclipped_game_score():
    # Space Invaders pays 5-30 points per alien; random play scores within seconds.
    env = make_atari_vector_env({"game": "ALE/SpaceInvaders-v5", "num_envs": 4})
    rng = np.random.default_rng(0)
    try:
        env.reset(seed=0)
        rewards = [env.step(rng.integers(0, 6, size=4))[1] for _ in range(400)]
    finally:
        env.close()
    assert np.max(rewards) > 1.0


def test_sticky_actions_default_to_v5_and_are_configurable():
    assert atari_env_config()["repeat_action_probability"] == 0.25
    assert atari_env_config(repeat_action_probability=0.0)["repeat_action_probability"] == 0.0
    with pytest.raises(ValueError, match="repeat_action_probability"):
        atari_env_config(repeat_action_probability=1.5)


@pytest.mark.parametrize(
    "name", ["ALE/Breakout-v5", "BreakoutNoFrameskip-v4", "Breakout", "breakout"]
)
def test_game_ids_resolve_to_rom(name):
    assert resolve_rom_id(name) == "breakout"
    assert resolve_rom_id("ALE/SpaceInvaders-v5") == "space_invaders"


def test_unknown_game_id_is_a_clear_error_with_suggestions():
    with pytest.raises(UnknownAtariGameError) as excinfo:
        rllib_env_settings("ALE/Breakout-v99x")  # not a game
    with pytest.raises(UnknownAtariGameError) as excinfo:
        resolve_rom_id("ALE/Brekout-v5")
    message = str(excinfo.value)
    assert "Unknown Atari game id 'ALE/Brekout-v5'" in message
    assert "ALE/Breakout-v5" in message  # the close match
    assert "i2a envs" in message  # how to list valid ids


def test_unknown_env_config_key_is_rejected():
    with pytest.raises(ValueError, match="Unknown Atari env_config key"):
        atari_env_config(frame_skip=4)


def test_the_smallest_accepted_settings_run_in_ale_py():
    """The checked ranges are ale-py's own: their lower ends build and step (one below is
    refused up front, see tests/test_bad_input.py)."""
    smallest = {
        "frameskip": 1,
        "stack_num": 1,
        "img_height": 1,
        "img_width": 1,
        "noop_max": 0,
        "num_threads": 0,
        "max_num_frames_per_episode": 1,
        "repeat_action_probability": 0.0,
        "use_fire_reset": False,
    }
    env = make_atari_vector_env(atari_env_config("ALE/Breakout-v5", **smallest), num_envs=1)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (1, 1, 1, 1)
        obs, *_ = env.step(np.zeros(1, dtype=np.int64))
        assert obs.shape == (1, 1, 1, 1)
    finally:
        env.close()
    with pytest.raises(ValueError, match=r"stack_num=0 must be an integer >= 1"):
        atari_env_config(stack_num=0)  # would kill the process inside ale-py
