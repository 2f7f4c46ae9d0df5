"""I2A on Atari Breakout with RLlib: the product's main job.

Trains the Imagination-Augmented Agent (Weber et al. 2017) through RLlib's PPO (or its
A2C preset). Without an environment-model checkpoint it runs the whole pipeline and
prints each stage:
  0. train the model-free PPO baseline for --collect-policy-steps env steps (the
     paper collected with a partially trained agent: random Breakout play rarely
     clears a brick), unless --laptop or --collect-policy-checkpoint,
  1. collect transitions with Ray actors stepping ale-py's vector env (that policy
     with --collect-epsilon random actions mixed in, or random play),
  2. pretrain the spatial-latent environment model as a Ray Train job (DDP,
     checkpoint per epoch), open loop over 1 -> 3 -> 5 steps,
  3. train I2A: CPU EnvRunners sample vectorized Breakout, learners (GPU when present,
     DDP when several) run PPO + the rollout-policy distillation loss,
  4. evaluate the final checkpoint: scores, a GIF of an episode, a PNG of imagination.

How to run this script
----------------------
Laptop (2 cores, local embedded Ray, ~15 min; what `make run` runs):
    python tuned_examples/i2a.py --laptop
With a pretrained environment model (stages 0-2 skipped), e.g. the shipped one:
    python tuned_examples/i2a.py --env-model-checkpoint pretrained/breakout_spatial
Cluster (see cluster/README.md):
    ray job submit --working-dir . -- python tuned_examples/i2a.py --num-env-runners 64
        --num-learners 4 --num-gpus-per-learner 1 --storage-path /mnt/efs/i2a
Other games: --env ALE/Pong-v5. A2C instead of PPO: --algo a2c. The paper's control
agent: --env-model copy. RLlib flags (--num-env-runners, --num-envs-per-env-runner,
--num-learners, --num-gpus-per-learner, --stop-timesteps, --stop-reward, --no-tune,
--checkpoint-freq, ...) work as in RLlib's examples.
`rllib train file tuned_examples/i2a.py` uses the module-level `config` and `stop`
(set I2A_ENV_MODEL_CHECKPOINT to give it a pretrained environment model).

Results to expect
-----------------
On 2 CPU cores (`--laptop`: 20k transitions, 3 pretraining epochs of the folded spatial
model, 25k env steps of PPO with 2 epochs per batch) the run finishes in ~15 minutes
(install included) with returns at random level (~1; it checks every stage, it does not
learn at that budget).
With the latent model and 5e5 env steps (~70 min) the return reached ~6-9
(docs/results.md, with the curve); docs/benchmarks.md has the throughput figures.
"""

import sys

from i2a_rllib.commands import run_as_command
from i2a_rllib.experiment import default_stop, parse_script_args
from i2a_rllib.pipeline import apply_presets, build_i2a_config, i2a_arg_parser, run_pipeline

# Hyper-parameters (PPO settings: i2a_rllib.config.ATARI_PPO_SETTINGS, CleanRL's Atari PPO).
parser = i2a_arg_parser(
    env="ALE/Breakout-v5",
    env_model="spatial",  # imagination in a small feature map; 'pixel' = the paper's frames
    rollout_depth="auto",  # imagined steps per action: 2 for spatial models (paper: 5)
    rollout_action_choice="sample",  # rollout policy samples (paper) or takes argmax
    distillation_coeff=1.0,  # weight of -sum pi log pi_hat
    num_envs_per_env_runner=8,
    collect_policy_steps=500_000,  # PPO baseline trained this long collects the data
    collect_transitions=200_000,
    pretrain_epochs=5,
    pretrain_horizon=5,  # open-loop training steps, curriculum 1 -> 3 -> 5
    pretrain_lr=1e-3,
    pretrain_lr_schedule="cosine",
    default_timesteps=10_000_000,
)
args = apply_presets(parse_script_args(parser, as_main=__name__ == "__main__"), parser)

config = build_i2a_config(args)
stop = default_stop(args)

if __name__ == "__main__":
    sys.exit(run_as_command(run_pipeline, args, prog=parser.prog))
