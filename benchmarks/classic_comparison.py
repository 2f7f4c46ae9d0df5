"""I2A vs the copy-model control vs PPO on CartPole-v1, at one budget, 3 seeds each.

The comparison of benchmarks/paper_comparison.py on a flat-vector task:
  - I2A: the seed's residual MLP environment model pretrained on random-play
    transitions (collected and trained once, shared by all seeds; the recipe of
    tuned_examples/i2a_classic.py), rollout depth 5, distilled rollout policy,
  - copy: the same I2A architecture whose "environment model" returns its input,
  - PPO: the model-free baseline (its MLP is I2A's model-free path),
all with the same PPO settings (i2a_rllib.config.CLASSIC_CONTROL_PPO_SETTINGS) and
sampling. Writes docs/results/classic.json (curves and per-run figures),
docs/figures/classic_learning_curves.png and the CartPole section of docs/results.md:
per agent, every seed's return over the last 10% of the budget and the env steps it
took to first reach a mean return of 475 (CartPole-v1's "solved") and 500 (its
maximum), with means and sample standard deviations. Runs are resumable: finished
(agent, seed) runs are read back from the work directory.

How to run this script
----------------------
`python benchmarks/classic_comparison.py [--budget 150000] [--seeds 3]`
(`--budget 20000 --seeds 1` for a smoke run; `--report-only` rewrites the report)

Results to expect
-----------------
docs/results.md ("CartPole-v1: I2A vs copy model vs PPO") holds what was measured on
the 2-core development machine. CartPole is solved by PPO alone within ~1e5 steps; what
the comparison can show is whether imagination speeds that up, slows it down, or is
neutral, not the paper's Sokoban gap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.paper_comparison import (  # noqa: E402
    SMOOTHING,
    final_score,
    mean_and_sample_sd,
    model_metrics_of,
    moving_mean,
    train_missing_runs,
    train_run,
    update_results_section,
)

ENV_ID = "CartPole-v1"
AGENTS = ("i2a", "copy", "ppo")
# Sampling, the same for all agents: one EnvRunner with 8 CartPoles (the batch of
# CLASSIC_CONTROL_PPO_SETTINGS, 2000 steps, is 250 steps of each).
NUM_ENV_RUNNERS, ENVS_PER_RUNNER = 1, 8
ROLLOUT_DEPTH = 5
# The environment model: tuned_examples/i2a_classic.py's recipe.
COLLECT_TRANSITIONS = 20_000
PRETRAIN = dict(epochs=10, horizon=10, batch_size=256, lr=2e-3, lr_schedule="cosine")
# Mean returns whose first crossing is reported (CartPole-v1: solved at 475, maximum 500).
THRESHOLDS = (475.0, 500.0)
SECTION_TITLE = "## CartPole-v1: I2A vs copy model vs PPO"


def build_config(agent: str, seed: int, env_model_checkpoint: str, env_config=None):
    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment

    if agent == "ppo":
        config = baseline_ppo_config(ENV_ID)
    else:
        config = configure_environment(I2AConfig(), ENV_ID).imagination(
            env_model="mlp" if agent == "i2a" else "copy",
            env_model_checkpoint=env_model_checkpoint if agent == "i2a" else None,
            rollout_depth=ROLLOUT_DEPTH,
            imagination_image_interval=0,
        )
    config.env_runners(
        num_env_runners=NUM_ENV_RUNNERS,
        num_envs_per_env_runner=ENVS_PER_RUNNER,
        rollout_fragment_length="auto",
    )
    config.debugging(seed=seed)
    return config


def first_crossing(curve: List[Dict[str, float]], threshold: float) -> float:
    """Env steps at the first iteration whose mean return reached `threshold` (nan: never)."""
    for point in curve:
        if point["return"] == point["return"] and point["return"] >= threshold:
            return float(point["env_steps"])
    return float("nan")


def run_figures(run: Dict[str, Any], budget: int) -> Dict[str, float]:
    """What the table reports of one run."""
    figures = {"final_return": final_score(run["curve"], "return", budget)}
    for threshold in THRESHOLDS:
        figures[f"steps_to_{threshold:g}"] = first_crossing(run["curve"], threshold)
    figures["minutes"] = run["curve"][-1]["seconds"] / 60
    return figures


def _format(values: List[float], digits: int) -> str:
    """Per-seed values, then mean ± sample sd over the seeds that have a value."""
    present = [v for v in values if v == v]
    seeds = ", ".join("never" if v != v else f"{v:,.{digits}f}" for v in values)
    if not present:
        return seeds
    mean, sd = mean_and_sample_sd(present)
    spread = "" if sd != sd else f" ± {sd:,.{digits}f}"
    missing = "" if len(present) == len(values) else f" ({len(present)} of {len(values)})"
    return f"{seeds}; **{mean:,.{digits}f}{spread}**{missing}"


def write_report(runs, budget: int, seeds: int, model: Dict[str, Any], out_dir: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=110)
    rows = []
    for agent, colour in zip(AGENTS, ("tab:blue", "tab:orange", "tab:green")):
        agent_runs = sorted((r for r in runs if r["agent"] == agent), key=lambda r: r["seed"])
        if not agent_runs:
            continue
        for r in agent_runs:
            xs = moving_mean([p["env_steps"] for p in r["curve"]])
            ax.plot(xs, moving_mean([p["return"] for p in r["curve"]]), color=colour, alpha=0.75,
                    label=agent if r is agent_runs[0] else None)
        figures = [run_figures(r, budget) for r in agent_runs]
        cells = [_format([f["final_return"] for f in figures], 1)]
        cells += [_format([f[f"steps_to_{t:g}"] for f in figures], 0) for t in THRESHOLDS]
        cells.append(f"{np.mean([f['minutes'] for f in figures]):.1f}")
        rows.append(f"| {agent} | {len(agent_runs)} | " + " | ".join(cells) + " |")
    for threshold in THRESHOLDS:
        ax.axhline(threshold, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"episode return (mean of {SMOOTHING} iterations)")
    ax.set_title(f"{ENV_ID}, {seeds} seeds per agent")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    fig.savefig(os.path.join(out_dir, "figures", "classic_learning_curves.png"))
    plt.close(fig)
    minutes = sum(r["curve"][-1]["seconds"] for r in runs) / 60
    section = "\n".join(
        [
            f"{SECTION_TITLE} (benchmarks/classic_comparison.py)",
            "",
            f"Budget: {budget:,} env steps per run, {seeds} seed(s) per agent, the same PPO "
            "settings and sampling for all agents (`CLASSIC_CONTROL_PPO_SETTINGS`, one "
            f"EnvRunner x {ENVS_PER_RUNNER} envs); {minutes:.0f} min of training in total on "
            "this machine. Per seed (seeds 0, 1, 2), then **mean ± sample sd**; the return is "
            "RLlib's `episode_return_mean` (in Ray 2.60 the mean of the episodes that finished in one iteration, not a 100-episode window), averaged over the last 10% of the budget. "
            f"Environment model: mlp (the seed's residual MLP), {COLLECT_TRANSITIONS:,} "
            f"random-play transitions, {PRETRAIN['epochs']} epochs open loop up to "
            f"{PRETRAIN['horizon']} steps; held-out error ratio to copying the last state "
            f"{model.get('error_ratio_1_step', float('nan')):.4f} at k=1, "
            f"{model.get('error_ratio_10_step', float('nan')):.4f} at k=10.",
            "",
            "| agent | seeds | return, last 10% | env steps to mean return 475 | env steps to mean return 500 | minutes per run |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "![CartPole learning curves](figures/classic_learning_curves.png)",
            "",
        ]
    )
    update_results_section(out_dir, section, SECTION_TITLE)
    return section


def report(runs, args, model: Dict[str, Any]) -> None:
    """JSON + PNG + results.md section from the runs of this budget and seeds < --seeds."""
    runs = [r for r in runs if r["budget"] == args.budget and r["seed"] < args.seeds]
    os.makedirs(os.path.join(args.out_dir, "results"), exist_ok=True)
    with open(os.path.join(args.out_dir, "results", "classic.json"), "w") as f:
        json.dump(
            {
                "env_id": ENV_ID,
                "budget": args.budget,
                "seeds": args.seeds,
                "env_model_evaluation": model,
                "figures": {f"{r['agent']}/{r['seed']}": run_figures(r, args.budget) for r in runs},
                "runs": runs,
            },
            f,
        )
    print(write_report(runs, args.budget, args.seeds, model, args.out_dir))


def main():
    from i2a_rllib.pretrain.train import ENV_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "classic_comparison"))
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "docs"))
    parser.add_argument("--report-only", action="store_true",
                        help="Write the report from the finished runs of seeds < --seeds; train nothing.")
    args = parser.parse_args()
    unknown = set(args.agents.split(",")) - set(AGENTS)
    if unknown or args.budget < 1 or args.seeds < 1:
        parser.exit(2, f"classic_comparison.py: error: --agents from {list(AGENTS)}, --budget and --seeds >= 1\n")
    runs_path = os.path.join(args.work_dir, "runs.json")
    model_dir = os.path.join(args.work_dir, "env_model")
    checkpoint = os.path.join(model_dir, ENV_MODEL_DIR)
    if args.report_only:
        if not (os.path.exists(runs_path) and os.path.isdir(checkpoint)):
            parser.exit(2, f"classic_comparison.py: error: --report-only: no runs and env model in {args.work_dir}\n")
        report(json.load(open(runs_path)), args, model_metrics_of(checkpoint))
        return

    import ray

    from i2a_rllib.data.collect import collect
    from i2a_rllib.pretrain.train import pretrain

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    os.makedirs(args.work_dir, exist_ok=True)
    data = os.path.join(args.work_dir, "data")
    collect(ENV_ID, data, COLLECT_TRANSITIONS, num_actors=2, num_envs_per_actor=8,
            shard_size=COLLECT_TRANSITIONS // 20)
    if not os.path.isdir(checkpoint):
        pretrain(data, model_dir, kind="mlp", num_workers=2, **PRETRAIN)
    model = model_metrics_of(checkpoint)

    runs = train_missing_runs(
        runs_path, args.agents.split(","), args.seeds, args.budget,
        lambda agent, seed: train_run(agent, seed, args.budget, checkpoint, None, build=build_config),
    )
    ray.shutdown()
    report(runs, args, model)


if __name__ == "__main__":
    main()
