"""Environment-model checkpoints: weights + metadata, written atomically.

Pure python + torch (no Ray), so the RLModule, the pretraining job and the CLI share
one format:

    <dir>/metadata.json   kind, env id, obs shape, num actions, frame channels,
                          reward classes, architecture, training config, dataset manifest
    <dir>/env_model.pt    the model's state_dict

A checkpoint from another game, observation shape, action count or model kind is
rejected with an error that says which and what to do, before any actor starts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from i2a_rllib.models.env_models import (
    FRAME_STATE_KINDS,
    EnvironmentModel,
    build_env_model_from_metadata,
)

METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "env_model.pt"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not fit."""


def save_env_model(
    model: EnvironmentModel, path: str, extra_metadata: Optional[Dict[str, Any]] = None
) -> str:
    """Writes `model` to the directory `path` atomically (tmp dir + rename)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    metadata = {"format_version": FORMAT_VERSION, **model.metadata(), **(extra_metadata or {})}
    tmp = tempfile.mkdtemp(prefix=".tmp-env-model-", dir=parent)
    try:
        torch.save(model.state_dict(), os.path.join(tmp, WEIGHTS_FILE))
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_env_model_metadata(path: str) -> Dict[str, Any]:
    """Reads and checks `<path>/metadata.json` (cheap: no weights are loaded)."""
    if not os.path.isdir(path):
        raise CheckpointError(
            f"Environment-model checkpoint {path!r} is not a directory. Pass the "
            "directory `i2a pretrain` printed (it holds metadata.json and env_model.pt)."
        )
    meta_path = os.path.join(path, METADATA_FILE)
    try:
        with open(meta_path) as f:
            metadata = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path!r} has no {METADATA_FILE}; it is not an environment-model checkpoint "
            "written by `i2a pretrain`."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{meta_path!r} is corrupt ({e}); re-run `i2a pretrain` or restore the file."
        ) from None
    missing = {"kind", "obs_shape", "num_actions", "frame_channels", "reward_values"} - set(
        metadata
    )
    if missing:
        raise CheckpointError(f"{meta_path!r} lacks the keys {sorted(missing)}.")
    return metadata


def load_env_model(path: str) -> Tuple[EnvironmentModel, Dict[str, Any]]:
    """Rebuilds the model a checkpoint describes and loads its weights."""
    metadata = read_env_model_metadata(path)
    model = build_env_model_from_metadata(metadata)
    weights_path = os.path.join(path, WEIGHTS_FILE)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError:
        raise CheckpointError(f"{path!r} has no {WEIGHTS_FILE}.") from None
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(
            f"Could not load {weights_path!r}: the file is truncated or corrupt "
            f"({type(e).__name__}: {str(e)[:200]}). Re-run `i2a pretrain` (it resumes "
            "from its last good epoch) or point to another checkpoint."
        ) from None
    return model, metadata


def check_env_model_metadata(
    metadata: Dict[str, Any],
    obs_shape: Sequence[int],
    num_actions: int,
    kind: Optional[str] = None,
    path: Optional[str] = None,
    env_id: Optional[str] = None,
) -> None:
    """Raises CheckpointError if the checkpoint does not fit the agent."""
    where = f"Environment-model checkpoint {path!r}" if path else "The environment model"
    saved_env = metadata.get("env_id")
    if env_id is not None and saved_env is not None and saved_env != env_id:
        raise CheckpointError(
            f"{where} was trained on {saved_env!r}, but the agent plays {env_id!r}. "
            f"Pretrain a model on {env_id!r} (`i2a collect --env {env_id}` then "
            "`i2a pretrain`) or train on the checkpoint's game."
        )
    if tuple(metadata["obs_shape"]) != tuple(obs_shape):
        raise CheckpointError(
            f"{where} expects observations of shape {tuple(metadata['obs_shape'])}, the "
            f"environment gives {tuple(obs_shape)}. Use the same frame size and stack "
            "as during collection."
        )
    if int(metadata["num_actions"]) != int(num_actions):
        raise CheckpointError(
            f"{where} has {metadata['num_actions']} actions, the environment "
            f"{num_actions}. Pretrain on the same game with the same action set."
        )
    if kind is not None and kind != "auto":
        saved_kind = metadata["kind"]
        if kind == "copy":
            if saved_kind in FRAME_STATE_KINDS + ("copy",):
                raise CheckpointError(
                    f"{where} is a {saved_kind!r} model; the copy control only borrows the "
                    "encoder of a model with its own states (e.g. 'latent'). Use such a "
                    "checkpoint, or no checkpoint for a copy model over frames."
                )
        elif saved_kind != kind:
            raise CheckpointError(
                f"{where} is a {saved_kind!r} model but env_model={kind!r} was asked for. "
                f"Set env_model={saved_kind!r} or pretrain a {kind!r} model."
            )
