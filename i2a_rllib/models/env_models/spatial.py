"""The spatial-latent environment model: imagination in a small feature map, not in frames.

Pure torch, no Ray. Atari's objects are a few pixels large (Breakout's ball is 1x2 at
84x84), so the latent keeps space: frames are folded space-to-depth (84x84x4 ->
42x42x16, lossless) and encoded into a `channels` x 42 x 42 map. An imagined step is
an action-conditioned residual conv transition on that map (the action scales and
shifts the features channel-wise, the multiplicative action interaction of Oh et al.
2015 in FiLM form); rewards are read off the old and new maps. Imagination never
decodes: the rollout encoder reads a pooled, quantised view of the map. A decoder
paints frames for the training loss and for pictures only, through the logit frame
head over the last real frame.

Trained over several open-loop steps (`sequence_loss`): the map is stepped with the
actions actually taken and, at every step, the decoded frame, the reward and the
map itself (against the encoding of the real observation, "latent consistency") are
scored, so errors that compound over the rollout depth are trained away.

Optionally stochastic (`codes`): each imagined step draws one of K hypotheses from a
learned prior instead of averaging them (see the class).

Cost per imagined step with the defaults (8 channels, dilations 1-2): ~4.1 MMAC, 1/63
of the seed's pixel model (~257 MMAC).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from i2a_rllib.models.env_models.base import ATARI_REWARD_VALUES, EnvironmentModel, folded_conv
from i2a_rllib.models.env_models.frame_heads import build_frame_head

# Share of the loss the losing hypotheses of a stochastic model get (relaxed WTA).
LOSER_WEIGHT = 0.05


def check_loss_settings(change_weight: float, step_weighting: str, name: str) -> None:
    """The frame loss's pixel weighting and the window's step weighting (base.py)."""
    if not change_weight >= 0:
        raise ValueError(f"{name}: change_weight={change_weight} must be >= 0.")
    if step_weighting not in ("mean", "inverse"):
        raise ValueError(
            f"{name}: step_weighting={step_weighting!r}: 'mean' (every imagined "
            "step counts the same) or 'inverse' (step k counts 1/k)."
        )


def folded_size(height: int, width: int, factor: int, view_pool: int, name: str) -> Tuple[int, int]:
    """The map's (height, width) after folding frames space-to-depth by `factor`; checks
    that `factor` divides the frame and that `view_pool` fits the map."""
    if factor < 1 or height % factor or width % factor:
        raise ValueError(
            f"{name}: factor={factor} must divide the frame's height and width "
            f"({height}x{width}); 1 keeps the full resolution."
        )
    folded = (height // factor, width // factor)
    if view_pool < 1 or view_pool > min(folded):
        raise ValueError(
            f"{name}: view_pool={view_pool} must be between 1 and the folded map's "
            f"side ({folded[0]}x{folded[1]})."
        )
    return folded


class SpatialLatentEnvModel(EnvironmentModel):
    """Encode once into a feature map, step it with an action-conditioned conv net.

    Args:
        channels: Feature-map channels (the per-step cost grows with their square).
        factor: Space-to-depth fold of the frames (2: 84x84 -> 42x42, lossless).
        dilations: One residual 3x3 block per entry, with that dilation; the growing
            dilations let a step see ~2 * sum(dilations) folded cells around each cell.
        view_pool: Imagination hands the rollout encoder the map average-pooled by this
            factor (cells past the last whole window are left out, as average pooling
            does). 4 gives the 10 x 10 cells the encoder pools to anyway (42 / 4), in
            one pass: EnvRunners ship 4.4x less per step than at 2 (whose 21 x 21 views
            the encoder pooled again), Breakout I2A trains 1.15x faster end to end
            (docs/benchmarks.md); only imagination reads views, so the factor can be
            changed on a trained model.
        consistency_coeff: Weight of ||z_k - sg(encode(o_k))||^2 in the training loss.
        frame_head: 'logit' (correction of the last real frame in logit space).
        change_weight: The pixels that change count 1 + change_weight times in the frame
            loss (base.py); 0 weighs every pixel the same.
        step_weighting: How the steps of a training window share the loss: 'mean' (each
            the same) or 'inverse' (step k weighs 1/k; base.py). With 'mean' the wide
            Breakout model that drew the ball one step ahead erased it once trained
            over 3- and 5-step windows; 'inverse' kept part of it (one-off: right
            cell 15% vs 0.5% one step ahead; docs/results.md).
        decoder_channels: Width of the decoder (training losses and pictures only; no
            cost in imagination). 4 trains in about half the time of 16, but in
            our Breakout runs it only learnt to erase the ball, never to draw it
            where it moves to (docs/results.md).
        codes: Classes of a discrete code drawn per imagined step (0: the deterministic
            model). The code scales and shifts the transition's features like the action
            does, so each code is one hypothesis of what happens next; imagination
            samples it from a prior that sees the map and the action. Training steps
            every hypothesis, scores the one closest to what really happened (frame and
            latent losses: "winner takes all", multiple-choice learning) and teaches the
            prior to predict that winner (cross-entropy, reported as `code_prior`). What the
            frames and the action leave open, such as where Breakout's paddle ends up
            under its momentum, is then sampled instead of averaged into a blur.
        reward_head: 'features' (a linear layer over the transition's features, max over
            the map: what the shipped Breakout model has) or 'map' (two stride-2 convs
            over the map before the step, max, linear), which pretraining fits after the
            rest on half-scoring batches (pretrain/reward_head.py).
        reward_prior: The reward classes' frequencies in the training data, recorded by
            that fit: they shift the 'map' head's logits back to the data's odds.
    """

    kind = "spatial"

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        frame_channels: int = 1,
        reward_values: Sequence[float] = ATARI_REWARD_VALUES,
        channels: int = 8,
        factor: int = 2,
        dilations: Sequence[int] = (1, 2),
        view_pool: int = 4,
        consistency_coeff: float = 1.0,
        frame_head: str = "logit",
        change_weight: float = 0.0,
        codes: int = 0,
        decoder_channels: int = 4,
        step_weighting: str = "mean",
        reward_head: str = "features",
        reward_prior: Sequence[float] = (),
    ):
        super().__init__(obs_shape, num_actions, frame_channels, reward_values)
        in_channels, height, width = self.obs_shape
        folded = folded_size(height, width, factor, view_pool, "spatial model")
        self.channels, self.factor = int(channels), int(factor)
        self.dilations = tuple(int(d) for d in dilations)
        self.view_pool = int(view_pool)
        self.consistency_coeff = float(consistency_coeff)
        self.frame_head = str(frame_head)
        check_loss_settings(change_weight, step_weighting, "spatial model")
        self.change_weight = float(change_weight)
        if codes < 0 or codes == 1:
            raise ValueError(
                f"spatial model: codes={codes}: 0 (deterministic) or >= 2 hypotheses per step."
            )
        self.codes = int(codes)
        if decoder_channels < 1:
            raise ValueError(f"spatial model: decoder_channels={decoder_channels} must be >= 1.")
        self.decoder_channels = int(decoder_channels)
        self.step_weighting = str(step_weighting)
        if reward_head not in ("features", "map"):
            raise ValueError(
                f"spatial model: reward_head={reward_head!r}: 'features' (the transition's "
                "features, max over the map) or 'map' (a conv head over the map before the step)."
            )
        self.reward_head = str(reward_head)
        self.reward_prior = self.checked_reward_prior(reward_prior, "spatial model")
        self.map_size = folded
        c = self.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels * factor**2, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )
        # Transition: z' = z + body(FiLM_a(conv(z))).
        self.transition_in = nn.Conv2d(c, c, 3, padding=1)
        self.action_scale = nn.Embedding(num_actions, c)
        self.action_shift = nn.Embedding(num_actions, c)
        nn.init.zeros_(self.action_scale.weight)
        nn.init.normal_(self.action_shift.weight, std=0.1)
        self.transition_body = nn.ModuleList(
            nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in self.dilations
        )
        self.transition_out = nn.Conv2d(c, c, 3, padding=1)
        if self.codes:
            # The prior reads the action-conditioned features pooled over the map (mean
            # and max). The codes' FiLM starts with small random shifts: hypotheses that
            # start equal would never be told apart by which one wins.
            self.code_prior = nn.Linear(2 * c, self.codes)
            self.code_scale = nn.Embedding(self.codes, c)
            self.code_shift = nn.Embedding(self.codes, c)
            nn.init.zeros_(self.code_scale.weight)
            nn.init.normal_(self.code_shift.weight, std=0.1)
        # Rewards: a brick hit is one place on the map, so max over space, not mean.
        # 'features' reads the transition's features (the old map and the action);
        # 'map' reads the old map through two stride-2 convs (~0.3 MMAC per step), the
        # head `fit_reward_head` fits on frozen maps with balanced batches (the shipped
        # Breakout model's maps: held-out AUC 0.96 with it, 0.57 with its features' head).
        if self.reward_head == "map":
            self.reward_map = nn.Sequential(
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.ReLU(),
            )
        self.reward_out = nn.Linear(c, len(self.reward_values))
        self.register_buffer("reward_logit_shift", self.balanced_logit_shift(self.reward_prior), persistent=False)
        # Decoder (losses and pictures only): map -> frame logits correction at full
        # resolution; it runs at every step of every training window.
        head_channels = self.decoder_channels
        self.decoder = nn.Sequential(
            nn.Conv2d(c, head_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_channels, head_channels * factor**2, 3, padding=1),
        )
        self.frame_out = build_frame_head(self.frame_head, head_channels, frame_channels)

    # --- Interface ------------------------------------------------------------------
    @property
    def state_shape(self) -> Tuple[int, ...]:
        return (self.channels, *self.map_size)

    @property
    def view_shape(self) -> Tuple[int, ...]:
        return (self.channels, self.map_size[0] // self.view_pool, self.map_size[1] // self.view_pool)

    def hparams(self):
        return {
            "channels": self.channels,
            "factor": self.factor,
            "dilations": list(self.dilations),
            "view_pool": self.view_pool,
            "consistency_coeff": self.consistency_coeff,
            "frame_head": self.frame_head,
            "change_weight": self.change_weight,
            "codes": self.codes,
            "decoder_channels": self.decoder_channels,
            "step_weighting": self.step_weighting,
            "reward_head": self.reward_head,
            "reward_prior": self.reward_prior,
        }

    def initial_state(self, frames: torch.Tensor) -> torch.Tensor:
        x = folded_conv(self.encoder[0], frames, self.factor)
        # Bounded encodings: the consistency term cannot be lowered by shrinking (or
        # blow up by growing) the scale of the encoder's output.
        return torch.tanh(self.encoder[1:](x))

    def view(self, state: torch.Tensor) -> torch.Tensor:
        # Optionally pooled (view_pool**2 fewer values for the rollout encoder to read
        # and for the learner to keep per imagined step).
        return state if self.view_pool == 1 else F.avg_pool2d(state, self.view_pool)

    def _features(self, first_layer, action):
        """The transition's first layer, scaled and shifted by the action (pre-ReLU)."""
        scale = 1.0 + self.action_scale(action)[:, :, None, None]
        return torch.addcmul(self.action_shift(action)[:, :, None, None], first_layer, scale)

    def _transition(self, state, first_layer, action, code=None):
        """`code` (B,): the hypothesis of a stochastic model; None samples it from the
        prior (deterministic models have none)."""
        x = self._features(first_layer, action)
        if self.codes:
            if code is None:
                code = self.sample_code(x)
            x = torch.addcmul(
                self.code_shift(code)[:, :, None, None], x, 1.0 + self.code_scale(code)[:, :, None, None]
            )
        x = F.relu(x)
        for conv in self.transition_body:
            x = x + F.relu(conv(x))
        next_state = state + self.transition_out(x)
        if self.reward_head == "map":
            reward_logits = self.map_reward_logits(state) + self.reward_logit_shift
        else:
            reward_logits = self.reward_out(F.adaptive_max_pool2d(x, 1).flatten(1))
        return next_state, reward_logits

    def reward_head_inputs(self, frames):
        return self.initial_state(frames)

    def map_reward_logits(self, state):
        return self.reward_out(self.reward_map(state).amax((2, 3)))

    def prior_logits(self, features):
        return self.code_prior(torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1))

    def sample_code(self, features):
        return torch.distributions.Categorical(logits=self.prior_logits(features).float()).sample()

    def transition(self, state, action):
        return self._transition(state, self.transition_in(state), action)

    def training_transition(self, state, action, real_obs, canvas):
        if not self.codes:
            return super().training_transition(state, action, real_obs, canvas)
        batch, codes = len(state), self.codes
        first = self.transition_in(state)
        # Every hypothesis of every row: rows b * codes + k.
        hypotheses = torch.arange(codes, device=state.device).repeat(batch)
        next_states, reward_logits = self._transition(
            state.repeat_interleave(codes, 0),
            first.repeat_interleave(codes, 0),
            action.repeat_interleave(codes, 0),
            hypotheses,
        )
        # How far each hypothesis is from what happened: the unweighted frame loss and
        # the latent loss (change_weight, if set, weighs only the winner's frame loss).
        frames = self.frame_of(next_states, canvas.repeat_interleave(codes, 0))
        target = self.newest_frame(real_obs).repeat_interleave(codes, 0)
        error = F.binary_cross_entropy(
            frames.clamp(1e-6, 1.0 - 1e-6), target, reduction="none"
        ).flatten(1).mean(1)
        with torch.no_grad():
            encoded = self.initial_state(real_obs).repeat_interleave(codes, 0)
        error = error + self.consistency_coeff * (next_states - encoded).pow(2).flatten(1).mean(1)
        error = error.view(batch, codes)
        winner = error.detach().argmin(1)
        rows = torch.arange(batch, device=state.device) * codes + winner
        # Relaxed winner-takes-all (Rupprecht et al. 2017): the losing hypotheses get a
        # small share of the loss, so one that wins nothing early is not left untrained
        # (otherwise the first blur-like hypothesis wins every row for good).
        losers = torch.ones_like(error).scatter_(1, winner[:, None], 0.0)
        relaxed = LOSER_WEIGHT * (error * losers).sum() / losers.sum()
        prior_loss = F.cross_entropy(self.prior_logits(self._features(first, action)), winner)
        prior_loss = prior_loss + relaxed
        return next_states[rows], reward_logits[rows], prior_loss

    def step_every_action(self, state):
        # The first convolution does not depend on the action: once per state.
        num_actions = self.num_actions
        first = self.transition_in(state).repeat_interleave(num_actions, dim=0)
        tiled = state.repeat_interleave(num_actions, dim=0)
        actions = torch.arange(num_actions, device=state.device).repeat(state.shape[0])
        next_state, reward_logits = self._transition(tiled, first, actions)
        return next_state, self.expected_reward(reward_logits)

    def frame_of(self, state, canvas):
        features = F.relu(F.pixel_shuffle(self.decoder(state), self.factor))
        return self.frame_out(features, canvas)

    def consistency(self, state, real_obs):
        with torch.no_grad():
            target = self.initial_state(real_obs)
        return self.consistency_coeff * F.mse_loss(state, target)
