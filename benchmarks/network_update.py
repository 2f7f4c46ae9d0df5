"""The learner's arithmetic alone: PPO updates of the Nature CNN vs I2A, fp32 vs bf16, in pure torch.

What RLlib's learner does per train batch, without RLlib (so it runs where only torch
is installed, e.g. a GPU machine without Ray): for I2A, imagine once for the whole batch
without gradients (chunks of 256), then for each epoch and minibatch a forward pass that
reads the stored imagination, PPO's clipped surrogate + value loss + entropy (+ I2A's
distillation of the rollout policy), backward, gradient clipping and Adam. Inputs are
random Breakout-shaped frames, actions and advantages: the cost does not depend on them.
Autocast in bf16 covers the forward passes and the imagination, as the learner's
`learner_config_dict["precision"] = "bf16"` does; losses, backward and weights stay fp32.

Figures: update samples/s (batch rows x epochs / update seconds, the median of the timed
updates after one warm-up), the share of the update spent imagining, and bf16 / fp32 per
network. benchmarks/learner.py times the same work through RLlib's Learner; the gap
between the two is RLlib's own overhead per update.

How to run this script
----------------------
`python benchmarks/network_update.py [--device cpu|cuda] [--precisions fp32,bf16]
 [--networks nature,latent,spatial] [--batch 1024] [--updates 2] [--json FILE]`

Results to expect
-----------------
docs/benchmarks.md holds what was measured (CPU on the 2-core VM; GPU rows from
benchmarks/gpu.sh where a GPU was lent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from i2a_rllib.models.env_models import build_env_model  # noqa: E402
from i2a_rllib.models.i2a import I2ANetwork  # noqa: E402
from i2a_rllib.models.imagination import Imagination  # noqa: E402
from i2a_rllib.models.model_free import ActorCriticHeads, ConvTrunk  # noqa: E402

OBS_SHAPE = (4, 84, 84)
NUM_ACTIONS = 4
DEPTH = 5
CHUNK = 256  # rows per no-grad imagination call, as the learner's precompute
NETWORKS = ("nature", "latent", "spatial", "pixel")


class NatureCNN(torch.nn.Module):
    """The model-free baseline: Nature CNN trunk + policy and value heads."""

    def __init__(self):
        super().__init__()
        self.trunk, self.heads = ConvTrunk(OBS_SHAPE), ActorCriticHeads(512, NUM_ACTIONS)

    def forward(self, obs):
        features = self.trunk(obs)
        return self.heads.logits(features), self.heads.values(features)


def build(network: str, device: torch.device) -> torch.nn.Module:
    if network == "nature":
        return NatureCNN().to(device)
    return I2ANetwork(build_env_model(network, OBS_SHAPE, NUM_ACTIONS), rollout_depth=DEPTH).to(device)


def ppo_loss(logits, values, batch, rows):
    """PPO's clipped surrogate + 0.5 value loss - 0.01 entropy, in float32."""
    logits, values = logits.float(), values.float()
    logp = torch.distributions.Categorical(logits=logits).log_prob(batch["actions"][rows])
    ratio = torch.exp(logp - batch["logp"][rows])
    advantages = batch["advantages"][rows]
    surrogate = torch.min(ratio * advantages, ratio.clamp(0.9, 1.1) * advantages)
    entropy = torch.distributions.Categorical(logits=logits).entropy()
    return -surrogate.mean() + 0.5 * F.mse_loss(values, batch["returns"][rows]) - 0.01 * entropy.mean()


