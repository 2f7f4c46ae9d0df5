"""PPO learners: reward clipping for Atari, and I2A's distillation + imagination reuse.

The I2A learner adds to PPO (or its A2C preset):
- the distillation loss: cross-entropy from the I2A policy pi (held fixed) to the
  rollout policy pi_hat, -sum_a pi(a|o) log pi_hat(a|o), times `distillation_coeff`;
- imagination computed once per train batch, without gradients, by a learner
  connector piece, and reused by every epoch and minibatch; for models whose views
  are maps or vectors the EnvRunners ship what they imagined with the episodes and the
  piece imagines only RLlib's appended bootstrap rows. Staleness: within one
  update the rollout policy keeps the weights it had when the batch arrived, exactly
  like PPO's behaviour policy; the next batch imagines with the updated weights. With
  a sampling rollout policy, the imagined actions are the ones the EnvRunner sampled
  (its noise travels with the batch), so the first minibatch of every update
  reproduces the behaviour policy's logits (probability ratio 1; tested in
  tests/test_update_correctness.py).
- the environment model stays frozen: it is in no optimizer.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from i2a_rllib.columns import ROLLOUT_POLICY_LOGITS
from i2a_rllib.rl_module import I2ARLModule

# Metric keys (per module, under `learners/<module_id>/`).
DISTILLATION_LOSS_KEY = "distillation_loss"
ROLLOUT_POLICY_AGREEMENT_KEY = "rollout_policy_agreement"
IMAGINATION_TIME_SHARE_KEY = "imagination_time_share"
IMAGINATION_SECONDS_KEY = "imagination_seconds"


class ClipRewards(ConnectorV2):
    """Learner connector piece: rewards -> sign(rewards), just before GAE.

    Clipping here (and not in the env) keeps the unclipped game score in the episodes,
    so RLlib's `episode_return_mean` is the score users know.
    """

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        for module_batch in batch.values():
            rewards = module_batch[Columns.REWARDS]
            module_batch[Columns.REWARDS] = (
                torch.sign(rewards) if torch.is_tensor(rewards) else np.sign(rewards)
            )
        return batch


class PrecomputeImagination(ConnectorV2):
    """Learner connector piece: adds each I2A module's imagination to the train batch
    (or completes what the EnvRunners shipped: `I2ARLModule.precompute_imagination`).

    Runs once per `Learner.update()`, before GAE (whose value pass then reuses it).
    `autocast`: imagine under this bfloat16 autocast context (the learner's `bf16`
    precision); the columns are stored in float32 all the same.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, autocast=None, **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.seconds = 0.0
        self._autocast = autocast or contextlib.nullcontext

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        start = time.perf_counter()
        for module_id, module_batch in batch.items():
            module = rl_module[module_id]
            module = module.unwrapped() if hasattr(module, "unwrapped") else module
            if isinstance(module, I2ARLModule):
                with self._autocast():
                    columns = module.precompute_imagination(module_batch)
                module_batch.update(
                    {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in columns.items()}
                )
        self.seconds += time.perf_counter() - start
        return batch


def _insert_before_gae(learner, piece: ConnectorV2) -> None:
    pipeline = learner._learner_connector
    if pipeline is None:
        return
    if any(isinstance(c, GeneralAdvantageEstimation) for c in pipeline.connectors):
        pipeline.insert_before(GeneralAdvantageEstimation, piece)
    else:
        pipeline.append(piece)


# learner_config_dict["precision"]: "fp32", or "bf16" for bfloat16 autocast of the
# forward passes and the imagination (losses, backward and weights stay float32).
PRECISIONS = ("fp32", "bf16")


def learner_precision(learner_config_dict: Dict[str, Any]) -> str:
    """The learner's precision setting, checked ("fp32" when unset)."""
    precision = learner_config_dict.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(
            f"learner_config_dict['precision']={precision!r}: use one of {list(PRECISIONS)}."
        )
    return precision


