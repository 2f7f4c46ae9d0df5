"""Hyper-parameter sweep for I2A with Ray Tune: rollout depth x distillation x learning rate.

Every trial is one RLlib I2A (PPO) run with a frozen, pretrained environment model. The
sweep covers the three settings the I2A paper's ablations turn on:
  * rollout depth (imagined steps per action): grid 1, 3, 5 (paper: 5),
  * distillation coefficient (weight of -sum pi log pi_hat): sampled from a few values,
  * learning rate: log-uniform between two bounds.
Trials that fall behind are stopped early by ASHA (asynchronous successive halving) on
`env_runners/episode_return_mean`, time attribute `training_iteration`. Results,
checkpoints and TensorBoard files go to `<--storage-path>/<--name>/`; at the end the
script prints the best trial's settings and checkpoint, and writes them to
`<--storage-path>/<--name>/best_trial.json`.

The sweep does not collect data or pretrain: it needs an environment-model checkpoint
(`--env-model-checkpoint`, e.g. `<run>/env_model/env_model` written by
tuned_examples/i2a.py, or `i2a pretrain`'s `<output>/env_model`), or `--env-model copy`
(the paper's no-model control). On a multi-node cluster the checkpoint and
`--storage-path` must be on storage every node sees (EFS/NFS; see cluster/README.md).

How to run this script
----------------------
Laptop (2 cores; one trial at a time, tiny budget):
    python tuned_examples/i2a_sweep.py --env-model-checkpoint runs/<run>/env_model/env_model \
        --num-env-runners 1 --num-envs-per-env-runner 8 --train-batch-size 1024 \
        --stop-timesteps 100000 --max-concurrent-trials 1
Without a pretrained model (the copy control; depth and lr still matter):
    python tuned_examples/i2a_sweep.py --env-model copy --stop-iters 20
Cluster (see cluster/README.md for the resource math; each trial here asks for
8 EnvRunners + 1 GPU learner, so 4 trials at once need 32 CPUs + 4 GPUs + 4 driver CPUs):
    ray job submit --working-dir . -- python tuned_examples/i2a_sweep.py \
        --env-model-checkpoint /mnt/efs/i2a/breakout/env_model/env_model \
        --storage-path /mnt/efs/i2a --name sweep_breakout --num-samples 2 \
        --max-concurrent-trials 4 --num-env-runners 8 --num-learners 1 \
        --num-gpus-per-learner 1 --stop-timesteps 2000000
Narrower grids: `--rollout-depths 1 5`, `--distillation-coeffs 1.0`, `--lr-range 2e-4 5e-4`.
The grid multiplies: the sweep runs len(--rollout-depths) x --num-samples trials.
Watch it: `tensorboard --logdir <storage-path>/<name>`.

Results to expect
-----------------
With a few million env steps per trial on Breakout, deeper rollouts (3-5) with
distillation coefficient ~1 and lr ~2.5e-4 to 5e-4 are expected to lead, as in the
paper's depth ablation; on 2 CPU cores (100k steps per trial) all trials stay near
random play (~1-2 points) and the "best" trial is mostly noise. ASHA stops about
2/3 of the trials at each rung (reduction factor 3), so most of the compute goes to
the leaders. No full-budget sweep has been measured for this project yet.
Measured on the 2-core machine: 3 Breakout trials (latent model, 4 iterations of 512
steps, one at a time) take ~65 s; ASHA (--grace-period 1) stopped two of them at
iteration 3.
"""

import json
import math
import os
import sys
import time

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from i2a_rllib.experiment import (
    apply_script_args,
    build_tuner,
    check_output_location,
    default_stop,
    init_ray,
    parse_script_args,
)
from i2a_rllib.experiment.preflight import check_checkpoints_load
from i2a_rllib.commands import run_as_command
from i2a_rllib.pipeline import apply_presets, build_i2a_config, i2a_arg_parser

