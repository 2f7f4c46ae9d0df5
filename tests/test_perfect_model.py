"""The perfect Sokoban model: the env's rules in torch, exactly, and refused elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from i2a_rllib.envs.sokoban import SokobanLevel, SokobanVectorEnv
from i2a_rllib.models.env_models import PerfectSokobanModel, build_env_model, resolve_env_model

NOOP, UP, DOWN, LEFT, RIGHT = range(5)


def _frames(obs: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(obs).float() / 255.0


def test_the_perfect_model_equals_the_env_step_on_random_boards_and_actions():
    """Every transition of 32 random 7x7 / 2-box boards under random actions, over
    several episodes each: the same next frame and the same reward as the env."""
    env = SokobanVectorEnv(32, seed=3, dim_room=(7, 7), num_boxes=2)
    obs, _ = env.reset(seed=3)
    model = resolve_env_model("perfect", obs.shape[1:], 5)
    rng = np.random.default_rng(0)
    restarting = np.zeros(32, dtype=bool)  # NEXT_STEP autoreset: that step starts a level
    compared = solves = pushes = blocked = 0
    for _ in range(1500):
        actions = rng.integers(0, 5, size=32)
        predicted, reward = model.step(_frames(obs), torch.as_tensor(actions))
        next_obs, rewards, terminated, truncated, _ = env.step(actions)
        live = ~restarting
        np.testing.assert_array_equal((predicted.numpy() * 255).astype(np.uint8)[live], next_obs[live])
        np.testing.assert_allclose(reward.numpy()[live], rewards[live], atol=1e-6)
        compared += live.sum()
        solves += (terminated & live).sum()
        pushes += (np.abs(rewards[live] - (-0.1)) > 1e-6).sum()  # a box moved on/off a target
        # A move that changed nothing (into a wall or a stuck box), not a no-op.
        blocked += ((obs == next_obs).all((1, 2, 3)) & (actions != NOOP) & live).sum()
        obs, restarting = next_obs, terminated | truncated
    # The events the rules have to get right all happened, many times.
    assert compared > 40_000 and solves > 20 and pushes > 100 and blocked > 1000


PUSHES = """
#######
#     #
# @$$.#
#   $.#
#    .#
#######
"""


@pytest.mark.parametrize(
    "action, expected_reward, moved",
    [
        (RIGHT, -0.1, False),  # a box behind a box: blocked
        (UP, -0.1, True),  # onto floor
        (LEFT, -0.1, True),
        (NOOP, -0.1, False),
    ],
)
def test_the_perfect_model_blocks_pushes_into_boxes(action, expected_reward, moved):
    level = SokobanLevel.from_ascii(PUSHES)
    env = SokobanVectorEnv(1, fixed_level=level)
    obs, _ = env.reset(seed=0)
    model = PerfectSokobanModel(obs.shape[1:], 5)
    predicted, reward = model.step(_frames(obs), torch.tensor([action]))
    assert reward.item() == pytest.approx(expected_reward)
    assert (predicted.numpy() * 255 != obs).any() == moved


def test_the_perfect_model_pushes_onto_targets_solves_and_then_stands_still():
    level = SokobanLevel.from_ascii("######\n#@$ .#\n#    #\n######")
    env = SokobanVectorEnv(1, fixed_level=level)
    obs, _ = env.reset(seed=0)
    model = PerfectSokobanModel(obs.shape[1:], 5)
    state = _frames(obs)
    state, reward = model.step(state, torch.tensor([RIGHT]))  # box to the floor cell
    assert reward.item() == pytest.approx(-0.1)
    state, reward = model.step(state, torch.tensor([RIGHT]))  # onto the target: solved
    assert reward.item() == pytest.approx(-0.1 + 1.0 + 10.0)
    # The level after a solve is unknowable: imagination holds the solved board, reward 0.
    after, reward = model.step(state, torch.tensor([LEFT]))
    assert reward.item() == 0.0 and torch.equal(after, state)
    # And into the wall beside the target: the push is blocked, the player stays.
    wall = SokobanLevel.from_ascii("######\n#  @$#\n#.   #\n######")
    env = SokobanVectorEnv(1, fixed_level=wall)
    obs, _ = env.reset(seed=0)
    predicted, reward = model.step(_frames(obs), torch.tensor([RIGHT]))
    assert reward.item() == pytest.approx(-0.1) and torch.equal(predicted, _frames(obs))


def test_the_perfect_model_steps_every_action_like_one_action_at_a_time():
    env = SokobanVectorEnv(4, seed=5, dim_room=(6, 6), num_boxes=1)
    obs, _ = env.reset(seed=5)
    model = PerfectSokobanModel(obs.shape[1:], 5)
    frames, rewards = model.step_every_action(_frames(obs))
    for board in range(4):
        for action in range(5):
            one, reward = model.step(_frames(obs[board : board + 1]), torch.tensor([action]))
            assert torch.equal(frames[board * 5 + action], one[0])
            assert rewards[board * 5 + action] == reward[0]


@pytest.mark.parametrize(
    "obs_shape, actions, fragment",
    [
        ((4, 84, 84), 4, "shape (4, 84, 84) and 4 actions"),  # Atari
        ((6, 10, 19), 5, "shape (6, 10, 19)"),  # MiniPacman
        ((3, 56, 56), 5, "'channels' observations"),  # Sokoban's rgb picture
        ((4,), 2, "shape (4,)"),  # CartPole
    ],
)
def test_the_perfect_model_is_refused_for_other_environments(obs_shape, actions, fragment):
    with pytest.raises(ValueError, match="knows only Sokoban's rules") as error:
        build_env_model("perfect", obs_shape, actions)
    assert fragment in str(error.value)


def test_the_perfect_model_has_nothing_to_pretrain_and_takes_no_checkpoint(tmp_path):
    from i2a_rllib.checkpoints import CheckpointError
    from i2a_rllib.pretrain.train import plan_pretraining

    model = PerfectSokobanModel((7, 7, 7), 5)
    with pytest.raises(ValueError, match="nothing to learn"):
        model.loss(torch.zeros(1, 7, 7, 7), torch.zeros(1), torch.zeros(1), torch.zeros(1, 7, 7, 7))
    with pytest.raises(ValueError, match="the copy and perfect models have nothing to learn"):
        plan_pretraining(str(tmp_path / "data"), str(tmp_path / "out"), kind="perfect")
    with pytest.raises(CheckpointError, match="loads no checkpoint"):
        resolve_env_model("perfect", (7, 7, 7), 5, checkpoint=str(tmp_path))


def test_i2a_trains_with_the_perfect_model(ray_session, tmp_path):
    """One PPO iteration of I2A imagining with Sokoban's rules, without a checkpoint; the
    trained module's first imagined frame for each action is the env's next frame."""
    from i2a_rllib.envs import make_vector_env

    from i2a_rllib.config import I2AConfig, configure_environment

    config = configure_environment(
        I2AConfig(), "I2A/Sokoban-v0", env_config={"dim_room": [6, 6], "num_boxes": 1}
    ).imagination(env_model="perfect", rollout_depth=2, imagination_image_interval=0)
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16)
    config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
    algo = config.build_algo()
    try:
        result = algo.train()
        module = algo.get_module()
        assert module.net.env_model.kind == "perfect"
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 64
        board = {"dim_room": [6, 6], "num_boxes": 1}
        obs = make_vector_env("I2A/Sokoban-v0", 3, board).reset(seed=7)[0]
        views = module.net.imagine(torch.from_numpy(obs)).views  # (B, A, depth, C, H, W)
        for action in range(5):
            env = make_vector_env("I2A/Sokoban-v0", 3, board)
            env.reset(seed=7)
            real_next = env.step(np.full(3, action))[0]
            assert torch.equal(views[:, action, 0], torch.from_numpy(real_next))
        algo.save(str(tmp_path / "checkpoint"))
    finally:
        algo.stop()
    from ray.rllib.algorithms.algorithm import Algorithm

    restored = Algorithm.from_checkpoint(str(tmp_path / "checkpoint"))  # no model files needed
    try:
        assert restored.get_module().net.env_model.kind == "perfect"
        assert restored.train()["training_iteration"] == 2
    finally:
        restored.stop()
