"""Evaluating a trained checkpoint on CPU: scores, a GIF, and a picture of imagination.

Flat-vector environments (CartPole) have no frames to animate: their episode is drawn as
the curves of its state features instead of a GIF.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch


def _algorithm_config_of(checkpoint: str) -> Optional[Dict[str, Any]]:
    """The AlgorithmConfig dict stored in an Algorithm checkpoint (None for a module)."""
    path = os.path.join(checkpoint, "class_and_ctor_args.pkl")
    if not os.path.isfile(os.path.join(checkpoint, "algorithm_state.pkl")):
        return None
    with open(path, "rb") as f:
        args, kwargs = pickle.load(f)["ctor_args_and_kwargs"]
    config = kwargs.get("config", args[0] if args else None)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict()
    return config


class EpisodeQuota:
    """Which finished episodes an evaluation counts: env i plays the first quota[i] of
    its own episodes, the quotas fixed up front and as even as possible.

    Which episodes count then does not depend on how long they last; keeping the first
    N episodes to finish across parallel envs would favour short (often poor) ones.
    """

    def __init__(self, episodes: int, num_envs: int):
        self.quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
        self._per_env: List[List[Tuple[float, int]]] = [[] for _ in range(num_envs)]

    def add(self, env_index: int, score: float, length: int) -> None:
        if len(self._per_env[env_index]) < self.quota[env_index]:
            self._per_env[env_index].append((score, length))

    @property
    def full(self) -> bool:
        return all(len(done) >= q for done, q in zip(self._per_env, self.quota))

    @property
    def episodes(self) -> List[Tuple[float, int]]:
        """(score, length) of the counted episodes, env by env."""
        return [episode for per_env in self._per_env for episode in per_env]


def evaluate_checkpoint(
    checkpoint: str,
    *,
    episodes: int = 10,
    output: Optional[str] = None,
    env_id: Optional[str] = None,
    env_config: Optional[Dict[str, Any]] = None,
    num_envs: int = 4,
    greedy: bool = False,
    max_env_steps: int = 200_000,
    gif_frames: int = 1500,
    seed: int = 0,
) -> Dict[str, Any]:
    """Plays `episodes` episodes with the checkpoint's policy; writes a GIF and a PNG.

    Args:
        checkpoint: An Algorithm checkpoint (its env is read from it) or an RLModule
            checkpoint (then pass `env_id`).
        greedy: argmax actions instead of sampling from the policy.

    Returns:
        Scores (unclipped), episode lengths and the paths of the pictures.
    """
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModule

    from i2a_rllib.config import resolve_rl_module_checkpoint
    from i2a_rllib.envs import env_id_of, make_rllib_vector_env, make_vector_env
    from i2a_rllib.pictures import (
        frame_to_gray_uint8,
        imagination_strip,
        save_gif,
        save_png,
        state_curves,
    )

    if not os.path.isdir(checkpoint):
        raise FileNotFoundError(f"Checkpoint {checkpoint!r} does not exist.")
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1.")
    algo_config = _algorithm_config_of(checkpoint)
    num_envs = min(num_envs, episodes)  # an env without an episode to play would idle
    if env_id is not None:
        env = make_vector_env(env_id, num_envs, env_config)
    elif algo_config is not None:
        env_id = env_id_of(algo_config["env"], algo_config.get("env_config"))
        env = make_rllib_vector_env(algo_config["env"], algo_config.get("env_config"), num_envs)
    else:
        raise ValueError(
            f"{checkpoint!r} is an RLModule checkpoint, which does not record its "
            "environment; pass --env."
        )
    output = output or os.path.join(checkpoint, "evaluation")
    from i2a_rllib.experiment import check_writable

    check_writable(output, "--output")  # before any episode is played
    module = RLModule.from_checkpoint(resolve_rl_module_checkpoint(checkpoint))
    module.eval()
    torch.manual_seed(seed)
    os.makedirs(output, exist_ok=True)

    num_envs = env.num_envs
    counted = EpisodeQuota(episodes, num_envs)
    generator = torch.Generator().manual_seed(seed)
    noise_of = _rollout_noise_source(module, generator)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(num_envs)
    lengths = np.zeros(num_envs, dtype=np.int64)
    resetting = np.zeros(num_envs, dtype=bool)
    gif, probe_obs, probe_motion = [], None, 0
    recording = True
    steps = 0
    try:
        while not counted.full and steps < max_env_steps:
            batch = {Columns.OBS: torch.from_numpy(obs)}
            batch.update(noise_of(len(obs)))
            with torch.no_grad():
                logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
            if greedy:
                actions = logits.argmax(-1).numpy()
            else:
                actions = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0].numpy()
            if recording:
                # Frames as GIF frames; flat states kept as they are, for their curves.
                if obs.ndim == 2:
                    gif.append(obs[0].copy())
                    if len(gif) == 30:
                        probe_obs = obs[0].copy()
                else:
                    frame_channels = _frame_channels(obs)
                    gif.append(frame_to_gray_uint8(obs[0][-frame_channels:]))
                    # Imagine from the state where the most moved (e.g. the ball in flight):
                    # a still one (a serve not yet fired) would show nothing to predict.
                    motion = _motion(obs[0], frame_channels)
                    if motion > probe_motion:
                        probe_obs, probe_motion = obs[0].copy(), motion
            obs, rewards, terminated, truncated, _ = env.step(actions)
            steps += num_envs
            active = ~resetting
            returns[active] += rewards[active]
            lengths[active] += 1
            done = (terminated | truncated) & active
            for i in np.flatnonzero(done):
                counted.add(i, float(returns[i]), int(lengths[i]))
                if i == 0:
                    recording = False
            returns[resetting] = 0.0
            lengths[resetting] = 0
            resetting = done
            if recording and len(gif) >= gif_frames:
                recording = False
    finally:
        env.close()
    if not counted.episodes:
        raise RuntimeError(f"No episode finished within {max_env_steps} env steps.")
    scores = [score for score, _ in counted.episodes]
    episode_lengths = [length for _, length in counted.episodes]
    if obs.ndim == 2:
        picture = state_curves([gif], ["state"], f"{env_id}: the states of env 0's first episode")
        files = {"episode": save_png(picture, os.path.join(output, "episode.png"))}
    else:
        files = {"gif": save_gif(gif, os.path.join(output, "episode.gif"))}
    if hasattr(module, "net"):
        probe = probe_obs if probe_obs is not None else obs[0]
        files["imagination"] = save_png(
            imagination_strip(module.net, probe, seed=seed), os.path.join(output, "imagination.png")
        )
    summary = {
        "checkpoint": checkpoint,
        "env_id": env_id,
        "episodes": len(scores),
        "score_mean": float(np.mean(scores)),
        "score_median": float(np.median(scores)),
        "score_min": float(np.min(scores)),
        "score_max": float(np.max(scores)),
        "length_mean": float(np.mean(episode_lengths)),
        "scores": scores,
        "lengths": episode_lengths,
        "greedy": greedy,
        "files": files,
    }
    with open(os.path.join(output, "evaluation.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(
        f"[evaluate] {env_id}: {len(scores)} episodes, score mean {summary['score_mean']:.2f} "
        f"median {summary['score_median']:.2f} (min {summary['score_min']:.0f}, max "
        f"{summary['score_max']:.0f}), length mean {summary['length_mean']:.0f}"
    )
    for name, path in files.items():
        print(f"[evaluate] {name}: {path}")
    return summary


def _rollout_noise_source(module, generator: torch.Generator):
    """Batch columns that fix an I2A module's imagined actions from `generator` (so that
    `seed` makes evaluation reproducible); nothing for other modules."""
    from i2a_rllib.columns import ROLLOUT_NOISE

    imagination = getattr(getattr(module, "net", None), "imagination", None)
    if imagination is None or imagination.action_choice != "sample":
        return lambda batch_size: {}
    return lambda batch_size: {
        ROLLOUT_NOISE: torch.rand(imagination.noise_shape(batch_size), generator=generator)
    }


def _motion(frames: np.ndarray, frame_channels: int) -> int:
    """Pixels that changed between the two newest frames of a stack (0 with one frame)."""
    if frames.shape[0] < 2 * frame_channels:
        return 0
    newest, before = frames[-frame_channels:], frames[-2 * frame_channels : -frame_channels]
    return int((newest != before).sum())


def _frame_channels(obs: np.ndarray) -> int:
    from i2a_rllib.models.env_models import default_frame_channels

    return default_frame_channels(obs.shape[1:])
