"""Single-process speed of the batched paper environments (Sokoban, MiniPacman).

What it measures: environment steps per second (one step of one board = one step) of
`SokobanVectorEnv` and `MiniPacmanVectorEnv` driven by uniformly random actions, in
this one Python process, for about `--seconds` each. Resets are counted as they
naturally happen: finished boards are regenerated inside `step()` (NEXT_STEP
autoreset), so Sokoban's procedural level generation is part of the figure. It also
times Sokoban level generation alone. The last line is the ratio of the Sokoban 10x10
(4 boxes, 64 boards) figure to the project's target of 20,000 steps/s on one core.

The envs are plain numpy on small arrays: numpy runs these operations on one thread,
so `OMP_NUM_THREADS` makes no difference (the script sets it to 1 anyway, so that the
figure is a one-core figure on any machine).

How to run this script:
    python benchmarks/env_speed.py                 # ~5 s per row, 64 boards
    python benchmarks/env_speed.py --seconds 2 --num-envs 256

Results to expect (measured on a 2-core cloud VM, Python 3.11, numpy 2.4, 64 boards):
    Sokoban 10x10, 4 boxes              ~135,000 steps/s  (6.7x the 20,000 target)
    Sokoban 7x7, 2 boxes                ~185,000 steps/s
    Sokoban 10x10, rgb 80x80            ~35,000 steps/s   (the picture costs the most)
    MiniPacman, each of the 5 tasks     ~190,000-200,000 steps/s
    Sokoban 10x10/4 generation alone    ~1,300 levels/s (~0.75 ms per level)
Level generation is ~80% of the Sokoban time here (a new level every ~121 steps). An
agent that solves levels in ~30 steps needs 4x as many levels: expect ~40,000 steps/s.
"Mean ep len" counts the autoreset step that starts each episode.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from i2a_rllib.envs.minipacman import TASKS, MiniPacmanVectorEnv  # noqa: E402
from i2a_rllib.envs.sokoban import SokobanVectorEnv, generate_level  # noqa: E402

TARGET_SOKOBAN_STEPS_PER_SECOND = 20_000
ACTION_BLOCK = 1024  # random actions are drawn in blocks so that drawing them is not timed


def time_env(env, seconds: float, seed: int = 0) -> dict[str, float]:
    """Steps `env` with random actions for about `seconds`; returns rates and episode stats."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    num_actions = env.single_action_space.n
    steps = episodes = successes = 0
    block = rng.integers(0, num_actions, size=(ACTION_BLOCK, env.num_envs))
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for actions in block:
            _, _, terminated, truncated, _ = env.step(actions)
            episodes += int(terminated.sum() + truncated.sum())
            successes += int(terminated.sum())
        steps += ACTION_BLOCK * env.num_envs
        elapsed = time.perf_counter() - started
    env.close()
    return {
        "steps_per_s": steps / elapsed,
        "episodes_per_s": episodes / elapsed,
        "mean_episode_length": steps / max(episodes, 1),
        "terminated_fraction": successes / max(episodes, 1),
    }


def time_generation(dim_room, num_boxes, seconds: float) -> float:
    """Sokoban levels generated per second, alone."""
    rng = np.random.default_rng(0)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        generate_level(dim_room, num_boxes, rng=rng)
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per row")
    parser.add_argument("--num-envs", type=int, default=64, help="boards per vector env")
    args = parser.parse_args()
    n = args.num_envs

    rows = [
        ("Sokoban 10x10, 4 boxes", lambda: SokobanVectorEnv(n, dim_room=(10, 10), num_boxes=4)),
        ("Sokoban 7x7, 2 boxes", lambda: SokobanVectorEnv(n, dim_room=(7, 7), num_boxes=2)),
        ("Sokoban 10x10, 4 boxes, rgb 80x80", lambda: SokobanVectorEnv(n, observation="rgb")),
    ] + [
        (f"MiniPacman {task}", lambda task=task: MiniPacmanVectorEnv(n, task=task))
        for task in TASKS
    ]

    print(f"{n} boards per env, random actions, ~{args.seconds:g} s per row, one process\n")
    header = (
        f"{'environment':36s} {'steps/s':>10s} {'episodes/s':>11s} "
        f"{'mean ep len':>12s} {'terminated':>11s}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for name, make in rows:
        result = time_env(make(), args.seconds)
        results[name] = result
        print(
            f"{name:36s} {result['steps_per_s']:10,.0f} {result['episodes_per_s']:11,.1f} "
            f"{result['mean_episode_length']:12.1f} {result['terminated_fraction']:11.1%}"
        )
    generation = time_generation((10, 10), 4, min(args.seconds, 2.0))
    print(
        f"\nSokoban 10x10/4 level generation alone: {generation:,.0f} levels/s "
        f"({1e3 / generation:.2f} ms/level)"
    )
    sokoban = results["Sokoban 10x10, 4 boxes"]["steps_per_s"]
    print(
        f"Sokoban 10x10 steps/s / target {TARGET_SOKOBAN_STEPS_PER_SECOND:,}: "
        f"{sokoban / TARGET_SOKOBAN_STEPS_PER_SECOND:.2f}x"
    )


if __name__ == "__main__":
    main()
