"""An EnvRunner that steps one half of its envs while the RLModule acts for the other.

RLlib's `SingleAgentEnvRunner` takes turns: the module infers actions for all N envs,
then the vector env steps all N, and one of the two always waits. `OverlappingEnvRunner`
splits the N envs into two vector envs of N/2 and pipelines them, as Sample Factory's
double-buffered sampling does:

    send(A) | send(B) | recv(A) -> episodes, connectors, module -> send(A) | recv(B) -> ...

ale-py's `AtariVectorEnv.send` returns at once and its C++ threads emulate without the
GIL, so half A's frames are stepped while Python and torch work on half B. Episodes,
callbacks, connectors and metrics go through RLlib's own code: each half is a complete
set of (vector env, ongoing episodes, shared connector data, cached connector output)
that the runner switches in before it calls RLlib's helpers, so a batch holds the same
kind of episodes as with the default runner (half of them stepped by each vector env).

The envs need `send`/`recv` (ale-py's Atari vector env); the option is refused for the
others before Ray starts (`check_overlap_sampling`). Env-step failures are not retried
(RLlib's `restart_failed_sub_environments` does not apply): a failing env raises.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
from gymnasium.wrappers.vector import DictInfoToList
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core.columns import Columns
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import (
    ENV_STEP_TIMER,
    ENV_TO_MODULE_CONNECTOR,
    MODULE_TO_ENV_CONNECTOR,
    RLMODULE_INFERENCE_TIMER,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.spaces.space_utils import unbatch

from i2a_rllib.envs import ATARI_ENV, make_rllib_vector_env


def check_overlap_sampling(env: Any, num_envs_per_env_runner: int) -> None:
    """Raises a one-line ValueError where overlapped sampling cannot run."""
    if env != ATARI_ENV:
        raise ValueError(
            f"Overlapped sampling needs an env that steps asynchronously (ale-py's Atari "
            f"vector env with send/recv), got {env!r}: use an 'ALE/<Game>-v5' id or "
            "drop --overlap-sampling."
        )
    if num_envs_per_env_runner < 2 or num_envs_per_env_runner % 2:
        raise ValueError(
            f"Overlapped sampling splits each EnvRunner's envs into two equal halves, got "
            f"num_envs_per_env_runner={num_envs_per_env_runner}: use an even number >= 2."
        )


@dataclass
class _Half:
    """One of the two vector envs and the RLlib sampling state that belongs to it."""

    env: DictInfoToList
    seed: Optional[int]
    episodes: List[Any] = field(default_factory=list)
    shared_data: Dict[str, Any] = field(default_factory=dict)
    cached_to_module: Any = None
    # (actions, extra model outputs) of the step sent and not yet received.
    in_flight: Optional[tuple] = None


class OverlappingEnvRunner(SingleAgentEnvRunner):
    """`SingleAgentEnvRunner` whose two env halves step while the module acts (module doc)."""

    def make_env(self) -> None:
        self.stop()
        num_envs = self.config.num_envs_per_env_runner
        check_overlap_sampling(self.config.env, num_envs)
        env_config = dict(self.config.env_config)
        # One C++ thread per half: a half steps while the other half's actions are
        # computed, so the runner keeps ~1 env thread + the torch threads busy.
        env_config.setdefault("num_threads", 1)
        half = num_envs // 2
        self._halves = [
            _Half(
                env=DictInfoToList(make_rllib_vector_env(self.config.env, env_config, half)),
                seed=None if self._seed is None else self._seed + i * half,
            )
            for i in range(2)
        ]
        # RLlib's spaces, module and connectors are built from `self.env`.
        self.env = self._halves[0].env
        self.num_envs = num_envs
        self._needs_initial_reset = True
        for half in self._halves:
            make_callback(
                "on_environment_created",
                callbacks_objects=self._callbacks,
                callbacks_functions=self.config.callbacks_on_environment_created,
                kwargs=dict(
                    env_runner=self,
                    metrics_logger=self.metrics,
                    env=half.env.unwrapped,
                    env_context=EnvContext(self.config.env_config, worker_index=self.worker_index),
                ),
            )

    def stop(self) -> None:
        for half in getattr(self, "_halves", []):
            if half.in_flight is not None:
                half.env.unwrapped.recv()
            half.env.close()
        self._halves = []

    @contextlib.contextmanager
    def _switched_to(self, half: _Half):
        """Makes RLlib's helpers (resets, new episodes, callbacks) work on `half`."""
        seed = self._seed
        self.env, self.num_envs, self._seed = half.env, half.env.num_envs, half.seed
        self._ongoing_episodes, self._shared_data = half.episodes, half.shared_data
        self._cached_to_module = half.cached_to_module
        try:
            yield
        finally:
            half.episodes, half.shared_data = self._ongoing_episodes, self._shared_data
            half.cached_to_module = self._cached_to_module
            self.env, self.num_envs, self._seed = self._halves[0].env, 2 * half.env.num_envs, seed

    def _sample(
        self,
        *,
        num_timesteps: Optional[int] = None,
        num_episodes: Optional[int] = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ):
        done_episodes: List[Any] = []
        needs_reset = force_reset or num_episodes is not None or self._needs_initial_reset
        if needs_reset:
            initial = self._needs_initial_reset
            for half in self._halves:
                with self._switched_to(half):
                    self._needs_initial_reset = initial  # seeds both halves on the first reset
                    self._reset_envs_and_episodes(explore)
        if num_episodes is not None:
            self._needs_initial_reset = True

        ts = eps = 0
        for half in self._halves:
            self._act_and_send(half, explore, random_actions, ts)
        turn = 0
        while (ts < num_timesteps) if num_timesteps is not None else (eps < num_episodes):
            half = self._halves[turn]
            steps, finished = self._receive(half, explore, done_episodes, num_episodes, eps)
            ts, eps = ts + steps, eps + finished
            if (ts < num_timesteps) if num_timesteps is not None else (eps < num_episodes):
                self._act_and_send(half, explore, random_actions, ts)
            turn = 1 - turn
        # The other half's step is still in flight: take it into its episodes (or, when
        # whole episodes were asked for, drop it: the next call resets every env).
        for half in self._halves:
            if half.in_flight is None:
                continue
            if num_timesteps is not None:
                steps, _ = self._receive(half, explore, done_episodes, None, 0)
                ts += steps
            else:
                half.env.unwrapped.recv()
                half.in_flight = None

        self._done_episodes_for_metrics.extend(done_episodes)
        ongoing = []
        if num_timesteps is not None:
            for half in self._halves:
                continuations = [
                    episode.cut(len_lookback_buffer=self.config.episode_lookback_horizon)
                    for episode in half.episodes
                ]
                for episode in half.episodes:
                    if episode.t == 0:
                        continue
                    episode.validate()
                    self._ongoing_episodes_for_metrics[episode.id_].append(episode)
                    ongoing.append(episode.to_numpy() if self.episodes_to_numpy else episode)
                half.episodes = continuations
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, len(done_episodes))
        return done_episodes + ongoing

    def _act_and_send(self, half: _Half, explore: bool, random_actions: bool, ts: int) -> None:
        """Computes `half`'s actions as RLlib's loop does and starts its env step."""
        with self._switched_to(half):
            if random_actions:
                to_env = {Columns.ACTIONS: self.env.action_space.sample()}
            else:
                to_module, self._cached_to_module = self._cached_to_module, None
                with self.metrics.log_time(RLMODULE_INFERENCE_TIMER):
                    if explore:
                        runners = self.config.num_env_runners or 1
                        t = (self.num_env_steps_sampled_lifetime // runners + ts) * runners
                        to_env = self.module.forward_exploration(to_module, t=t)
                    else:
                        to_env = self.module.forward_inference(to_module)
                to_env = self._module_to_env(
                    rl_module=self.module,
                    batch=to_env,
                    episodes=self._ongoing_episodes,
                    explore=explore,
                    shared_data=self._shared_data,
                    metrics=self.metrics,
                    metrics_prefix_key=(MODULE_TO_ENV_CONNECTOR,),
                )
            actions = to_env.pop(Columns.ACTIONS)
            actions_for_env = to_env.pop(Columns.ACTIONS_FOR_ENV, actions)
            half.env.unwrapped.send(np.asarray(actions_for_env))
        half.in_flight = (actions, to_env)

    def _receive(
        self,
        half: _Half,
        explore: bool,
        done_episodes: List[Any],
        num_episodes: Optional[int],
        eps_so_far: int,
    ) -> tuple:
        """Waits for `half`'s step and adds it to its episodes (RLlib's loop body).

        Returns (env steps taken, episodes finished)."""
        actions, to_env = half.in_flight
        half.in_flight = None
        with self.metrics.log_time(ENV_STEP_TIMER):
            observations, rewards, terminateds, truncateds, infos = half.env.unwrapped.recv()
        infos = half.env._convert_info_to_list(infos)  # what DictInfoToList.step does
        observations, actions = unbatch(observations), unbatch(actions)
        ts = eps = 0
        with self._switched_to(half):
            episodes = self._ongoing_episodes
            started = set()
            for i in range(self.num_envs):
                if not episodes[i].is_reset:
                    episodes[i].add_env_reset(observation=observations[i], infos=infos[i])
                    started.add(i)
                else:
                    ts += 1
                    extra = {k: v[i] for k, v in to_env.items()}
                    extra[WEIGHTS_SEQ_NO] = self._weights_seq_no
                    episodes[i].add_env_step(
                        observation=observations[i],
                        action=actions[i],
                        reward=rewards[i],
                        infos=infos[i],
                        terminated=terminateds[i],
                        truncated=truncateds[i],
                        extra_model_outputs=extra,
                    )
            if self.module is not None:
                self._cached_to_module = self._env_to_module(
                    episodes=episodes,
                    batch={},
                    explore=explore,
                    rl_module=self.module,
                    shared_data=self._shared_data,
                    metrics=self.metrics,
                    metrics_prefix_key=(ENV_TO_MODULE_CONNECTOR,),
                    **{
                        Columns.OBS: observations,
                        Columns.ACTIONS: actions,
                        Columns.REWARDS: rewards,
                        Columns.INFOS: infos,
                        Columns.TERMINATEDS: terminateds,
                        Columns.TRUNCATEDS: truncateds,
                    },
                )
            for i in range(self.num_envs):
                event = "on_episode_start" if i in started else "on_episode_step"
                self._make_on_episode_callback(event, i, episodes)
                if not episodes[i].is_done:
                    continue
                eps += 1
                self._make_on_episode_callback("on_episode_end", i, episodes)
                done_episodes.append(episodes[i].to_numpy() if self.episodes_to_numpy else episodes[i])
                self._new_episode(i, episodes)
                if num_episodes is not None and eps_so_far + eps >= num_episodes:
                    break
        return ts, eps
