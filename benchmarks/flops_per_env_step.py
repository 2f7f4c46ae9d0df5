"""FLOPs per env step of the Sokoban clock race's agents: the update and the sampling, counted.

Wall clock is what #17's target times, but seconds mix arithmetic with everything else;
this counts the arithmetic. For each variant of benchmarks/sokoban_wall_clock.py (by
default the clock-tuned PPO and the light I2A the races time), its race config is built
with the EnvRunner and the learner in this process (no remote EnvRunners, a local
learner), so that torch's FlopCounterMode sees both:
  1. `--warmup-iterations` iterations of `algo.train()` (the agent learns a little and
     the env model's per-board memo fills, as early in a race),
  2. one more iteration counted: its sampling (`EnvRunner.sample`) and its update
     (`LearnerGroup.update`: GAE's value pass, the imagination precompute, every epoch's
     forward and backward) apart.
FLOPs per env step = (sampling + update) / the env steps sampled in that iteration; the
ratio to the first variant's is the arithmetic an agent pays per env step against it.
torch's counter counts matrix products and convolutions (the arithmetic that dominates
here), not element-wise ops. The count depends on the boards seen (the trunks run once
per distinct board, the env model once per board the memo lacks), so read it to ~+-5%.

Why it matters for the clock target: at an equal arithmetic rate, seconds to 0.8 = env
steps to 0.8 x FLOPs per env step / rate, so an I2A that needs a fraction f of PPO's env
steps can be level with PPO only with at most 1/f times its FLOPs per env step
(docs/benchmarks.md "Where the light I2A's time goes, counted in FLOPs").

How to run this script
----------------------
`python benchmarks/flops_per_env_step.py [--variants ppo_clock_tuned,learned_depth2_light_clock_tuned]
 [--warmup-iterations 10] [--env-model-checkpoint DIR] [--json FILE]`
(learned-model variants need the race's pretrained model: the default is
sokoban_wall_clock.py's work dir, ~/i2a-runs/sokoban_wall_clock; ~3 minutes on 2 CPU
cores with the defaults; `--variants ppo_tuned --warmup-iterations 0` for a smoke run.)
Counts, not timings: other work on the machine does not change them.

Results to expect
-----------------
docs/benchmarks.md ("Where the light I2A's time goes, counted in FLOPs") holds what was
measured: PPO ~12 MFLOP per env step, the light I2A ~34 (2.8x).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.paper_comparison import learned_model_path  # noqa: E402
from benchmarks.sokoban_wall_clock import VARIANTS, build, model_family  # noqa: E402
from i2a_rllib.commands import non_negative_int_arg  # noqa: E402

DEFAULT_VARIANTS = ("ppo_clock_tuned", "learned_depth2_light_clock_tuned")
DEFAULT_JSON = os.path.join(ROOT, "docs", "results", "flops_per_env_step.json")
PHASES = ("sample", "update")


class PhaseCounter:
    """FLOPs of every call of a wrapped method while `counting`, summed per phase.

    Phases only: torch's per-module attribution (FlopCounterMode's module tracker) counted
    backward ops under several modules here (its parts summed to 1.7x the total), so it
    is not reported."""

    def __init__(self):
        self.flops = {phase: 0 for phase in PHASES}
        self.counting = False

    def wrap(self, phase: str, method: Callable) -> Callable:
        from torch.utils.flop_counter import FlopCounterMode

        def counted(*args, **kwargs):
            if not self.counting:
                return method(*args, **kwargs)
            with FlopCounterMode(display=False) as counter:
                out = method(*args, **kwargs)
            self.flops[phase] += counter.get_total_flops()
            return out

        return counted


def count_variant(variant: str, checkpoint: str, warmup_iterations: int) -> Dict[str, Any]:
    """One variant's FLOPs per env step (see the module docstring)."""
    config = build(variant, 0, checkpoint)
    config.env_runners(num_env_runners=0)  # sample in this process, where the counter is
    config.learners(num_learners=0)
    algo = config.build_algo()
    try:
        counter = PhaseCounter()
        runner = algo.env_runner
        runner.sample = counter.wrap("sample", runner.sample)
        algo.learner_group.update = counter.wrap("update", algo.learner_group.update)
        before = 0
        for i in range(warmup_iterations):
            before = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
            if (i + 1) % 10 == 0:
                print(f"[flops] {variant}: warm-up iteration {i + 1}/{warmup_iterations}", flush=True)
        counter.counting = True
        after = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
        counter.counting = False
    finally:
        algo.stop()
    env_steps = int(after - before)
    total = sum(counter.flops.values())
    return {
        "variant": variant,
        "label": VARIANTS[variant].label,
        "warmup_iterations": warmup_iterations,
        "env_steps": env_steps,
        "num_epochs": config.num_epochs,
        "minibatch_size": config.minibatch_size,
        "sample_flops": counter.flops["sample"],
        "update_flops": counter.flops["update"],
        "flops_per_env_step": total / env_steps,
        "sample_flops_per_env_step": counter.flops["sample"] / env_steps,
        "update_flops_per_env_step": counter.flops["update"] / env_steps,
    }