# What is swept (and ranked).
METRIC = "env_runners/episode_return_mean"
MODE = "max"
ROLLOUT_DEPTHS = [1, 3, 5]  # grid: every value gets --num-samples trials
DISTILLATION_COEFFS = [0.1, 0.3, 1.0, 3.0]  # tune.choice
LR_RANGE = (1e-4, 1e-3)  # tune.loguniform
# ASHA: a trial must survive `grace_period` iterations before it can be stopped; at
# each rung only the top 1/reduction_factor continue.
ASHA_GRACE_PERIOD = 10
ASHA_REDUCTION_FACTOR = 3

parser = i2a_arg_parser(
    env="ALE/Breakout-v5",
    env_model="auto",  # the checkpoint's kind ('copy' needs none)
    num_envs_per_env_runner=8,
    default_timesteps=2_000_000,
)
parser.description = __doc__.split("\n")[0]
# Tune's verbosity 2 prints every trial's whole config with each result; 1 keeps the table.
parser.set_defaults(verbose=1)
sweep = parser.add_argument_group("sweep (--num-samples and --max-concurrent-trials: see above)")
sweep.add_argument("--rollout-depths", type=int, nargs="+", default=ROLLOUT_DEPTHS)
sweep.add_argument("--distillation-coeffs", type=float, nargs="+", default=DISTILLATION_COEFFS)
sweep.add_argument("--lr-range", type=float, nargs=2, default=list(LR_RANGE), metavar=("LOW", "HIGH"))
sweep.add_argument("--grace-period", type=int, default=ASHA_GRACE_PERIOD)
sweep.add_argument("--reduction-factor", type=float, default=ASHA_REDUCTION_FACTOR)


def check_sweep_args(args) -> None:
    """Refuses settings the sweep cannot run with, before Ray starts."""
    if not args.env_model_checkpoint and args.env_model != "copy":
        parser.error(
            f"the sweep needs a pretrained environment model: pass --env-model-checkpoint "
            f"<dir> (tuned_examples/i2a.py writes <run>/env_model/env_model; `i2a pretrain` "
            f"writes <output>/env_model), or --env-model copy for the paper's no-model "
            f"control. (--env-model {args.env_model} without a checkpoint would pretrain "
            f"one model per trial; the sweep never pretrains.)"
        )
    if args.env_model_checkpoint and "://" not in args.env_model_checkpoint:
        # Trials run in their own working directories: relative paths would break.
        args.env_model_checkpoint = os.path.abspath(args.env_model_checkpoint)
        if not os.path.isdir(args.env_model_checkpoint):
            parser.error(
                f"--env-model-checkpoint {args.env_model_checkpoint} does not exist (on a "
                "cluster it must be on storage that every node mounts at the same path)."
            )
    low, high = args.lr_range
    if not 0 < low < high:
        parser.error(f"--lr-range {low} {high}: need 0 < LOW < HIGH.")
    if args.lr is not None:
        parser.error("--lr is swept; use --lr-range LOW HIGH instead.")
    if min(args.rollout_depths) < 1:
        parser.error(f"--rollout-depths {args.rollout_depths}: every depth must be >= 1.")
    if min(args.distillation_coeffs) < 0:
        parser.error(f"--distillation-coeffs {args.distillation_coeffs}: must be >= 0.")
    if args.num_samples < 1:
        parser.error(f"--num-samples {args.num_samples} must be >= 1.")
    if args.no_tune:
        parser.error("--no-tune: a sweep runs through Tune; drop the flag.")


def build_sweep_config(args):
    """An I2AConfig whose swept fields are Tune search spaces (resolved per trial).

    `validate()` must not see these: Tune resolves the param_space first and every
    trial validates its own, concrete config. To fail early on everything else, one
    concrete sample (first depth, first coefficient, lower lr) is validated here.
    """
    probe = apply_script_args(build_i2a_config(args), args)
    probe.imagination(
        rollout_depth=args.rollout_depths[0], distillation_coeff=args.distillation_coeffs[0]
    ).training(lr=args.lr_range[0])
    probe.validate()

    config = apply_script_args(build_i2a_config(args), args)
    config.imagination(
        rollout_depth=tune.grid_search(list(args.rollout_depths)),
        distillation_coeff=tune.choice(list(args.distillation_coeffs)),
    ).training(lr=tune.loguniform(*args.lr_range))
    return config, probe


