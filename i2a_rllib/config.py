"""Algorithm configs: `I2AConfig` (PPO + an `.imagination()` section, A2C preset) and
the model-free PPO baseline, both over the project's vectorized environments.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, Optional, Tuple, Union

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils import force_list
from ray.rllib.utils.annotations import override

from i2a_rllib.envs import rllib_env_settings
from i2a_rllib.imagination_settings import check_imagination_settings

# PPO on Atari as in Schulman et al. (2017) and CleanRL's `ppo_atari.py`: 8 envs x 128
# steps, 4 epochs of 4 minibatches, clip 0.1, entropy 0.01, value coeff 0.5, gradient
# norm 0.5, gamma 0.99, GAE lambda 0.95, lr 2.5e-4 annealed to 0 over 10M env steps.
ATARI_PPO_SETTINGS: Dict[str, Any] = dict(
    lr=[[0, 2.5e-4], [10_000_000, 0.0]],
    gamma=0.99,
    lambda_=0.95,
    clip_param=0.1,
    vf_clip_param=10.0,
    vf_loss_coeff=0.5,
    entropy_coeff=0.01,
    grad_clip=0.5,
    grad_clip_by="global_norm",
    train_batch_size_per_learner=1024,
    minibatch_size=256,
    num_epochs=4,
    use_kl_loss=False,
    kl_coeff=0.0,
)

# PPO on flat-vector control tasks (CartPole), after RLlib's tuned CartPole example (lr
# 3e-4, 6 epochs, value coefficient 0.01 because pi and V share their layers and the
# value error of returns up to ~100 would otherwise swamp the policy gradient): batches
# of 2000, minibatches of 128, constant lr, no entropy bonus.
CLASSIC_CONTROL_PPO_SETTINGS: Dict[str, Any] = dict(
    lr=3e-4,
    gamma=0.99,
    lambda_=0.95,
    clip_param=0.2,
    vf_loss_coeff=0.01,
    entropy_coeff=0.0,
    grad_clip=0.5,
    grad_clip_by="global_norm",
    train_batch_size_per_learner=2000,
    minibatch_size=128,
    num_epochs=6,
    use_kl_loss=False,
    kl_coeff=0.0,
)

# Value-loss clamp for envs whose rewards are not clipped: squared errors up to 1e6
# (|error| up to 1,000) keep their gradient.
UNCLIPPED_REWARDS_VF_CLIP = 1e6

# A2C (Mnih et al. 2016) through PPO: exactly one gradient step over the whole train
# batch. One epoch and *no* minibatch size make RLlib iterate the batch once as a whole
# (its MiniBatchDummyIterator), whatever its length; a minibatch size equal to the
# train batch size would not: RLlib appends one bootstrap row per episode chunk, the
# batch outgrows the minibatch and the cyclic iterator takes a second, off-policy step.
# At that single step the probability ratio is 1 (the weights are the behaviour
# policy's), so the clipped surrogate's gradient is the policy gradient A * grad log pi;
# huge clip values switch the value clipping off and no KL term is added. lambda=1
# turns GAE into n-step returns. Remaining differences: RLlib standardises advantages
# per batch (A2C does not) and uses Adam (A2C: RMSProp).
A2C_SETTINGS: Dict[str, Any] = dict(
    lr=7e-4,
    gamma=0.99,
    lambda_=1.0,
    num_epochs=1,
    minibatch_size=None,
    clip_param=1e9,
    vf_clip_param=1e9,
    use_kl_loss=False,
    kl_coeff=0.0,
    vf_loss_coeff=0.5,
    entropy_coeff=0.01,
    grad_clip=0.5,
    grad_clip_by="global_norm",
)


def configure_environment(
    config: PPOConfig,
    env_id: str,
    *,
    env_config: Optional[Dict[str, Any]] = None,
    num_envs_per_env_runner: Optional[int] = None,
    clip_rewards: Optional[bool] = None,
    overlap_sampling: bool = False,
) -> PPOConfig:
    """Points `config` at one of the project's vectorized environments.

    Atari ids ('ALE/Breakout-v5', any ALE game) run on ale-py's C++ AtariVectorEnv;
    rewards are clipped for the update only (the reported return is the game score).
    Envs with flat observations (CartPole) get CLASSIC_CONTROL_PPO_SETTINGS in place of
    the Atari recipe; settings given after this call override both.
    `overlap_sampling` runs `i2a_rllib.env_runner.OverlappingEnvRunner` (Atari only).
    """
    settings = rllib_env_settings(env_id, env_config)
    if settings["flat_observations"]:
        config.training(**CLASSIC_CONTROL_PPO_SETTINGS)
    config.environment(settings["env"], env_config=settings["env_config"])
    # No sample timeout: RLlib discards a remote EnvRunner's batch that takes longer
    # than `sample_timeout_s` (60 s by default), though its env steps were taken. I2A
    # on a loaded 2-core machine crossed it: an Atari 100k run lost 6 of its 77
    # iterations' samples, uncounted and untrained on. A dead runner still fails fast.
    config.env_runners(
        gym_env_vectorize_mode=settings["gym_env_vectorize_mode"], sample_timeout_s=None
    )
    if num_envs_per_env_runner is not None:
        config.env_runners(num_envs_per_env_runner=num_envs_per_env_runner)
    if overlap_sampling:
        from i2a_rllib.env_runner import OverlappingEnvRunner, check_overlap_sampling

        check_overlap_sampling(settings["env"], config.num_envs_per_env_runner)
        config.env_runners(env_runner_cls=OverlappingEnvRunner)
    clip = settings["clip_rewards"] if clip_rewards is None else clip_rewards
    config.learners(learner_config_dict={**config.learner_config_dict, "clip_rewards": clip})
    if not clip:
        # RLlib clamps the *squared* value error at vf_clip_param (10 in the Atari
        # settings), so errors above sqrt(10) get no gradient. Unclipped rewards such as
        # Sokoban's +10 for a solve are exactly those: on 5x5 Sokoban the critic's
        # explained variance stayed ~0.1 with the clamp and reached ~0.8 without it.
        config.training(vf_clip_param=UNCLIPPED_REWARDS_VF_CLIP)
    return config


def set_torch_threads(
    config: PPOConfig, *, env_runner_threads: Optional[int] = None, learner_threads: Optional[int] = None
) -> PPOConfig:
    """Torch threads for the two phases of synchronous training (None: Ray's setting).

    PPO samples while its learner waits and updates while its EnvRunners wait, but Ray
    gives each actor one torch thread per CPU it reserves. On a 2-core machine with one
    EnvRunner (1 CPU) and the algorithm's process (1 CPU under Tune, where the local
    learner updates), each phase left one core idle. `env_runner_threads` sets every
    remote EnvRunner's threads, `learner_threads` those of the algorithm's process (its
    local learner; remote learners keep theirs). Where the runners or learners already
    fill the cores (a cluster, several runners per machine), leave them None.
    """
    from i2a_rllib.callbacks import env_runner_torch_threads, learner_torch_threads

    for name, value in (("env_runner_threads", env_runner_threads), ("learner_threads", learner_threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if env_runner_threads is not None:
        config.callbacks(
            on_environment_created=_with_callback(
                config.callbacks_on_environment_created, functools.partial(env_runner_torch_threads, env_runner_threads)
            )
        )
    if learner_threads is not None:
        config.callbacks(
            on_algorithm_init=_with_callback(
                config.callbacks_on_algorithm_init, functools.partial(learner_torch_threads, learner_threads)
            )
        )
    return config


def torch_threads_of(config: PPOConfig) -> Tuple[Optional[int], Optional[int]]:
    """(env_runner_threads, learner_threads) that `set_torch_threads` set on `config`
    (None: Ray's setting)."""
    from i2a_rllib.callbacks import env_runner_torch_threads, learner_torch_threads

    found = []
    for functions, setter in (
        (config.callbacks_on_environment_created, env_runner_torch_threads),
        (config.callbacks_on_algorithm_init, learner_torch_threads),
    ):
        values = [f.args[0] for f in force_list(functions) if isinstance(f, functools.partial) and f.func is setter]
        found.append(values[-1] if values else None)
    return found[0], found[1]


def _with_callback(existing, setter: functools.partial) -> list:
    """The event's callback functions with `setter` in place of an earlier setting of the
    same kind: a user's own functions for the event stay and run first."""
    kept = [f for f in force_list(existing) if not (isinstance(f, functools.partial) and f.func is setter.func)]
    return kept + [setter]


def baseline_ppo_config(env_id: str = "ALE/Breakout-v5", **env_kwargs) -> PPOConfig:
    """The model-free baseline: RLlib PPO with the Nature-CNN module, Atari PPO settings."""
    from i2a_rllib.callbacks import ClippedReturnCallback
    from i2a_rllib.learner import ClippedRewardPPOTorchLearner
    from i2a_rllib.rl_module import NatureCNNRLModule

    # The PPO settings first: configure_environment adapts them to the env's rewards.
    config = PPOConfig().training(**ATARI_PPO_SETTINGS)
    configure_environment(config, env_id, **env_kwargs)
    return (
        config.learners(learner_class=ClippedRewardPPOTorchLearner)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=NatureCNNRLModule))
        .callbacks(ClippedReturnCallback)
    )


