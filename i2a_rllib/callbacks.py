"""RLlib callbacks: the clipped-return metric, TensorBoard images of imagination, and
the torch threads of EnvRunners and of the algorithm's own learner."""

from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np

from ray.rllib.callbacks.callbacks import RLlibCallback

logger = logging.getLogger(__name__)

# Metric keys (under `env_runners/` in results and TensorBoard).
EPISODE_RETURN_CLIPPED = "episode_return_clipped"
EPISODE_SOLVED = "episode_solved"  # share of episodes the env reports as solved (Sokoban)


def env_runner_torch_threads(num_threads: int, *, env_runner=None, **kwargs) -> None:
    """`on_environment_created`: `num_threads` torch threads in each remote EnvRunner
    (`i2a_rllib.config.set_torch_threads`). The driver's own EnvRunner (worker 0)
    shares its process with the algorithm and keeps its setting."""
    if env_runner is not None and getattr(env_runner, "worker_index", 0) > 0:
        import torch

        torch.set_num_threads(num_threads)


def learner_torch_threads(num_threads: int, *, algorithm=None, **kwargs) -> None:
    """`on_algorithm_init`: `num_threads` torch threads in the algorithm's process, where
    a local learner (num_learners=0) updates (`i2a_rllib.config.set_torch_threads`)."""
    import torch

    torch.set_num_threads(num_threads)


class ClippedReturnCallback(RLlibCallback):
    """Logs the return the learner optimises (sign-clipped rewards) beside the real score.

    RLlib's `episode_return_mean` stays the unclipped game score.
    """

    def on_episode_end(
        self, *, episode, prev_episode_chunks=None, metrics_logger=None, env_runner=None, **kwargs
    ):
        if metrics_logger is None:
            return
        config = getattr(env_runner, "config", None)
        if config is None or config.learner_config_dict.get("clip_rewards", False):
            chunks = list(prev_episode_chunks or []) + [episode]
            clipped = float(sum(np.sign(np.asarray(c.get_rewards())).sum() for c in chunks))
            metrics_logger.log_value(EPISODE_RETURN_CLIPPED, clipped, reduce="mean", window=100)
        last_info = episode.get_infos(-1) if len(episode) else {}
        if isinstance(last_info, dict) and "solved" in last_info:
            solved = float(bool(last_info["solved"]))
            metrics_logger.log_value(EPISODE_SOLVED, solved, reduce="mean", window=100)


class I2ACallbacks(ClippedReturnCallback):
    """Adds, every `config.imagination_image_interval` iterations, a TensorBoard image of
    the agent's current imagination (one row per action: real frame, imagined frames)."""

    def __init__(self):
        super().__init__()
        self._writer = None
        self._probe_obs: Optional[np.ndarray] = None

    def on_train_result(self, *, algorithm, result, **kwargs):
        interval = getattr(algorithm.config, "imagination_image_interval", 0)
        iteration = result.get("training_iteration", 0)
        if not interval or iteration % interval:
            return
        try:
            self._write_image(algorithm, iteration)
        except Exception as e:  # pictures must never break training
            logger.warning("Could not write the imagination image: %s", e)

    def _write_image(self, algorithm, iteration: int) -> None:
        from tensorboardX import SummaryWriter

        from i2a_rllib.envs import make_rllib_vector_env
        from i2a_rllib.pictures import imagination_strip

        module = algorithm.get_module()
        if module is None or not hasattr(module, "net"):
            return
        if self._probe_obs is None:
            env = make_rllib_vector_env(algorithm.config.env, algorithm.config.env_config, 1)
            obs, _ = env.reset(seed=0)
            for _ in range(30):  # a few steps in, so something moves
                obs, *_ = env.step(env.action_space.sample())
            env.close()
            self._probe_obs = np.asarray(obs[0])
        image = imagination_strip(module.net, self._probe_obs, seed=iteration)
        if self._writer is None:
            root = getattr(algorithm.config, "imagination_image_dir", None) or algorithm.logdir
            self._writer = SummaryWriter(os.path.join(root, "imagination"))
        self._writer.add_image("i2a/imagination", image, iteration, dataformats="HWC")
        self._writer.flush()
