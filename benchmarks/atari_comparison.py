"""I2A vs the copy-model control vs PPO on Breakout-v5 (sticky actions on), 5e5 env steps.

All agents share the Atari PPO settings (i2a_rllib.config.ATARI_PPO_SETTINGS: batch
1024, 4 epochs of 256) and the sampling (1 EnvRunner x 8 envs):
  - i2a:  I2A with the Atari default env model, the shipped `pretrained/breakout_spatial`
          (or --env-model-checkpoint); the env steps that made its data (the collecting
          PPO policy's and the collection's, read from its metadata) count toward I2A's
          budget and are shown separately,
  - i2a_folded: the same with the shipped `pretrained/breakout_folded` (the spatial
          kind's folded layout: it imagines the ball's and paddle's motion), to pick the
          Atari default by returns,
  - i2a_bf16: i2a's model and settings, its imagined rollouts in bfloat16 autocast
          (`imagination_precision="bf16"`, 1.1-1.2x end to end on an AMX CPU): whether
          the cheaper imagination learns as well, before it becomes a default,
  - i2a_depth2, i2a_depth3: i2a_bf16 with 2 or 3 imagined steps per rollout instead of
          the paper's 5 (1.6x and 1.37x end to end on an AMX CPU, docs/benchmarks.md):
          whether the shorter rollouts learn as well, before the Atari default changes
          (depth 2, three seeds: not shown to),
  - copy: the same architecture imagining with the copy model (no data, no pretraining),
  - ppo:  the model-free baseline (Nature CNN).
Writes docs/results/atari.json (key "breakout_comparison": curves and per-run figures),
docs/figures/atari_breakout_learning_curves.png (against env steps and wall clock, the
published PPO anchor marked) and the section of docs/results.md: the last-10% return of
every seed, mean and sample SD, beside the DreamerV3 paper's PPO baseline on Breakout
with sticky actions (2.0 at 1e5, 12.8 at 5e5, 23.5 at 1e6 env steps).

Runs are resumable at two levels: finished (agent, seed) runs are read back from
<work-dir>/runs.json, and a run in progress checkpoints every --checkpoint-every
iterations (algorithm state + its curve so far) and continues from there.

How to run this script
----------------------
`python benchmarks/atari_comparison.py [--budget 500000] [--seeds 2] [--agents ppo,copy,i2a,i2a_folded,i2a_bf16,i2a_depth2,i2a_depth3]
 [--work-dir ~/i2a-runs/atari_comparison]` (`--seeds N`: train seeds 0..N-1 of the agents
named); `--report-only` rewrites the report from every finished run at the budget; `--budget 2048 --seeds 1 --agents ppo` for a smoke run.

Results to expect
-----------------
docs/results.md ("Breakout: I2A vs copy model vs PPO") holds what was measured. On 2 CPU
cores PPO runs at ~100-250 env steps/s alone (5e5 steps: 0.6-1.5 h per seed), the spatial
I2A at ~60-90 (1.6-2.5 h; i2a_bf16 ~1.1-1.2x faster on an AMX CPU, slower where the CPU
has no bf16 instructions; i2a_depth2 at ~210-230 on an AMX CPU, 0.60-0.67 h), the folded
one at ~70-85 (~2 h; its seed 0 of 2026-12-04: 2.05 h) and the copy control, which
imagines once per state since 2026-12-03, at ~100-130 (~1.1-1.4 h).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.paper_comparison import (  # noqa: E402
    SMOOTHING,
    final_score,
    mean_and_sample_sd,
    moving_mean,
    train_missing_runs,
    update_results_section,
)
from i2a_rllib.commands import positive_int_arg  # noqa: E402

ENV_ID = "ALE/Breakout-v5"
NUM_ENV_RUNNERS, ENVS_PER_RUNNER = 1, 8
DEFAULT_ENV_MODEL = os.path.join(ROOT, "pretrained", "breakout_spatial")


@dataclasses.dataclass(frozen=True)
class Agent:
    """One agent of the comparison: what it imagines with, in which precision and how
    deep. Precision is fp32 unless named, also where the package's default ('auto') would
    imagine in bf16, so that each agent is what its name says on every machine."""

    label: str
    colour: str  # its lines in the figure
    env_model: Optional[str] = None  # a spatial model's checkpoint, "copy", or None (PPO imagines nothing)
    imagination_precision: str = "fp32"
    rollout_depth: int = 5  # the paper's


AGENTS = {
    "ppo": Agent("PPO", "tab:green"),
    "copy": Agent("copy model", "tab:orange", "copy"),
    "i2a": Agent("I2A (spatial model)", "tab:blue", DEFAULT_ENV_MODEL),
    "i2a_folded": Agent("I2A (folded spatial model)", "tab:purple", os.path.join(ROOT, "pretrained", "breakout_folded")),
    "i2a_bf16": Agent("I2A (spatial model, bf16 imagination)", "tab:cyan", DEFAULT_ENV_MODEL, "bf16"),
    "i2a_depth2": Agent("I2A (spatial model, bf16 imagination, depth 2)", "tab:red", DEFAULT_ENV_MODEL, "bf16", 2),
    "i2a_depth3": Agent("I2A (spatial model, bf16 imagination, depth 3)", "tab:brown", DEFAULT_ENV_MODEL, "bf16", 3),
}
# The pretrained model each I2A agent imagines with (--env-model-checkpoint replaces the
# shipped default's, for every agent that imagines with it).
ENV_MODELS = {name: a.env_model for name, a in AGENTS.items() if a.env_model not in (None, "copy")}
# DreamerV3 (Hafner et al. 2023), its PPO baseline on Atari with sticky actions: Breakout
# return at these env steps (the anchor the issue names).
PUBLISHED_PPO = {100_000: 2.0, 500_000: 12.8, 1_000_000: 23.5}
SECTION_TITLE = "## Breakout: I2A vs copy model vs PPO"
RESULTS_KEY = "breakout_comparison"


def build_config(agent: str, seed: int, env_model_checkpoint: str, env_runner_threads: int = None,
                 compile_worker: bool = False):  # fmt: skip
    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment, set_torch_threads

    spec = AGENTS[agent]
    if spec.env_model is None:
        config = baseline_ppo_config(ENV_ID)
    else:
        copy = spec.env_model == "copy"
        config = configure_environment(I2AConfig(), ENV_ID).imagination(
            env_model="copy" if copy else "spatial",
            env_model_checkpoint=None if copy else env_model_checkpoint,
            rollout_depth=spec.rollout_depth,
            imagination_image_interval=0,
            imagination_precision=spec.imagination_precision,
        )
    config.env_runners(
        num_env_runners=NUM_ENV_RUNNERS, num_envs_per_env_runner=ENVS_PER_RUNNER, rollout_fragment_length="auto"
    )
    # The learner runs in this process (no Tune): it has the cores' threads already.
    set_torch_threads(config, env_runner_threads=env_runner_threads)
    # I2A's EnvRunners explore through torch.compile (the baseline's module stays eager).
    config.framework(torch_compile_worker=compile_worker and agent != "ppo")
    return config.debugging(seed=seed)


def env_model_data_steps(checkpoint: str) -> Dict[str, int]:
    """The env steps behind a pretrained model: its collecting policies' training (read
    from each policy's path name, `checkpoint_<iteration>` x the baseline's batch) and
    the collected transitions, over every dataset behind its weights (`data_lineage`:
    a model fine-tuned with `--init-from` counts its starting model's data too)."""
    meta = json.load(open(os.path.join(checkpoint, "metadata.json")))
    datasets = meta.get("data_lineage") or [meta.get("dataset", {})]
    collected = policy_steps = 0
    for dataset in datasets:
        collected += int(dataset.get("num_transitions", 0))
        tail = os.path.basename((dataset.get("policy") or "").rstrip("/"))
        policy_steps += int(tail.split("_")[-1]) * 1024 if tail.startswith("checkpoint_") else 0
    return {"collected_transitions": collected, "collecting_policy_steps": policy_steps}


def train_run(agent: str, seed: int, budget: int, env_model_checkpoint: str, work_dir: str,
              checkpoint_every: int, env_runner_threads: int = None, compile_worker: bool = False
              ) -> Dict[str, Any]:  # fmt: skip
    """Trains (agent, seed) to `budget` env steps, resuming from its last checkpoint."""
    from ray.rllib.algorithms.algorithm import Algorithm

    from i2a_rllib.config import torch_threads_of
    from i2a_rllib.envs import register_envs

    # A restored algorithm builds its env by the registered name, and a new process
    # (a resumed run) has not registered it yet.
    register_envs()
    state = os.path.join(work_dir, f"{agent}_seed{seed}_{budget}")
    checkpoint, curve_path = os.path.join(state, "checkpoint"), os.path.join(state, "curve.json")
    previous = checkpoint + ".old"
    if not os.path.isdir(checkpoint) and os.path.isdir(previous):
        os.replace(previous, checkpoint)  # stopped mid-swap: the previous one matches curve.json
    if os.path.isdir(checkpoint) and os.path.exists(curve_path):
        algo = Algorithm.from_checkpoint(checkpoint)
        curve: List[Dict[str, float]] = json.load(open(curve_path))
        print(f"[atari] {agent} seed {seed}: resumed at {curve[-1]['env_steps']:,} steps", flush=True)
    else:
        algo = build_config(agent, seed, env_model_checkpoint, env_runner_threads, compile_worker).build_algo()
        curve = []
    offset = curve[-1]["seconds"] if curve else 0.0
    start = time.time()
    try:
        steps = curve[-1]["env_steps"] if curve else 0
        while steps < budget:
            result = algo.train()
            runners = result["env_runners"]
            steps = int(runners["num_env_steps_sampled_lifetime"])
            curve.append({"env_steps": steps, "return": float(runners.get("episode_return_mean", np.nan)),
                          "seconds": offset + time.time() - start})  # fmt: skip
            print(f"[atari] {agent} seed {seed}: {steps:>8,d} steps  return {curve[-1]['return']:6.2f}  "
                  f"{curve[-1]['seconds']:6.0f}s", flush=True)  # fmt: skip
            if len(curve) % checkpoint_every == 0 or steps >= budget:
                tmp = checkpoint + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                algo.save_to_path(tmp)
                # Never a moment without a checkpoint (as save_env_model): a run stopped
                # between two renames resumes from the previous one.
                shutil.rmtree(previous, ignore_errors=True)
                if os.path.isdir(checkpoint):
                    os.replace(checkpoint, previous)
                os.replace(tmp, checkpoint)
                with open(curve_path + ".tmp", "w") as f:
                    json.dump(curve, f)
                os.replace(curve_path + ".tmp", curve_path)
                shutil.rmtree(previous, ignore_errors=True)
    finally:
        algo.stop()
    # What the run's config set (a resumed run keeps its checkpoint's); 1 = Ray's default.
    threads = torch_threads_of(algo.config)[0]
    model = (
        {"env_model": os.path.basename(os.path.normpath(env_model_checkpoint)),
         "imagination_precision": algo.config.imagination_precision,
         "rollout_depth": algo.config.rollout_depth}
        if agent in ENV_MODELS else {}
    )  # fmt: skip
    return {"agent": agent, "seed": seed, "curve": curve, "date": time.strftime("%Y-%m-%d"), **model,
            "env_runner_threads": threads or 1,
            "torch_compile_worker": bool(algo.config.torch_compile_worker)}  # fmt: skip


def adopt_published_runs(runs_path: str, results_path: str) -> None:
    """Adds to runs.json the finished runs the report already published in
    docs/results/atari.json that it lacks, so a fresh machine (or a work dir that lost
    them) does not train them again."""
    if not os.path.exists(results_path):
        return
    runs = json.load(open(runs_path)) if os.path.exists(runs_path) else []
    have = {(r["agent"], r["seed"], r["budget"]) for r in runs}
    published = json.load(open(results_path)).get(RESULTS_KEY, {}).get("runs", [])
    new = [r for r in published if (r["agent"], r["seed"], r["budget"]) not in have]
    if new:
        os.makedirs(os.path.dirname(runs_path), exist_ok=True)
        with open(runs_path + ".tmp", "w") as f:
            json.dump(runs + new, f)
        os.replace(runs_path + ".tmp", runs_path)
        print(f"[atari] {len(new)} finished run(s) taken from {results_path}", flush=True)


def run_figures(run: Dict[str, Any], budget: int) -> Dict[str, float]:
    return {
        "final_return": final_score(run["curve"], "return", budget),
        "hours": run["curve"][-1]["seconds"] / 3600,
        "env_steps_per_s": run["curve"][-1]["env_steps"] / max(run["curve"][-1]["seconds"], 1e-9),
    }


def smoothed_curve(curve: List[Dict[str, float]]):
    """(env steps, hours, return) of a run's curve, each a moving mean of SMOOTHING
    iterations. Iterations in which no episode ended report no return (nan): they are
    left out, not read as 0, which dipped every curve wherever episodes outlasted an
    iteration."""
    points = [p for p in curve if p["return"] == p["return"]]
    if not points:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return (moving_mean([p["env_steps"] for p in points]), moving_mean([p["seconds"] / 3600 for p in points]),
            moving_mean([p["return"] for p in points]))  # fmt: skip


def _cells(values: List[float], digits: int = 2) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    mean, sd = mean_and_sample_sd(values)
    spread = "" if sd != sd else f" ± {sd:.{digits}f}"
    return f"{mean:.{digits}f}{spread} ({', '.join(f'{v:.{digits}f}' for v in values)})"


def write_report(runs, budget: int, seeds: int, data_steps: Dict[str, Dict[str, int]], out_dir: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=110)
    rows = []
    for agent, spec in AGENTS.items():
        agent_runs = sorted((r for r in runs if r["agent"] == agent), key=lambda r: r["seed"])
        if not agent_runs:
            continue
        for r in agent_runs:
            steps, hours, returns = smoothed_curve(r["curve"])
            label = spec.label if r is agent_runs[0] else None
            axes[0].plot(steps, returns, color=spec.colour, alpha=0.8, label=label)
            axes[1].plot(hours, returns, color=spec.colour, alpha=0.8, label=label)
        figures = [run_figures(r, budget) for r in agent_runs]
        pretrain = (
            f"{data_steps[agent]['collecting_policy_steps']:,} policy + {data_steps[agent]['collected_transitions']:,} collected"
            if agent in data_steps else "-"
        )  # fmt: skip
        rows.append(
            f"| {spec.label} | {len(agent_runs)} | {_cells([f['final_return'] for f in figures])} | "
            f"{pretrain} | {np.mean([f['env_steps_per_s'] for f in figures]):,.0f} | "
            f"{np.mean([f['hours'] for f in figures]):.2f} |"
        )
    published = [(s, v) for s, v in PUBLISHED_PPO.items() if s <= budget * 2]
    axes[0].plot([s for s, _ in published], [v for _, v in published], "k*", ms=9,
                 label="published PPO (DreamerV3 paper)")  # fmt: skip
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("hours of training (2-core machine)")
    for ax, corner in zip(axes, ("upper left", "best")):  # the left one keeps the 1e6 anchor clear
        ax.set_ylabel(f"episode return (mean of {SMOOTHING} iterations)")
        ax.legend(fontsize=8, loc=corner)
    fig.suptitle(f"{ENV_ID} (sticky actions), one line per seed")
    fig.tight_layout()
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    fig.savefig(os.path.join(out_dir, "figures", "atari_breakout_learning_curves.png"))
    plt.close(fig)
    anchor = PUBLISHED_PPO.get(budget)
    section = "\n".join(
        [
            f"{SECTION_TITLE} (benchmarks/atari_comparison.py)",
            "",
            f"Budget: {budget:,} env steps per run (frameskip 4), up to {seeds} seed(s) per agent (the seeds column: those that finished), "
            "sticky actions 0.25, the same PPO settings and sampling for all agents "
            f"(ATARI_PPO_SETTINGS, 1 EnvRunner x {ENVS_PER_RUNNER} envs). Return: RLlib's "
            "`episode_return_mean` (game score, unclipped) over the last 10% of the budget, "
            "mean ± sample sd (per seed). The env steps behind I2A's pretrained model count "
            "toward its budget and are shown separately."
            + (f" Published anchor at this budget: PPO {anchor} (DreamerV3 paper, Breakout, sticky actions)." if anchor else ""),
            "",
            "| agent | seeds | return, last 10% | env steps behind the env model | env steps/s | hours per run |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "![Breakout learning curves](figures/atari_breakout_learning_curves.png)",
            "",
        ]
    )
    update_results_section(out_dir, section, SECTION_TITLE)
    return section


def report(runs, args, data_steps) -> None:
    # Every finished run at this budget, whatever --seeds trained now: a run of one agent
    # (`--agents copy --seeds 2`) must not drop another agent's extra seeds.
    runs = [r for r in runs if r["budget"] == args.budget]
    seeds = max([sum(r["agent"] == agent for r in runs) for agent in AGENTS] + [0])
    path = os.path.join(args.out_dir, "results", "atari.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    results = json.load(open(path)) if os.path.exists(path) else {}
    results[RESULTS_KEY] = {
        "env_id": ENV_ID,
        "budget": args.budget,
        "seeds": seeds,
        "env_model_data_steps": data_steps,
        "published_ppo": PUBLISHED_PPO,
        "figures": {f"{r['agent']}/{r['seed']}": run_figures(r, args.budget) for r in runs},
        "runs": runs,
    }
    with open(path + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(path + ".tmp", path)
    print(write_report(runs, args.budget, seeds, data_steps, args.out_dir))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=positive_int_arg("--budget"), default=500_000)
    parser.add_argument("--seeds", type=positive_int_arg("--seeds"), default=2)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--env-model-checkpoint", default=DEFAULT_ENV_MODEL,
                        help="the pretrained spatial model of the i2a, i2a_bf16 and i2a_depth* agents (i2a_folded's is "
                             "pretrained/breakout_folded)")  # fmt: skip
    parser.add_argument("--checkpoint-every", type=positive_int_arg("--checkpoint-every"), default=20,
                        help="iterations between a run's checkpoints")
    parser.add_argument("--work-dir", default=os.path.expanduser("~/i2a-runs/atari_comparison"))
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "docs"))
    parser.add_argument("--env-runner-threads", type=positive_int_arg("--env-runner-threads"), default=2,
                        help="torch threads of the EnvRunner, for every agent (PPO seeds 0-1 of "
                             "2026-12-01 ran with Ray's default of 1)")  # fmt: skip
    parser.add_argument("--torch-compile-worker", action=argparse.BooleanOptionalAction, default=True,
                        help="I2A's EnvRunners explore through torch.compile (1.4x sampling, docs/benchmarks.md)")
    parser.add_argument("--report-only", action="store_true",
                        help="Write the report from every finished run at --budget; train nothing.")  # fmt: skip
    args = parser.parse_args()
    agents = [a for a in args.agents.split(",") if a]
    if not agents or set(agents) - set(AGENTS):
        parser.exit(2, f"atari_comparison.py: error: --agents {args.agents!r}: use some of {list(AGENTS)}\n")
    own_model = {agent for agent, model in ENV_MODELS.items() if model == DEFAULT_ENV_MODEL}
    env_models = {**ENV_MODELS, **{agent: args.env_model_checkpoint for agent in own_model}}
    own_model &= set(agents)
    if own_model and not os.path.isfile(os.path.join(args.env_model_checkpoint, "metadata.json")):
        parser.exit(2, f"atari_comparison.py: error: --env-model-checkpoint {args.env_model_checkpoint!r} holds "
                       "no environment model (metadata.json); pass a pretrained spatial model\n")  # fmt: skip
    runs_path = os.path.join(args.work_dir, "runs.json")
    adopt_published_runs(runs_path, os.path.join(args.out_dir, "results", "atari.json"))
    # The env steps behind each I2A agent's model, for the report's column: every agent's,
    # since the report lists the finished runs of agents not trained now too.
    data_steps = {agent: env_model_data_steps(checkpoint) for agent, checkpoint in env_models.items()
                  if os.path.isfile(os.path.join(checkpoint, "metadata.json"))}  # fmt: skip
    if args.report_only:
        if not os.path.exists(runs_path):
            parser.exit(2, f"atari_comparison.py: error: --report-only: no finished runs in {runs_path}\n")
        report(json.load(open(runs_path)), args, data_steps)
        return

    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    os.makedirs(args.work_dir, exist_ok=True)
    runs = train_missing_runs(
        runs_path, agents, args.seeds, args.budget,
        lambda agent, seed: train_run(agent, seed, args.budget, env_models.get(agent), args.work_dir,
                                      args.checkpoint_every, args.env_runner_threads, args.torch_compile_worker),
    )  # fmt: skip
    ray.shutdown()
    report(runs, args, data_steps)


if __name__ == "__main__":
    main()
