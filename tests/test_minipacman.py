"""Batched MiniPacman: the paper's five reward schemes, ghosts, power pills, episode ends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from i2a_rllib.envs import minipacman
from i2a_rllib.envs.minipacman import (
    CHANNELS,
    STANDARD_MAZE,
    MiniPacmanEnv,
    MiniPacmanVectorEnv,
    make_vector_env,
)

NOOP, UP, DOWN, LEFT, RIGHT = range(5)
WALL, FOOD, PILL, PLAYER, GHOST, EDIBLE = range(len(CHANNELS))
# The paper's table: reward for (step, food, power pill, ghost eaten, killed).
PAPER_REWARDS = {
    "regular": (0.0, 1.0, 2.0, 5.0, 0.0),
    "avoid": (0.1, -0.1, -5.0, -10.0, -20.0),
    "hunt": (0.0, 0.0, 1.0, 10.0, -20.0),
    "ambush": (0.0, -0.1, 0.0, 10.0, -20.0),
    "rush": (0.0, -0.1, 10.0, 0.0, 0.0),
}
FROZEN = {"ghost_speed": 0.0, "ghost_speed_increase": 0.0}  # ghosts stay put
EAGER = {"ghost_speed": 1.0, "edible_ghost_speed_factor": 1.0, "ghost_random_turn_probability": 0.0}


def cells(obs: np.ndarray, channel: int) -> list[tuple[int, int]]:
    """(row, column) of the cells where one board's `channel` is on."""
    return [tuple(int(v) for v in cell) for cell in np.argwhere(obs[channel] == 255)]


def step(env: MiniPacmanVectorEnv, action: int):
    obs, rewards, terminated, truncated, infos = env.step(np.array([action]))
    return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos


# -- rewards per task ----------------------------------------------------------------------
@pytest.mark.parametrize("task", list(PAPER_REWARDS))
def test_food_pill_and_ghost_rewards(task):
    step_r, food_r, pill_r, ghost_r, _ = PAPER_REWARDS[task]
    env = MiniPacmanVectorEnv.from_ascii(
        ["#########", "#P.o G .#", "#.#####.#", "#......o#", "#########"], task=task, **FROZEN
    )
    obs, _ = env.reset(seed=0)
    assert cells(obs[0], GHOST) == [(1, 5)] and cells(obs[0], EDIBLE) == []

    obs, reward, terminated, _, _ = step(env, RIGHT)  # onto food
    assert reward == pytest.approx(step_r + food_r) and not terminated
    assert (1, 2) not in cells(obs, FOOD) and cells(obs, PLAYER) == [(1, 2)]

    obs, reward, _, _, infos = step(env, RIGHT)  # onto a power pill
    assert reward == pytest.approx(step_r + pill_r)
    assert (
        cells(obs, PILL) == [(3, 7)] and cells(obs, EDIBLE) == [(1, 5)] and cells(obs, GHOST) == []
    )
    assert infos["power_steps_left"][0] == minipacman.POWER_DURATION

    obs, reward, _, _, _ = step(env, RIGHT)  # onto an empty cell
    assert reward == pytest.approx(step_r)

    obs, reward, terminated, _, infos = step(env, RIGHT)  # onto the edible ghost
    assert reward == pytest.approx(step_r + ghost_r) and not terminated
    if task in ("hunt", "ambush"):  # their level ends when every ghost is eaten
        assert infos["level"][0] == 2
    else:
        assert infos["level"][0] == 1
        assert (
            cells(obs, GHOST) == [] and cells(obs, EDIBLE) == [] and cells(obs, PLAYER) == [(1, 5)]
        )


@pytest.mark.parametrize("task", list(PAPER_REWARDS))
def test_walking_into_a_ghost_kills_and_terminates(task):
    step_r, *_, killed_r = PAPER_REWARDS[task]
    # (A pill and a food out of the way, so that no task's level is already cleared.)
    env = MiniPacmanVectorEnv.from_ascii(["########", "#P G .o#", "########"], task=task, **FROZEN)
    start, _ = env.reset(seed=0)
    _, reward, terminated, _, _ = step(env, RIGHT)
    assert reward == pytest.approx(step_r) and not terminated
    _, reward, terminated, truncated, _ = step(env, RIGHT)
    assert reward == pytest.approx(step_r + killed_r) and terminated and not truncated
    # NEXT_STEP autoreset: the action is ignored and the start comes back with reward 0.
    obs, reward, terminated, truncated, _ = step(env, RIGHT)
    np.testing.assert_array_equal(obs, start[0])
    assert reward == 0.0 and not terminated and not truncated


