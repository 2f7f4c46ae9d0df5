"""Batched Sokoban: level generation, the paper's rules and rewards, NEXT_STEP autoreset."""

from __future__ import annotations

import collections
import time

import gymnasium as gym
import numpy as np
import pytest

from i2a_rllib.envs import sokoban
from i2a_rllib.envs.sokoban import (
    CHANNELS,
    SokobanEnv,
    SokobanLevel,
    SokobanVectorEnv,
    generate_level,
    make_vector_env,
)

NOOP, UP, DOWN, LEFT, RIGHT = range(5)
STEP, ON, OFF, SOLVED = -0.1, 1.0, -1.0, 10.0  # the paper's reward events


def decode(obs: np.ndarray) -> str:
    """One board's channel observation back to ASCII (checks one-hot-ness on the way)."""
    assert obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 255}
    assert (obs.sum(axis=0, dtype=np.int64) == 255).all(), "every cell is exactly one channel"
    codes = obs.argmax(axis=0)
    return "\n".join("".join(sokoban.ASCII_OF_CODE[c] for c in row) for row in codes)


def bfs_solution_length(level: SokobanLevel, limit: int = 300_000) -> int | None:
    """Shortest number of moves that solves `level`, by breadth-first search (small levels)."""
    width = level.dim_room[1]
    walls = level.walls.ravel()
    targets = frozenset(np.flatnonzero(level.targets).tolist())
    offsets = (-width, width, -1, 1)
    start = (
        level.player[0] * width + level.player[1],
        frozenset(np.flatnonzero(level.boxes).tolist()),
    )
    depth = {start: 0}
    queue = collections.deque([start])
    while queue and len(depth) < limit:
        player, boxes = state = queue.popleft()
        if boxes == targets:
            return depth[state]
        for offset in offsets:
            nxt = player + offset
            if walls[nxt]:
                continue
            new_boxes = boxes
            if nxt in boxes:
                beyond = nxt + offset
                if walls[beyond] or beyond in boxes:
                    continue
                new_boxes = (boxes - {nxt}) | {beyond}
            new_state = (nxt, new_boxes)
            if new_state not in depth:
                depth[new_state] = depth[state] + 1
                queue.append(new_state)
    return None


# -- generation ----------------------------------------------------------------------------
def test_generator_is_deterministic_under_a_seed():
    first = generate_level((10, 10), 4, rng=np.random.default_rng(123))
    again = generate_level((10, 10), 4, rng=np.random.default_rng(123))
    assert first.to_ascii() == again.to_ascii()
    assert first.reverse_trace == again.reverse_trace
    others = {
        generate_level((10, 10), 4, rng=np.random.default_rng(s)).to_ascii() for s in range(5)
    }
    assert len(others) == 5, "different seeds give different levels"


@pytest.mark.parametrize("dim_room, num_boxes, count", [((7, 7), 2, 200), ((10, 10), 4, 50)])
def test_generation_is_bounded_and_never_trivial(dim_room, num_boxes, count):
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    levels = [generate_level(dim_room, num_boxes, rng=rng) for _ in range(count)]
    assert time.perf_counter() - started < 5.0
    for level in levels:
        assert level.dim_room == dim_room
        assert level.num_boxes == num_boxes == int(level.targets.sum())
        assert not (level.boxes & level.walls).any() and not (level.targets & level.walls).any()
        assert not level.walls[level.player] and not level.boxes[level.player]
        assert level.walls[[0, -1], :].all() and level.walls[:, [0, -1]].all()
        # gym-sokoban's "score == 0" levels are rejected: something is left to do.
        assert (level.boxes & ~level.targets).any()
        assert any(pulled for _, pulled in level.reverse_trace)


