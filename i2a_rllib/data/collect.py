"""Parallel transition collection: Ray actors step vector envs and write Parquet shards.

Stage 1a of I2A (the seed's `collect_random_transitions`, distributed). Each actor owns
one vector env and writes one shard per call, so memory per actor is bounded by one
shard, and the driver prints progress as shards land. The policy is uniform random
(the seed) or a trained RLlib RLModule, e.g. the PPO baseline's (the paper used a
partially trained agent: random play in Breakout rarely scores).

Resuming: run the same command again. Complete shards are counted from the files
themselves (the manifest is rebuilt from them), half-written temporary files are
removed, and only the missing transitions are collected, into new shards with new
seeds, so nothing is duplicated.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray

from i2a_rllib.data.format import (
    DatasetError,
    Manifest,
    MANIFEST_FILE,
    check_shard,
    filesystem_and_path,
    list_shards,
    merge_reward_values,
    obs_dtype_of,
    parse_shard_name,
    shard_name,
    shard_reward_values,
    transition_schema,
    write_manifest,
    write_shard_atomically,
)
from i2a_rllib.models.env_models import default_frame_channels

RANDOM_POLICY = "random"


def _observation_column(rows: np.ndarray, field_type: pa.DataType) -> pa.Array:
    """(N, ...) observations -> the schema's column without per-row Python objects: a
    fixed-size binary of uint8 frames, or a fixed-size list of float32 vectors."""
    if pa.types.is_fixed_size_list(field_type):
        values = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(values), field_type.list_size)
    rows = np.ascontiguousarray(rows.reshape(len(rows), -1))
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(rows.shape[1]), len(rows), [None, pa.py_buffer(rows.tobytes())]
    )


class _Policy:
    """Uniform random actions, or a restored RLModule's sampled actions."""

    def __init__(self, checkpoint: Optional[str], num_actions: int, epsilon: float, seed: int):
        self.rng = np.random.default_rng(seed)
        self.num_actions = num_actions
        self.epsilon = epsilon
        self.module = None
        if checkpoint:
            import torch
            from ray.rllib.core.rl_module.rl_module import RLModule

            from i2a_rllib.config import resolve_rl_module_checkpoint

            torch.manual_seed(seed)
            self.module = RLModule.from_checkpoint(resolve_rl_module_checkpoint(checkpoint))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        random_actions = self.rng.integers(0, self.num_actions, size=len(obs))
        if self.module is None:
            return random_actions
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            logits = self.module.forward_inference({Columns.OBS: torch.from_numpy(obs)})[
                Columns.ACTION_DIST_INPUTS
            ]
            actions = torch.distributions.Categorical(logits=logits).sample().numpy()
        explore = self.rng.random(len(obs)) < self.epsilon
        return np.where(explore, random_actions, actions)


# Actor seeds stay below 2**31 with room for one seed per env.
ALE_SEED_RANGE = 2**31 - 2**16


