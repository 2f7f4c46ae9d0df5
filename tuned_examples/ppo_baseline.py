"""Model-free PPO baseline on vectorized Atari (Breakout by default).

The agent every I2A figure is compared against: RLlib's PPO (new API stack) with a
Nature-CNN RLModule that reads the uint8 (4, 84, 84) frame stacks of ale-py's C++
`AtariVectorEnv` directly.

Hyper-parameters: the PPO Atari recipe of Schulman et al. (2017), as in CleanRL's
`ppo_atari.py`: 8 envs x 128 steps per batch, 4 epochs of 4 minibatches, clip 0.1,
entropy 0.01, value coefficient 0.5, gradient-norm clip 0.5, gamma 0.99, GAE lambda
0.95, lr 2.5e-4 annealed linearly to 0 over 10M env steps, rewards clipped to their
sign for the update (the reported `episode_return_mean` is the unclipped score).

How to run this script
----------------------
`python tuned_examples/ppo_baseline.py` (all local cores, local embedded Ray)

Scaled out (e.g. via `ray job submit`, see cluster/README.md):
`python tuned_examples/ppo_baseline.py --num-env-runners 32 --num-envs-per-env-runner 8
--num-learners 1 --num-gpus-per-learner 1 --stop-timesteps 10000000`

Other games: `--env ALE/Pong-v5`. Flags are RLlib's example-script flags
(`--num-env-runners`, `--num-envs-per-env-runner`, `--num-learners`,
`--num-gpus-per-learner`, `--stop-timesteps`, `--stop-reward`, `--no-tune`,
`--checkpoint-freq`, ...) plus `--storage-path`, `--name`, `--resume`.
`rllib train file tuned_examples/ppo_baseline.py` also works (it reads `config`/`stop`).

Results to expect
-----------------
Published PPO reaches ~400 on Breakout after 10M env steps (CleanRL: 416 +- 31). On the
2-core development machine, sampling runs at ~1,000-1,500 env steps/s, so 10M steps
take days; see docs/results.md for the budget actually measured here.
"""

import sys

from i2a_rllib.config import baseline_ppo_config
from i2a_rllib.commands import run_as_command
from i2a_rllib.experiment import default_stop, parse_script_args, run_experiment, script_arg_parser

parser = script_arg_parser(default_reward=400.0, default_timesteps=10_000_000)
parser.set_defaults(env="ALE/Breakout-v5", num_envs_per_env_runner=8)
args = parse_script_args(parser, as_main=__name__ == "__main__")

config = baseline_ppo_config(
    args.env,
    num_envs_per_env_runner=args.num_envs_per_env_runner,
    overlap_sampling=args.overlap_sampling,
).env_runners(
    num_env_runners=args.num_env_runners if args.num_env_runners is not None else 1,
    rollout_fragment_length="auto",
)
stop = default_stop(args)

if __name__ == "__main__":
    sys.exit(run_as_command(run_experiment, config, args, stop, prog=parser.prog))
