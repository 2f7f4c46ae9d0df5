"""I2A on a vector-observation control task (CartPole-v1 by default), end to end in minutes.

The pipeline of tuned_examples/i2a.py on any gymnasium id with flat Box observations and
discrete actions (CartPole-v1, Acrobot-v1, MountainCar-v0, a registered env of your own):
  1. collect random-play transitions with Ray actors (gymnasium's SyncVectorEnv),
  2. pretrain the seed's residual MLP environment model (next state = state +
     f(state, action), scaled by the dataset's statistics, which the checkpoint's
     metadata keeps) as a Ray Train job, open loop over 1 -> 5 -> 10 steps,
  3. train I2A with PPO (MLP model-free path, rollout policy and rollout encoder over
     the state vectors; PPO settings: i2a_rllib.config.CLASSIC_CONTROL_PPO_SETTINGS),
  4. evaluate the final checkpoint (scores, a picture of the episode's states and one
     of imagination).
Training stops at the first iteration whose finished episodes average the environment's
maximum return (500; RLlib's `episode_return_mean`, which in Ray 2.60 covers the episodes
one iteration finished, often only 2-8 CartPole episodes of 500 steps) or at
--stop-timesteps; the evaluation then scores the policy over --evaluation-episodes.

How to run this script
----------------------
`python tuned_examples/i2a_classic.py` (local embedded Ray; CartPole-v1)
Other tasks: `--env Acrobot-v1 --stop-reward -100`. The paper's control agent:
`--env-model copy`. The model-free baseline:
`python tuned_examples/ppo_baseline.py --env CartPole-v1` (benchmarks/classic_comparison.py
runs all three at one budget). `rllib train file tuned_examples/i2a_classic.py` uses
the module-level `config` and `stop` (set I2A_ENV_MODEL_CHECKPOINT to a pretrained model).

Results to expect
-----------------
Measured on the 2-core development machine: see docs/results.md ("CartPole-v1: I2A vs
copy model vs PPO") for the environment model's held-out errors, the whole pipeline's
wall-clock time and the comparison.
"""

import sys

from i2a_rllib.commands import run_as_command
from i2a_rllib.experiment import default_stop, parse_script_args
from i2a_rllib.pipeline import apply_presets, build_i2a_config, i2a_arg_parser, run_pipeline

# Hyper-parameters. PPO: CLASSIC_CONTROL_PPO_SETTINGS (applied for flat observations).
parser = i2a_arg_parser(
    env="CartPole-v1",
    env_model="mlp",  # the seed's residual MLP ("auto" picks it for flat observations)
    rollout_depth=5,  # imagined steps per action (paper: 5)
    distillation_coeff=1.0,
    num_envs_per_env_runner=8,
    collect_transitions=20_000,  # random play: ~900 CartPole episodes
    collect_envs_per_actor=8,
    pretrain_epochs=10,
    pretrain_horizon=10,  # open loop 1 -> 5 -> 10 steps
    pretrain_batch_size=256,
    pretrain_lr=2e-3,
    pretrain_lr_schedule="cosine",
    evaluation_episodes=10,
    default_reward=500.0,  # CartPole-v1's maximum
    default_timesteps=300_000,
)
args = apply_presets(parse_script_args(parser, as_main=__name__ == "__main__"), parser)

config = build_i2a_config(args)
stop = default_stop(args)

if __name__ == "__main__":
    sys.exit(run_as_command(run_pipeline, args, prog=parser.prog))
