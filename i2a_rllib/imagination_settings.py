"""I2A's settings: their defaults, and the one check that both `I2AConfig.validate()`
and `I2ARLModule` run on them (no Ray).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES
from i2a_rllib.models.imagination import IMAGINATION_PRECISIONS
from i2a_rllib.models.rollout_policy import ROLLOUT_ACTION_CHOICES


# The I2A RLModule's model_config (I2AConfig fills the first group from `.imagination()`).
DEFAULT_I2A_MODEL_CONFIG: Dict[str, Any] = {
    # A kind of `i2a_rllib.models.env_models.ENV_MODEL_KINDS`, or "auto".
    "env_model": "auto",
    # Directory written by `i2a pretrain`; None = untrained (or copy) model.
    "env_model_checkpoint": None,
    # Metadata of that checkpoint, recorded when the checkpoint was set, so that a
    # restored agent rebuilds the model where the checkpoint path no longer exists.
    "env_model_metadata": None,
    # Imagined steps per rollout, or "auto": 2 for the spatial models (the Atari default),
    # the paper's 5 for every other (models/imagination.py).
    "rollout_depth": "auto",
    "rollout_action_choice": "sample",
    # Round imagined frames to 0 or 1 before the rollout encoder reads them (boards of
    # one-hot channels, e.g. Sokoban's, whose real frames are exactly that).
    "snap_imagined_frames": False,
    # "bf16": imagined rollouts in bfloat16 autocast wherever they run (EnvRunners and
    # the learner's precompute); the policy, value and losses stay as they were. "auto":
    # bf16 for spatial models on CPUs with AMX, fp32 otherwise (models/imagination.py).
    "imagination_precision": "auto",
    # False leaves the rollout policy untrained (distillation_coeff=0, or a frozen one):
    # its parameters then need no gradient, which DDP requires of unused parameters.
    "train_rollout_policy": True,
    # The seed's stage 2: an RLModule checkpoint of the model-free baseline whose
    # policy, frozen, acts in imagination. None = distilled rollout policy.
    "rollout_policy_checkpoint": None,
    # That policy's network size, recorded with the path: a restored agent rebuilds the
    # network and takes its weights from its own state, not from the path.
    "frozen_policy_hidden": None,
    # Settings of an env model built without a checkpoint.
    "env_model_hparams": {},
    # Channels of one frame: None = 1 for Atari-sized frame stacks, all for boards.
    "frame_channels": None,
    "reward_values": list(ATARI_REWARD_VALUES),
    # Network sizes.
    "model_free_hidden": 512,
    "rollout_policy_hidden": 128,
    "encoder_feature_size": 128,
    "encoder_hidden": 128,
    # 0: no such layer, the policy and value heads read [model-free, rollout codes] directly.
    "head_hidden": 256,
    # Channels of the first convolution over imagined frames, in the rollout policy and
    # the rollout encoder (the next two have twice as many); no effect on latent models.
    "imagined_frame_conv_channels": 16,
    # RLlib's `framework(torch_compile_worker=...)` and its dynamo backend and mode:
    # EnvRunners run the exploration forward (imagination + heads) through torch.compile.
    "torch_compile_worker": False,
    "torch_compile_worker_dynamo_backend": "inductor",
    "torch_compile_worker_dynamo_mode": None,
}
NETWORK_SIZES = (
    "model_free_hidden",
    "rollout_policy_hidden",
    "encoder_feature_size",
    "encoder_hidden",
    "head_hidden",
    "imagined_frame_conv_channels",
)
# The smallest value of each of NETWORK_SIZES (1 where not named).
NETWORK_SIZE_MINIMUM = {"head_hidden": 0}


class ImaginationSettingsError(ValueError):
    """A bad I2A setting; the message names it and the fix."""


def check_imagination_settings(
    settings: Mapping[str, Any], describe: Callable[[str, Any], str]
) -> None:
    """Raises ImaginationSettingsError for the first bad setting present in `settings`.

    Args:
        settings: Any subset of the I2A settings (DEFAULT_I2A_MODEL_CONFIG's keys and
            `distillation_coeff`).
        describe: How the caller's users wrote a setting, e.g.
            `lambda k, v: f"imagination({k}={v!r})"`.
    """
    from i2a_rllib.models.env_models import ENV_MODEL_KINDS

    def bad(key: str, fix: str) -> None:
        raise ImaginationSettingsError(f"{describe(key, settings[key])} {fix}")

    if "env_model" in settings and settings["env_model"] not in (*ENV_MODEL_KINDS, "auto"):
        bad("env_model", f"is not an environment model kind; use one of {['auto', *ENV_MODEL_KINDS]}.")
    depth = settings.get("rollout_depth", "auto")
    if depth != "auto" and not _is_int(depth, minimum=1):
        bad("rollout_depth", "must be an integer >= 1 (the paper uses 5) or 'auto'.")
    if settings.get("rollout_action_choice", "sample") not in ROLLOUT_ACTION_CHOICES:
        bad("rollout_action_choice", f"is unknown; use one of {list(ROLLOUT_ACTION_CHOICES)}.")
    if not isinstance(settings.get("snap_imagined_frames", False), bool):
        bad("snap_imagined_frames", "must be True or False.")
    if settings.get("imagination_precision", "auto") not in IMAGINATION_PRECISIONS:
        bad("imagination_precision", f"is unknown; use one of {list(IMAGINATION_PRECISIONS)}.")
    coeff = settings.get("distillation_coeff", 0.0)
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not coeff >= 0:
        bad("distillation_coeff", "must be a number >= 0; 0 leaves the rollout policy untrained.")
    for key in NETWORK_SIZES:
        minimum = NETWORK_SIZE_MINIMUM.get(key, 1)
        if key in settings and not _is_int(settings[key], minimum=minimum):
            bad(key, "must be a positive integer." if minimum else "must be an integer >= 0 (0: no such layer).")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