# -- ghosts and power pills ----------------------------------------------------------------
def test_a_ghost_moving_onto_the_player_kills():
    env = MiniPacmanVectorEnv.from_ascii(["#######", "#P G#.#", "#######"], task="avoid", **EAGER)
    env.reset(seed=0)
    obs, reward, terminated, _, _ = step(env, NOOP)  # the ghost leaves its dead end
    assert cells(obs, GHOST) == [(1, 2)] and not terminated and reward == pytest.approx(0.1)
    obs, reward, terminated, _, _ = step(env, NOOP)
    assert terminated and reward == pytest.approx(0.1 - 20.0)
    assert cells(obs, GHOST) == [(1, 1)] == cells(obs, PLAYER)


def test_ghosts_chase_at_junctions_and_flee_when_edible():
    maze = ["#######", "###.###", "#P{}^..#", "###.###", "#######"]
    chaser = MiniPacmanVectorEnv.from_ascii([row.format(" ") for row in maze], **EAGER)
    chaser.reset(seed=0)
    obs, *_ = step(chaser, NOOP)  # heading up at a junction, the player to its left
    assert cells(obs, GHOST) == [(2, 2)]
    runner = MiniPacmanVectorEnv.from_ascii([row.format("o") for row in maze], **EAGER)
    runner.reset(seed=0)
    obs, *_ = step(runner, RIGHT)  # the player eats the pill next to the junction
    assert cells(obs, EDIBLE) == [(2, 4)] and cells(obs, GHOST) == []


def test_ghosts_are_edible_for_power_duration_steps_then_dangerous_again():
    env = MiniPacmanVectorEnv.from_ascii(["#########", "#Po  G..#", "#########"], **FROZEN)
    env.reset(seed=0)
    edible_steps = []
    obs, reward, *_ = step(env, RIGHT)  # eats the pill
    assert reward == pytest.approx(2.0)
    for index in range(25):
        edible_steps.append(bool(cells(obs, EDIBLE)))
        assert bool(cells(obs, EDIBLE)) != bool(cells(obs, GHOST))  # one or the other
        obs, *_ = step(env, NOOP)
    assert edible_steps == [True] * minipacman.POWER_DURATION + [False] * 5
    # Power over: walking into the ghost (3 cells to the right) now kills.
    assert not step(env, RIGHT)[2] and not step(env, RIGHT)[2]
    _, reward, terminated, _, _ = step(env, RIGHT)
    assert terminated and reward == 0.0  # "regular" gives 0 for being killed


def test_ghost_speed_is_the_probability_of_moving():
    env = MiniPacmanVectorEnv(256, seed=0)
    obs, _ = env.reset()
    moved = []
    for _ in range(4):  # ghosts start >= 5 cells away: nobody meets in 4 steps
        new_obs, _, terminated, _, _ = env.step(np.zeros(256, dtype=np.int64))
        assert not terminated.any()
        moved += [not np.array_equal(o[GHOST], n[GHOST]) for o, n in zip(obs, new_obs)]
        obs = new_obs
    assert abs(np.mean(moved) - minipacman.GHOST_SPEED) < 0.05


# -- episode and level ends ----------------------------------------------------------------
def test_truncation_at_the_step_limit_then_next_step_autoreset():
    env = MiniPacmanVectorEnv.from_ascii(
        ["#########", "#P...  G#", "#########"], max_steps=5, **FROZEN
    )
    start, _ = env.reset(seed=0)
    for count in range(1, 6):
        _, _, terminated, truncated, _ = step(env, NOOP)
        assert truncated == (count == 5) and not terminated
    obs, reward, terminated, truncated, _ = step(env, RIGHT)
    np.testing.assert_array_equal(obs, start[0])
    assert reward == 0.0 and not terminated and not truncated


def test_eating_all_food_starts_the_next_level_or_terminates():
    layout = ["#######", "#P.. G#", "#######"]
    env = MiniPacmanVectorEnv.from_ascii(layout, **FROZEN)
    env.reset(seed=0)
    _, reward, _, _, infos = step(env, RIGHT)
    assert reward == 1.0 and infos["level"][0] == 1
    obs, reward, terminated, _, infos = step(env, RIGHT)  # the last food
    assert reward == 1.0 and not terminated and infos["level"][0] == 2
    # Level 2 is a fresh random level on the same maze: food again, 2 pills, 1 ghost.
    assert len(cells(obs, PILL)) == 2 and len(cells(obs, FOOD)) == 5 - 1 - 2
    assert len(cells(obs, PLAYER)) == 1 and len(cells(obs, GHOST)) == 1

    ending = MiniPacmanVectorEnv.from_ascii(layout, terminate_on_level_clear=True, **FROZEN)
    ending.reset(seed=0)
    step(ending, RIGHT)
    _, reward, terminated, truncated, infos = step(ending, RIGHT)
    assert reward == 1.0 and terminated and not truncated and infos["level"][0] == 1