def one_update(net, optimizer, batch, epochs: int, minibatch: int, autocast) -> Dict[str, float]:
    """Imagination once (I2A), then epochs x minibatches of forward, loss, backward, Adam."""
    device = batch["obs"].device
    size = batch["obs"].shape[0]
    start = time.perf_counter()
    imagination = None
    if isinstance(net, I2ANetwork):
        with torch.no_grad(), autocast():
            parts = [net.imagine(batch["obs"][i : i + CHUNK], batch["noise"][i : i + CHUNK]) for i in range(0, size, CHUNK)]
        imagination = Imagination(
            views=torch.cat([p.views for p in parts]), rewards=torch.cat([p.rewards for p in parts]).float()
        )
    _sync(device)
    imagined = time.perf_counter() - start if imagination is not None else 0.0
    for _ in range(epochs):
        order = torch.randperm(size, device=device)
        for i in range(0, size, minibatch):
            rows = order[i : i + minibatch]
            with autocast():
                if imagination is None:
                    logits, values = net(batch["obs"][rows])
                else:
                    part = Imagination(views=imagination.views[rows], rewards=imagination.rewards[rows])
                    logits, features = net(batch["obs"][rows], imagination=part)
                    values = net.values(features)
                    rollout_logits = net.rollout_policy_logits(batch["obs"][rows])
            loss = ppo_loss(logits, values, batch, rows)
            if imagination is not None:
                target = F.softmax(logits.detach().float(), -1)
                loss = loss - (target * F.log_softmax(rollout_logits.float(), -1)).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
            optimizer.step()
    _sync(device)
    return {"seconds": time.perf_counter() - start, "imagination_seconds": imagined}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(network: str, precision: str, device: torch.device, args) -> Dict[str, Any]:
    torch.manual_seed(0)
    net = build(network, device).train()
    params = [p for p in net.parameters() if p.requires_grad]  # the env model is frozen
    optimizer = torch.optim.Adam(params, lr=2.5e-4, fused=device.type in ("cpu", "cuda"))  # as the RLlib learners
    g = torch.Generator().manual_seed(0)
    batch = {
        "obs": torch.randint(0, 256, (args.batch, *OBS_SHAPE), dtype=torch.uint8, generator=g),
        "actions": torch.randint(0, NUM_ACTIONS, (args.batch,), generator=g),
        "logp": torch.full((args.batch,), -torch.log(torch.tensor(float(NUM_ACTIONS)))),
        "advantages": torch.randn(args.batch, generator=g),
        "returns": torch.randn(args.batch, generator=g),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    if isinstance(net, I2ANetwork):
        batch["noise"] = net.imagination.sample_noise(args.batch, device=device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    one_update(net, optimizer, batch, 1, args.minibatch, autocast)  # warm-up
    runs = [one_update(net, optimizer, batch, args.epochs, args.minibatch, autocast) for _ in range(args.updates)]
    seconds = statistics.median(r["seconds"] for r in runs)
    imagined = statistics.median(r["imagination_seconds"] for r in runs)
    return {
        "network": network,
        "precision": precision,
        "update_seconds": [r["seconds"] for r in runs],
        "samples_per_s": args.batch * args.epochs / seconds,
        "imagination_share": imagined / seconds,
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of fp32,bf16")
    parser.add_argument("--networks", default="nature,latent,spatial", help=f"comma-separated, of {list(NETWORKS)}")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatch", type=int, default=256)
    parser.add_argument("--updates", type=int, default=2, help="timed updates after the warm-up")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    networks = [n for n in args.networks.split(",") if n]
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        parser.exit(2, f"network_update.py: error: --precisions {args.precisions!r}: use fp32 and/or bf16\n")
    if not networks or set(networks) - set(NETWORKS):
        parser.exit(2, f"network_update.py: error: --networks {args.networks!r}: use some of {list(NETWORKS)}\n")
    if min(args.batch, args.epochs, args.minibatch, args.updates) < 1:
        parser.exit(2, "network_update.py: error: --batch, --epochs, --minibatch and --updates must be >= 1\n")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "network_update.py: error: --device cuda: torch sees no CUDA device here\n")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    results = {
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "device": name,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": [],
    }
    for network in networks:
        for precision in precisions:
            r = measure(network, precision, device, args)
            results["rows"].append(r)
            print(
                f"{network:8s} {precision}: {r['samples_per_s']:9,.0f} samples/s on {name} "
                f"({args.batch} rows x {args.epochs} epochs of {args.minibatch}; imagining "
                f"{100 * r['imagination_share']:.0f}% of the update"
                + (f"; peak GPU memory {r['peak_gpu_mib']:,.0f} MiB" if r["peak_gpu_mib"] else "")
                + ")",
                flush=True,
            )
    by = {(r["network"], r["precision"]): r["samples_per_s"] for r in results["rows"]}
    ratios = {}
    for precision in precisions:
        for network in networks:
            if network != "nature" and ("nature", precision) in by:
                ratios[f"{network}_over_nature_{precision}"] = by[(network, precision)] / by[("nature", precision)]
    if {"fp32", "bf16"} <= set(precisions):
        for network in networks:
            ratios[f"{network}_bf16_over_fp32"] = by[(network, "bf16")] / by[(network, "fp32")]
    results["ratios"] = ratios
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
