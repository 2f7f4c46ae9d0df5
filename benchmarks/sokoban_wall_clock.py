"""Sokoban 5x5 on the clock: seconds to 0.8 solved, I2A variants against the tuned PPO.

The compute issue's wall-clock target: on the same 2 cores, I2A reaches a 0.8 solved
fraction (5-iteration mean) no later than the tuned PPO. Every variant is an agent of
benchmarks/paper_comparison.py (its config, sampling and the tuned PPO's settings from
benchmarks/sokoban_tuning.py) with its imagination changed as VARIANTS says:
  - ppo_tuned: the tuned PPO, trained to 5e5 env steps (it reaches 0.8 after ~330-390k),
  - learned: I2A with the learned pixel model (paper_comparison.py's recipe: 50k
    random-play transitions, 10 epochs), its imagined frames snapped to 0 or 1 (the
    learned model's fastest setting, docs/results.md), 5 imagined steps per rollout,
  - learned_depth3, learned_depth2, learned_depth1: the same imagining 3, 2 or 1 steps,
  - learned_depth2_2epochs: depth 2 with 2 epochs per batch instead of the tuned PPO's 4
    (I2A's update is ~2/3 of its iteration at depth 2),
  - perfect, perfect_depth2: I2A with Sokoban's exact rules, 5 or 2 steps,
  - ppo_clock_tuned, learned_depth2_clock_tuned: the tuned PPO and learned_depth2 with
    the settings their own clock sweeps found fastest to 0.8 (`python
    benchmarks/sokoban_tuning.py --variant ppo_tuned|learned_depth2 --objective seconds`:
    the same 12 trials of the same space for both); the I2A one is timed against the
    clock-tuned PPO,
  - learned_depth2_light_clock_tuned: learned_depth2_clock_tuned with the lighter
    imagination path (paper_comparison.LIGHT_IMAGINATION_PATH: encoder 64, head 128),
  - learned_depth2_lighter_clock_tuned: learned_depth2_light_clock_tuned with a 128-wide
    model-free layer instead of 512 (`model_free_hidden`),
  - learned_depth2_light_narrow_convs_clock_tuned, learned_depth2_lighter_narrow_convs_clock_tuned:
    the light path (and the 128-wide one) with 8-16-16 channels in the convolutions over
    imagined frames (`imagined_frame_conv_channels=8`) instead of 16-32-32,
  - learned_depth2_light, learned_depth2_light_own_sweep: the light path with the tuned
    PPO's settings (where its own clock sweep, `sokoban_tuning.py --variant
    learned_depth2_light --objective seconds`, starts), and with that sweep's fastest,
  - learned_depth1_light_clock_tuned, learned_depth1_lighter_clock_tuned,
    learned_depth1_lighter_narrow_convs_clock_tuned: the light path (with a 128-wide
    model-free layer; and 8-16-16 convolutions too) imagining one step (no rollout
    policy acts, so none is run or trained); learned_depth1_lighter,
    learned_depth1_lighter_own_sweep: the 128-wide one with the tuned PPO's settings
    (where its own clock sweep starts), and with that sweep's fastest,
  - ppo_clock_tuned_ppo_init, learned_depth2_light_clock_tuned_ppo_init: PPO and the light
    path with the fastest settings of their clock sweeps repeated after the standard PPO
    init (`sokoban_tuning.py --variant ppo_tuned|learned_depth2_light --objective seconds
    --tag ppo_init`),
  - learned_depth1_light_nohead_clock_tuned: learned_depth1_light_clock_tuned with the
    policy and value heads on the joined features (`head_hidden` 0: no 128-wide layer
    between them).
The I2A variants train 3e5 env steps, the comparison's budget, so that their last-10%
solved fraction is the comparison's learning figure too.

A shorter rollout or a lighter network is a learning change, judged by the criterion
written down before the first run (docs/benchmarks.md "Rollout depth on Sokoban"): its
three seeds' mean last-10% solved fraction at least the lowest of the depth-5 seeds'
with the same model (learned, snapped: 0.984, 2026-12-03; perfect: 0.995, 2026-12-03).

Runs go one at a time, seed by seed (seed 0 of every variant named, then seed 1, ...),
so the host's drift spreads over the variants; each is timed on its own, so run nothing
else meanwhile. Finished (variant, seed) runs are kept in <work-dir>/runs.json and read
back (resumable). Writes docs/results/sokoban_time_to_solve.json, the figure
docs/figures/sokoban_5x5_time_to_solve.png (solved fraction against env steps and
against seconds) and the section of docs/results.md.

How to run this script
----------------------
`python benchmarks/sokoban_wall_clock.py [--variants ppo_tuned,learned_depth2,...] [--seeds 3]
 [--work-dir ~/i2a-runs/sokoban_wall_clock]`; `--report-only` rewrites the report from the
finished runs; `--variants ppo_tuned --seeds 1 --ppo-budget 20000 --work-dir /tmp/s --out-dir /tmp/s`
for a smoke run.

Results to expect
-----------------
docs/results.md ("Sokoban 5x5 on the clock") holds what was measured. On a 2-core AMX
host (2026-12-05) the tuned PPO trains at ~3,200-3,600 env steps/s and reaches 0.8 solved
after ~95 s; the learned-model I2A at depth 5 at ~470 (~150 s to 0.8, ~11 min per
3e5-step run), at depth 2 at ~800-850 (~100 s, ~6 min), at depth 1 ~1,200-1,400, the perfect model at depth 2 ~1,000-1,150. The
learned model and its data take ~2 minutes once per work directory. The clock sweeps
kept the tuned PPO's settings for both agents; their 3 seeds (that afternoon, on a
host 12-18% faster) tied: 83.9 s for both. On an AMD EPYC host (2026-12-05) the clock-tuned
PPO ran at ~3,700-4,200 env steps/s (80 s to 0.8), the depth-2 I2A at ~830-880 (100 s)
and with the light imagination path at ~900-1,080 (88 s). Since the trunks start from
the standard PPO init (that evening), PPO reaches 0.8 after ~39 s (~170k env steps) and
the light I2A after ~78 s (~105k); with the env model's first steps kept per board
(2026-12-06) the light I2A trains at ~1,300-1,600 env steps/s and gets there after ~66 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.paper_comparison import (  # noqa: E402
    DOCS,
    ENV_CONFIG,
    ENV_MODEL_OF_AGENT,
    LIGHT_IMAGINATION_PATH,
    SMOOTHING,
    agent_parts,
    agent_summary,
    board_name,
    board_slug,
    build_config,
    learned_model,
    mean_and_sample_sd,
    moving_mean,
    save_with_legend_below,
    train_missing_runs,
    train_run,
    update_results_section,
)
from i2a_rllib.commands import positive_int_arg  # noqa: E402

LEVEL = 0.8  # the solved fraction the target times
TUNED_AT = 300_000  # the budget benchmarks/sokoban_tuning.py tuned the PPO settings at


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    agent: str  # paper_comparison.py's agent: config, env model and tuned settings
    rollout_depth: Optional[int] = None  # None: the PPO baseline, which imagines nothing
    snap: bool = False  # imagination(snap_imagined_frames=...)
    ppo: bool = False  # trains --ppo-budget env steps instead of --budget
    num_epochs: Optional[int] = None  # None: the tuned PPO's (4)
    # The variant whose clock sweep's best settings this one trains with
    # (benchmarks/sokoban_tuning.py --variant <it> --objective seconds); None: the tuned PPO's.
    settings_from: Optional[str] = None
    baseline: str = "ppo_tuned"  # the PPO variant its seconds to LEVEL are held against
    # I2A network sizes (model_config entries) instead of the defaults; empty: the defaults.
    network: Dict[str, int] = dataclasses.field(default_factory=dict)


VARIANTS = {
    "ppo_tuned": Variant("PPO (tuned)", "ppo_tuned", ppo=True),
    "learned": Variant("I2A, learned model (snapped), depth 5", "i2a+ppo_tuned", 5, snap=True),
    "learned_depth3": Variant("I2A, learned model (snapped), depth 3", "i2a+ppo_tuned", 3, snap=True),
    "learned_depth2": Variant("I2A, learned model (snapped), depth 2", "i2a+ppo_tuned", 2, snap=True),
    "learned_depth1": Variant("I2A, learned model (snapped), depth 1", "i2a+ppo_tuned", 1, snap=True),
    "learned_depth2_2epochs": Variant("I2A, learned model (snapped), depth 2, 2 epochs", "i2a+ppo_tuned", 2, snap=True,
                                      num_epochs=2),
    "perfect": Variant("I2A, perfect model, depth 5", "i2a_perfect+ppo_tuned", 5),
    "perfect_depth2": Variant("I2A, perfect model, depth 2", "i2a_perfect+ppo_tuned", 2),
    # Both agents tuned for the clock, with the same sweep (docs/benchmarks.md "Tuned for the clock").
    "ppo_clock_tuned": Variant("PPO (tuned for the clock)", "ppo_tuned", ppo=True, settings_from="ppo_tuned"),
    "learned_depth2_clock_tuned": Variant("I2A, learned model (snapped), depth 2, tuned for the clock", "i2a+ppo_tuned",
                                          2, snap=True, settings_from="learned_depth2", baseline="ppo_clock_tuned"),
    "learned_depth2_light_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, tuned for the clock", "i2a+ppo_tuned", 2,
        snap=True, settings_from="learned_depth2", baseline="ppo_clock_tuned", network=LIGHT_IMAGINATION_PATH),
    # The light path with the tuned PPO's settings (what its own clock sweep starts from),
    # and with the settings that sweep found fastest.
    "learned_depth2_light": Variant("I2A, learned model (snapped), depth 2, light imagination path", "i2a+ppo_tuned",
                                    2, snap=True, network=LIGHT_IMAGINATION_PATH),
    "learned_depth2_light_own_sweep": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, its own clock sweep", "i2a+ppo_tuned", 2,
        snap=True, settings_from="learned_depth2_light", baseline="ppo_clock_tuned", network=LIGHT_IMAGINATION_PATH),
    # The light path with a narrower model-free layer: cheaper, and the model-free path
    # grew first in a slow seed (docs/benchmarks.md "A narrower model-free layer").
    "learned_depth2_lighter_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, 128-wide model-free layer, tuned for the clock",
        "i2a+ppo_tuned", 2, snap=True, settings_from="learned_depth2", baseline="ppo_clock_tuned",
        network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128}),
    # Half the channels in the conv stacks over imagined frames (rollout policy and
    # encoder: 8-16-16), without and with the 128-wide model-free layer: fewer FLOPs per
    # env step (docs/benchmarks.md "Where the light I2A's time goes, counted in FLOPs").
    "learned_depth2_light_narrow_convs_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, 8-16-16 convolutions over imagined frames, "
        "tuned for the clock", "i2a+ppo_tuned", 2, snap=True, settings_from="learned_depth2",
        baseline="ppo_clock_tuned", network={**LIGHT_IMAGINATION_PATH, "imagined_frame_conv_channels": 8}),
    "learned_depth2_lighter_narrow_convs_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, 8-16-16 convolutions over imagined frames, "
        "128-wide model-free layer, tuned for the clock", "i2a+ppo_tuned", 2, snap=True,
        settings_from="learned_depth2", baseline="ppo_clock_tuned",
        network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128, "imagined_frame_conv_channels": 8}),
    # The light path imagining one step: the memo covers every imagined step, and no
    # rollout policy acts inside a rollout (each one's only action is its own).
    "learned_depth1_light_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, tuned for the clock", "i2a+ppo_tuned", 1,
        snap=True, settings_from="learned_depth2", baseline="ppo_clock_tuned", network=LIGHT_IMAGINATION_PATH),
    "learned_depth1_lighter_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, 128-wide model-free layer, tuned for the clock",
        "i2a+ppo_tuned", 1, snap=True, settings_from="learned_depth2", baseline="ppo_clock_tuned",
        network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128}),
    "learned_depth1_lighter_narrow_convs_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, 8-16-16 convolutions over imagined frames, "
        "128-wide model-free layer, tuned for the clock", "i2a+ppo_tuned", 1, snap=True,
        settings_from="learned_depth2", baseline="ppo_clock_tuned",
        network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128, "imagined_frame_conv_channels": 8}),
    # The same with the tuned PPO's settings: where its own clock sweep starts.
    "learned_depth1_lighter": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, 128-wide model-free layer", "i2a+ppo_tuned",
        1, snap=True, network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128}),
    "learned_depth1_lighter_own_sweep": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, 128-wide model-free layer, its own clock sweep",
        "i2a+ppo_tuned", 1, snap=True, settings_from="learned_depth1_lighter", baseline="ppo_clock_tuned",
        network={**LIGHT_IMAGINATION_PATH, "model_free_hidden": 128}),
    # Both agents' clock sweeps repeated after the trunks got the standard PPO init
    # (`sokoban_tuning.py --tag ppo_init`): the first sweeps ran with the default init.
    "ppo_clock_tuned_ppo_init": Variant("PPO (tuned for the clock with the PPO init)", "ppo_tuned", ppo=True,
                                        settings_from="ppo_tuned_ppo_init"),
    "learned_depth2_light_clock_tuned_ppo_init": Variant(
        "I2A, learned model (snapped), depth 2, light imagination path, tuned for the clock with the PPO init",
        "i2a+ppo_tuned", 2, snap=True, settings_from="learned_depth2_light_ppo_init",
        baseline="ppo_clock_tuned_ppo_init", network=LIGHT_IMAGINATION_PATH),
    # learned_depth1_light_clock_tuned without the 128-wide layer over [model-free
    # features, rollout codes]: the policy and value heads read the 832 joined features
    # directly, as PPO's read its trunk's 512 (`head_hidden` 0).
    "learned_depth1_light_nohead_clock_tuned": Variant(
        "I2A, learned model (snapped), depth 1, light imagination path, heads on the joined features, "
        "tuned for the clock", "i2a+ppo_tuned", 1, snap=True, settings_from="learned_depth2",
        baseline="ppo_clock_tuned", network={**LIGHT_IMAGINATION_PATH, "head_hidden": 0}),
}
# One colour per variant, in VARIANTS order: a variant keeps its colour across figures,
# so a new variant's colour goes in at the same position as the variant.
COLOURS = dict(zip(VARIANTS, ("tab:green", "tab:blue", "tab:cyan", "tab:red", "tab:orange", "tab:brown", "tab:purple",
                              "tab:pink", "tab:olive", "tab:gray", "black", "gold", "navy", "magenta", "teal", "crimson", "sienna",
                              "slateblue", "darkviolet", "peru", "darkred", "darkcyan", "darkgoldenrod",
                              "darkorange")))  # fmt: skip
# The criterion for a shorter rollout (set before the first run): the lowest last-10%
# solved fraction of the depth-5 seeds with the same model and settings, 2026-12-03
# (docs/results/sokoban_snapped_frames.json, docs/results/sokoban_wall_clock.json).
DEPTH5_LOWEST_SEED = {"learned": 0.984, "perfect": 0.995}
SECTION_TITLE = "## Sokoban 5x5 on the clock: seconds to 0.8 solved"
RESULTS_KEY = "sokoban_time_to_solve"


def clock_tuning_path(out_dir: str, variant: str) -> str:
    """Where `sokoban_tuning.py --variant <variant> --objective seconds` writes its sweep
    (`variant` '<variant>_<tag>' for a repeat sweep run with `--tag <tag>`)."""
    return os.path.join(out_dir, "results", f"sokoban_clock_tuning_{variant}_{board_slug(ENV_CONFIG)}.json")


def clock_tuned_settings(variant: str, out_dir: str = DOCS) -> Dict[str, Any]:
    """The fastest settings to LEVEL the clock sweep of `variant` found.

    Raises:
        ValueError: No such sweep, or none of its trials got to LEVEL.
    """
    path = clock_tuning_path(out_dir, variant)
    if not os.path.exists(path):
        raise ValueError(f"needs {os.path.relpath(path, ROOT)}: run `python benchmarks/sokoban_tuning.py "
                         f"--variant {variant} --objective seconds` first")  # fmt: skip
    best = json.load(open(path)).get("best")
    if not best:
        raise ValueError(f"{os.path.relpath(path, ROOT)}: no trial got to {LEVEL} solved; nothing to train with")
    return dict(best)


def build(variant: str, seed: int, checkpoint: Optional[str]):
    """The variant's config; the tuned PPO's settings (and a clock sweep's) are read from
    the repository's docs/results (an input, whatever --out-dir the report goes to)."""
    v = VARIANTS[variant]
    config = build_config(v.agent, seed, checkpoint, ENV_CONFIG, budget=TUNED_AT, out_dir=DOCS)
    if not v.ppo:
        config.imagination(rollout_depth=v.rollout_depth, snap_imagined_frames=v.snap)
    if v.num_epochs is not None:
        config.training(num_epochs=v.num_epochs)
    if v.settings_from is not None:
        config.training(**clock_tuned_settings(v.settings_from))
    if v.network:
        config.rl_module(model_config=dict(v.network))
    return config


def model_family(variant: str) -> Optional[str]:
    """'learned' or 'perfect': the model the variant imagines with (paper_comparison's
    agent says which); None for the PPO baseline."""
    kind = ENV_MODEL_OF_AGENT.get(agent_parts(VARIANTS[variant].agent)[0])
    return {"pixel": "learned", "perfect": "perfect"}.get(kind)


def budget_of(variant: str, i2a_budget: int, ppo_budget: int) -> int:
    return ppo_budget if VARIANTS[variant].ppo else i2a_budget


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per variant (in VARIANTS order): paper_comparison's per-seed figures at the
    variant's budget, plus the seconds to LEVEL and their mean and sample sd."""
    summaries = {}
    for variant in VARIANTS:
        budgets = [r["budget"] for r in runs if r["agent"] == variant]
        if not budgets:
            continue
        budget = max(budgets)  # a smoke run at a smaller budget does not mix into the figures
        variant_runs = [r for r in runs if r["agent"] == variant and r["budget"] == budget]
        s = agent_summary(variant_runs, budget)
        seconds = [h and h * 3600 for h in s[f"hours_to_{LEVEL}"]]
        reached = [x for x in seconds if x is not None]
        s["seconds_to_level"] = seconds
        s["seconds_mean"], s["seconds_sd"] = mean_and_sample_sd(reached) if reached else (None, None)
        s["budget"] = budget
        s["started"] = [r.get("started", "-") for r in sorted(variant_runs, key=lambda r: r["seed"])]
        summaries[variant] = s
    return summaries


def verdicts(summaries: Dict[str, Dict[str, Any]]) -> List[str]:
    """One line per I2A variant: its seconds to LEVEL against its baseline's (the tuned or
    the clock-tuned PPO) on the means, the gap in seconds beside both seed spreads, and,
    for a rollout shorter than the paper's 5 or a lighter network, the learning check; a
    variant meets the wall-clock target only if it passes both."""
    lines = []
    for variant, s in summaries.items():
        v = VARIANTS[variant]
        if v.ppo:
            continue
        parts, passed = [], True
        ppo = summaries.get(v.baseline)
        ppo_label = f"the {'clock-' if VARIANTS[v.baseline].settings_from else ''}tuned PPO"
        if ppo and ppo["seconds_mean"] and None not in s["seconds_to_level"]:
            ratio = s["seconds_mean"] / ppo["seconds_mean"]
            parts.append(f"{ratio:.2f}x {ppo_label}'s seconds to {LEVEL} on the means (<= 1: {'yes' if ratio <= 1 else 'no'}; "
                         f"{s['seconds_mean'] - ppo['seconds_mean']:+.1f} s, against seed sds of {_sd(s)} and {_sd(ppo)})")
            passed = ratio <= 1
        else:
            parts.append(f"not every seed of it and {ppo_label} reached {LEVEL}")
            passed = False
        if v.rollout_depth != 5 or v.network:
            floor = DEPTH5_LOWEST_SEED[model_family(variant)]
            learns = len(s["seeds"]) >= 3 and s["solved_mean"] >= floor
            parts.append(f"last-10% solved {s['solved_mean']:.3f} over {len(s['seeds'])} seed(s) against the depth-5 "
                         f"seeds' lowest {floor:.3f} (three seeds at least that on the mean: {'yes' if learns else 'no'})")  # fmt: skip
            passed = passed and learns
        lines.append(f"{v.label}: {'; '.join(parts)}; this setting and the wall-clock target (I2A <= PPO): "
                     f"**{'met' if passed else 'not met'}**.")  # fmt: skip
    return lines


def _sd(summary) -> str:
    """A variant's sample sd of its seconds to LEVEL, '-' for a single seed."""
    sd = summary["seconds_sd"]
    return "-" if sd is None or sd != sd else f"{sd:.1f} s"


def _fmt(values, fmt) -> str:
    return ", ".join("-" if x is None else fmt(x) for x in values)


def write_figure(runs: List[Dict[str, Any]], summaries, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    for variant in summaries:
        for i, r in enumerate(sorted((r for r in runs if r["agent"] == variant), key=lambda r: r["seed"])):
            scored = [p for p in r["curve"] if p["solved"] == p["solved"]]
            solved = moving_mean([p["solved"] for p in scored])
            style = dict(color=COLOURS[variant], alpha=0.8, label=VARIANTS[variant].label if i == 0 else None)
            axes[0].plot(moving_mean([p["env_steps"] for p in scored]), solved, **style)
            axes[1].plot(moving_mean([p["seconds"] for p in scored]), solved, **style)
    for ax, xlabel in zip(axes, ("env steps", "seconds of training (2-core machine, one run at a time)")):
        ax.axhline(LEVEL, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"solved fraction (mean of {SMOOTHING} iterations)")
    # The race to LEVEL, not the I2A runs' long tails, fills the clock panel.
    slowest = max((x for s in summaries.values() for x in s["seconds_to_level"] if x), default=None)
    axes[1].set_xlim(0, 2 * slowest if slowest else None)
    save_with_legend_below(fig, axes[0], f"Sokoban {board_name(ENV_CONFIG)}: time to {LEVEL} solved, one line per seed",
                           png, ncol=1)  # fmt: skip  (one label per line: the labels are long)


def clock_tuned_line(runs: List[Dict[str, Any]], summaries) -> str:
    """The settings each 'tuned for the clock' variant in the report trained with, as its runs recorded them."""
    lines = []
    for variant in summaries:
        if VARIANTS[variant].settings_from:
            used = sorted({json.dumps(r["settings"], sort_keys=True) for r in runs if r["agent"] == variant})
            shown = " or ".join(", ".join(f"{k}={x:.3g}" for k, x in json.loads(u).items()) for u in used)
            lines.append(f"{VARIANTS[variant].label}: {shown} (docs/results/"
                         f"{os.path.basename(clock_tuning_path(DOCS, VARIANTS[variant].settings_from))})")  # fmt: skip
    return "; instead of them, " + "; ".join(lines) if lines else ""


def model_line(runs: List[Dict[str, Any]]) -> str:
    """The learned model's held-out error ratios to copying the last frame, as its runs recorded them."""
    figures = sorted({" / ".join(f"{m.get(f'error_ratio_{k}_step', float('nan')):.3f}" for k in (1, 5, 15))
                      for r in runs if (m := r.get("env_model_metrics"))})  # fmt: skip
    return (" The learned model's held-out error / copying the last frame at 1 / 5 / 15 steps: "
            f"{', '.join(figures)}.") if figures else ""  # fmt: skip


def report(runs: List[Dict[str, Any]], out_dir: str) -> Dict[str, Any]:
    summaries = summarise(runs)
    png = os.path.join(out_dir, "figures", "sokoban_5x5_time_to_solve.png")
    write_figure(runs, summaries, png)
    rows = [
        "| variant | seeds | started (UTC) | env steps/s | last-10% solved | env steps to 0.8 | seconds to 0.8 | mean ± sd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, s in summaries.items():
        mean = "-" if s["seconds_mean"] is None else f"{s['seconds_mean']:.0f}"
        if s["seconds_sd"] == s["seconds_sd"] and s["seconds_sd"] is not None:  # no sd for a single seed
            mean += f" ± {s['seconds_sd']:.0f}"
        rows.append(
            f"| {VARIANTS[variant].label} | {', '.join(map(str, s['seeds']))} | {', '.join(s['started'])} "
            f"| {_fmt(s['env_steps_per_s'], lambda x: f'{x:,.0f}')} "
            f"| {s['solved_mean']:.3f} ({_fmt(s['solved_last_10pct'], lambda x: f'{x:.3f}')}) "
            f"| {_fmt(s[f'env_steps_to_{LEVEL}'], lambda x: f'{x:,}')} "
            f"| {_fmt(s['seconds_to_level'], lambda x: f'{x:.0f}')} | {mean} |"
        )
    dates = sorted({r["date"] for r in runs})
    section = "\n".join([
        SECTION_TITLE, "",
        f"`python benchmarks/sokoban_wall_clock.py` ({', '.join(dates)}): one run at a time, seed by seed; the "
        "tuned PPO's settings for every variant; env steps per run ("
        + "; ".join(f"{VARIANTS[v].label}: {s['budget']:,}" for v, s in summaries.items())
        + ")" + clock_tuned_line(runs, summaries)
        + f"; '{LEVEL}' is where the {SMOOTHING}-iteration mean of the solved fraction first got "
        "there ('-' never). Spreads are sample standard deviations over the seeds that got there."
        + model_line(runs), "",
        *rows, "",
        *[f"- {line}" for line in verdicts(summaries)], "",
        f"![time to {LEVEL} solved](figures/{os.path.basename(png)})", "",
    ])
    update_results_section(out_dir, section, SECTION_TITLE)
    import platform

    import torch

    payload = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}", "level": LEVEL, "tuned_at": TUNED_AT,
               "variants": {v: dataclasses.asdict(VARIANTS[v]) | summaries[v] for v in summaries},
               "depth5_lowest_seed": DEPTH5_LOWEST_SEED, "runs": runs}  # fmt: skip
    path = os.path.join(out_dir, "results", RESULTS_KEY + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(path + ".tmp", path)
    return payload


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="ppo_tuned,learned_depth2", help=f"comma-separated, of {list(VARIANTS)}")
    parser.add_argument("--seeds", type=positive_int_arg("--seeds"), default=3)
    parser.add_argument("--budget", type=positive_int_arg("--budget"), default=300_000, help="I2A's env steps")
    parser.add_argument("--ppo-budget", type=positive_int_arg("--ppo-budget"), default=500_000)
    parser.add_argument("--work-dir", default=os.path.expanduser("~/i2a-runs/sokoban_wall_clock"))
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "docs"))
    parser.add_argument("--report-only", action="store_true", help="Write the report from the finished runs.")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        parser.exit(2, f"sokoban_wall_clock.py: error: --variants {args.variants!r}: unknown {unknown}; "
                       f"use {list(VARIANTS)}\n")  # fmt: skip
    runs_path = os.path.join(args.work_dir, "runs.json")
    if args.report_only:
        if not os.path.exists(runs_path):
            parser.exit(2, f"sokoban_wall_clock.py: error: --report-only: no runs in {args.work_dir}\n")
        report(json.load(open(runs_path)), args.out_dir)
        return
    from benchmarks.paper_comparison import tuned_settings

    try:  # the tuned PPO's settings (and the clock sweeps' asked for) exist before anything starts
        tuned_settings("ppo_tuned", TUNED_AT, ENV_CONFIG, DOCS)
        for variant in variants:
            if VARIANTS[variant].settings_from:
                clock_tuned_settings(VARIANTS[variant].settings_from)
    except ValueError as e:
        parser.exit(2, f"sokoban_wall_clock.py: error: {e}\n")

    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    os.makedirs(args.work_dir, exist_ok=True)
    checkpoint, model_metrics = None, {}
    if any(model_family(v) == "learned" for v in variants):
        from benchmarks.paper_comparison import model_metrics_of

        checkpoint = learned_model(args.work_dir, ENV_CONFIG)
        model_metrics = model_metrics_of(checkpoint)

    def train_one(variant: str, seed: int) -> Dict[str, Any]:
        budget = budget_of(variant, args.budget, args.ppo_budget)
        started = time.strftime("%H:%M")
        run = train_run(variant, seed, budget, checkpoint, ENV_CONFIG,
                        build=lambda _agent, s, ckpt, _env: build(variant, s, ckpt))  # fmt: skip
        learned = model_family(variant) == "learned"
        source = VARIANTS[variant].settings_from
        return {**run, "started": started, "budget": budget, "env_model_metrics": model_metrics if learned else None,
                **({"settings": clock_tuned_settings(source)} if source else {})}  # fmt: skip

    # train_missing_runs matches runs by one budget; each variant has its own, so one call each per seed.
    for seed in range(args.seeds):
        for variant in variants:
            train_missing_runs(runs_path, [variant], seed + 1, budget_of(variant, args.budget, args.ppo_budget), train_one)
    ray.shutdown()
    report(json.load(open(runs_path)), args.out_dir)


if __name__ == "__main__":
    main()