def test_generation_gives_a_clear_runtime_error_when_impossible():
    # 8 boxes cannot fit a 5x5 room (9 interior cells); validation would refuse this,
    # the generator itself must still stop and say why.
    with pytest.raises(RuntimeError, match=r"dim_room=\(5, 5\), num_boxes=8"):
        generate_level((5, 5), 8, rng=np.random.default_rng(0), max_attempts=20)


@pytest.mark.parametrize("seed", range(12))
def test_replaying_the_reverse_trace_forward_solves_the_level(seed):
    dim_room, num_boxes = ((7, 7), 2) if seed % 2 else ((10, 10), 4)
    level = generate_level(dim_room, num_boxes, rng=np.random.default_rng(seed))
    env = SokobanVectorEnv.from_ascii(level.to_ascii(), max_steps=10_000)
    env.reset()
    for count, action in enumerate(level.forward_solution, start=1):
        _, rewards, terminated, truncated, infos = env.step(np.array([action]))
        if terminated[0]:
            break
    assert terminated[0] and infos["solved"][0] and not truncated[0]
    assert rewards[0] >= STEP + SOLVED - 1e-6  # the solving step pays the +10
    assert count <= len(level.forward_solution)


@pytest.mark.parametrize("seed", range(6))
def test_bfs_solver_confirms_generated_levels_are_solvable(seed):
    level = generate_level((7, 7), 2, rng=np.random.default_rng(1000 + seed))
    shortest = bfs_solution_length(level)
    assert shortest is not None and 1 <= shortest <= len(level.forward_solution)


# -- settings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, message",
    [
        ({"dim_room": (4, 10)}, "dim_room"),
        ({"dim_room": (10, 3)}, "dim_room"),
        ({"dim_room": (5, 5), "num_boxes": 9}, "num_boxes=9"),
        ({"dim_room": (7, 7), "num_boxes": 26}, "more boxes"),
        ({"num_boxes": 0}, "num_boxes"),
        ({"max_steps": 0}, "max_steps"),
        ({"num_gen_steps": 0}, "num_gen_steps"),
        ({"observation": "pixels"}, "observation"),
        ({"dim_rom": (7, 7)}, "dim_rom"),
        # Values that used to pass as ints: a bool, a float side, a string read as two sides.
        ({"num_boxes": True}, r"num_boxes=True must be an integer >= 1"),
        ({"dim_room": (7.5, 7)}, r"dim_room=\(7.5, 7\) must be a pair"),
        ({"dim_room": "77"}, r"dim_room='77' must be a pair"),
        ({"rgb_scale": False}, r"rgb_scale=False must be an integer >= 1"),
        ({"fixed_level": 5}, "fixed_level must be a map"),
    ],
)
def test_bad_settings_raise_a_clear_value_error(settings, message):
    with pytest.raises(ValueError, match=message):
        SokobanVectorEnv(2, **settings)


def test_bad_ascii_maps_are_refused():
    with pytest.raises(ValueError, match="player"):
        SokobanLevel.from_ascii(["#####", "# $.#", "#####"])
    with pytest.raises(ValueError, match="boxes"):
        SokobanLevel.from_ascii(["#####", "#@$ #", "#####"])
    with pytest.raises(ValueError, match="enclosed"):
        SokobanLevel.from_ascii(["#####", "#@$. ", "#####"])


def test_small_laptop_setting_and_spaces():
    env = SokobanVectorEnv(3, seed=0, dim_room=(7, 7), num_boxes=2)
    obs, infos = env.reset()
    assert obs.shape == (3, len(CHANNELS), 7, 7) and obs.dtype == np.uint8
    assert env.observation_space.shape == (3, 7, 7, 7) and env.single_action_space.n == 5
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert not infos["solved"].any()
    for board in range(3):
        text = decode(obs[board])
        assert text.count("@") + text.count("+") == 1
        assert text.count("$") + text.count("*") == 2 and text.count("$") >= 1
    rgb_env = SokobanVectorEnv(2, seed=0, observation="rgb")
    rgb = rgb_env.reset()[0]
    assert rgb.shape == (2, 3, 80, 80) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, rgb_env.render_rgb().transpose(0, 3, 1, 2))
    # One 8x8 tile per cell: the top-left pixel of a wall cell has the wall colour.
    np.testing.assert_array_equal(rgb[0, :, 0, 0], sokoban.RGB_COLOURS[sokoban.WALL])