@ray.remote(num_cpus=1)
class TransitionCollector:
    """Steps one vector env with a policy and writes transitions as Parquet shards."""

    def __init__(
        self,
        actor_index: int,
        env_id: str,
        env_config: Dict[str, Any],
        num_envs: int,
        uri: str,
        policy_checkpoint: Optional[str],
        epsilon: float,
        seed: int,
    ):
        from i2a_rllib.envs import make_vector_env

        self.actor_index = actor_index
        self.env = make_vector_env(env_id, num_envs, env_config)
        self.obs_shape = tuple(self.env.single_observation_space.shape)
        self.frame_channels = default_frame_channels(self.obs_shape)
        self.schema = transition_schema(
            self.obs_shape, self.frame_channels, obs_dtype_of(self.obs_shape)
        )
        self.fs, self.root = filesystem_and_path(uri)
        self.policy = _Policy(
            policy_checkpoint, int(self.env.single_action_space.n), epsilon, seed
        )
        self.obs, _ = self.env.reset(seed=seed)
        self.num_envs = num_envs
        # Episode ids are unique per actor and run (seed), steps count within an episode.
        self.episode = np.arange(num_envs, dtype=np.int64) + (seed % 1_000_003) * 1_000_000
        self.next_episode = int(self.episode.max()) + 1
        self.step_in_episode = np.zeros(num_envs, dtype=np.int32)
        # NEXT_STEP autoreset: the step after an episode ended only resets that env.
        self.resetting = np.zeros(num_envs, dtype=bool)

    def collect_shard(self, index: int, num_rows: int) -> Dict[str, Any]:
        start = time.perf_counter()
        parts: Dict[str, List[np.ndarray]] = {k: [] for k in self.schema.names}
        rows = env_steps = 0
        fc = self.frame_channels
        while rows < num_rows:
            actions = self.policy(self.obs)
            next_obs, rewards, terminated, truncated, _ = self.env.step(actions)
            env_steps += self.num_envs
            valid = np.flatnonzero(~self.resetting)[: num_rows - rows]
            parts["obs"].append(self.obs[valid])
            parts["action"].append(actions[valid].astype(np.int32))
            parts["reward"].append(rewards[valid].astype(np.float32))
            parts["terminated"].append(terminated[valid].astype(bool))
            parts["truncated"].append(truncated[valid].astype(bool))
            parts["next_frame"].append(next_obs[valid, -fc:])
            parts["actor"].append(np.full(len(valid), self.actor_index, dtype=np.int32))
            parts["env_index"].append(valid.astype(np.int32))
            parts["episode"].append(self.episode[valid])
            parts["step"].append(self.step_in_episode[valid])
            rows += len(valid)
            self._advance(terminated | truncated)
            self.obs = next_obs
        table = pa.Table.from_arrays(
            [
                _observation_column(np.concatenate(parts["obs"]), self.schema.field("obs").type),
                *(pa.array(np.concatenate(parts[k])) for k in ("action", "reward", "terminated", "truncated")),
                _observation_column(
                    np.concatenate(parts["next_frame"]), self.schema.field("next_frame").type
                ),
                *(pa.array(np.concatenate(parts[k])) for k in ("actor", "env_index", "episode", "step")),
            ],
            schema=self.schema,
        )
        name = shard_name(self.actor_index, index)
        write_shard_atomically(self.fs, self.root, name, table)
        return {
            "name": name,
            "rows": table.num_rows,
            "reward_values": np.unique(np.concatenate(parts["reward"])).tolist(),
            "env_steps": env_steps,
            "seconds": time.perf_counter() - start,
        }

    def _advance(self, done: np.ndarray) -> None:
        # Envs that were resetting now hold the first obs of a new episode.
        restarted = np.flatnonzero(self.resetting)
        self.episode[restarted] = np.arange(self.next_episode, self.next_episode + len(restarted))
        self.next_episode += len(restarted)
        self.step_in_episode[restarted] = 0
        self.step_in_episode[~self.resetting] += 1
        self.resetting = done & ~self.resetting

    def spaces(self):
        return self.obs_shape, int(self.env.single_action_space.n)


def _remove_temporary_files(fs: pafs.FileSystem, root: str) -> int:
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    stale = [i.path for i in infos if os.path.basename(i.path).startswith(".tmp-")]
    for path in stale:
        fs.delete_file(path)
    return len(stale)


