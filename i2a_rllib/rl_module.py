"""RLlib RLModules (new API stack): the model-free baseline and I2A.

Thin glue: the networks live in `i2a_rllib.models` (pure torch); this file maps RLlib
batches (`Columns`) onto them. Both modules take uint8 (C, H, W) frames as they come
from the vector env and scale them inside the network, or flat float vectors (CartPole)
as they are; other spaces are refused (`i2a_rllib.spaces`).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, Optional

import torch

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override

from i2a_rllib.columns import (
    IMAGINATION_COLUMNS,
    IMAGINED_REWARDS,
    IMAGINED_VIEWS,
    MODEL_STATE,
    ROLLOUT_NOISE,
    ROLLOUT_POLICY_LOGITS,
)
from i2a_rllib.imagination_settings import (
    DEFAULT_I2A_MODEL_CONFIG,
    check_imagination_settings,
)
from i2a_rllib.models.env_models import RULE_KINDS, resolve_env_model, resolve_kind
from i2a_rllib.models.distinct import OutputMemo
from i2a_rllib.models.i2a import I2ANetwork
from i2a_rllib.models.imagination import Imagination, resolve_rollout_depth
from i2a_rllib.models.imagination_memo import MEMO_MAX_STATE_VALUES
from i2a_rllib.models.model_free import ActorCriticHeads, model_free_trunk
from i2a_rllib.spaces import check_agent_spaces

logger = logging.getLogger(__name__)

# Rows per chunk when a whole train batch goes through the network without gradients
# (imagination precomputation, GAE's value pass): bounds peak memory.
NO_GRAD_CHUNK_SIZE = 512
# Imagined frames (uint8) travel with the episodes up to this many bytes per step: the
# spatial model's maps already do at 32 KB.
SHIPPED_FRAMES_LIMIT_BYTES = 64 * 1024


class _DropRLlibInternalDeprecation(logging.Filter):
    """Drops the `RLModule(config=...)` deprecation warning RLlib 2.60 logs for every
    module it builds: its own `RLModule.__init__` creates the deprecated RLModuleConfig
    (ray-project/ray#51630), whichever constructor the caller used; ours use the current
    keyword constructor."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "RLModule(config=[RLModuleConfig object])" not in record.getMessage()


logging.getLogger("ray._common.deprecation").addFilter(_DropRLlibInternalDeprecation())


class _NoModeToggleMixin:
    """Skips TorchRLModule's eval()/train() round trip on every call, and explores
    through an `OutputMemo` where that is exact.

    The stock `forward_inference`/`forward_exploration` switch the whole module tree to
    eval mode and back each call (~30 attribute writes per submodule walk, ~4% of an
    EnvRunner's sampling time here), and `forward_train` walks it into train mode on
    every minibatch (I2A's 85 submodules: ~0.5 ms per step). These networks have no
    dropout or batch norm, so the mode only has to be right, not toggled: set once, kept.

    Exploring over small boards (uint8, at most MEMO_MAX_STATE_VALUES values), where
    the module's exploring output is the policy's logits alone and a function of the
    observation alone (`_explores_by_observation_alone`), each distinct board's logits
    are computed once per weight version (between two weight syncs) and read back for
    its repeats: an EnvRunner's round on Sokoban 5x5 meets ~130-240 distinct boards in
    1,024 steps.
    """

    _exploring_memo: Optional[OutputMemo] = None

    def forward_inference(self, batch, **kwargs):
        if self.training:
            self.eval()
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch, **kwargs):
        if self.training:
            self.eval()
        obs = batch.get(Columns.OBS)
        if not (
            len(batch) == 1
            and obs is not None
            and obs.dtype == torch.uint8
            and math.prod(obs.shape[1:]) <= MEMO_MAX_STATE_VALUES
            and self._explores_by_observation_alone()
        ):
            return self._forward_exploration(batch, **kwargs)
        if self._exploring_memo is None:
            self._exploring_memo = OutputMemo(self)

        def logits(rows):
            return self._forward_exploration({Columns.OBS: rows}, **kwargs)[Columns.ACTION_DIST_INPUTS]

        return {Columns.ACTION_DIST_INPUTS: self._exploring_memo(obs, logits)}

    def forward_train(self, batch, **kwargs):
        if not self.training:
            self.train()
        return RLModule.forward_train(self, batch, **kwargs)

    def _explores_by_observation_alone(self) -> bool:
        """Whether `_forward_exploration` returns the logits alone, fixed by the
        observation and the weights (no noise drawn, nothing else shipped)."""
        raise NotImplementedError


