"""Environment models behind one interface: `(state, action) -> (next_state, reward)`.

Pure torch, no Ray. One file per model family:

- `pixel` (pixel.py): the paper's and the seed's action-conditional conv
  encoder-decoder over frames; its state is the frame stack. Architectures
  `encoder_decoder` (the seed's) and `dilated` (keeps Atari frames' resolution).
- `spatial` (spatial.py): the Atari default. Frames are encoded once into a small
  feature map that keeps few-pixel objects; an action-conditioned conv transition steps
  the map; trained open loop over several steps; decoded only for losses and pictures.
  Architectures `conv` (spatial.py, the default) and `folded` (folded.py: the state
  keeps the folded frames, which the transition reads with the action).
- `latent` (latent.py): the state-space model of Buesing et al. (2018): encode once,
  step a GRU cell in a latent vector; cheap, but blind on Atari (docs/results.md).
- `mlp` (mlp.py): the seed's residual MLP over flat observation vectors (CartPole):
  next state = state + f(state, action), scaled by statistics of the dataset.
- `copy` (copy_model.py): the paper's control agent; returns its input and reward 0.
  Over a state-encoding model (`base`) it keeps that model's encoder, so an agent and
  its control differ only in the transition.
- `perfect` (perfect.py): Sokoban's own rules in torch (the paper's "I2A + perfect
  environment model"); refused for any other environment.

Every way of getting a model goes through `resolve_env_model` (a kind or "auto", a
checkpoint, or the metadata a checkpoint recorded); `build_env_model` builds an
untrained model of a known kind.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from i2a_rllib.models.env_models.base import (
    ATARI_REWARD_VALUES,
    EnvironmentModel,
    EnvModelLoss,
    default_frame_channels,
    loss_terms,
)
from i2a_rllib.models.env_models.copy_model import CopyEnvModel
from i2a_rllib.models.env_models.folded import FoldedFrameEnvModel
from i2a_rllib.models.env_models.frame_heads import (
    FRAME_HEADS,
    CanvasFrameHead,
    LogitResidualFrameHead,
)
from i2a_rllib.models.env_models.latent import LatentEnvModel
from i2a_rllib.models.env_models.mlp import ResidualMLPEnvModel
from i2a_rllib.models.env_models.perfect import PerfectSokobanModel
from i2a_rllib.models.env_models.pixel import DilatedPixelEnvModel, PixelEnvModel
from i2a_rllib.models.env_models.spatial import SpatialLatentEnvModel
from i2a_rllib.models.model_free import NATURE_CNN_MIN_SIZE

# kind -> {architecture -> class}; the first architecture of a kind is its default.
ENV_MODEL_FAMILIES: Dict[str, Dict[str, type]] = {
    "pixel": {
        PixelEnvModel.architecture: PixelEnvModel,
        DilatedPixelEnvModel.architecture: DilatedPixelEnvModel,
    },
    "latent": {"gru": LatentEnvModel},
    "spatial": {"conv": SpatialLatentEnvModel, FoldedFrameEnvModel.architecture: FoldedFrameEnvModel},
    "mlp": {"residual": ResidualMLPEnvModel},
}
# Kinds with nothing to learn: no checkpoint, no pretraining.
RULE_KINDS = ("copy", "perfect")
ENV_MODEL_KINDS = (*ENV_MODEL_FAMILIES, *RULE_KINDS)
# Kinds whose state is the observation itself (the frame stack, or a flat vector): a
# model-free policy can read it, and a copy control has no encoder to borrow from them.
FRAME_STATE_KINDS = ("pixel", "mlp", "perfect")
_KIND_HELP = (
    "'spatial' is the default for Atari, 'latent' a cheap vector model, 'pixel' the "
    "paper's frame model, 'mlp' the seed's model of flat vectors, 'copy' the paper's "
    "no-model control, 'perfect' Sokoban's exact rules"
)


def default_kind(obs_shape: Sequence[int]) -> str:
    """The "auto" rule: the residual MLP for flat vectors, the spatial-latent model for
    Atari-sized frames, the paper's pixel model for small boards (where it is cheap)."""
    if len(obs_shape) == 1:
        return "mlp"
    return "spatial" if min(obs_shape[1:]) >= NATURE_CNN_MIN_SIZE else "pixel"


def resolve_kind(
    kind: str, obs_shape: Sequence[int], metadata: Optional[Mapping[str, Any]] = None
) -> str:
    """`kind`, or for "auto" the checkpoint's kind, else the default for these frames."""
    if kind != "auto":
        return kind
    return metadata["kind"] if metadata else default_kind(obs_shape)


def _check_kind(kind: str) -> None:
    if kind not in ENV_MODEL_KINDS:
        raise ValueError(
            f"Unknown environment model kind {kind!r}; choose one of "
            f"{list(ENV_MODEL_KINDS)} ({_KIND_HELP})."
        )


def _construct(model_class, obs_shape, num_actions, common, hparams) -> EnvironmentModel:
    """Builds `model_class`; an hparam it does not take is named in the error."""
    accepted = set(inspect.signature(model_class.__init__).parameters) - {
        "self", "obs_shape", "num_actions", *common,
    }
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ValueError(
            f"Unknown hparams {unknown} for {model_class.__name__}; it takes "
            f"{sorted(accepted)}."
        )
    return model_class(obs_shape, num_actions, **common, **hparams)


