"""End-to-end training throughput: PPO vs I2A with each env model, and the bound its parts imply.

For each environment (Breakout, Sokoban 5x5) and agent (the model-free PPO baseline,
the copy-model control over frames, I2A with each env-model kind that fits the
environment), with the same PPO settings and sampling for every agent of an environment,
one agent after the other, each in a fresh process with its own local Ray instance (in
one process, every algorithm after the first updated 20-30% slower):
  1. end to end: `algo.train()` for N iterations after one warm-up iteration; env steps/s
     = env steps sampled / wall clock, with a breakdown per iteration of where the time
     went: sampling (RLlib's `synchronous_parallel_sample`), the learner update (of which
     I2A's imagination precompute, the learner's own `imagination_seconds`), the weight
     sync to the EnvRunners, and everything else (metrics, callbacks, Ray's bookkeeping:
     iteration time minus the three);
  2. the parts alone, with the same algorithm object: M sampling calls with nothing in
     between, then M learner updates on the last sampled batch (same epochs and
     minibatches); the bound the parts imply for synchronous PPO is
     batch / (median sampling seconds + median update seconds);
  3. ratios: end to end / bound (the loop's own gap), and I2A / PPO end to end.
Env models are untrained unless `--env-model-checkpoint KIND=DIR` gives a pretrained one
(the arithmetic per imagined step is the same, but a trained frame model's imagined
frames repeat as the game's do, and the rollout encoder embeds each distinct frame once,
so the encoder's cost differs); Sokoban's pixel model has the size paper_comparison.py
trains (`PIXEL_MODEL`). Nothing here learns anything worth keeping. Writes
docs/results/throughput.json and prints the tables that docs/benchmarks.md holds.

How to run this script
----------------------
`python benchmarks/training_throughput.py [--envs breakout,sokoban] [--agents ppo,copy,...]
 [--iterations 3] [--parts 2] [--batch N] [--num-gpus-per-learner 1] [--learner-precision bf16]
 [--overlap-sampling] [--env-model-checkpoint KIND=DIR] [--snap-imagined-frames]
 [--imagination-precision bf16] [--rollout-depth auto|D] [--i2a-sizes KEY=N,...] [--json FILE]`
(`--rollout-depth auto`, the default, is each env model's own: 2 for Breakout's
spatial models since 2026-12-05 midday (3 that morning, 5 before); the paper's 5 for Sokoban's.)
(`--i2a-sizes` sets the I2A's network sizes, e.g. the lighter imagination path of
benchmarks/paper_comparison.py, `encoder_feature_size=64,encoder_hidden=64,head_hidden=128`.)
(~15 minutes on 2 CPU cores with the defaults; `--envs sokoban --agents ppo,perfect
--iterations 1 --parts 1 --batch 256` for a smoke run.) Run it on an otherwise idle
machine: every figure is a wall-clock figure.

Results to expect
-----------------
docs/benchmarks.md ("Training throughput") holds what was measured. Sampling and the
update do not overlap in synchronous PPO, so the bound is reached only if nothing else
takes time; I2A's update carries the imagination of A x depth steps per state.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from typing import Any, Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.paper_comparison import PIXEL_MODEL as SOKOBAN_PIXEL_MODEL  # noqa: E402
from benchmarks.paper_comparison import PPO_SETTINGS as SOKOBAN_PPO_SETTINGS  # noqa: E402
from i2a_rllib.commands import non_negative_float_arg, positive_int_arg, rollout_depth_arg  # noqa: E402
from i2a_rllib.imagination_settings import NETWORK_SIZE_MINIMUM, NETWORK_SIZES  # noqa: E402

# Per environment: its id and board, the sampling, the PPO settings every agent shares
# and the agents (env-model kinds) that apply. Breakout: the `i2a train` defaults (one
# EnvRunner x 8 envs, batch 1024, 4 epochs of 256); Sokoban: paper_comparison.py's.
CASES: Dict[str, Dict[str, Any]] = {
    "breakout": dict(
        env_id="ALE/Breakout-v5",
        env_config=None,
        num_env_runners=1,
        envs_per_runner=8,
        settings=dict(train_batch_size_per_learner=1024, minibatch_size=256, num_epochs=4),
        agents=("ppo", "copy", "latent", "spatial"),
        env_model_hparams={},
    ),
    "sokoban": dict(
        env_id="I2A/Sokoban-v0",
        env_config={"dim_room": [5, 5], "num_boxes": 1},
        num_env_runners=2,
        envs_per_runner=16,
        settings=SOKOBAN_PPO_SETTINGS,
        agents=("ppo", "copy", "pixel", "perfect"),
        # The learned model of the Sokoban comparison (the pixel family's default has
        # 64 channels, 16x the convolutions).
        env_model_hparams={"pixel": SOKOBAN_PIXEL_MODEL},
    ),
}
ROLLOUT_DEPTH = "auto"  # the env model's default: 2 for the spatial models, 5 (the paper's) else
PHASES = ("sample", "update", "imagination", "sync", "other")


def build_config(case: Dict[str, Any], agent: str, batch: int = None, gpus: int = 0, precision: str = "fp32",
                 overlap: bool = False, env_runner_threads: int = None, compile_worker: bool = False,
                 env_model_checkpoint: str = None, snap_frames: bool = False,
                 imagination_precision: str = "fp32", env_runner_gpus: float = 0,
                 rollout_depth=ROLLOUT_DEPTH, i2a_sizes: Dict[str, int] = None):  # fmt: skip
    """The RLlib config of one agent ('ppo' or an env-model kind) of one environment;
    `gpus` per learner (the learner runs in this process), its `precision`; `overlap`:
    the EnvRunners overlap env stepping with inference (Atari); `env_runner_threads`:
    each EnvRunner's torch threads (None: Ray's one per reserved CPU); `compile_worker`:
    RLlib's torch_compile_worker (I2A's exploration forward through torch.compile);
    `env_model_checkpoint`: a pretrained model of the agent's kind (None: untrained, with
    the case's hparams for it); `snap_frames`: I2A's `snap_imagined_frames`;
    `imagination_precision`: I2A's (bf16: the rollouts in bfloat16 autocast);
    `env_runner_gpus`: GPUs per EnvRunner (its module, so I2A's imagination, runs there);
    `rollout_depth`: I2A's imagined steps per rollout ('auto': its env model's default);
    `i2a_sizes`: I2A network sizes (model_config entries of NETWORK_SIZES) instead of the defaults."""
    from i2a_rllib.config import I2AConfig, baseline_ppo_config, configure_environment, set_torch_threads

    env_kwargs = {"env_config": case["env_config"]} if case["env_config"] else {}
    env_kwargs.update(num_envs_per_env_runner=case["envs_per_runner"], overlap_sampling=overlap)
    if agent == "ppo":
        config = baseline_ppo_config(case["env_id"], **env_kwargs)
    else:
        config = configure_environment(I2AConfig(), case["env_id"], **env_kwargs).imagination(
            env_model=agent,
            env_model_checkpoint=env_model_checkpoint,
            snap_imagined_frames=snap_frames,
            imagination_precision=imagination_precision,
            rollout_depth=rollout_depth,
            imagination_image_interval=0,
        )
        model_config = dict(i2a_sizes or {})
        if env_model_checkpoint is None and agent in case["env_model_hparams"]:
            model_config["env_model_hparams"] = case["env_model_hparams"][agent]
        if model_config:
            config.rl_module(model_config=model_config)
    set_torch_threads(config, env_runner_threads=env_runner_threads)
    config.framework(torch_compile_worker=compile_worker)
    config.training(**case["settings"])
    if batch:
        config.training(train_batch_size_per_learner=batch, minibatch_size=min(batch, case["settings"]["minibatch_size"]))
    config.learners(
        num_gpus_per_learner=gpus, learner_config_dict={**config.learner_config_dict, "precision": precision}
    )
    return config.env_runners(
        num_env_runners=case["num_env_runners"],
        num_envs_per_env_runner=case["envs_per_runner"],
        num_gpus_per_env_runner=env_runner_gpus,
        rollout_fragment_length="auto",
    ).debugging(seed=0)


class PhaseClock:
    """Seconds per phase of the current iteration, from wrappers around the calls PPO's
    `training_step` makes (RLlib's own timers are EMA-smoothed across iterations)."""

    def __init__(self):
        self.seconds = {phase: 0.0 for phase in PHASES}

    def timed(self, phase: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return wrapper

    def reset(self) -> None:
        self.seconds = {phase: 0.0 for phase in PHASES}


@contextmanager
def instrumented(algo, clock: PhaseClock):
    """Times sampling, the learner update and the weight sync of `algo`'s iterations."""
    import ray.rllib.algorithms.ppo.ppo as ppo_module

    sample = ppo_module.synchronous_parallel_sample
    ppo_module.synchronous_parallel_sample = clock.timed("sample", sample)
    algo.learner_group.update = clock.timed("update", algo.learner_group.update)
    algo.env_runner_group.sync_weights = clock.timed("sync", algo.env_runner_group.sync_weights)
    try:
        yield
    finally:
        ppo_module.synchronous_parallel_sample = sample
        del algo.learner_group.update, algo.env_runner_group.sync_weights


def imagination_seconds(result: Dict[str, Any]) -> float:
    """The I2A learner's imagination precompute in this iteration's update (0 for PPO)."""
    module = result.get("learners", {}).get("default_policy", {})
    return float(module.get("imagination_seconds", 0.0))


def measure(case: Dict[str, Any], agent: str, iterations: int, parts: int, batch: int = None, gpus: int = 0,
            precision: str = "fp32", overlap: bool = False, env_runner_threads: int = None,
            compile_worker: bool = False, env_model_checkpoint: str = None,
            snap_frames: bool = False, imagination_precision: str = "fp32",
            env_runner_gpus: float = 0, rollout_depth=ROLLOUT_DEPTH, i2a_sizes=None) -> Dict[str, Any]:  # fmt: skip
    """End-to-end iterations with their breakdown, then the parts alone (see the module doc)."""
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from i2a_rllib.models.imagination import resolve_rollout_depth

    config = build_config(case, agent, batch, gpus, precision, overlap, env_runner_threads, compile_worker,
                          env_model_checkpoint, snap_frames, imagination_precision, env_runner_gpus,
                          rollout_depth, i2a_sizes)  # fmt: skip
    settings = {k: getattr(config, k) for k in ("train_batch_size_per_learner", "minibatch_size", "num_epochs")}
    algo = config.build_algo()
    clock = PhaseClock()
    rows: List[Dict[str, float]] = []
    try:
        with instrumented(algo, clock):
            start = time.perf_counter()
            algo.train()  # warm-up: first-call allocations, connector setup, compiling
            warm_up = time.perf_counter() - start
            steps = algo.metrics.peek(("env_runners", NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
            for _ in range(iterations):
                clock.reset()
                start = time.perf_counter()
                result = algo.train()
                wall = time.perf_counter() - start
                if NUM_ENV_STEPS_SAMPLED_LIFETIME not in result.get("env_runners", {}):
                    raise RuntimeError(
                        f"{case['env_id']} {agent}: the iteration sampled nothing, every EnvRunner failed; "
                        "the cause is in Ray's worker logs (/tmp/ray/session_latest/logs/worker-*.err)"
                    )
                now = int(result["env_runners"][NUM_ENV_STEPS_SAMPLED_LIFETIME])
                phase = dict(clock.seconds, imagination=imagination_seconds(result))
                phase["other"] = wall - phase["sample"] - phase["update"] - phase["sync"]
                rows.append({"wall": wall, "env_steps": now - steps, **phase})
                steps = now
        # The parts alone, on the same algorithm: sampling calls back to back, then
        # updates on the last batch.
        batch_size = settings["train_batch_size_per_learner"]
        sample_seconds, update_seconds = [], []
        for _ in range(parts):
            start = time.perf_counter()
            episodes = synchronous_parallel_sample(
                worker_set=algo.env_runner_group, max_env_steps=batch_size, _uses_new_env_runners=True
            )
            sample_seconds.append(time.perf_counter() - start)
        sampled = sum(len(e) for e in episodes)
        for _ in range(parts):
            start = time.perf_counter()
            algo.learner_group.update(
                episodes=episodes,
                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: steps},
                num_epochs=settings["num_epochs"],
                minibatch_size=settings["minibatch_size"],
                shuffle_batch_per_epoch=True,
            )
            update_seconds.append(time.perf_counter() - start)
    finally:
        algo.stop()
    end_to_end = sum(r["env_steps"] for r in rows) / sum(r["wall"] for r in rows)
    sample_alone, update_alone = float(np.median(sample_seconds)), float(np.median(update_seconds))
    bound = sampled / (sample_alone + update_alone)
    return {
        "agent": agent,
        "env_model": None if agent == "ppo" else {
            "checkpoint": env_model_checkpoint,
            "hparams": None if env_model_checkpoint else case["env_model_hparams"].get(agent, {}),
            "snap_imagined_frames": snap_frames,
            "imagination_precision": imagination_precision,
            "rollout_depth": resolve_rollout_depth(config.rollout_depth, agent),  # as the module reads it
            "network_sizes": dict(i2a_sizes or {}),  # empty: the defaults
        },
        "settings": settings,
        "warm_up_seconds": warm_up,
        "iterations": rows,
        "env_steps_per_s": end_to_end,
        "seconds_per_iteration": {p: float(np.mean([r[p] for r in rows])) for p in ("wall", *PHASES)},
        "parts_alone": {
            "sampled_env_steps": sampled,
            "sample_seconds": sample_seconds,
            "update_seconds": update_seconds,
            "sample_env_steps_per_s": sampled / sample_alone,
            "update_rows_per_s": sampled / update_alone,
        },
        "bound_env_steps_per_s": bound,
        "end_to_end_over_bound": end_to_end / bound,
    }


def _measure_with_own_ray(*args) -> Dict[str, Any]:
    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        return measure(*args)
    finally:
        ray.shutdown()


def measure_in_fresh_process(*args) -> Dict[str, Any]:
    """`measure(*args)` in a new process with its own Ray instance: in one process, every
    algorithm after the first updated ~20-30% slower (2026-12-01: the same latent I2A,
    4.44 s per update measured first, 5.33 s measured second), which biased every
    comparison against the agents measured later."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_with_own_ray, args)


def tables(results: Dict[str, Any]) -> str:
    """The markdown tables of docs/benchmarks.md, one per environment."""
    lines = []
    for env, agents in results["environments"].items():
        ppo = agents.get("ppo", {}).get("env_steps_per_s")
        lines += [
            f"{env}: " + ", ".join(f"{k}={v}" for k, v in next(iter(agents.values()))["settings"].items()),
            "",
            "| agent | env steps/s | bound from the parts | end to end / bound | / PPO | "
            "s per iteration: sample | update (imagination) | sync | other |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for agent, r in agents.items():
            s = r["seconds_per_iteration"]
            versus = f"{r['env_steps_per_s'] / ppo:.2f}" if ppo and agent != "ppo" else "-"
            lines.append(
                f"| {agent} | {r['env_steps_per_s']:,.0f} | {r['bound_env_steps_per_s']:,.0f} | "
                f"**{r['end_to_end_over_bound']:.2f}** | {versus} | {s['sample']:.2f} | "
                f"{s['update']:.2f} ({s['imagination']:.2f}) | {s['sync']:.3f} | {s['other']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def env_model_checkpoints(specs: List[str], envs: List[str]) -> Dict[Any, str]:
    """{(environment, kind): checkpoint directory} of `--env-model-checkpoint KIND=DIR`
    values; each checkpoint goes to the measured environment it was trained on.

    Raises:
        ValueError: naming the bad value and the fix.
    """
    from i2a_rllib.checkpoints import CheckpointError, read_env_model_metadata

    found: Dict[Any, str] = {}
    for spec in specs:
        kind, sep, path = spec.partition("=")
        if not sep or not kind or not path:
            raise ValueError(f"{spec!r}: write KIND=DIR, e.g. pixel=~/runs/env_model")
        path = os.path.expanduser(path)
        try:
            metadata = read_env_model_metadata(path)
        except CheckpointError as e:
            raise ValueError(f"{spec!r}: {e}") from None
        if metadata["kind"] != kind:
            raise ValueError(f"{spec!r}: {path} holds a {metadata['kind']!r} model, not {kind!r}")
        matching = [e for e in envs if CASES[e]["env_id"] == metadata.get("env_id") and kind in CASES[e]["agents"]]
        if not matching:
            raise ValueError(
                f"{spec!r}: the model was trained on {metadata.get('env_id')!r}; no measured environment "
                f"({', '.join(envs)}) plays it with a {kind!r} agent"
            )
        found[(matching[0], kind)] = path
    return found


def i2a_sizes_arg(text: str) -> Dict[str, int]:
    """argparse `type=` for --i2a-sizes: 'KEY=N[,KEY=N...]' of NETWORK_SIZES, each N >= 1
    (head_hidden >= 0)."""
    sizes: Dict[str, int] = {}
    for item in (i for i in text.split(",") if i):
        key, sep, value = item.partition("=")
        minimum = NETWORK_SIZE_MINIMUM.get(key, 1)
        if not sep or key not in NETWORK_SIZES or not value.isdigit() or int(value) < minimum:
            raise argparse.ArgumentTypeError(
                f"--i2a-sizes {text!r}: write KEY=N with N >= 1 (head_hidden >= 0) and KEY one of "
                f"{list(NETWORK_SIZES)}, e.g. encoder_hidden=64,head_hidden=128"
            )
        sizes[key] = int(value)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    parser.add_argument("--agents", default=None,
                        help="comma-separated agents ('ppo' or env-model kinds); default: each environment's")
    parser.add_argument("--iterations", type=positive_int_arg("--iterations"), default=3)
    parser.add_argument("--parts", type=positive_int_arg("--parts"), default=2,
                        help="sampling calls and updates timed alone")
    parser.add_argument("--batch", type=int, default=None, help="train batch (default: each environment's)")
    parser.add_argument("--num-gpus-per-learner", type=int, default=0, choices=(0, 1),
                        help="1: the learner (in the driver) updates on a GPU")
    parser.add_argument("--num-gpus-per-env-runner", type=non_negative_float_arg("--num-gpus-per-env-runner"),
                        default=0.0, help="GPUs per EnvRunner: its module (I2A's imagination) runs there")
    parser.add_argument("--learner-precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--overlap-sampling", action="store_true",
                        help="also measure each Atari agent with overlapped sampling ('<agent> (overlapped)')")
    parser.add_argument("--env-runner-threads", type=positive_int_arg("--env-runner-threads"), default=None,
                        help="torch threads of each EnvRunner (default: Ray's, one per reserved CPU)")
    parser.add_argument("--torch-compile-worker", action="store_true",
                        help="I2A's EnvRunners explore through torch.compile (RLlib's torch_compile_worker)")
    parser.add_argument("--env-model-checkpoint", action="append", default=[], metavar="KIND=DIR",
                        help="a pretrained env model (`i2a pretrain`'s directory) for the agent of that kind, "
                             "in the environment it was trained on (repeatable; default: untrained models)")
    parser.add_argument("--snap-imagined-frames", action="store_true",
                        help="I2A rounds imagined frames to 0 or 1 before its rollout encoder reads them")
    parser.add_argument("--imagination-precision", default="fp32", choices=("fp32", "bf16"),
                        help="bf16: I2A's imagined rollouts in bfloat16 autocast (PPO has none)")
    parser.add_argument("--rollout-depth", type=rollout_depth_arg, default=ROLLOUT_DEPTH,
                        help="I2A's imagined steps per rollout (default auto: the env model's default, "
                             "2 for the spatial models, the paper's 5 else)")
    parser.add_argument("--i2a-sizes", type=i2a_sizes_arg, default={}, metavar="KEY=N,...",
                        help=f"I2A network sizes instead of the defaults, of {list(NETWORK_SIZES)}")
    parser.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "throughput.json"))
    args = parser.parse_args()
    envs = [e for e in args.envs.split(",") if e]
    if not envs or set(envs) - set(CASES):
        parser.exit(2, f"training_throughput.py: error: --envs {args.envs!r}: use some of {list(CASES)}\n")
    wanted = [a for a in args.agents.split(",") if a] if args.agents else None
    known = {a for e in envs for a in CASES[e]["agents"]}
    if wanted is not None and (not wanted or set(wanted) - known):
        parser.exit(2, f"training_throughput.py: error: --agents {args.agents!r}: use some of {sorted(known)}\n")
    if args.batch is not None and args.batch < 64:
        parser.exit(2, f"training_throughput.py: error: --batch must be >= 64, got {args.batch}\n")
    try:
        checkpoints = env_model_checkpoints(args.env_model_checkpoint, envs)
    except ValueError as e:
        parser.exit(2, f"training_throughput.py: error: --env-model-checkpoint {e}\n")

    import ray
    import torch

    if args.num_gpus_per_learner and not torch.cuda.is_available():
        parser.exit(2, "training_throughput.py: error: --num-gpus-per-learner 1: torch sees no CUDA device here\n")
    if args.num_gpus_per_env_runner and not torch.cuda.is_available():
        parser.exit(2, "training_throughput.py: error: --num-gpus-per-env-runner: torch sees no CUDA device here\n")
    results = {
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ray {ray.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "iterations": args.iterations,
        "parts": args.parts,
        "learner_device": torch.cuda.get_device_name() if args.num_gpus_per_learner else "cpu",
        "learner_precision": args.learner_precision,
        "num_gpus_per_env_runner": args.num_gpus_per_env_runner,
        "env_runner_threads": args.env_runner_threads or 1,
        "torch_compile_worker": args.torch_compile_worker,
        "snap_imagined_frames": args.snap_imagined_frames,
        "imagination_precision": args.imagination_precision,
        "rollout_depth": args.rollout_depth,
        "i2a_sizes": args.i2a_sizes,
        "environments": {},
    }
    for env in envs:
        case = CASES[env]
        overlaps = (False, True) if args.overlap_sampling and case["env_id"].startswith("ALE/") else (False,)
        for agent, overlap in [(a, o) for a in case["agents"] for o in overlaps]:
            if wanted is not None and agent not in wanted:
                continue
            name = f"{agent} (overlapped)" if overlap else agent
            print(f"[throughput] {env} {name} ...", flush=True)
            r = measure_in_fresh_process(case, agent, args.iterations, args.parts, args.batch,
                                         args.num_gpus_per_learner, args.learner_precision, overlap,
                                         args.env_runner_threads, args.torch_compile_worker,
                                         checkpoints.get((env, agent)), args.snap_imagined_frames,
                                         args.imagination_precision, args.num_gpus_per_env_runner,
                                         args.rollout_depth, args.i2a_sizes)  # fmt: skip
            results["environments"].setdefault(env, {})[name] = r
            print(
                f"[throughput] {env} {name}: {r['env_steps_per_s']:,.0f} env steps/s end to end, bound "
                f"{r['bound_env_steps_per_s']:,.0f} ({r['end_to_end_over_bound']:.2f}); per iteration "
                + ", ".join(f"{p} {s:.2f}s" for p, s in r["seconds_per_iteration"].items()),
                flush=True,
            )
    print(tables(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