class ClippedRewardPPOTorchLearner(PPOTorchLearner):
    """PPO that clips rewards to their sign when `learner_config_dict['clip_rewards']`,
    runs its forward passes in bfloat16 autocast when
    `learner_config_dict['precision'] == 'bf16'` (GPUs; CPUs with AMX), steps fused Adam
    over its trainable tensors and checks their gradients for nan/inf once per step."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        self._bf16 = learner_precision(self.config.learner_config_dict) == "bf16"
        if self.config.learner_config_dict.get("clip_rewards", False):
            _insert_before_gae(self, ClipRewards())

    def _autocast(self, enabled: bool = True):
        return torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self._bf16 and enabled)

    @override(PPOTorchLearner)
    def _make_batch_if_necessary(self, training_data):
        # The learner connectors (GAE's value pass over the whole batch, imagination)
        # need no gradients; without this they would keep a graph of the full batch.
        with torch.no_grad():
            return super()._make_batch_if_necessary(training_data)

    @override(PPOTorchLearner)
    def _uncompiled_update(self, batch, **kwargs):
        with self._autocast():
            return super()._uncompiled_update(batch, **kwargs)

    @override(PPOTorchLearner)
    def compute_losses(self, *, fwd_out, batch):
        # Losses in float32: a bfloat16 log-probability ratio would be quantised at
        # ~0.4%, a fair share of PPO's clip range; the value head reads float32 features.
        if not self._bf16:
            return super().compute_losses(fwd_out=fwd_out, batch=batch)
        as_float = lambda v: v.float() if torch.is_tensor(v) and v.is_floating_point() else v  # noqa: E731
        fwd_out = {m: {k: as_float(v) for k, v in out.items()} for m, out in fwd_out.items()}
        with self._autocast(enabled=False):
            return super().compute_losses(fwd_out=fwd_out, batch=batch)

    @override(PPOTorchLearner)
    def compute_gradients(self, loss_per_module, **kwargs):
        # Autocast covers forward passes only, as torch recommends: not the backward.
        with self._autocast(enabled=False):
            return super().compute_gradients(loss_per_module, **kwargs)

    @override(PPOTorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        # RLlib's Adam, over trainable parameters only: I2A's frozen environment model
        # (and a frozen, restored rollout policy) must not be in any optimizer. Fused:
        # one kernel per tensor instead of ~10 ops (torch's own default on a CPU is a
        # loop of them); the same arithmetic up to float rounding, ~1 ms less per
        # Sokoban minibatch step on a CPU (docs/benchmarks.md). foreach where fused
        # kernels do not exist.
        module = self._module[module_id]
        params = [p for p in self.get_parameters(module) if p.requires_grad]
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
        self.register_optimizer(
            module_id=module_id,
            optimizer=torch.optim.Adam(params, fused=fused, foreach=not fused),
            params=params,
            lr_or_lr_schedule=config.lr,
        )

    @staticmethod
    @override(PPOTorchLearner)
    def _set_optimizer_lr(optimizer, lr) -> None:
        # RLlib first hands an lr schedule's value as a 0-dim tensor, which foreach Adam
        # (the fallback where fused kernels do not exist) refuses; single-tensor Adam
        # reads such an lr with .item(): the same number.
        PPOTorchLearner._set_optimizer_lr(optimizer, float(lr))

    @override(PPOTorchLearner)
    def apply_gradients(self, gradients_dict) -> None:
        # RLlib checks every gradient tensor for nan/inf twice per step, one isfinite
        # and one host sync per tensor each time (~6% of a Sokoban I2A update on a
        # CPU). One fused norm per tensor and a single check say the same when all are
        # finite; otherwise (or with grad scalers or lr schedulers) RLlib's own path
        # runs, with its warnings and zeroed gradients.
        grads = [g for g in gradients_dict.values() if g is not None]
        if (
            self._grad_scalers is not None
            or self._lr_scheduler_classes is not None
            or not grads
            or not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())
        ):
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()


class I2APPOTorchLearner(ClippedRewardPPOTorchLearner):
    """PPO/A2C learner for `I2ARLModule`: distillation loss, imagination reuse."""

    @override(ClippedRewardPPOTorchLearner)
    def build(self) -> None:
        super().build()
        self._imagination_piece = PrecomputeImagination(autocast=self._autocast)
        _insert_before_gae(self, self._imagination_piece)
        self._update_started = None

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config,
        batch: Dict[str, Any],
        fwd_out: Dict[str, TensorType],
    ) -> TensorType:
        total_loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        module = self.module[module_id].unwrapped()
        if ROLLOUT_POLICY_LOGITS not in fwd_out:
            return total_loss
        distillation, agreement = distillation_loss(
            fwd_out[Columns.ACTION_DIST_INPUTS],
            fwd_out[ROLLOUT_POLICY_LOGITS],
            batch.get(Columns.LOSS_MASK),
        )
        self.metrics.log_dict(
            {DISTILLATION_LOSS_KEY: distillation, ROLLOUT_POLICY_AGREEMENT_KEY: agreement},
            key=module_id,
            window=1,
        )
        coeff = getattr(config, "distillation_coeff", 0.0)
        if getattr(module, "rollout_policy_is_trainable", True) and coeff > 0:
            total_loss = total_loss + coeff * distillation
        return total_loss

    @override(PPOTorchLearner)
    def before_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        self._update_started = time.perf_counter()
        self._imagination_piece.seconds = 0.0

    @override(PPOTorchLearner)
    def after_gradient_based_update(self, *, timesteps: Dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        if self._update_started is None:
            return
        elapsed = max(time.perf_counter() - self._update_started, 1e-9)
        for module_id in self.module.keys():
            self.metrics.log_dict(
                {
                    IMAGINATION_SECONDS_KEY: self._imagination_piece.seconds,
                    IMAGINATION_TIME_SHARE_KEY: self._imagination_piece.seconds / elapsed,
                },
                key=module_id,
                window=1,
            )


def distillation_loss(policy_logits, rollout_logits, mask=None):
    """Cross-entropy -sum_a pi(a|o) log pi_hat(a|o), pi held fixed; and argmax agreement.

    Minimising it moves pi_hat towards pi (not the reverse, and not away from it: two
    public I2A implementations get this sign wrong).
    """
    target = F.softmax(policy_logits.detach(), dim=-1)
    per_row = -(target * F.log_softmax(rollout_logits, dim=-1)).sum(-1)
    agree = (policy_logits.argmax(-1) == rollout_logits.argmax(-1)).float()
    if mask is not None:
        mask = mask.float()
        denominator = mask.sum().clamp(min=1.0)
        return (per_row * mask).sum() / denominator, (agree * mask).sum() / denominator
    return per_row.mean(), agree.mean()
