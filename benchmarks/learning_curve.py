"""Learning curve of a training run: episode return vs env steps, from Tune's progress.csv.

Reads one or more trial directories (or pipeline run directories, whose `train/`
holds the trial), plots `env_runners/episode_return_mean` against
`num_env_steps_sampled_lifetime` next to a random-play reference, writes a PNG and
prints the curve at a few points plus the ratio of the final return to random play.

How to run this script
----------------------
`python benchmarks/learning_curve.py runs/i2a_Breakout_v5_<date> --label "I2A (latent)"
 --random 1.7 --output docs/breakout_i2a_cpu_curve.png`

Results to expect
-----------------
On 2 CPU cores a Breakout run of 5e5 env steps takes about an hour; the return should
rise clearly above random play (~1.7). docs/results.md has the measured curve.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os


def progress_file(path: str) -> str:
    for pattern in ("progress.csv", "*/progress.csv", "train/*/progress.csv"):
        found = sorted(glob.glob(os.path.join(path, pattern)))
        if found:
            return found[0]
    raise FileNotFoundError(f"No progress.csv under {path!r}; pass a Tune trial or pipeline run directory.")


def read_curve(path: str, smooth: int = 5):
    steps, returns = [], []
    with open(progress_file(path)) as f:
        for row in csv.DictReader(f):
            value = row.get("env_runners/episode_return_mean") or ""
            if value and value != "nan":
                steps.append(float(row["env_runners/num_env_steps_sampled_lifetime"]))
                returns.append(float(value))
    # RLlib's return is the mean of the episodes one iteration finished (Ray 2.60 clears
    # its episode window at each iteration): a short moving average smooths the jitter.
    smoothed = [sum(returns[max(0, i - smooth + 1) : i + 1]) / len(returns[max(0, i - smooth + 1) : i + 1]) for i in range(len(returns))]
    return steps, smoothed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--random", type=float, default=None, help="random-play return")
    parser.add_argument("--output", default="learning_curve.png")
    parser.add_argument("--title", default="Breakout, 2 CPU cores")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for i, run in enumerate(args.runs):
        label = args.label[i] if i < len(args.label) else os.path.basename(run.rstrip("/"))
        steps, returns = read_curve(run)
        ax.plot(steps, returns, label=label)
        marks = [returns[min(len(returns) - 1, int(f * (len(returns) - 1)))] for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
        print(f"{label}: {len(steps)} points, final {steps[-1]:,.0f} env steps, return at 0/25/50/75/100%: "
              + ", ".join(f"{m:.2f}" for m in marks))
        if args.random:
            print(f"{label}: final return / random play = {returns[-1] / args.random:.2f}")
    if args.random:
        ax.axhline(args.random, color="grey", linestyle="--", label=f"random play ({args.random})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (unclipped)")
    ax.set_title(args.title)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
