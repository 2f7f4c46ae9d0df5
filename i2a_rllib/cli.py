"""`i2a`: the command line of the project.

    i2a envs                                  list the environment ids
    i2a collect --env ALE/Breakout-v5 --output data/breakout --num-transitions 200000
    i2a pretrain --data data/breakout --output runs/em_breakout --horizon 5 --epochs 5
    i2a train [tuned_examples/i2a.py flags]   the whole pipeline, or training only
    i2a evaluate <checkpoint> --episodes 10   scores, a GIF, a picture of imagination

Every command checks its input before starting Ray work and exits non-zero with a
message that names the problem and the fix.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from i2a_rllib.commands import json_object_arg


class CliError(Exception):
    """An input error reported to the user as one line, exit code 2."""


def _collect(args) -> None:
    from i2a_rllib.data.collect import collect
    from i2a_rllib.envs import rllib_env_settings

    rllib_env_settings(args.env, args.env_config)  # unknown ids fail before Ray starts
    manifest = collect(
        args.env,
        args.output,
        args.num_transitions,
        num_actors=args.num_actors,
        num_envs_per_actor=args.num_envs_per_actor,
        shard_size=args.shard_size,
        policy_checkpoint=args.policy_checkpoint,
        epsilon=args.epsilon,
        seed=args.seed,
        env_config=args.env_config,
        num_cpus=args.num_cpus,  # Ray starts after collect's checks
    )
    print(f"[collect] dataset: {args.output} ({manifest.num_transitions:,} transitions)")


def _pretrain(args) -> None:
    from i2a_rllib.data.format import read_manifest
    from i2a_rllib.pretrain.train import pretrain

    read_manifest(args.data)  # missing/empty datasets fail before Ray starts
    pretrain(
        args.data,
        args.output,
        kind=args.kind,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        horizon=args.horizon,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        resume=args.resume,
        seed=args.seed,
        hparams=args.hparams,
        num_cpus=args.num_cpus,  # Ray starts after pretrain's checks
        init_from=args.init_from,
    )


def _train(argv: List[str]) -> None:
    from i2a_rllib.pipeline import apply_presets, i2a_arg_parser, run_pipeline

    parser = i2a_arg_parser(env="ALE/Breakout-v5")
    parser.prog = "i2a train"
    run_pipeline(apply_presets(parser.parse_args(argv), parser))


def _evaluate(args) -> None:
    import os

    from i2a_rllib.config import resolve_rl_module_checkpoint
    from i2a_rllib.evaluation import evaluate_checkpoint

    module_dir = resolve_rl_module_checkpoint(args.checkpoint)
    if os.path.isdir(args.checkpoint) and not os.path.isfile(
        os.path.join(module_dir, "class_and_ctor_args.pkl")
    ):
        raise ValueError(
            f"{args.checkpoint!r} is not an RLlib Algorithm or RLModule checkpoint (no "
            "class_and_ctor_args.pkl). Pass the directory a training run printed as "
            "'checkpoint:'."
        )
    evaluate_checkpoint(
        args.checkpoint,
        episodes=args.episodes,
        output=args.output,
        env_id=args.env,
        num_envs=args.num_envs,
        greedy=args.greedy,
        seed=args.seed,
    )


def _envs(args) -> None:
    from i2a_rllib.envs import BOARD_ENVS
    from i2a_rllib.envs.atari import _ale_id, all_rom_ids
    from i2a_rllib.envs.gymnasium_envs import classic_control_ids

    for env_id in BOARD_ENVS:
        print(env_id)
    # Any gymnasium id with flat observations and discrete actions works; these ship.
    for env_id in classic_control_ids():
        print(env_id)
    for rom in all_rom_ids():
        print(_ale_id(rom))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2a", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("envs", help="list environment ids").set_defaults(func=_envs)

    p = sub.add_parser("collect", help="collect transitions into Parquet shards (Ray actors)")
    p.add_argument("--env", default="ALE/Breakout-v5")
    p.add_argument(
        "--env-config",
        type=json_object_arg("--env-config", '{"repeat_action_probability": 0.0}'),
        default={},
    )
    p.add_argument("--output", required=True, help="dataset directory or URI")
    p.add_argument("--num-transitions", type=int, required=True)
    p.add_argument("--num-actors", type=int, default=2)
    p.add_argument("--num-envs-per-actor", type=int, default=8)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--policy-checkpoint", default=None, help="RLlib checkpoint; default: random")
    p.add_argument("--epsilon", type=float, default=0.0, help="random-action share with a policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=None)
    p.set_defaults(func=_collect)

    p = sub.add_parser("pretrain", help="train the environment model (Ray Train job)")
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "spatial", "latent", "pixel", "mlp"],
        help="auto: 'spatial' for Atari frames, 'pixel' for small boards, 'mlp' for flat "
        "vectors (CartPole)",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument(
        "--horizon",
        type=int,
        default=1,
        help="open-loop steps per training window; epochs step through 1 -> (K+1)/2 -> K",
    )
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--hparams",
        type=json_object_arg("--hparams", '{"architecture": "dilated"}'),
        default={},
        help="JSON model settings, e.g. '{\"latent_size\": 64}' (latent) or "
        "'{\"architecture\": \"dilated\"}' (pixel, full-resolution Atari model; "
        "'frame_head' picks 'logit' or 'gate'); spatial: '{\"codes\": 4}' samples "
        "one of 4 hypotheses per imagined step, '{\"change_weight\": 3}' weighs the "
        "pixels that change, '{\"channels\": 16, \"dilations\": [1, 2, 4], "
        "\"decoder_channels\": 16}' (with change_weight 3) draws Breakout's ball one step ahead, "
        "'{\"step_weighting\": \"inverse\"}' weighs step k of a window 1/k (keeps more of it), "
        "'{\"reward_head\": \"map\"}' reads rewards off the map (or the folded layout's "
        "frame stack) with a head fitted after "
        "training on half-scoring batches (rare rewards such as Breakout's), "
        "'{\"architecture\": \"folded\"}' keeps the folded frames in the state and reads "
        "them with the action (Breakout: under copying the last frame at 1, 5 and 15 steps "
        "after a horizon-8 fine-tune; shipped as pretrained/breakout_folded, the layout --laptop "
        "pretrains; docs/results.md)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument(
        "--init-from",
        default=None,
        metavar="ENV_MODEL",
        help="fine-tune: start from a trained env_model directory (its architecture and "
        "weights; --hparams may only change reward_head), every epoch at --horizon (no "
        "curriculum), e.g. on longer windows than it was trained on; with --epochs 0 the "
        "model is exported as it is (a new 'map' reward head fitted) and evaluated, without Ray",
    )
    p.set_defaults(func=_pretrain)

    p = sub.add_parser(
        "train", help="the I2A pipeline (flags of tuned_examples/i2a.py)", add_help=False
    )
    p.set_defaults(func=None)

    p = sub.add_parser("evaluate", help="play episodes with a checkpoint; GIF + imagination PNG")
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--output", default=None)
    p.add_argument("--env", default=None, help="needed for RLModule checkpoints only")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_evaluate)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        handler = lambda: _train(argv[1:])  # noqa: E731  (its own parser: the script's flags)
    else:
        args = build_parser().parse_args(argv)
        handler = lambda: args.func(args)  # noqa: E731
    from i2a_rllib.commands import run_as_command

    return run_as_command(handler, prog="i2a")


if __name__ == "__main__":
    sys.exit(main())