def table(rows: List[Dict[str, Any]]) -> str:
    base = rows[0]["flops_per_env_step"]
    lines = [f"| variant | sampling, MFLOP per env step | update | in all | / {rows[0]['variant']} |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['sample_flops_per_env_step'] / 1e6:.2f} | "
                     f"{r['update_flops_per_env_step'] / 1e6:.2f} | {r['flops_per_env_step'] / 1e6:.2f} | "
                     f"{r['flops_per_env_step'] / base:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"sokoban_wall_clock.py's variants, comma-separated; the first is the ratios' base "
                             f"(default: {','.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--warmup-iterations", type=non_negative_int_arg("--warmup-iterations"), default=10)
    parser.add_argument("--env-model-checkpoint", default=None,
                        help="the learned variants' pixel model (default: sokoban_wall_clock.py's work dir's)")
    parser.add_argument("--json", default=DEFAULT_JSON, help="where the figures go (default: %(default)s)")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        parser.exit(2, f"flops_per_env_step.py: error: --variants: unknown {unknown or 'none given'}; "
                       f"choose from {sorted(VARIANTS)}\n")  # fmt: skip
    checkpoint = args.env_model_checkpoint
    if checkpoint is None:
        checkpoint = learned_model_path(os.path.expanduser("~/i2a-runs/sokoban_wall_clock"))
    needs_model = [v for v in variants if model_family(v) == "learned"]
    if needs_model and not os.path.isdir(checkpoint):
        parser.exit(2, f"flops_per_env_step.py: error: {needs_model[0]} needs --env-model-checkpoint <dir> "
                       f"(not found: {checkpoint}; sokoban_wall_clock.py's work dir holds one under env_model/)\n")  # fmt: skip
    try:  # a clock-tuned variant reads its sweep's settings: fail here, before Ray, if absent
        for v in variants:
            build(v, 0, checkpoint)
    except ValueError as e:
        parser.exit(2, f"flops_per_env_step.py: error: {e}\n")

    import ray
    import torch

    torch.set_num_threads(1)  # counts do not depend on threads; keep the run gentle on a shared machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = []
        for v in variants:
            print(f"[flops] {v}: {args.warmup_iterations} warm-up iterations, then one counted", flush=True)
            rows.append(count_variant(v, os.path.abspath(checkpoint), args.warmup_iterations))
            print(f"[flops] {v}: {rows[-1]['flops_per_env_step'] / 1e6:.2f} MFLOP per env step", flush=True)
    finally:
        ray.shutdown()
    print(table(rows))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"variants": rows, "warmup_iterations": args.warmup_iterations,
                   "env_model_checkpoint": os.path.abspath(checkpoint) if needs_model else None,
                   "torch": torch.__version__}, f, indent=1)  # fmt: skip
    print(f"[flops] -> {args.json}")


if __name__ == "__main__":
    main()
