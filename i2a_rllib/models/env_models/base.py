"""The environment-model interface every model family implements.

`(state, action) -> (next_state, reward)`, plus what training and pictures need. Pure
torch, no Ray.

Frame loss. Pixels are modelled as Bernoulli variables (binary cross-entropy on the
[0, 1] intensities), the choice the I2A paper argues for: Sokoban, MiniPacman and
Atari frames are close to binary, and the cross-entropy keeps thin objects such as
Breakout's ball sharp where a mean-squared error would blur them away. Errors are
*reported* as per-pixel mean-squared error so they compare with the copy-last-frame
baseline.

Change weighting. On Atari the pixels that change from one frame to the next (the
ball, the paddle) are ~1% of the frame, and an unweighted loss lets a model sit at
"copy the last frame" for a long time. A family with `change_weight` w > 0 weighs the
loss of every pixel that differs from the previous real frame by 1 + w.

Rewards are classes over a fixed set of values (`reward_values`), e.g. {-1, 0, +1} for
clipped Atari rewards; the model's reward is the expected value under its softmax.

Flat observation vectors (CartPole) are one "frame" of `D` features: the frame
vocabulary (newest frame, next frame, copy the last frame) reads "state" there, and a
family that models vectors (mlp.py) replaces the frame and reward losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.model_free import NATURE_CNN_MIN_SIZE

ATARI_REWARD_VALUES = (-1.0, 0.0, 1.0)
# A pixel "changed" when it moved by more than this (intensities in [0, 1]; Atari's
# gray frames are quantised to 1/255, so this skips no real change).
CHANGED_PIXEL = 0.02


def _unfolded_kernel(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """The (O, C * factor**2, k, k) kernel of a convolution over frames folded by
    `F.pixel_unshuffle(frames, factor)` -> the (O, C, k * factor, k * factor) kernel that,
    with stride `factor` (and padding times `factor`), computes it over the frames."""
    out_channels, folded_channels, k, _ = weight.shape
    channels = folded_channels // factor**2
    # pixel_unshuffle's channel c * factor**2 + i * factor + j holds pixel (i, j) of a cell.
    return (
        weight.reshape(out_channels, channels, factor, factor, k, k)
        .permute(0, 1, 4, 2, 5, 3)
        .reshape(out_channels, channels, k * factor, k * factor)
    )


def folded_conv(conv: nn.Conv2d, frames: torch.Tensor, factor: int) -> torch.Tensor:
    """`conv(F.pixel_unshuffle(frames, factor))` for a stride-1, undilated `conv`, as one
    convolution over the frames with stride `factor`: the same sums without the copy
    folding makes (the spatial encoder on 1,024 Breakout frames 182 -> 81 ms, 2 threads;
    docs/benchmarks.md), equal up to rounding (tests). Keeps the weights' memory layout."""
    if factor == 1:
        return conv(frames)
    channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return F.conv2d(
        frames.contiguous(memory_format=layout),
        _unfolded_kernel(conv.weight, factor).contiguous(memory_format=layout),
        conv.bias,
        stride=factor,
        padding=factor * conv.padding[0],
    )


def default_frame_channels(obs_shape: Sequence[int]) -> int:
    """Channels of one frame: Atari-sized inputs are stacks of 1-channel gray frames;
    small boards (Sokoban, MiniPacman) are one frame with a channel per entity; a flat
    vector (D,) is one state of D features (stacking is the environment's business)."""
    if len(obs_shape) == 1:
        return int(obs_shape[0])
    return 1 if min(obs_shape[1:]) >= NATURE_CNN_MIN_SIZE else int(obs_shape[0])


@dataclass
class EnvModelLoss:
    """What one training step of an environment model produces."""

    total: torch.Tensor
    frame: torch.Tensor
    reward: torch.Tensor
    consistency: torch.Tensor
    reward_accuracy: torch.Tensor
    frame_mse: torch.Tensor
    # Stochastic models' extra terms (in `total`): their code prior's loss and the
    # losing hypotheses' share; left out where epochs are compared (pretrain._validate).
    code_prior: Optional[torch.Tensor] = None