def test_avoid_starts_a_new_level_every_128_steps():
    env = MiniPacmanVectorEnv.from_ascii(
        ["##########", "#P .....G#", "##########"], task="avoid", **FROZEN
    )
    env.reset(seed=0)
    for count in range(1, minipacman.AVOID_LEVEL_STEPS + 1):
        _, reward, terminated, _, infos = step(env, NOOP)
        assert reward == pytest.approx(0.1) and not terminated
        assert infos["level"][0] == (2 if count == minipacman.AVOID_LEVEL_STEPS else 1)


# -- shapes, seeding, settings -------------------------------------------------------------
def test_observation_shape_dtype_and_a_fresh_level():
    env = MiniPacmanVectorEnv(8, seed=1)
    obs, infos = env.reset()
    assert obs.shape == (8, 6, 15, 19) and obs.dtype == np.uint8
    assert env.single_observation_space.shape == (6, 15, 19) and env.single_action_space.n == 5
    assert env.observation_space.shape == (8, 6, 15, 19)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert set(np.unique(obs)) == {0, 255}
    walls = np.array([[c == "#" for c in row] for row in STANDARD_MAZE])
    free = int((~walls).sum())
    for board in obs:
        np.testing.assert_array_equal(board[WALL] == 255, walls)
        (player,) = cells(board, PLAYER)
        (ghost,) = cells(board, GHOST)
        assert len(cells(board, PILL)) == 2 and len(cells(board, FOOD)) == free - 3
        assert max(abs(player[0] - ghost[0]), abs(player[1] - ghost[1])) >= minipacman.SAFE_DISTANCE
    np.testing.assert_array_equal(infos["level"], np.ones(8))


def test_same_seed_same_trajectories():
    actions = np.random.default_rng(3).integers(0, 5, size=(300, 8))

    def rollout(seed):
        env = MiniPacmanVectorEnv(8, task="regular")
        history = [env.reset(seed=seed)[0]]
        for action in actions:  # random play dies often: many autoresets
            history += list(env.step(action)[:4])
        return history

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"task": "chase"}, "regular.*avoid.*hunt.*ambush.*rush"),
        ({"max_steps": 0}, "max_steps"),
        ({"ghost_speed": 1.5}, "ghost_speed"),
        ({"task": "rush", "num_power_pills": 0}, "num_power_pills"),
        ({"layout": ["###", "#P#", "#X#", "###"]}, "unknown characters"),
        ({"ghosts": 3}, "ghosts"),
        # Values that used to slip through: a string read as True, a bool as a
        # probability, NaN compared as "not negative", a list crashing the task lookup.
        ({"terminate_on_level_clear": "no"}, r"terminate_on_level_clear='no' must be true or false"),
        ({"ghost_speed": True}, r"ghost_speed=True must be a number in \[0, 1\]"),
        ({"ghost_speed_increase": float("nan")}, r"ghost_speed_increase=nan must be a number >= 0"),
        ({"task": ["hunt"]}, r"task=\['hunt'\] is unknown"),
        ({"layout": 3}, "layout must be a map"),
    ],
)
def test_bad_settings_raise_a_clear_value_error(settings, message):
    with pytest.raises(ValueError, match=message):
        MiniPacmanVectorEnv(2, **settings)


def test_rendering_draws_what_the_board_holds():
    layout = ["#########", "#P.o G..#", "#########"]  # food left after one is eaten
    env = MiniPacmanVectorEnv.from_ascii(layout, **FROZEN)
    env.reset(seed=0)
    assert env.render_ascii(0) == "\n".join(layout)
    pictures = env.render_rgb()
    scale = minipacman.RGB_SCALE
    assert pictures.shape == (1, 3 * scale, 9 * scale, 3) and pictures.dtype == np.uint8
    for column, kind in enumerate(["wall", "player", "food", "power_pill", "empty", "ghost"]):
        tile = pictures[0, scale : 2 * scale, column * scale : (column + 1) * scale]
        assert (tile == minipacman.RGB_COLOURS[kind]).all(), kind
    step(env, RIGHT)  # food
    step(env, RIGHT)  # the power pill: the ghost turns edible, drawn as 'E'
    assert env.render_ascii(0).split("\n")[1] == "#  P E..#"


def test_make_vector_env_and_gym_make():
    env = make_vector_env({"num_envs": 3, "task": "hunt", "seed": 0})
    assert env.num_envs == 3 and env.task == "hunt" and env.reset()[0].shape == (3, 6, 15, 19)
    single = gym.make(minipacman.ENV_ID, task="rush", render_mode="ansi")
    obs, info = single.reset(seed=0)
    assert obs.shape == (6, 15, 19) and info["level"] == 1
    assert len(cells(obs, PILL)) == 2 and single.render().count("P") == 1
    _, reward, terminated, truncated, _ = single.step(NOOP)  # nothing to eat, no ghost near
    assert reward == 0.0 and not terminated and not truncated
    assert isinstance(MiniPacmanEnv(task="avoid").observation_space, gym.spaces.Box)
