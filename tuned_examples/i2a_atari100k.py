"""The Atari 100k protocol: I2A or the PPO baseline on any ALE game, 100k agent steps.

The sample-efficiency benchmark of SimPLe (Kaiser et al. 2020), SPR, DreamerV3 and
IRIS, as this project runs it:
  - 100,000 agent steps in all (400k frames at frameskip 4), *including* the env steps
    spent collecting the environment model's data (random play here, so no policy
    has to be trained for it); I2A trains for what is left;
  - sticky actions off (`repeat_action_probability=0`), up to 30 random no-ops after
    each reset (ale-py's `noop_max` default), rewards clipped to their sign for the
    update only;
  - at the end, --evaluation-episodes full episodes with the final policy, scored by
    the unclipped game score, printed with the human-normalised score
    (score - random) / (human - random) where the game's reference scores are known.
`--agent i2a` (default) runs the pipeline's stages 1-4 (collect, pretrain, train,
evaluate); `--agent ppo` trains the model-free baseline for the whole budget with the
same PPO settings and evaluates it the same way. Every run writes
`<storage-path>/<name>/atari100k.json`; `--results-json docs/results/atari.json` also
adds the run to that file's "atari100k" list (one entry per agent, game and seed).

How to run this script
----------------------
    python tuned_examples/i2a_atari100k.py --seed 0
    python tuned_examples/i2a_atari100k.py --agent ppo --seed 0
    python tuned_examples/i2a_atari100k.py --env ALE/Pong-v5 --agent ppo
Smoke run: `--budget 3000 --collect-transitions 1000 --pretrain-epochs 1
--train-batch-size 512 --minibatch-size 256 --evaluation-episodes 1`.

Results to expect
-----------------
docs/results.md ("Atari 100k") holds what was measured on 2 CPU cores, beside the
published 100k scores (Breakout: random 1.7, human 30.5; PPO 3.4 and SimPLe 16.4 in
the SimPLe paper, SPR 19.6, DreamerV3 ~11-19, IRIS 83.7).
"""

import argparse
import json
import os
import sys
import time

from i2a_rllib.commands import run_as_command
from i2a_rllib.experiment import parse_script_args
from i2a_rllib.pipeline import apply_presets, i2a_arg_parser

PROTOCOL = "atari100k"
AGENT_STEPS = 100_000
# (random, human) reference scores, the table the 100k papers normalise with (DQN,
# Mnih et al. 2015; as used by SimPLe, SPR, DreamerV3).
RANDOM_HUMAN = {"breakout": (1.7, 30.5), "pong": (-20.7, 14.6), "ms_pacman": (307.3, 6951.6)}

parser = i2a_arg_parser(
    env="ALE/Breakout-v5",
    env_model="spatial",
    env_config={"repeat_action_probability": 0.0},
    num_envs_per_env_runner=8,
    collect_transitions=20_000,  # 20% of the budget, random play
    pretrain_epochs=3,
    pretrain_horizon=3,  # open loop 1 -> 2 -> 3 steps
    pretrain_lr=1e-3,
    pretrain_lr_schedule="cosine",
    train_batch_size=1024,
    minibatch_size=256,
    num_epochs=4,
    evaluation_episodes=10,
)
parser.add_argument("--agent", choices=("i2a", "ppo"), default="i2a")
parser.add_argument(
    "--budget", type=int, default=AGENT_STEPS, help="agent steps in all, data collection included"
)
parser.add_argument(
    "--results-json", default=None, help="also add this run to a results file (e.g. docs/results/atari.json)"
)
args = apply_presets(parse_script_args(parser, as_main=__name__ == "__main__"), parser)


def budget_split(args: argparse.Namespace) -> dict:
    """Agent steps for the env model's data and for training; raises if they do not fit."""
    if args.agent == "i2a" and args.env_model_checkpoint:
        raise ValueError(
            "--env-model-checkpoint: the 100k protocol counts the env steps that made the "
            "environment model's data, which a given checkpoint does not say; let the run "
            "collect and pretrain its own (drop the flag)."
        )
    data = args.collect_transitions + args.collect_policy_steps if args.agent == "i2a" else 0
    if args.agent == "i2a" and args.env_model in ("copy", "perfect"):
        data = 0
    if args.evaluation_episodes < 1:
        raise ValueError("--evaluation-episodes must be >= 1: the protocol's score is the evaluation's.")
    if data >= args.budget:
        raise ValueError(
            f"--budget {args.budget:,}: the env model's data takes {data:,} of them "
            "(--collect-transitions + --collect-policy-steps); lower those or raise --budget."
        )
    # RLlib samples up to one step per env beyond each train batch and checks its stop
    # criteria after an iteration, so the run stops by iterations: K of them can take at
    # most K x (batch + envs) steps, which stays within the budget.
    batch = args.train_batch_size or 1024
    envs = (args.num_env_runners or 1) * (args.num_envs_per_env_runner or 1)
    train = args.budget - data
    iterations = train // (batch + envs)
    if iterations < 1:
        raise ValueError(
            f"--budget {args.budget:,}: {train:,} steps are left for training, less than one "
            f"train batch of {batch:,} (+{envs} steps RLlib may sample beyond it); raise "
            "--budget or lower --train-batch-size."
        )
    return {"budget": args.budget, "data_steps": data, "train_steps": train, "iterations": iterations}