def asha_budget(args, probe) -> int:
    """ASHA's max_t in iterations: --stop-iters, or the iterations --stop-timesteps takes."""
    iterations_for_timesteps = math.ceil(args.stop_timesteps / max(1, probe.total_train_batch_size))
    return max(1, min(args.stop_iters, iterations_for_timesteps))


def run_sweep(args):
    # The first iterations of an Atari run often end before any episode does, so early
    # results lack `env_runners/episode_return_mean`; ASHA skips such results, but Tune's
    # strict metric check (read by the Tune driver, i.e. this process) would fail the trial.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    name = args.name or f"i2a_sweep_{args.env.split('/')[-1].replace('-', '_')}_{time.strftime('%Y%m%d_%H%M%S')}"
    experiment_dir = check_output_location(args.storage_path, name, args.resume)
    # The env model and the I2A settings, checked before Ray starts (as the pipeline does).
    probe = build_i2a_config(args)
    probe.validate()
    check_checkpoints_load(probe)
    init_ray(num_cpus=args.num_cpus or None)
    config, probe = build_sweep_config(args)
    max_t = asha_budget(args, probe)
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=max(1, min(args.grace_period, max_t)),
        reduction_factor=args.reduction_factor,
    )
    trials = len(args.rollout_depths) * args.num_samples
    print(
        f"[i2a] sweep {experiment_dir}: {trials} trials (rollout depths {args.rollout_depths} "
        f"x {args.num_samples} samples), distillation in {args.distillation_coeffs}, lr "
        f"log-uniform in {args.lr_range}; ASHA on {METRIC} up to {max_t} iterations",
        flush=True,
    )
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode=MODE,
        scheduler=scheduler,
        num_samples=args.num_samples,
        max_concurrent_trials=args.max_concurrent_trials,
    )
    tuner = build_tuner(config, args, name, experiment_dir, default_stop(args), tune_config, num_to_keep=2)
    results = tuner.fit()
    return report(results, experiment_dir)


def report(results, experiment_dir: str) -> dict:
    """Prints (and writes best_trial.json) the best trial's settings and checkpoint."""
    for error in results.errors:
        print(f"[i2a] a trial failed: {error!r}", flush=True)
    try:
        best = results.get_best_result(metric=METRIC, mode=MODE, scope="last")
    except RuntimeError as e:
        raise SystemExit(
            f"[i2a] no trial reported {METRIC} ({e}). Either every trial failed (see above) "
            "or no episode finished: raise --stop-iters/--stop-timesteps or "
            "--train-batch-size."
        ) from None
    swept = {
        "rollout_depth": best.config.get("rollout_depth"),
        "distillation_coeff": best.config.get("distillation_coeff"),
        "lr": best.config.get("lr"),
    }
    metrics = best.metrics or {}
    summary = {
        "experiment_dir": experiment_dir,
        "num_trials": len(results),
        "num_errors": len(results.errors),
        "best_trial_dir": best.path,
        "best_config": swept,
        "best_" + METRIC: _number(metrics.get("env_runners", {}).get("episode_return_mean")),
        "training_iteration": metrics.get("training_iteration"),
        "checkpoint": best.checkpoint.path if best.checkpoint else None,
    }
    if "://" not in experiment_dir:
        with open(os.path.join(experiment_dir, "best_trial.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    print(f"[i2a] trials:      {summary['num_trials']} ({summary['num_errors']} failed)", flush=True)
    print(f"[i2a] best trial:  {best.path}", flush=True)
    print(f"[i2a] best config: {json.dumps(swept)}", flush=True)
    print(f"[i2a] best {METRIC}: {summary['best_' + METRIC]}", flush=True)
    print(f"[i2a] checkpoint: {summary['checkpoint']}", flush=True)
    print(f"[i2a] TensorBoard: tensorboard --logdir {experiment_dir}", flush=True)
    return summary


def _number(value):
    return None if value is None else float(value)


args = apply_presets(parse_script_args(parser, as_main=__name__ == "__main__"), parser)

def main(args) -> None:
    check_sweep_args(args)
    run_sweep(args)


if __name__ == "__main__":
    sys.exit(run_as_command(main, args, prog=parser.prog))