# -- rules and rewards (hand-made levels) -----------------------------------------------
def test_observation_matches_the_ascii_map():
    level = ["######", "#@$.*#", "######"]
    obs, _ = SokobanVectorEnv.from_ascii(level).reset()
    assert decode(obs[0]) == "\n".join(level)


def test_push_onto_and_off_a_target():
    env = SokobanVectorEnv.from_ascii(["#######", "#@$.  #", "#   $.#", "#######"])
    env.reset()
    obs, rewards, terminated, truncated, _ = env.step(np.array([RIGHT]))
    assert decode(obs[0]).split("\n")[1] == "# @*  #"
    assert rewards[0] == pytest.approx(STEP + ON) and not terminated[0] and not truncated[0]
    obs, rewards, *_ = env.step(np.array([RIGHT]))
    assert decode(obs[0]).split("\n")[1] == "#  +$ #"  # player now on the target
    assert rewards[0] == pytest.approx(STEP + OFF)
    obs, rewards, *_ = env.step(np.array([DOWN]))  # a plain move
    assert decode(obs[0]).split("\n")[2] == "#  @$.#"
    assert rewards[0] == pytest.approx(STEP)


def test_blocked_moves_change_nothing_and_cost_a_step():
    wall_env = SokobanVectorEnv.from_ascii(["######", "#@$#.#", "#   .#", "#  $ #", "######"])
    start, _ = wall_env.reset()
    for action in (RIGHT, LEFT, UP, NOOP):  # box into wall, wall, wall, no-op
        obs, rewards, terminated, _, _ = wall_env.step(np.array([action]))
        np.testing.assert_array_equal(obs, start)
        assert rewards[0] == pytest.approx(STEP) and not terminated[0]
    box_env = SokobanVectorEnv.from_ascii(["#######", "#@$$..#", "#######"])
    start, _ = box_env.reset()
    obs, rewards, *_ = box_env.step(np.array([RIGHT]))  # box into box
    np.testing.assert_array_equal(obs, start)
    assert rewards[0] == pytest.approx(STEP)


def test_solving_pays_ten_and_terminates():
    env = SokobanVectorEnv.from_ascii(["######", "#@$.*#", "######"])
    env.reset()
    obs, rewards, terminated, truncated, infos = env.step(np.array([RIGHT]))
    assert decode(obs[0]) == "######\n# @**#\n######"
    assert rewards[0] == pytest.approx(STEP + ON + SOLVED)
    assert terminated[0] and not truncated[0] and infos["solved"][0]


def test_truncation_at_the_step_limit_then_next_step_autoreset():
    env = SokobanVectorEnv.from_ascii(["#######", "#@ $. #", "#######"], max_steps=3)
    start, _ = env.reset()
    for step in range(1, 4):
        obs, rewards, terminated, truncated, _ = env.step(np.array([NOOP]))
        assert rewards[0] == pytest.approx(STEP) and not terminated[0]
        assert truncated[0] == (step == 3)
    # Step t+1: the action is ignored, the fresh start comes back with reward 0.
    obs, rewards, terminated, truncated, _ = env.step(np.array([RIGHT]))
    np.testing.assert_array_equal(obs, start)
    assert rewards[0] == 0.0 and not terminated[0] and not truncated[0]
    obs, rewards, *_ = env.step(np.array([RIGHT]))
    assert decode(obs[0]).split("\n")[1] == "# @$. #" and rewards[0] == pytest.approx(STEP)