def collect(
    env_id: str,
    output: str,
    num_transitions: int,
    *,
    num_actors: int = 2,
    num_envs_per_actor: int = 8,
    shard_size: int = 1000,
    policy_checkpoint: Optional[str] = None,
    epsilon: float = 0.0,
    seed: int = 0,
    env_config: Optional[Dict[str, Any]] = None,
    progress: Callable[[str], None] = print,
    num_cpus: Optional[int] = None,
) -> Manifest:
    """Collects `num_transitions` transitions of `env_id` into the dataset at `output`.

    Returns the manifest. Resumes (fills up to `num_transitions`) if `output` already
    holds shards of the same env and policy. Starts a local Ray (`num_cpus`) after the
    checks if none is running.

    Raises:
        DatasetError / ValueError: bad settings or an incompatible existing dataset,
            before any actor starts.
    """
    from i2a_rllib.envs import probe_spaces, rllib_env_settings

    env_config = dict(env_config or {})
    for name, value in (
        ("num_transitions", num_transitions),
        ("num_actors", num_actors),
        ("num_envs_per_actor", num_envs_per_actor),
        ("shard_size", shard_size),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon} must lie in [0, 1].")
    settings = rllib_env_settings(env_id, env_config)  # unknown env ids fail here
    obs_space, action_space = probe_spaces(settings["env"], settings["env_config"])
    obs_shape = tuple(obs_space.shape)
    policy = RANDOM_POLICY if not policy_checkpoint else os.path.abspath(policy_checkpoint)
    if policy_checkpoint and not os.path.isdir(policy_checkpoint):
        raise ValueError(
            f"policy checkpoint {policy_checkpoint!r} does not exist; pass an RLlib "
            "checkpoint directory (e.g. of tuned_examples/ppo_baseline.py)."
        )

    fs, root = filesystem_and_path(output)
    if "://" not in output:  # local paths: a nearly full disk is refused before any actor starts
        from i2a_rllib.experiment import check_free_space

        check_free_space(output, "--output")
    try:
        fs.create_dir(root, recursive=True)
    except OSError as e:  # a file in the way, no permission, a read-only mount
        raise DatasetError(
            f"Cannot create the dataset directory {output!r} ({e}); choose a writable "
            "--output."
        ) from None
    existing = list_shards(fs, root)
    manifest = Manifest(
        env_id=env_id,
        obs_shape=list(obs_shape),
        num_actions=int(action_space.n),
        frame_channels=default_frame_channels(obs_shape),
        obs_dtype=obs_dtype_of(obs_shape),
        policy=policy,
        env_config={k: v for k, v in env_config.items()},
    )
    if existing:
        _check_compatible(fs, root, output, manifest)
        removed = _remove_temporary_files(fs, root)
        if removed:
            progress(f"[collect] removed {removed} half-written temporary file(s)")
        for name in existing:
            manifest.shards[name] = check_shard(output, name, manifest)
            manifest.reward_values = merge_reward_values(
                manifest.reward_values, shard_reward_values(output, name)
            )
        manifest.num_transitions = sum(manifest.shards.values())
        write_manifest(fs, root, manifest)
    remaining = num_transitions - manifest.num_transitions
    if remaining <= 0:
        progress(
            f"[collect] {output} already holds {manifest.num_transitions:,} transitions "
            f"(>= {num_transitions:,} asked); nothing to do."
        )
        return manifest
    if existing:
        progress(
            f"[collect] resuming: {manifest.num_transitions:,} transitions in "
            f"{len(existing)} shards, collecting {remaining:,} more"
        )
    next_index = 1 + max((parse_shard_name(n)[1] for n in existing), default=-1)
    num_shards = math.ceil(remaining / shard_size)
    num_actors = min(num_actors, num_shards)
    from i2a_rllib.experiment import init_ray

    init_ray(num_cpus=num_cpus)  # only now: every check above runs without Ray

    actors = [
        TransitionCollector.remote(
            actor_index=i,
            env_id=env_id,
            env_config=env_config,
            num_envs=num_envs_per_actor,
            uri=output,
            policy_checkpoint=policy_checkpoint,
            epsilon=epsilon,
            # New seeds for every resumed run: the new shards never repeat old data.
            # ALE takes 32-bit seeds (one per env, seed + env index): large --seed
            # values wrap instead of crashing the actors.
            seed=(seed * 100_003 + next_index * 1_009 + i) % ALE_SEED_RANGE,
        )
        for i in range(num_actors)
    ]
    in_flight: Dict[Any, Any] = {}
    scheduled = 0

    def schedule(actor):
        nonlocal next_index, scheduled
        rows = min(shard_size, remaining - scheduled)
        if rows <= 0:
            return
        in_flight[actor.collect_shard.remote(next_index, rows)] = actor
        next_index += 1
        scheduled += rows

    for actor in actors:
        schedule(actor)
    start, collected = time.time(), 0
    try:
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            report = ray.get(ref)
            manifest.shards[report["name"]] = report["rows"]
            manifest.num_transitions += report["rows"]
            manifest.reward_values = merge_reward_values(
                manifest.reward_values, report["reward_values"]
            )
            collected += report["rows"]
            write_manifest(fs, root, manifest)
            elapsed = time.time() - start
            rate = collected / max(elapsed, 1e-9)
            eta = (remaining - collected) / max(rate, 1e-9)
            progress(
                f"[collect] {manifest.num_transitions:>9,d}/{num_transitions:,} transitions  "
                f"{rate:7,.0f}/s  ETA {eta:5.0f}s  shard {report['name']}"
            )
            schedule(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
    return manifest


def _check_compatible(fs, root, output: str, manifest: Manifest) -> None:
    """An existing dataset must be of the same env, shape and policy to be extended."""
    import json
    import posixpath

    try:
        with fs.open_input_stream(posixpath.join(root, MANIFEST_FILE)) as f:
            old = json.loads(f.read().decode())
    except FileNotFoundError:
        return  # shards without a manifest: it is rebuilt from the shards
    except json.JSONDecodeError:
        return  # a corrupt manifest is rebuilt from the shards
    for key in ("env_id", "obs_shape", "num_actions", "policy"):
        if old.get(key) != getattr(manifest, key):
            raise DatasetError(
                f"{output!r} already holds a dataset with {key}={old.get(key)!r}, not "
                f"{getattr(manifest, key)!r}; nothing was changed. Use another --output "
                "to collect a different dataset."
            )