class NatureCNNRLModule(_NoModeToggleMixin, TorchRLModule, ValueFunctionAPI):
    """The model-free baseline: Nature CNN (32-8x8/4, 64-4x4/2, 64-3x3/1, 512) + pi/V.

    Over flat vectors (CartPole) the trunk is an MLP of two tanh layers of `hidden_size`
    instead (`model_free_trunk`; the name stays for the checkpoints that carry it).
    model_config: {"hidden_size": 512}.
    """

    @override(TorchRLModule)
    def setup(self):
        obs_shape, num_actions = check_agent_spaces(
            self.observation_space, self.action_space, "NatureCNNRLModule"
        )
        self.trunk = model_free_trunk(obs_shape, int(self.model_config.get("hidden_size", 512)))
        self.heads = ActorCriticHeads(self.trunk.output_size, num_actions)

    def _explores_by_observation_alone(self) -> bool:
        return True

    @override(TorchRLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.heads.logits(self.trunk(batch[Columns.OBS]))}

    @override(TorchRLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        features = self.trunk(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.heads.logits(features),
            Columns.EMBEDDINGS: features,
        }

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None):
        if embeddings is None:
            embeddings = self.trunk(batch[Columns.OBS])
        return self.heads.values(embeddings)


def resolve_i2a_model_config(model_config: Dict[str, Any], obs_shape) -> Dict[str, Any]:
    """Merges defaults, resolves "auto" and checks every setting.

    Raises:
        ValueError: naming the setting and the fix, for any bad value.
    """
    config = {**DEFAULT_I2A_MODEL_CONFIG}
    config.update({k: v for k, v in (model_config or {}).items() if k in DEFAULT_I2A_MODEL_CONFIG})
    check_imagination_settings(config, lambda key, value: f"model_config[{key!r}]={value!r}")
    metadata = config["env_model_metadata"]
    path = config["env_model_checkpoint"]
    if metadata is None and path and os.path.isdir(path):
        from i2a_rllib.checkpoints import read_env_model_metadata

        metadata = config["env_model_metadata"] = read_env_model_metadata(path)
    config["env_model"] = resolve_kind(config["env_model"], obs_shape, metadata)
    config["rollout_depth"] = resolve_rollout_depth(config["rollout_depth"], config["env_model"])
    return config


# Env models whose weights (and so imagined maps) the module keeps channels-last: I2A's
# forward ran 1.13-1.23x faster so on an AMD EPYC host (oneDNN), ~1.0x on an Intel one,
# with the same results; with the latent model 0.92-0.96x (benchmarks/imagination.py,
# docs/benchmarks.md). The env model is frozen, so its memory layout is free.
CHANNELS_LAST_KINDS = ("spatial", "pixel")