class EnvironmentModel(nn.Module):
    """Base class: metadata, reward classes and the shared step API.

    Args:
        obs_shape: (C, H, W) of one observation, or (D,) for families that model flat
            vectors (`observation_ranks`).
        num_actions: Size of the discrete action space.
        frame_channels: Channels of one frame. Atari stacks 4 gray frames (C=4,
            frame_channels=1); Sokoban has one frame with one channel per entity
            (frame_channels=C); a vector is one frame of D features.
        reward_values: The reward classes the model predicts among.
    """

    kind: str = ""
    # Observation ranks a family models: 3 for (C, H, W) frames, 1 for (D,) vectors.
    observation_ranks: Tuple[int, ...] = (3,)
    # Hparams the family measures on the training data (`hparams_from_data`), which the
    # checkpoint's metadata then records.
    data_statistics: Tuple[str, ...] = ()
    # Extra loss weight of the pixels that change between the previous real frame and
    # the target (0: every pixel counts the same); families expose it as an hparam.
    change_weight: float = 0.0
    # How the steps of an open-loop window share the loss: 'mean' (each step the same)
    # or 'inverse' (step k weighs 1/k, normalised; see sequence_loss).
    step_weighting: str = "mean"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
    ):
        super().__init__()
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) not in self.observation_ranks:
            names = {3: "(C, H, W) image", 1: "flat (D,) vector"}
            needs = " or ".join(names[rank] for rank in self.observation_ranks)
            raise ValueError(
                f"The {self.kind!r} environment model needs {needs} observations, got "
                f"shape {obs_shape}; 'auto' picks 'mlp' for flat vectors and a frame model "
                "for images."
            )
        if len(obs_shape) == 1:
            frame_channels = obs_shape[0]  # a flat vector is one state, whatever was passed
        if obs_shape[0] % frame_channels:
            raise ValueError(
                f"frame_channels={frame_channels} must divide the observation's "
                f"{obs_shape[0]} channels (a stack of whole frames)."
            )
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}.")
        self.obs_shape = obs_shape
        self.num_actions = int(num_actions)
        self.frame_channels = int(frame_channels)
        self.register_buffer(
            "reward_values", torch.tensor(sorted(reward_values), dtype=torch.float32)
        )

    @classmethod
    def hparams_from_data(cls, obs, next_frames, rewards) -> Dict[str, Any]:
        """The `data_statistics` hparams measured on training transitions (numpy arrays:
        observations, the next frames, rewards); {} for families that measure nothing."""
        return {}

    # --- What imagination uses -------------------------------------------------------
    @property
    def state_shape(self) -> Tuple[int, ...]:
        """Shape of one model state (frames, a latent vector or a latent map)."""
        raise NotImplementedError

    @property
    def view_shape(self) -> Tuple[int, ...]:
        """Shape of what the rollout encoder reads of each imagined state."""
        raise NotImplementedError

    @property
    def observes_vectors(self) -> bool:
        """True for flat (D,) observations."""
        return len(self.obs_shape) == 1

    @property
    def states_are_frames(self) -> bool:
        """True when a state is the observation itself (the frame stack, or the vector):
        a model-free policy can read it."""
        return False

    @property
    def views_are_frames(self) -> bool:
        """True when the rollout encoder reads frames (kept as uint8, like real ones)."""
        return False

    @property
    def imagines_no_change(self) -> bool:
        """True when every imagined step is the start state with reward 0, whatever the
        action (the copy model): imagination and its encoding are then computed once
        per state instead of A x depth times, which is exact."""
        return False

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        """Float frames in [0, 1] (B, C, H, W) -> model state (B, *state_shape)."""
        raise NotImplementedError

    def transition(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One step: (B, *state_shape), (B,) -> next state, reward logits (B, classes)."""
        raise NotImplementedError

    def step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One imagined step: (B, *state_shape), (B,) -> next state, expected reward (B,)."""
        next_state, reward_logits = self.transition(state, action)
        return next_state, self.expected_reward(reward_logits)

    def step_every_action(self, state: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Steps each of B states with each of the A actions: rows b*A + a.

        Subclasses may share work across the A copies of one state (the pixel model
        computes its state convolution once instead of A times).
        """
        tiled = state.repeat_interleave(self.num_actions, dim=0)
        actions = torch.arange(self.num_actions, device=state.device).repeat(state.shape[0])
        return self.step(tiled, actions)

    def view(self, state: torch.Tensor) -> torch.Tensor:
        """The part of a state the rollout encoder reads (the newest frame, or the latent)."""
        raise NotImplementedError

    def frame_of(self, state: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        """The newest frame (B, fc, H, W) in [0, 1] a state stands for; `canvas` is the
        last real frame (models that decode paint over it). For losses and pictures."""
        raise NotImplementedError

    # --- A reward head fitted on balanced batches (pretrain/reward_head.py) ----------
    # Families with such a head (reward_head='map') set `reward_head`, `reward_map`,
    # `reward_out`, `reward_prior` and the `reward_logit_shift` buffer, and define
    # `reward_head_inputs` and `map_reward_logits`.
    @property
    def fits_reward_head(self) -> bool:
        """True when pretraining fits the reward head afterwards on half-scoring batches."""
        return getattr(self, "reward_head", None) == "map"

    def reward_head_inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """What the fitted head reads of real observations (B, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def map_reward_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The fitted head's logits before the prior's shift (what balanced batches fit)."""
        raise NotImplementedError

    def checked_reward_prior(self, prior: Sequence[float], family: str) -> List[float]:
        prior = [float(p) for p in prior]
        if prior and (len(prior) != len(self.reward_values) or min(prior) < 0):
            raise ValueError(
                f"{family}: reward_prior={prior} must hold one frequency >= 0 "
                f"per reward class {self.reward_values.tolist()}."
            )
        return prior

    def balanced_logit_shift(self, prior: Sequence[float]) -> torch.Tensor:
        """Per class: log(prior) - log(the prior of a balanced batch), which turns logits
        fitted on balanced batches (half the rows reward 0, half the rest in their own
        proportions) into the data's probabilities; zeros without a prior."""
        classes = len(self.reward_values)
        if not prior:
            return torch.zeros(classes, device=self.reward_values.device)
        prior = torch.tensor(prior, dtype=torch.float32, device=self.reward_values.device).clamp_min(1e-8)
        zero = int(self.reward_class(torch.zeros(1, device=prior.device))[0])
        others = prior.sum() - prior[zero]
        balanced = 0.5 * prior / others.clamp_min(1e-8)
        balanced[zero] = 0.5
        return prior.log() - balanced.clamp_min(1e-8).log()

    def set_reward_prior(self, prior: Sequence[float]) -> None:
        """Records the training data's reward-class frequencies (after a balanced fit)."""
        self.reward_prior = [float(p) for p in prior]
        self.reward_logit_shift = self.balanced_logit_shift(self.reward_prior)

    # --- Training and pictures ------------------------------------------------------
    def reward_class(self, reward: torch.Tensor) -> torch.Tensor:
        """Index of the closest reward class for each real reward."""
        return (reward.float().unsqueeze(-1) - self.reward_values).abs().argmin(-1)

    def expected_reward(self, reward_logits: torch.Tensor) -> torch.Tensor:
        return reward_logits.softmax(-1) @ self.reward_values

    def reward_hits(self, predicted: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Per row: is the predicted reward right (the same reward class)?"""
        return self.reward_class(predicted) == self.reward_class(rewards)

    def frame_loss(
        self, frame: torch.Tensor, next_frame: torch.Tensor, previous: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Bernoulli (binary cross-entropy) loss of predicted frames in [0, 1]; with a
        `change_weight` and the `previous` real frames, a weighted mean in which the
        pixels that changed count 1 + change_weight times."""
        frame = frame.clamp(1e-6, 1.0 - 1e-6)
        if not self.change_weight or previous is None:
            return F.binary_cross_entropy(frame, next_frame)
        changed = (next_frame - previous).abs() > CHANGED_PIXEL
        weight = 1.0 + self.change_weight * changed.float()
        loss = F.binary_cross_entropy(frame, next_frame, reduction="none")
        return (loss * weight).sum() / weight.sum()

    def reward_loss(
        self, reward_logits: torch.Tensor, rewards: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Reward classification: cross-entropy to the closest class, and accuracy."""
        targets = self.reward_class(rewards)
        with torch.no_grad():
            accuracy = (reward_logits.argmax(-1) == targets).float().mean()
        return F.cross_entropy(reward_logits, targets), accuracy

    def training_transition(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        real_obs: torch.Tensor,
        canvas: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """One step of open-loop training, where the real observation it leads to is
        known (`canvas`: the last real frame, as for `frame_of`): next state, reward
        logits, and the loss of a stochastic family's prior over its codes (None for
        deterministic families; stochastic ones pick the code that matches `real_obs`
        and train the prior to predict it)."""
        next_state, reward_logits = self.transition(state, action)
        return next_state, reward_logits, None

    def consistency(self, state: torch.Tensor, real_obs: torch.Tensor) -> torch.Tensor:
        """Training term keeping an imagined state near the state of the real observation
        it stands for (0 for models whose state is the frames)."""
        return state.new_zeros(())

    def loss(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_frame: torch.Tensor,
    ) -> EnvModelLoss:
        """Loss of one batch of transitions; frames in [0, 1], next_frame (B, fc, H, W)."""
        return self.sequence_loss(frames, actions[:, None], rewards[:, None], next_frame[:, None])

    def sequence_loss(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_frames: torch.Tensor,
    ) -> EnvModelLoss:
        """Open-loop loss over K steps, each step scored (frame, reward, consistency).

        Args:
            frames: (B, C, H, W) the real start observation in [0, 1].
            actions, rewards: (B, K) what was taken and received.
            next_frames: (B, K, fc, H, W) the real frame after each step.
        """
        steps = actions.shape[1]
        state, canvas, real = self.initial_state(frames), self.newest_frame(frames), frames
        predicted, reward_logits, consistency, code_prior = [], [], [], []
        for k in range(steps):
            real = self.push_frame(real, next_frames[:, k])
            state, logits, step_prior = self.training_transition(state, actions[:, k], real, canvas)
            predicted.append(self.frame_of(state, canvas))
            reward_logits.append(logits)
            consistency.append(self.consistency(state, real))
            code_prior.append(step_prior)
        # The real frame before each target: the start's newest, then the targets.
        previous = torch.cat([canvas.unsqueeze(1), next_frames[:, :-1]], 1)
        stochastic = code_prior[0] is not None
        if self.step_weighting == "inverse" and steps > 1:
            return self._inverse_weighted_loss(
                predicted, reward_logits, rewards, next_frames, consistency, previous,
                code_prior if stochastic else None,
            )  # fmt: skip
        return loss_terms(
            self,
            torch.stack(predicted, 1).flatten(0, 1),
            torch.stack(reward_logits, 1).flatten(0, 1),
            rewards.flatten(),
            next_frames.flatten(0, 1),
            sum(consistency) / steps,
            previous=previous.flatten(0, 1),
            code_prior=sum(code_prior) / steps if stochastic else None,
        )

    def _inverse_weighted_loss(
        self, predicted, reward_logits, rewards, next_frames, consistency, previous, code_prior
    ) -> EnvModelLoss:
        """Step k of the window weighs 1/k (weights normalised to sum to 1). Where every
        step counts the same, the later steps' larger errors drive training towards what
        lowers them, a blur, and a wide Breakout model that had learnt to draw the ball
        one step ahead erased it again (docs/results.md); the 1/k weights keep the near
        steps, where the ball is predictable, in charge. Reported errors (frame_mse,
        reward accuracy) stay plain means over the steps."""
        steps = len(predicted)
        weights = 1.0 / torch.arange(1, steps + 1, dtype=torch.float32, device=previous.device)
        weights = weights / weights.sum()
        per_step = [
            loss_terms(
                self, predicted[k], reward_logits[k], rewards[:, k], next_frames[:, k], consistency[k],
                previous=previous[:, k], code_prior=None if code_prior is None else code_prior[k],
            )  # fmt: skip
            for k in range(steps)
        ]
        weighted = lambda name: sum(w * getattr(t, name) for w, t in zip(weights, per_step))
        return EnvModelLoss(
            total=weighted("total"),
            frame=weighted("frame"),
            reward=weighted("reward"),
            consistency=weighted("consistency"),
            reward_accuracy=sum(t.reward_accuracy for t in per_step) / steps,
            frame_mse=sum(t.frame_mse for t in per_step) / steps,
            code_prior=None if code_prior is None else weighted("code_prior"),
        )

    def predict_frames(
        self, frames: torch.Tensor, actions: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Open-loop prediction for pictures and k-step errors.

        Args:
            frames: (B, C, H, W) real start observation in [0, 1].
            actions: (B, K) actions to take.

        Returns:
            Predicted newest frames (B, K, fc, H, W) in [0, 1], expected rewards (B, K).
        """
        state, canvas = self.initial_state(frames), self.newest_frame(frames)
        predicted, rewards = [], []
        for k in range(actions.shape[1]):
            state, reward = self.step(state, actions[:, k])
            predicted.append(self.frame_of(state, canvas))
            rewards.append(reward)
        return torch.stack(predicted, 1), torch.stack(rewards, 1)

    def metadata(self) -> Dict[str, Any]:
        """What a checkpoint must record to rebuild this model and check compatibility."""
        return {
            "kind": self.kind,
            "obs_shape": list(self.obs_shape),
            "num_actions": self.num_actions,
            "frame_channels": self.frame_channels,
            "reward_values": [float(v) for v in self.reward_values.tolist()],
            "hparams": self.hparams(),
        }

    def hparams(self) -> Dict[str, Any]:
        return {}

    def newest_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, -self.frame_channels :]

    def push_frame(self, frames: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Drops the oldest frame of the stack and appends `frame`."""
        if frames.shape[1] == self.frame_channels:
            return frame
        return torch.cat([frames[:, self.frame_channels :], frame], dim=1)


def loss_terms(
    model, frame, reward_logits, rewards, next_frame, consistency=None, previous=None, code_prior=None
):
    """The model's frame loss + reward loss (+ consistency, + a stochastic family's
    `code_prior` terms); Bernoulli frames and reward classes unless the family says
    otherwise; `previous`: the real frame before each target (for change weighting)."""
    frame_loss = model.frame_loss(frame, next_frame, previous)
    reward_loss, accuracy = model.reward_loss(reward_logits, rewards)
    consistency = consistency if consistency is not None else frame_loss.new_zeros(())
    with torch.no_grad():
        frame_mse = F.mse_loss(frame, next_frame)
    total = frame_loss + reward_loss + consistency
    return EnvModelLoss(
        total=total if code_prior is None else total + code_prior,
        frame=frame_loss,
        reward=reward_loss,
        consistency=consistency,
        reward_accuracy=accuracy,
        frame_mse=frame_mse,
        code_prior=code_prior,
    )




class ObservationStateModel(EnvironmentModel):
    """A model whose state is the observation itself (the frame stack, or a flat vector):
    a model-free policy can read its states, and imagination keeps frames as uint8."""

    @property
    def state_shape(self) -> Tuple[int, ...]:
        return self.obs_shape

    @property
    def view_shape(self) -> Tuple[int, ...]:
        return (self.frame_channels, *self.obs_shape[1:])

    @property
    def states_are_frames(self) -> bool:
        return True

    @property
    def views_are_frames(self) -> bool:
        return not self.observes_vectors  # vectors stay float

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        return frames

    def view(self, state: torch.Tensor) -> torch.Tensor:
        return self.newest_frame(state)

    def frame_of(self, state: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        return self.newest_frame(state)
