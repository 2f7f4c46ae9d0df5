"""The I2A pipeline behind `tuned_examples/i2a.py` and `i2a train`.

    stage 1  collect     Ray actors play the env, Parquet shards      (i2a_rllib.data)
    stage 2  pretrain    Ray Train job fits the environment model      (i2a_rllib.pretrain)
    stage 3  train       RLlib PPO/A2C trains the I2A RLModule         (i2a_rllib.config)
    stage 4  evaluate    scores, a GIF and a picture of imagination   (i2a_rllib.evaluation)

With `--env-model-checkpoint` (or `--env-model copy` / `perfect`) stages 1-2 are skipped. Everything
of one run lives under `<storage-path>/<name>/`: data/, env_model/, train/, evaluation/.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, Optional

from i2a_rllib.commands import json_object_arg, rollout_depth_arg
from i2a_rllib.experiment import (
    RunDirectoryError,
    check_output_location,
    default_stop,
    init_ray,
    script_arg_parser,
)
from i2a_rllib.experiment.preflight import check_checkpoints_load

# `--laptop`: sizes that run the whole pipeline on 2 CPU cores in well under 30 minutes.
LAPTOP_PRESET: Dict[str, Any] = dict(
    collect_policy_steps=0,  # random play: no time to train a policy to collect with
    collect_transitions=20_000,
    pretrain_epochs=3,
    pretrain_horizon=3,
    stop_timesteps=25_000,  # ~10 min at one torch thread per phase, less with the 2 below
    num_env_runners=1,
    # Sampling and updating take turns: each on both cores (set_torch_threads).
    env_runner_threads=2,
    learner_threads=2,
    num_envs_per_env_runner=8,
    train_batch_size=1024,
    minibatch_size=256,
    num_epochs=2,
    evaluation_episodes=4,
)

# `--laptop` when stage 2 trains a spatial model (Atari frames): the folded layout
# (folded.py), whose imagined paddle follows the action after ~1,000 updates (the default
# layout's stays put at this budget), and one worker x 32, twice the updates per epoch
# of 2 x 64 (~1,600 in all; 2 x 16 was no faster on 2 cores).
LAPTOP_SPATIAL_PRESET: Dict[str, Any] = dict(
    env_model_hparams={"architecture": "folded"},
    pretrain_workers=1,
    pretrain_batch_size=32,
)


def i2a_arg_parser(**defaults) -> argparse.ArgumentParser:
    """RLlib's example-script flags + run location + I2A and pipeline flags."""
    parser = script_arg_parser(
        default_reward=defaults.pop("default_reward", float("inf")),
        default_timesteps=defaults.pop("default_timesteps", 10_000_000),
    )
    group = parser.add_argument_group("I2A")
    group.add_argument(
        "--env-config",
        type=json_object_arg("--env-config", '{"repeat_action_probability": 0.0}'),
        default={},
        help="JSON env settings.",
    )
    group.add_argument(
        "--env-model", default="auto", choices=["auto", "latent", "spatial", "pixel", "mlp", "copy", "perfect"]
    )
    group.add_argument("--env-model-checkpoint", default=os.environ.get("I2A_ENV_MODEL_CHECKPOINT"))
    group.add_argument(
        "--rollout-depth",
        type=rollout_depth_arg,
        default="auto",
        help="Imagined steps per rollout, or auto (default): 2 for the spatial models (the "
        "Atari default; docs/benchmarks.md 'Rollout depth on Breakout'), 5 (the paper's) else.",
    )
    group.add_argument("--rollout-action-choice", default="sample", choices=["sample", "argmax"])
    group.add_argument(
        "--snap-imagined-frames",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Round a frame model's imagined frames to 0 or 1 before the rollout encoder "
        "reads them (one-hot boards such as Sokoban's; docs/results.md).",
    )
    group.add_argument(
        "--imagination-precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="bf16: imagined rollouts in bfloat16 autocast (CPUs with AMX, GPUs; Breakout "
        "sampling 1.24-1.30x faster with --torch-compile-worker, docs/benchmarks.md). "
        "Default auto: bf16 for spatial models imagining on a CPU with AMX, else fp32.",
    )
    group.add_argument("--distillation-coeff", type=float, default=1.0)
    group.add_argument(
        "--rollout-policy-checkpoint",
        default=None,
        help="Seed's stage 2: a model-free baseline checkpoint whose policy, frozen, "
        "acts in imagination (needs --env-model pixel or copy).",
    )
    group.add_argument("--train-batch-size", type=int, default=None)
    group.add_argument("--minibatch-size", type=int, default=None)
    group.add_argument("--num-epochs", type=int, default=None)
    group.add_argument("--lr", type=float, default=None)
    group.add_argument("--seed", type=int, default=0)
    pipeline = parser.add_argument_group("pipeline (when no --env-model-checkpoint)")
    pipeline.add_argument("--collect-transitions", type=int, default=200_000)
    pipeline.add_argument("--collect-actors", type=int, default=2)
    pipeline.add_argument("--collect-envs-per-actor", type=int, default=8)
    pipeline.add_argument(
        "--collect-policy-checkpoint",
        default=None,
        help="Collect with this (e.g. PPO baseline) policy instead of random play.",
    )
    pipeline.add_argument(
        "--collect-policy-steps",
        type=int,
        default=0,
        help="The paper's recipe: first train the PPO baseline for this many env steps "
        "and collect with it (random play rarely clears a brick); 0 = random play.",
    )
    pipeline.add_argument(
        "--collect-epsilon",
        type=float,
        default=0.25,
        help="Share of random actions mixed into a collecting policy's, for coverage.",
    )
    pipeline.add_argument("--pretrain-epochs", type=int, default=5)
    pipeline.add_argument("--pretrain-workers", type=int, default=2)
    pipeline.add_argument("--pretrain-batch-size", type=int, default=64)
    pipeline.add_argument("--pretrain-lr", type=float, default=1e-3)
    pipeline.add_argument("--pretrain-lr-schedule", default="constant", choices=["constant", "cosine"])
    pipeline.add_argument(
        "--pretrain-horizon",
        type=int,
        default=1,
        help="Open-loop steps the environment model is trained over (1 -> (K+1)/2 -> K).",
    )
    pipeline.add_argument(
        "--env-model-hparams",
        type=json_object_arg("--env-model-hparams", '{"channels": 16}'),
        default={},
        help="JSON settings of the environment model stage 2 trains, e.g. "
        '\'{"channels": 16}\' (pixel), \'{"latent_size": 64}\' (latent) or '
        '\'{"codes": 4}\' (spatial, stochastic: 4 hypotheses per imagined step).',
    )
    pipeline.add_argument("--evaluation-episodes", type=int, default=10)
    pipeline.add_argument(
        "--laptop",
        action="store_true",
        help=f"Small sizes for a 2-core machine: {LAPTOP_PRESET}; when it pretrains a "
        f"spatial model, also {LAPTOP_SPATIAL_PRESET}.",
    )
    parser.set_defaults(algo="ppo", **defaults)
    return parser


def apply_presets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """`--laptop` fills every setting the user did not give explicitly."""
    args.algo = str(args.algo).lower()
    if args.algo not in ("ppo", "a2c"):
        parser.error(f"--algo {args.algo!r}: use 'ppo' or 'a2c'.")
    if args.algo == "a2c" and (
        args.minibatch_size not in (None, args.train_batch_size) or args.num_epochs not in (None, 1)
    ):
        # The A2C preset would silently drop them (one gradient step over the whole batch).
        parser.error(
            f"--algo a2c takes one gradient step over the whole train batch; --minibatch-size="
            f"{args.minibatch_size} / --num-epochs={args.num_epochs} would be ignored. Drop "
            "them (the step uses all of --train-batch-size) or use --algo ppo."
        )
    if args.laptop:
        for key, value in LAPTOP_PRESET.items():
            if args.algo == "a2c" and key in ("minibatch_size", "num_epochs"):
                continue  # fixed by the A2C preset
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    # The kind ("auto") is known once the env is probed: run_pipeline applies these.
    args.laptop_spatial = {
        key: value
        for key, value in LAPTOP_SPATIAL_PRESET.items()
        if args.laptop and getattr(args, key) == parser.get_default(key)
    }
    return args


def build_i2a_config(args: argparse.Namespace, env_model_checkpoint: Optional[str] = None):
    """The I2AConfig the flags describe (not validated yet)."""
    from i2a_rllib.config import I2AConfig, configure_environment

    config = configure_environment(
        I2AConfig(),
        args.env,
        env_config=args.env_config,
        num_envs_per_env_runner=args.num_envs_per_env_runner,
        overlap_sampling=getattr(args, "overlap_sampling", False),
    )
    if args.algo == "a2c":
        config.a2c(train_batch_size_per_learner=args.train_batch_size or 80)
    else:
        training = {
            k: v
            for k, v in dict(
                train_batch_size_per_learner=args.train_batch_size,
                minibatch_size=args.minibatch_size,
                num_epochs=args.num_epochs,
            ).items()
            if v is not None
        }
        config.training(**training)
    if args.lr is not None:
        config.training(lr=args.lr)
    config.env_runners(
        num_env_runners=args.num_env_runners if args.num_env_runners is not None else 1,
        rollout_fragment_length="auto",
    )
    config.debugging(seed=args.seed)
    return config.imagination(
        env_model=args.env_model,
        env_model_checkpoint=env_model_checkpoint or args.env_model_checkpoint,
        rollout_depth=args.rollout_depth,
        rollout_action_choice=args.rollout_action_choice,
        snap_imagined_frames=args.snap_imagined_frames,
        imagination_precision=args.imagination_precision,
        distillation_coeff=args.distillation_coeff,
        rollout_policy_checkpoint=args.rollout_policy_checkpoint,
    )


def _stage(number: int, title: str) -> None:
    print(f"\n[i2a] ===== stage {number}: {title} =====", flush=True)


def run_pipeline(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs collect -> pretrain -> train -> evaluate; prints where everything is."""
    from i2a_rllib.experiment import apply_script_args, run_experiment

    name = args.name or f"i2a_{args.env.split('/')[-1].replace('-', '_')}_{time.strftime('%Y%m%d_%H%M%S')}"
    if "://" in args.storage_path:
        raise ValueError(
            f"--storage-path {args.storage_path!r}: the whole pipeline (collect, pretrain, "
            "train) needs a filesystem path every node sees (e.g. an EFS/NFS mount such as "
            "/mnt/efs/i2a); URIs work for training alone (--env-model-checkpoint given)."
        )
    root = check_output_location(args.storage_path, name, args.resume)
    from i2a_rllib.models.env_models import RULE_KINDS

    needs_model = not args.env_model_checkpoint and args.env_model not in RULE_KINDS
    # Every setting is checked before the first actor starts: build and validate the
    # training config now (with a placeholder for the checkpoint stage 2 will write).
    # Env ids, I2A settings and checkpoints first, before Ray starts; then the
    # resources, which need the cluster.
    probe = build_i2a_config(args)
    probe.validate()
    check_checkpoints_load(probe)
    if needs_model:
        kind = args.env_model if args.env_model != "auto" else _default_kind(probe)
        if kind == "spatial":
            for key, value in getattr(args, "laptop_spatial", {}).items():
                setattr(args, key, value)
        _check_pretrain_settings(probe, kind, args)
    init_ray(num_cpus=args.num_cpus or None)
    apply_script_args(probe, args)
    probe.validate()
    os.makedirs(root, exist_ok=True)
    started = time.time()
    paths: Dict[str, Any] = {"run": root}
    env_model_checkpoint = args.env_model_checkpoint
    if needs_model:
        from i2a_rllib.data.collect import collect
        from i2a_rllib.pretrain.train import ENV_MODEL_DIR, pretrain

        collect_policy = args.collect_policy_checkpoint
        if args.collect_policy_steps:
            _stage(0, f"train the PPO baseline for {args.collect_policy_steps:,} env steps to collect with")
            collect_policy = _train_collecting_policy(args, root)
            paths["collect_policy"] = collect_policy
        _stage(1, f"collect {args.collect_transitions:,} transitions of {args.env}")
        data = os.path.join(root, "data")
        collect(
            args.env,
            data,
            args.collect_transitions,
            num_actors=args.collect_actors,
            num_envs_per_actor=args.collect_envs_per_actor,
            # At least ~10 shards, so whole shards can be held out for validation.
            shard_size=max(50, min(1000, args.collect_transitions // 10)),
            policy_checkpoint=collect_policy,
            epsilon=args.collect_epsilon if collect_policy else 0.0,
            seed=args.seed,
            env_config=args.env_config,
        )
        paths["data"] = data
        model_dir = os.path.join(root, "env_model")
        env_model_checkpoint = os.path.join(model_dir, ENV_MODEL_DIR)
        if os.path.isdir(env_model_checkpoint):
            print(f"[i2a] stage 2 already done: {env_model_checkpoint}", flush=True)
        else:
            _stage(2, f"pretrain the {kind} environment model (Ray Train)")
            pretrain(
                data,
                model_dir,
                kind=kind,
                epochs=args.pretrain_epochs,
                batch_size=args.pretrain_batch_size,
                lr=args.pretrain_lr,
                lr_schedule=args.pretrain_lr_schedule,
                horizon=args.pretrain_horizon,
                hparams=args.env_model_hparams,
                num_workers=args.pretrain_workers,
                use_gpu=bool(args.num_gpus_per_learner),
                resume=args.resume and os.path.isdir(os.path.join(model_dir, "pretrain")),
                seed=args.seed,
            )
        paths["env_model"] = env_model_checkpoint
        paths["env_model_pictures"] = os.path.join(model_dir, "evaluation")

    _stage(3, f"train I2A with {args.algo.upper()} (RLlib)")
    config = build_i2a_config(args, env_model_checkpoint)
    train_args = argparse.Namespace(**vars(args))
    train_args.storage_path, train_args.name = root, "train"
    train_args.resume = args.resume and os.path.isdir(os.path.join(root, "train"))
    summary = run_experiment(config, train_args, default_stop(args))
    paths["checkpoint"] = summary["checkpoint"]
    paths["tensorboard"] = root

    if summary["checkpoint"] and args.evaluation_episodes > 0:
        from i2a_rllib.evaluation import evaluate_checkpoint

        _stage(4, f"evaluate {args.evaluation_episodes} episodes")
        evaluation = evaluate_checkpoint(
            summary["checkpoint"],
            episodes=args.evaluation_episodes,
            output=os.path.join(root, "evaluation"),
        )
        paths["evaluation"] = evaluation["files"]
        paths["score_mean"] = evaluation["score_mean"]

    print(f"\n[i2a] ===== done in {time.time() - started:,.0f}s =====", flush=True)
    for key, value in paths.items():
        print(f"[i2a] {key:>18}: {value}", flush=True)
    print(f"[i2a] {'TensorBoard':>18}: tensorboard --logdir {root}", flush=True)
    return paths


def train_baseline(
    args: argparse.Namespace, root: str, name: str, stop: Dict[str, Any], training: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The model-free PPO baseline on the flags' env and sampling, trained into
    <root>/<name> (resumed if there) until `stop`; `training` overrides PPO settings.

    Returns run_experiment's summary (its last checkpoint under "checkpoint").
    """
    from i2a_rllib.config import baseline_ppo_config
    from i2a_rllib.experiment import run_experiment

    config = baseline_ppo_config(
        args.env,
        env_config=args.env_config,
        num_envs_per_env_runner=args.num_envs_per_env_runner,
        overlap_sampling=getattr(args, "overlap_sampling", False),
    ).env_runners(
        num_env_runners=args.num_env_runners if args.num_env_runners is not None else 1,
        rollout_fragment_length="auto",
    )
    config.training(**{k: v for k, v in (training or {}).items() if v is not None})
    config.debugging(seed=args.seed)
    run_args = argparse.Namespace(**vars(args))
    run_args.storage_path, run_args.name = root, name
    run_args.resume = os.path.isdir(os.path.join(root, name))
    return run_experiment(config, run_args, stop)


def _train_collecting_policy(args: argparse.Namespace, root: str) -> str:
    """Stage 0: the PPO baseline trained for --collect-policy-steps (resumed if there).

    Returns its last checkpoint, the policy stage 1 collects with.
    """
    stop = {"num_env_steps_sampled_lifetime": args.collect_policy_steps}
    return train_baseline(args, root, "collect_policy", stop)["checkpoint"]


def _check_pretrain_settings(config, kind: str, args: argparse.Namespace) -> None:
    """Stage 2's settings, checked before stage 1 collects anything."""
    from i2a_rllib.envs import probe_spaces
    from i2a_rllib.models.env_models import resolve_env_model

    if not args.pretrain_lr > 0:
        raise ValueError(f"--pretrain-lr {args.pretrain_lr}: must be > 0 (default 1e-3).")
    if args.collect_policy_steps < 0 or not 0.0 <= args.collect_epsilon <= 1.0:
        raise ValueError(
            f"--collect-policy-steps {args.collect_policy_steps} must be >= 0 and "
            f"--collect-epsilon {args.collect_epsilon} in [0, 1]."
        )
    if args.collect_policy_steps and args.collect_policy_checkpoint:
        raise ValueError(
            "--collect-policy-steps trains a policy to collect with, --collect-policy-"
            "checkpoint names one: give one of them."
        )
    if args.pretrain_horizon < 1:
        raise ValueError(f"--pretrain-horizon {args.pretrain_horizon}: must be an integer >= 1.")
    obs_space, action_space = probe_spaces(config.env, config.env_config)
    try:
        resolve_env_model(
            kind, obs_space.shape, int(action_space.n), hparams=dict(args.env_model_hparams)
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"--env-model-hparams {args.env_model_hparams} ({kind} model): {e}") from None


def _default_kind(config) -> str:
    from i2a_rllib.envs import probe_spaces
    from i2a_rllib.models.env_models import default_kind

    obs_space, _ = probe_spaces(config.env, config.env_config)
    return default_kind(obs_space.shape)


__all__ = ["LAPTOP_PRESET", "LAPTOP_SPATIAL_PRESET", "apply_presets", "build_i2a_config", "i2a_arg_parser", "run_pipeline", "train_baseline", "RunDirectoryError"]
