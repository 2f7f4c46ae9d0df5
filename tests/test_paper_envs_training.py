"""The I2A pipeline on the paper's environments: RLlib trains on Sokoban and MiniPacman."""

import pytest

from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment
from i2a_rllib.envs import MINIPACMAN_ID, SOKOBAN_ID, rllib_env_settings

pytestmark = pytest.mark.slow

CASES = [
    (SOKOBAN_ID, {"dim_room": [7, 7], "num_boxes": 2}),
    (MINIPACMAN_ID, {"task": "hunt"}),
]


@pytest.mark.parametrize("env_id,env_config", CASES)
@pytest.mark.parametrize("env_model", ["pixel", "copy"])
def test_tiny_i2a_run(ray_session, env_id, env_config, env_model):
    config = configure_environment(I2AConfig(), env_id, env_config=env_config).imagination(
        env_model=env_model, rollout_depth=2, imagination_image_interval=0
    )
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16)
    config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1, lr=3e-4)
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(2)]
        module = algo.get_module()
        assert module.net.env_model.kind == env_model
        assert module.net.env_model.obs_shape[1:] == ((7, 7) if env_id == SOKOBAN_ID else (15, 19))
    finally:
        algo.stop()
    steps = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in results]
    assert 0 < steps[0] < steps[1]
    assert "distillation_loss" in results[-1]["learners"]["default_policy"]


def test_paper_envs_keep_their_rewards_and_atari_clips():
    assert rllib_env_settings(SOKOBAN_ID)["clip_rewards"] is False
    assert rllib_env_settings(MINIPACMAN_ID, {"task": "avoid"})["clip_rewards"] is False
    assert rllib_env_settings("ALE/Pong-v5")["clip_rewards"] is True
    with pytest.raises(ValueError, match="num_boxes"):
        rllib_env_settings(SOKOBAN_ID, {"dim_room": [5, 5], "num_boxes": 30})
    with pytest.raises(ValueError, match="task"):
        rllib_env_settings(MINIPACMAN_ID, {"task": "dance"})


def test_baseline_runs_on_sokoban(ray_session):
    config = baseline_ppo_config(SOKOBAN_ID, env_config={"dim_room": [7, 7], "num_boxes": 2})
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16)
    config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 64