def test_next_step_autoreset_per_board_in_a_batch():
    env = SokobanVectorEnv.from_ascii(["######", "#@$.*#", "######"], num_envs=2)
    start, _ = env.reset()
    _, rewards, terminated, _, _ = env.step(np.array([RIGHT, NOOP]))
    np.testing.assert_allclose(rewards, [STEP + ON + SOLVED, STEP])
    np.testing.assert_array_equal(terminated, [True, False])
    obs, rewards, terminated, truncated, infos = env.step(np.array([RIGHT, RIGHT]))
    np.testing.assert_array_equal(obs[0], start[0])  # board 0 restarted, action ignored
    assert rewards[0] == 0.0 and not terminated[0] and not truncated[0] and not infos["solved"][0]
    assert rewards[1] == pytest.approx(STEP + ON + SOLVED) and terminated[1]  # board 1 played on
    _, rewards, terminated, _, _ = env.step(np.array([RIGHT, NOOP]))
    np.testing.assert_allclose(rewards, [STEP + ON + SOLVED, 0.0])
    np.testing.assert_array_equal(terminated, [True, False])


def test_autoreset_matches_gymnasium_sync_vector_env():
    level = ["#######", "#@$.  #", "#  $. #", "#######"]
    ours = SokobanVectorEnv.from_ascii(level, num_envs=3, max_steps=4)
    reference = gym.vector.SyncVectorEnv(
        [lambda: SokobanEnv(fixed_level=level, max_steps=4) for _ in range(3)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )
    obs_a, _ = ours.reset()
    obs_b, _ = reference.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(0).integers(0, 5, size=(20, 3))
    for action in actions:
        result_a, result_b = ours.step(action), reference.step(action)
        for a, b in zip(result_a[:4], result_b[:4]):
            np.testing.assert_array_equal(a, b)


# -- seeding -------------------------------------------------------------------------------
def test_same_seed_same_boards_and_trajectories():
    actions = np.random.default_rng(7).integers(0, 5, size=(300, 4))

    def rollout(seed):
        env = SokobanVectorEnv(4, seed=None, dim_room=(7, 7), num_boxes=2, max_steps=30)
        frames, _ = env.reset(seed=seed)
        history = [frames]
        for action in actions:  # 300 steps of 30-step episodes: many autoresets
            obs, rewards, terminated, truncated, _ = env.step(action)
            history += [obs, rewards, terminated, truncated]
        return history

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_board_i_matches_a_single_env_seeded_seed_plus_i():
    vector = SokobanVectorEnv(3, seed=10, dim_room=(7, 7), num_boxes=2)
    obs, _ = vector.reset()
    for board in range(3):
        single = SokobanEnv(dim_room=(7, 7), num_boxes=2)
        single_obs, _ = single.reset(seed=10 + board)
        np.testing.assert_array_equal(obs[board], single_obs)


# -- entry points --------------------------------------------------------------------------
def test_make_vector_env_from_an_rllib_style_dict():
    env = make_vector_env({"num_envs": 5, "dim_room": [7, 7], "num_boxes": 2, "seed": 1})
    obs, _ = env.reset()
    assert env.num_envs == 5 and obs.shape == (5, 7, 7, 7)
    with pytest.raises(ValueError, match="num_box"):
        make_vector_env({"num_envs": 2, "num_box": 3})


def test_gym_make_and_make_vec():
    env = gym.make(sokoban.ENV_ID, dim_room=(7, 7), num_boxes=2, render_mode="ansi")
    obs, info = env.reset(seed=0)
    assert obs.shape == (7, 7, 7) and info == {"solved": False}
    assert env.render().count("\n") == 6
    obs, reward, terminated, truncated, info = env.step(0)
    assert reward == pytest.approx(STEP) and not terminated and not truncated
    vector = gym.make_vec(
        sokoban.ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", num_boxes=2
    )
    assert isinstance(vector.unwrapped, SokobanVectorEnv) and vector.reset(seed=0)[0].shape == (
        4,
        7,
        10,
        10,
    )