def _agent_label(args: argparse.Namespace) -> str:
    """"i2a", "ppo", or "i2a_copy" / "i2a_perfect" for I2A's controls (their own runs)."""
    if args.agent == "i2a" and args.env_model in ("copy", "perfect"):
        return f"i2a_{args.env_model}"
    return args.agent


def normalised(game: str, score: float):
    random_score, human = RANDOM_HUMAN.get(game, (None, None))
    return None if human is None else (score - random_score) / (human - random_score)


def run(args: argparse.Namespace) -> dict:
    from i2a_rllib.envs.atari import resolve_rom_id
    from i2a_rllib.experiment import check_output_location

    split = budget_split(args)
    game = resolve_rom_id(args.env)
    args.env_config = {"repeat_action_probability": 0.0, **args.env_config}
    args.stop_timesteps, args.stop_iters = split["train_steps"], split["iterations"]
    args.name = args.name or f"{PROTOCOL}_{game}_{_agent_label(args)}_seed{args.seed}"
    start = time.time()
    if args.agent == "i2a":
        from i2a_rllib.pipeline import run_pipeline

        paths = run_pipeline(args)
        root = paths["run"]
    else:
        root = check_output_location(args.storage_path, args.name, args.resume)
        _train_and_evaluate_ppo(args, root)
    with open(os.path.join(root, "evaluation", "evaluation.json")) as f:
        evaluation = json.load(f)
    last = _last_result(os.path.join(root, "train"))
    score = evaluation["score_mean"]
    entry = {
        "protocol": PROTOCOL,
        "agent": args.agent,
        "game": game,
        "seed": args.seed,
        **split,
        "train_steps_taken": last.get("num_env_steps_sampled_lifetime"),
        "env_config": args.env_config,
        "env_model": args.env_model if args.agent == "i2a" else None,
        "scores": evaluation["scores"],
        "score_mean": score,
        "human_normalised": normalised(game, score),
        "wall_clock_s": time.time() - start,
        "date": time.strftime("%Y-%m-%d"),
        "run": root,
    }
    with open(os.path.join(root, f"{PROTOCOL}.json"), "w") as f:
        json.dump(entry, f, indent=1)
    if args.results_json:
        _add_to_results(args.results_json, entry)
    hns = entry["human_normalised"]
    print(
        f"[{PROTOCOL}] {game} {args.agent} seed {args.seed}: score {score:.2f} over "
        f"{len(evaluation['scores'])} episodes"
        + ("" if hns is None else f", human-normalised {hns:.3f}")
        + f" ({split['data_steps']:,} data + {entry['train_steps_taken'] or 0:,} training steps; "
        f"{entry['wall_clock_s'] / 60:.0f} min)",
        flush=True,
    )
    return entry


def _train_and_evaluate_ppo(args: argparse.Namespace, root: str) -> None:
    from i2a_rllib.evaluation import evaluate_checkpoint
    from i2a_rllib.experiment import default_stop
    from i2a_rllib.pipeline import train_baseline

    # The PPO settings I2A trains with (the same flags reach build_i2a_config).
    training = dict(
        train_batch_size_per_learner=args.train_batch_size,
        minibatch_size=args.minibatch_size,
        num_epochs=args.num_epochs,
        lr=args.lr,
    )
    summary = train_baseline(args, root, "train", default_stop(args), training)
    evaluate_checkpoint(
        summary["checkpoint"], episodes=args.evaluation_episodes, output=os.path.join(root, "evaluation")
    )


def _last_result(train_dir: str) -> dict:
    """The last result.json line of the run's trial (Tune) or {} (--no-tune)."""
    results = sorted(
        os.path.join(d, "result.json") for d, _, files in os.walk(train_dir) if "result.json" in files
    )
    if not results:
        return {}
    with open(results[-1]) as f:
        lines = f.read().splitlines()
    last = json.loads(lines[-1]) if lines else {}
    steps = last.get("env_runners", {}).get("num_env_steps_sampled_lifetime")
    return {"num_env_steps_sampled_lifetime": None if steps is None else int(steps)}


def _add_to_results(path: str, entry: dict) -> None:
    """Adds `entry` to the results file's "atari100k" list, replacing the same (agent,
    env model, game, seed); other keys of the file (benchmarks/atari_comparison.py's)
    are kept."""
    results = json.load(open(path)) if os.path.exists(path) else {}
    key = lambda r: (r["agent"], r.get("env_model") or "", r["game"], r["seed"])  # noqa: E731
    runs = [r for r in results.get(PROTOCOL, []) if key(r) != key(entry)] + [entry]
    results[PROTOCOL] = sorted(runs, key=key)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(run_as_command(run, args, prog=parser.prog))