def build_env_model(
    kind: str,
    obs_shape: Sequence[int],
    num_actions: int,
    *,
    frame_channels: int = 1,
    reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    hparams: Optional[Dict[str, Any]] = None,
) -> EnvironmentModel:
    """Builds an untrained environment model of `kind` (see ENV_MODEL_KINDS).

    `hparams` are the family's architecture settings (`architecture` picks one of a
    family's architectures); for 'copy', `base` is the state-encoding model (or its
    metadata) whose encoder makes the states.
    """
    _check_kind(kind)
    hparams = dict(hparams or {})
    common = dict(frame_channels=frame_channels, reward_values=reward_values)
    if kind == "copy":
        base = hparams.pop("base", None)
        if isinstance(base, dict):
            base = build_env_model_from_metadata(base)
        return CopyEnvModel(obs_shape, num_actions, **common, base=base)
    if kind == "perfect":
        if hparams:
            raise ValueError(f"The perfect Sokoban model takes no hparams, got {sorted(hparams)}.")
        return PerfectSokobanModel(obs_shape, num_actions)
    model_class = env_model_class(kind, hparams.pop("architecture", None))
    return _construct(model_class, obs_shape, num_actions, common, hparams)


def env_model_class(kind: str, architecture: Optional[str] = None) -> type:
    """The class of a trainable kind's `architecture` (None: the kind's default)."""
    _check_kind(kind)
    architectures = ENV_MODEL_FAMILIES.get(kind, {})
    architecture = architecture or next(iter(architectures), None)
    if architecture not in architectures:
        raise ValueError(
            f"Unknown {kind} architecture {architecture!r}; choose one of "
            f"{list(architectures)}."
        )
    return architectures[architecture]


def hparams_of(metadata: Mapping[str, Any]) -> Dict[str, Any]:
    """The architecture settings a checkpoint's metadata describes."""
    hparams = dict(metadata.get("hparams") or {})
    if metadata["kind"] in ("pixel", "latent") and "frame_head" not in hparams:
        hparams["frame_head"] = "gate"  # checkpoints written before the head was a choice
    return hparams


def build_env_model_from_metadata(metadata: Mapping[str, Any]) -> EnvironmentModel:
    """The (untrained) model a checkpoint's metadata describes."""
    hparams = hparams_of(metadata)
    return build_env_model(
        metadata["kind"],
        metadata["obs_shape"],
        metadata["num_actions"],
        frame_channels=metadata["frame_channels"],
        reward_values=metadata["reward_values"],
        hparams=hparams,
    )


def resolve_env_model(
    kind: str,
    obs_shape: Sequence[int],
    num_actions: int,
    *,
    checkpoint: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    hparams: Optional[Dict[str, Any]] = None,
    frame_channels: Optional[int] = None,
    reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    env_id: Optional[str] = None,
) -> EnvironmentModel:
    """The one way to get the environment model an agent asks for.

    Args:
        kind: A kind of ENV_MODEL_KINDS or "auto" (the checkpoint's kind, else
            `default_kind`).
        checkpoint: Directory written by `i2a pretrain`: architecture and weights. With
            kind 'copy', a state-encoding checkpoint whose encoder the control keeps.
        metadata: What such a checkpoint recorded, for when its directory is gone (a
            restored agent): the architecture is rebuilt, the weights come from the
            agent's own state.
        hparams / frame_channels / reward_values: Settings of an untrained model (no
            checkpoint and no metadata).
        env_id: Checked against the game the checkpoint was trained on, if given.

    Raises:
        CheckpointError: A checkpoint that is missing, corrupt or does not fit.
        ValueError: An unknown kind or architecture setting.
    """
    from i2a_rllib.checkpoints import CheckpointError, check_env_model_metadata, load_env_model

    if kind == "perfect" and (checkpoint or metadata):
        raise CheckpointError(
            f"env_model='perfect' is Sokoban's rules and loads no checkpoint, but "
            f"{checkpoint or 'a checkpoint'!r} was given: drop env_model_checkpoint, or set "
            "env_model='auto' to use the learned model it holds."
        )
    base = None
    if checkpoint and os.path.exists(checkpoint):
        base, metadata = load_env_model(checkpoint)
    elif metadata is not None:
        base = build_env_model_from_metadata(metadata)
    elif checkpoint:
        raise CheckpointError(
            f"Environment-model checkpoint {checkpoint!r} does not exist. Pretrain one "
            "(`i2a collect` then `i2a pretrain`) and pass the directory it printed."
        )
    kind = resolve_kind(kind, obs_shape, metadata)
    _check_kind(kind)
    if base is not None:
        check_env_model_metadata(
            metadata, obs_shape, num_actions, kind, checkpoint, env_id=env_id
        )
        if kind != "copy":
            return base
        hparams = {"base": base}
        frame_channels, reward_values = base.frame_channels, base.reward_values.tolist()
    elif kind in RULE_KINDS:
        hparams = None
    return build_env_model(
        kind,
        obs_shape,
        num_actions,
        frame_channels=frame_channels or default_frame_channels(obs_shape),
        reward_values=reward_values,
        hparams=hparams,
    )


__all__ = [
    "ATARI_REWARD_VALUES",
    "CanvasFrameHead",
    "CopyEnvModel",
    "DilatedPixelEnvModel",
    "ENV_MODEL_FAMILIES",
    "ENV_MODEL_KINDS",
    "EnvModelLoss",
    "EnvironmentModel",
    "FRAME_HEADS",
    "FRAME_STATE_KINDS",
    "FoldedFrameEnvModel",
    "LatentEnvModel",
    "LogitResidualFrameHead",
    "PerfectSokobanModel",
    "PixelEnvModel",
    "RULE_KINDS",
    "ResidualMLPEnvModel",
    "SpatialLatentEnvModel",
    "build_env_model",
    "build_env_model_from_metadata",
    "default_frame_channels",
    "default_kind",
    "env_model_class",
    "hparams_of",
    "loss_terms",
    "resolve_env_model",
    "resolve_kind",
]