class I2AConfig(PPOConfig):
    """PPO (or A2C) training the I2A RLModule.

    .. code-block:: python

        from i2a_rllib.config import I2AConfig, configure_environment

        config = configure_environment(I2AConfig(), "ALE/Breakout-v5").imagination(
            env_model="latent",
            env_model_checkpoint="runs/breakout/env_model",
            rollout_depth=5,
        )
        algo = config.build()
        algo.train()
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or I2A)
        # I2A settings (see `imagination()`).
        self.env_model = "auto"
        self.env_model_checkpoint = None
        # Recorded from the checkpoints when they are set (see `imagination()`).
        self.env_model_metadata = None
        self.frozen_policy_hidden = None
        self.rollout_depth = "auto"
        self.rollout_action_choice = "sample"
        self.snap_imagined_frames = False
        self.imagination_precision = "auto"
        self.distillation_coeff = 1.0
        self.rollout_policy_checkpoint = None
        self.imagination_image_interval = 10
        # Where those images go (None: the algorithm's log directory, i.e. the trial's).
        self.imagination_image_dir = None
        self.a2c_preset = False
        # RLlib's default compile backend for workers on Linux, "onnxrt", needs
        # onnxruntime; inductor is what docs/benchmarks.md measured.
        self.torch_compile_worker_dynamo_backend = "inductor"
        self.training(**ATARI_PPO_SETTINGS)
        from i2a_rllib.callbacks import I2ACallbacks

        self.callbacks(I2ACallbacks)

    def imagination(
        self,
        *,
        env_model: Optional[str] = NotProvided,
        env_model_checkpoint: Optional[str] = NotProvided,
        rollout_depth: Optional[Union[int, str]] = NotProvided,
        rollout_action_choice: Optional[str] = NotProvided,
        snap_imagined_frames: Optional[bool] = NotProvided,
        imagination_precision: Optional[str] = NotProvided,
        distillation_coeff: Optional[float] = NotProvided,
        rollout_policy_checkpoint: Optional[str] = NotProvided,
        imagination_image_interval: Optional[int] = NotProvided,
    ) -> "I2AConfig":
        """Sets the I2A-specific settings.

        Args:
            env_model: 'spatial' (default for Atari), 'latent' (a cheap vector-latent
                model), 'pixel' (the paper's frame model,
                default for small boards), 'copy' (the paper's no-model control) or
                'perfect' (Sokoban's exact rules: the paper's perfect-model agent).
            env_model_checkpoint: Directory written by `i2a pretrain`. For 'copy', an
                optional latent checkpoint whose encoder makes the states.
            rollout_depth: Imagined steps per rollout (>= 1; the paper: 5), or 'auto'
                (default): 2 for the spatial models (the Atari default; on Breakout
                0.54 of PPO's speed against 0.47 at depth 3, returns 10.06 ± 2.65
                over 6 seeds at 5e5 steps against 11.28 ± 1.85 (depth 3) and
                10.73 ± 1.40 (depth 5) over 3), the paper's 5 for every other model.
            rollout_action_choice: 'sample' from the rollout policy (the paper) or
                'argmax'.
            snap_imagined_frames: Round a frame model's imagined frames to 0 or 1
                before the rollout encoder reads them: for boards of one-hot channels
                (Sokoban's), whose real frames are exactly that. The encoder embeds
                each distinct frame once, and a learned model's frames otherwise
                differ in a few low bits (docs/benchmarks.md).
            imagination_precision: 'auto' (default), 'fp32' or 'bf16': 'bf16' runs
                the imagined rollouts (env model steps and the rollout policy acting in
                them) in bfloat16 autocast, on EnvRunners and in the learner's
                precompute; the policy, values and losses keep their precision. 'auto'
                is 'bf16' for the spatial models (the Atari default) where they imagine
                on a CPU with AMX (Breakout: 1.09x faster end to end, returns within the
                fp32 seeds' spread over 3 seeds each), 'fp32' elsewhere.
            distillation_coeff: Weight of the distillation loss (>= 0; 0 leaves the
                rollout policy untrained).
            rollout_policy_checkpoint: The seed's stage 2: an RLModule (or Algorithm)
                checkpoint of the model-free baseline whose policy, frozen, acts in
                imagination. Needs a frame-based env model ('pixel' or frame 'copy').
            imagination_image_interval: Every this many iterations, a TensorBoard image
                of the current imagination (0: never).
        """
        for name, value in dict(
            env_model=env_model,
            env_model_checkpoint=env_model_checkpoint,
            rollout_depth=rollout_depth,
            rollout_action_choice=rollout_action_choice,
            snap_imagined_frames=snap_imagined_frames,
            imagination_precision=imagination_precision,
            distillation_coeff=distillation_coeff,
            rollout_policy_checkpoint=rollout_policy_checkpoint,
            imagination_image_interval=imagination_image_interval,
        ).items():
            if value is not NotProvided:
                if name.endswith("_checkpoint") and isinstance(value, str) and "://" not in value:
                    # Absolute now: Tune runs each trial in its own working directory.
                    value = os.path.abspath(value)
                setattr(self, name, value)
        # What a restored agent needs to rebuild its networks is recorded now (a
        # metadata file, a few bytes of the policy checkpoint), so that restoring still
        # works after the checkpoint directories move; the weights are in its state.
        if env_model_checkpoint is not NotProvided:
            self.env_model_metadata = _read_env_model_metadata(self.env_model_checkpoint)
        if rollout_policy_checkpoint is not NotProvided:
            self.frozen_policy_hidden = _frozen_policy_hidden(
                resolve_rl_module_checkpoint(self.rollout_policy_checkpoint)
            )
        return self

    def a2c(self, *, train_batch_size_per_learner: Optional[int] = NotProvided) -> "I2AConfig":
        """A2C preset: PPO settings under which the update is A2C's (see A2C_SETTINGS)."""
        self.training(**A2C_SETTINGS)
        if train_batch_size_per_learner is not NotProvided:
            self.training(train_batch_size_per_learner=train_batch_size_per_learner)
        self.a2c_preset = True
        return self

    @property
    @override(PPOConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "env_model": self.env_model,
            "env_model_checkpoint": _abspath(self.env_model_checkpoint),
            "env_model_metadata": self.env_model_metadata,
            "rollout_depth": self.rollout_depth,
            "rollout_action_choice": self.rollout_action_choice,
            "snap_imagined_frames": self.snap_imagined_frames,
            "imagination_precision": self.imagination_precision,
            "train_rollout_policy": self.distillation_coeff > 0,
            "rollout_policy_checkpoint": resolve_rl_module_checkpoint(
                self.rollout_policy_checkpoint
            ),
            "frozen_policy_hidden": self.frozen_policy_hidden,
            # RLlib 2.60's new-stack EnvRunners do not read these; I2ARLModule does.
            "torch_compile_worker": self.torch_compile_worker,
            "torch_compile_worker_dynamo_backend": self.torch_compile_worker_dynamo_backend,
            "torch_compile_worker_dynamo_mode": self.torch_compile_worker_dynamo_mode,
        }

    @override(PPOConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from i2a_rllib.rl_module import I2ARLModule

        return RLModuleSpec(module_class=I2ARLModule)

    @override(PPOConfig)
    def get_default_learner_class(self):
        from i2a_rllib.learner import I2APPOTorchLearner

        return I2APPOTorchLearner

    @override(PPOConfig)
    def validate(self) -> None:
        super().validate()
        from i2a_rllib.learner import learner_precision

        learner_precision(self.learner_config_dict)
        self.validate_imagination()

    def validate_imagination(self) -> None:
        """Raises early, naming the setting and the fix, for any bad I2A setting.

        Reads no more than the checkpoints' metadata (no weights); a path that is gone
        is accepted where its metadata was recorded (a restored agent carries the
        weights in its own state).
        """
        from i2a_rllib.imagination_settings import ImaginationSettingsError

        settings = {
            "env_model": self.env_model,
            "rollout_depth": self.rollout_depth,
            "rollout_action_choice": self.rollout_action_choice,
            "snap_imagined_frames": self.snap_imagined_frames,
            "imagination_precision": self.imagination_precision,
            "distillation_coeff": self.distillation_coeff,
        }
        try:
            check_imagination_settings(settings, lambda k, v: f"imagination({k}={v!r})")
        except ImaginationSettingsError as e:
            self._value_error(str(e))
        if self.a2c_preset and (self.num_epochs != 1 or self.minibatch_size is not None):
            self._value_error(
                f"The A2C preset takes one gradient step over the whole batch, but "
                f"num_epochs={self.num_epochs} and minibatch_size={self.minibatch_size} "
                "were set after .a2c(). Drop them (A2C needs num_epochs=1 and no "
                "minibatch size), or use PPO."
            )
        if self.env_model == "perfect":
            self._check_perfect_model()
        elif self.env_model_checkpoint is not None:
            self._check_env_model_checkpoint()
        if self.rollout_policy_checkpoint is not None:
            self._check_rollout_policy_checkpoint()

    def _spaces(self):
        from i2a_rllib.envs import probe_spaces

        return probe_spaces(self.env, self.env_config)

    def _check_perfect_model(self) -> None:
        from i2a_rllib.envs import SOKOBAN_ID, env_id_of

        env_id = env_id_of(self.env, self.env_config) if self.env else None
        observation = (self.env_config or {}).get("observation", "channels")
        if env_id != SOKOBAN_ID or observation != "channels":
            self._value_error(
                f"imagination(env_model='perfect') is Sokoban's exact rules: it needs "
                f"{SOKOBAN_ID} with observation 'channels', not {env_id} "
                f"(observation {observation!r}). Use a learned model ('auto') for other "
                "environments."
            )
        if self.env_model_checkpoint is not None:
            self._value_error(
                f"imagination(env_model='perfect') loads no checkpoint, but "
                f"env_model_checkpoint={self.env_model_checkpoint!r} was given: drop it, or "
                "set env_model='auto' to use the learned model it holds."
            )

    def _check_env_model_checkpoint(self) -> None:
        from i2a_rllib.checkpoints import CheckpointError, check_env_model_metadata
        from i2a_rllib.envs import env_id_of

        try:
            metadata = _read_env_model_metadata(self.env_model_checkpoint) or self.env_model_metadata
            if metadata is None:
                raise CheckpointError(
                    f"imagination(env_model_checkpoint={self.env_model_checkpoint!r}) does "
                    "not exist. Pretrain one (`i2a collect` then `i2a pretrain`) and pass "
                    "the directory it printed."
                )
            obs_space, action_space = self._spaces()
            check_env_model_metadata(
                metadata,
                obs_space.shape,
                action_space.n,
                self.env_model,
                self.env_model_checkpoint,
                env_id=env_id_of(self.env, self.env_config) if self.env else None,
            )
        except CheckpointError as e:
            self._value_error(str(e))

    def _check_rollout_policy_checkpoint(self) -> None:
        from i2a_rllib.models.env_models import FRAME_STATE_KINDS, resolve_kind

        path = resolve_rl_module_checkpoint(self.rollout_policy_checkpoint)
        if not os.path.isdir(path) and self.frozen_policy_hidden is None:
            self._value_error(
                f"imagination(rollout_policy_checkpoint={self.rollout_policy_checkpoint!r})"
                " does not exist. Pass the checkpoint directory of a trained PPO "
                "baseline (tuned_examples/ppo_baseline.py --checkpoint-at-end)."
            )
        obs_space, _ = self._spaces()
        kind = resolve_kind(self.env_model, obs_space.shape, self.env_model_metadata)
        with_own_states = kind == "copy" and self.env_model_metadata is not None
        if kind not in FRAME_STATE_KINDS + ("copy",) or with_own_states:
            self._value_error(
                "imagination(rollout_policy_checkpoint=...) restores a frame-based "
                f"model-free policy, but the {kind!r} environment model imagines latent "
                "states. Use env_model='pixel' (or 'copy' without a checkpoint), or drop "
                "rollout_policy_checkpoint to distill the rollout policy (the paper)."
            )


class I2A(PPO):
    """PPO whose default config is `I2AConfig` (so Tune and checkpoints keep I2A settings)."""

    @classmethod
    @override(PPO)
    def get_default_config(cls) -> I2AConfig:
        return I2AConfig()


def _abspath(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else path


def _read_env_model_metadata(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """A checkpoint's metadata, or None while there is no such directory."""
    if not path or not os.path.isdir(path):
        return None
    from i2a_rllib.checkpoints import read_env_model_metadata

    return read_env_model_metadata(path)


def _frozen_policy_hidden(module_checkpoint: Optional[str]) -> Optional[int]:
    """The hidden size of the baseline RLModule a checkpoint holds (None if no such dir)."""
    path = os.path.join(module_checkpoint or "", "class_and_ctor_args.pkl")
    if not os.path.isfile(path):
        return None
    import pickle

    with open(path, "rb") as f:
        _, kwargs = pickle.load(f)["ctor_args_and_kwargs"]
    return int((kwargs.get("model_config") or {}).get("hidden_size", 512))


def resolve_rl_module_checkpoint(path: Optional[str]) -> Optional[str]:
    """An Algorithm checkpoint dir -> the single-agent RLModule checkpoint inside it."""
    if not path:
        return path
    path = os.path.abspath(path)
    nested = os.path.join(path, "learner_group", "learner", "rl_module", "default_policy")
    return nested if os.path.isdir(nested) else path
