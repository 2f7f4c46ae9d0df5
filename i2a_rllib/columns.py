"""The batch columns I2A adds to RLlib's, and who writes and reads each.

One contract between the RLModule (`i2a_rllib.rl_module`), the EnvRunners and the
learner (`i2a_rllib.learner`):

- `ROLLOUT_NOISE` (B, A, depth - 1) float in [0, 1): written by the module when it
  explores with a sampling rollout policy at depth >= 2 (EnvRunner); travels with the
  episodes to the learner, which imagines again with exactly this noise, so the rollout
  policy's sampled actions, and hence the behaviour logits, are replayed (see
  `I2ARLModule._forward_exploration`). Also read by `forward_inference` when given
  (reproducible evaluation).
- `IMAGINED_VIEWS` (B, A, depth, *view_shape) and `IMAGINED_REWARDS` (B, A, depth):
  written by the module when it explores and its views are maps, vectors or small
  frames, except where the memo keeps every imagined step (depth 1 over small boards;
  `I2ARLModule.ships_imagination`): they travel with the episodes, and the
  learner imagines only the bootstrap rows RLlib appends; otherwise written once per
  train batch by the learner connector piece `PrecomputeImagination`. Either way
  without gradients, and read by every epoch and minibatch of the update and by GAE's
  value pass instead of imagining again.
- `MODEL_STATE` (B, *state_shape): the environment model's state of the real
  observation, written beside the imagination for models whose state is not the frame
  stack itself (it saves the encoder pass in every minibatch); read by the rollout
  policy's distillation logits.
- `ROLLOUT_POLICY_LOGITS` (B, A): a forward-train output, the rollout policy's logits on
  the real observations, read by the distillation loss (absent at rollout depth 1, where
  no rollout policy acts).
"""

ROLLOUT_NOISE = "i2a_rollout_noise"
IMAGINED_VIEWS = "i2a_imagined_views"
IMAGINED_REWARDS = "i2a_imagined_rewards"
MODEL_STATE = "i2a_model_state"
ROLLOUT_POLICY_LOGITS = "i2a_rollout_policy_logits"

# The precomputed columns a whole-batch pass reads chunk by chunk.
IMAGINATION_COLUMNS = (ROLLOUT_NOISE, IMAGINED_VIEWS, IMAGINED_REWARDS, MODEL_STATE)