class I2ARLModule(_NoModeToggleMixin, TorchRLModule, ValueFunctionAPI):
    """Imagination-Augmented Agent as an RLlib RLModule (see `I2ANetwork`).

    Outputs: policy logits (`ACTION_DIST_INPUTS`); in training also the features for
    `compute_values` (`EMBEDDINGS`) and the rollout policy's logits on the real
    observations (`ROLLOUT_POLICY_LOGITS`, for distillation; not at rollout depth 1,
    where no rollout policy acts and none is trained). When exploring with a
    sampling rollout policy it also returns the uniform noise that drove the imagined
    actions (`ROLLOUT_NOISE`), so the learner can replay exactly the same imagination.

    The environment model is frozen: no gradient reaches it and it is in no optimizer.
    Its weights come from `model_config['env_model_checkpoint']`.
    """

    @override(TorchRLModule)
    def setup(self):
        obs_shape, num_actions = check_agent_spaces(
            self.observation_space, self.action_space, "I2ARLModule"
        )
        config = resolve_i2a_model_config(self.model_config, obs_shape)
        self.i2a_config = config
        env_model = resolve_env_model(
            config["env_model"],
            obs_shape,
            num_actions,
            checkpoint=config["env_model_checkpoint"],
            metadata=config["env_model_metadata"],
            hparams=config["env_model_hparams"],
            frame_channels=config["frame_channels"],
            reward_values=config["reward_values"],
        )
        if env_model.kind in CHANNELS_LAST_KINDS:
            env_model.to(memory_format=torch.channels_last)
        if config["env_model_checkpoint"] is None and env_model.kind not in RULE_KINDS:
            logger.warning(
                "I2ARLModule: no env_model_checkpoint given; the %s environment model is "
                "untrained, so imagination carries little information. Pretrain one "
                "with `i2a collect` + `i2a pretrain`.",
                env_model.kind,
            )
        self.net = I2ANetwork(
            env_model,
            rollout_depth=config["rollout_depth"],
            action_choice=config["rollout_action_choice"],
            snap_frames=config["snap_imagined_frames"],
            imagination_precision=config["imagination_precision"],
            model_free_hidden=config["model_free_hidden"],
            rollout_policy_hidden=config["rollout_policy_hidden"],
            encoder_feature_size=config["encoder_feature_size"],
            encoder_hidden=config["encoder_hidden"],
            head_hidden=config["head_hidden"],
            imagined_frame_conv_channels=config["imagined_frame_conv_channels"],
        )
        if config["rollout_policy_checkpoint"] is not None:
            self._use_frozen_rollout_policy(
                config["rollout_policy_checkpoint"], config["frozen_policy_hidden"]
            )
        # One imagined step needs no rollout policy (each rollout's only action is its
        # own), so at depth 1 it is neither run nor trained: no work nothing reads.
        self.rollout_policy_acts = config["rollout_depth"] > 1
        # Parameters no loss reaches must not ask for gradients: DDP fails on them.
        self.rollout_policy_is_trainable = (
            config["train_rollout_policy"]
            and config["rollout_policy_checkpoint"] is None
            and self.rollout_policy_acts
        )
        self.net.rollout_policy.requires_grad_(self.rollout_policy_is_trainable)
        self._compiled_explore = None

    # --- Building -------------------------------------------------------------------
    def _use_frozen_rollout_policy(self, path: str, hidden_size: Optional[int]) -> None:
        """The seed's stage 2: a pretrained model-free policy, frozen, acts in imagination.

        Its weights are read from `path` while it exists; a restored agent whose
        `path` is gone rebuilds the network (`hidden_size`) and gets the weights from
        its own state, like every other parameter.
        """
        if not self.net.env_model.states_are_frames:
            raise ValueError(
                "model_config['rollout_policy_checkpoint'] gives a frame-based model-free "
                f"policy, but the {self.net.env_model.kind!r} environment model imagines "
                "latent states. Use env_model='pixel' (or a frame 'copy'), or drop "
                "rollout_policy_checkpoint to distill the rollout policy (the paper)."
            )
        if os.path.isdir(path):
            source = RLModule.from_checkpoint(path)
            if not isinstance(source, NatureCNNRLModule):
                raise ValueError(
                    f"rollout_policy_checkpoint={path!r} holds a {type(source).__name__}; "
                    "it must be an RLModule checkpoint of the model-free baseline "
                    "(NatureCNNRLModule), e.g. <algo checkpoint>/learner_group/learner/"
                    "rl_module/default_policy."
                )
        elif hidden_size is not None:
            source = NatureCNNRLModule(
                observation_space=self.observation_space,
                action_space=self.action_space,
                model_config={"hidden_size": hidden_size},
            )
        else:
            raise FileNotFoundError(
                f"model_config['rollout_policy_checkpoint']={path!r} does not exist. Pass "
                "the checkpoint directory of a trained PPO baseline."
            )
        self.net.rollout_policy.replace_network(source.trunk, source.heads.policy)

    # --- Imagination reuse ----------------------------------------------------------
    @property
    def ships_imagination(self) -> bool:
        """Whether exploring returns the imagination (`IMAGINED_VIEWS`/`_REWARDS`) for
        the episodes to carry to the learner, which then imagines only RLlib's
        bootstrap rows: yes for maps or vectors (the shipped spatial model's at its
        default depth 2: 8 float16 maps of 8 x 10 x 10, 13 KB per step; at depth 5,
        32 KB against 12 s of imagination per 1024-step Breakout batch on a CPU
        learner) and for frames up to
        SHIPPED_FRAMES_LIMIT_BYTES per step (Sokoban 5x5: 25 boards of 175 bytes);
        no for larger frames (Breakout's 20 frames of 84 x 84 would be 141 KB per step:
        the learner imagines those again from the shipped noise) and for models
        that imagine no change (one view repeated: the learner's imagination is a
        broadcast, no model call), nor where the memo keeps every imagined step (depth
        1 over small boards: the learner's imagination is a lookup per row, cheaper
        than the EnvRunner's connectors carrying A frames with every step)."""
        model = self.net.env_model
        imagination = self.net.imagination
        if model.imagines_no_change or (imagination.memo is not None and imagination.rollout_depth == 1):
            return False
        if not model.views_are_frames:
            return True
        views_per_step = model.num_actions * imagination.rollout_depth
        return views_per_step * math.prod(model.view_shape) <= SHIPPED_FRAMES_LIMIT_BYTES

    @torch.no_grad()
    def precompute_imagination(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Imagination for a whole train batch, once, in chunks, without gradients.

        The learner stores the result as batch columns, so every epoch and minibatch
        reuses it instead of calling the environment model again. Imagination the
        EnvRunners shipped is kept (the same weights and noise give the same result);
        only the rows they did not act on are imagined: the bootstrap step RLlib appends
        to each episode chunk (`LOSS_MASK` False), which carries a copy of the previous
        step's outputs.
        """
        obs, noise = batch[Columns.OBS], batch.get(ROLLOUT_NOISE)
        count = obs.shape[0]
        states = None
        if not self.net.env_model.states_are_frames:
            # Latent states save the encoder pass in every minibatch; frame states are
            # the observations themselves.
            states = torch.cat(
                [
                    self.net.model_state(obs[start : start + NO_GRAD_CHUNK_SIZE])
                    for start in range(0, count, NO_GRAD_CHUNK_SIZE)
                ]
            )
        if IMAGINED_VIEWS in batch:
            views, rewards = batch[IMAGINED_VIEWS].clone(), batch[IMAGINED_REWARDS].clone()
            not_acted_on = (
                ~batch[Columns.LOSS_MASK].bool()
                if Columns.LOSS_MASK in batch
                else torch.zeros(count, dtype=torch.bool, device=obs.device)
            )
            to_imagine = not_acted_on.nonzero().flatten()
        else:
            views = rewards = None
            to_imagine = torch.arange(count, device=obs.device)
        for start in range(0, to_imagine.shape[0], NO_GRAD_CHUNK_SIZE):
            rows = to_imagine[start : start + NO_GRAD_CHUNK_SIZE]
            state = states[rows] if states is not None else self.net.model_state(obs[rows])
            imagination = self.net.imagination(state, None if noise is None else noise[rows])
            if views is None:
                views = imagination.views.new_empty((count, *imagination.views.shape[1:]))
                rewards = imagination.rewards.new_empty((count, *imagination.rewards.shape[1:]))
            views[rows] = imagination.views.to(views.dtype)
            rewards[rows] = imagination.rewards.to(rewards.dtype)
        columns = {IMAGINED_VIEWS: views, IMAGINED_REWARDS: rewards}
        if states is not None:
            columns[MODEL_STATE] = states
        return columns

    def _imagination(self, batch: Dict[str, Any]) -> Imagination:
        if IMAGINED_VIEWS in batch:
            return Imagination(views=batch[IMAGINED_VIEWS], rewards=batch[IMAGINED_REWARDS])
        return self.net.imagine(batch[Columns.OBS], noise=batch.get(ROLLOUT_NOISE))

    # --- RLModule API ---------------------------------------------------------------
    @override(TorchRLModule)
    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # Noise given with the batch (reproducible evaluation) drives the rollout policy;
        # without it a sampling rollout policy draws its own.
        with torch.no_grad():
            logits, _ = self.net(batch[Columns.OBS], noise=batch.get(ROLLOUT_NOISE))
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _imagine_and_act(self, obs: torch.Tensor, noise: Optional[torch.Tensor]):
        """Policy logits and the imagination they were computed from."""
        imagination = self.net.imagine(obs, noise)
        logits, _ = self.net(obs, imagination=imagination)
        return logits, imagination.views, imagination.rewards

    def _explore(self, obs: torch.Tensor, noise: Optional[torch.Tensor]):
        """`_imagine_and_act`, through torch.compile with RLlib's `torch_compile_worker`:
        exploring is many small convolutions and element-wise ops per imagined step,
        which compiling fuses (docs/benchmarks.md). Compiled at the first call, so a
        learner, which never explores, compiles nothing. The learner's own passes stay
        eager: its log-probabilities differ from the runner's by rounding (~1e-10 in
        the logits), as they do between a GPU learner and CPU runners."""
        if not self.i2a_config["torch_compile_worker"]:
            return self._imagine_and_act(obs, noise)
        if self._compiled_explore is None:
            self._compiled_explore = torch.compile(
                self._imagine_and_act,
                backend=self.i2a_config["torch_compile_worker_dynamo_backend"],
                mode=self.i2a_config["torch_compile_worker_dynamo_mode"],
            )
        return self._compiled_explore(obs, noise)

    def _explores_by_observation_alone(self) -> bool:
        # Compiled exploration keeps its own batch shapes (the memo's would recompile).
        return (
            not self.net.imagination.draws_noise
            and not self.ships_imagination
            and not self.i2a_config["torch_compile_worker"]
        )

    @override(TorchRLModule)
    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        obs = batch[Columns.OBS]
        noise = self.net.imagination.sample_noise(obs.shape[0], device=obs.device)
        with torch.no_grad():
            logits, views, rewards = self._explore(obs, noise)
        out = {Columns.ACTION_DIST_INPUTS: logits}
        if noise is not None:
            out[ROLLOUT_NOISE] = noise
        if self.ships_imagination:
            out[IMAGINED_VIEWS] = views
            out[IMAGINED_REWARDS] = rewards
        return out

    @override(TorchRLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        obs = batch[Columns.OBS]
        logits, features = self.net(obs, imagination=self._imagination(batch))
        out = {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: features}
        if self.rollout_policy_acts:
            out[ROLLOUT_POLICY_LOGITS] = self.net.rollout_policy_logits(obs, batch.get(MODEL_STATE))
        return out

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None):
        if embeddings is not None:
            return self.net.values(embeddings)
        if torch.is_grad_enabled():
            _, features = self.net(batch[Columns.OBS], imagination=self._imagination(batch))
            return self.net.values(features)
        # Whole-batch value pass (GAE): in chunks, to bound memory.
        values = []
        for start in range(0, batch[Columns.OBS].shape[0], NO_GRAD_CHUNK_SIZE):
            chunk = {
                k: v[start : start + NO_GRAD_CHUNK_SIZE]
                for k, v in batch.items()
                if k == Columns.OBS or k in IMAGINATION_COLUMNS
            }
            _, features = self.net(chunk[Columns.OBS], imagination=self._imagination(chunk))
            values.append(self.net.values(features))
        return torch.cat(values)
