"""The I2A pipeline on the paper's environments: RLlib trains on Sokoban and MiniPacman."""

import pytest
import torch

from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment
from i2a_rllib.envs import MINIPACMAN_ID, SOKOBAN_ID, make_vector_env, rllib_env_settings

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
        obs = torch.from_numpy(make_vector_env(env_id, 3, env_config).reset(seed=0)[0])
        views = module.net.imagine(obs).views  # (B, A, depth, C, H, W) uint8
        unchanged = obs.unsqueeze(1).unsqueeze(1).expand_as(views)
        # The copy control imagines the real frame at every step; a (here untrained)
        # pixel model paints its own frames.
        assert torch.equal(views, unchanged) == (env_model == "copy")
    finally:
        algo.stop()
    steps = [r["env_runners"]["num_env_steps_sampled_lifetime"] for r in results]
    assert 0 < steps[0] < steps[1]
    assert "distillation_loss" in results[-1]["learners"]["default_policy"]


def test_paper_envs_keep_their_rewards_and_atari_clips():
    assert rllib_env_settings(SOKOBAN_ID)["clip_rewards"] is False
    assert rllib_env_settings(MINIPACMAN_ID, {"task": "avoid"})["clip_rewards"] is False
    assert rllib_env_settings("ALE/Pong-v5")["clip_rewards"] is True
    # RLlib clamps the squared value error at vf_clip_param: 10 would stop the critic
    # from learning Sokoban's +10 returns; Atari (clipped rewards) keeps 10.
    for config in (
        baseline_ppo_config(SOKOBAN_ID),
        configure_environment(I2AConfig(), SOKOBAN_ID),
        configure_environment(I2AConfig(), MINIPACMAN_ID),
    ):
        assert config.vf_clip_param >= 1e6
    assert baseline_ppo_config("ALE/Breakout-v5").vf_clip_param == 10.0
    assert configure_environment(I2AConfig(), "ALE/Breakout-v5").vf_clip_param == 10.0
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


def test_a_baseline_checkpoint_is_the_frozen_rollout_policy(ray_session, tmp_path):
    """The seed's stage 2: the model-free agent's policy acts in imagination, frozen;
    PPO trains the rest and the distillation loss is skipped."""
    import gymnasium as gym
    import numpy as np
    import torch

    import i2a_rllib.envs.sokoban  # noqa: F401  (registers the gymnasium id)
    from i2a_rllib.rl_module import NatureCNNRLModule

    env_config = {"dim_room": [7, 7], "num_boxes": 2}
    obs_space = gym.make(SOKOBAN_ID, **env_config).observation_space
    baseline = NatureCNNRLModule(
        observation_space=obs_space, action_space=gym.spaces.Discrete(5), model_config={"hidden_size": 64}
    )
    baseline.save_to_path(str(tmp_path / "baseline"))

    config = configure_environment(I2AConfig(), SOKOBAN_ID, env_config=env_config).imagination(
        env_model="pixel", rollout_depth=2, imagination_image_interval=0,
        rollout_policy_checkpoint=str(tmp_path / "baseline"),
    )
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=16)
    config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1, lr=1e-3)
    algo = config.build_algo()
    try:
        module = algo.get_module()
        policy_before = {k: v.clone() for k, v in module.net.rollout_policy.state_dict().items()}
        heads_before = {k: v.clone() for k, v in module.net.heads.state_dict().items()}
        result = algo.train()
        module = algo.learner_group._learner.module["default_policy"]
        obs = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (3, *obs_space.shape), dtype=np.uint8))
        with torch.no_grad():
            torch.testing.assert_close(
                module.net.rollout_policy_logits(obs), baseline.heads.logits(baseline.trunk(obs))
            )
        assert not any(p.requires_grad for p in module.net.rollout_policy.parameters())
        for key, value in module.net.rollout_policy.state_dict().items():
            assert torch.equal(value, policy_before[key]), key
        assert any(not torch.equal(v, heads_before[k]) for k, v in module.net.heads.state_dict().items())
    finally:
        algo.stop()
    assert not module.rollout_policy_is_trainable
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 64
