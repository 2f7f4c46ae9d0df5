"""Fitting a 'map' reward head (spatial and folded models) on frozen inputs with balanced batches.

Random Breakout play scores in ~0.7% of its steps. Trained with the rest of the model by
plain cross-entropy, a reward head sees too few scoring steps to tell them apart: the
expected reward the shipped model hands imagination separates scoring steps from the
rest with AUC 0.57, and heads trained on frozen maps by plain or class-weighted
cross-entropy stayed at 0.5-0.64 after 3,000 batches; batches of half scoring steps
reached 0.99 (one-offs, docs/results.md). So after pretraining the head is fitted on
the frozen encoder's maps with such batches, and the data's class frequencies turn its
logits back into the data's probabilities (`EnvironmentModel.set_reward_prior`). The
folded model's 'map' head reads the folded frame stack itself (its `reward_head_inputs`).
"""

from __future__ import annotations

import posixpath
import time
from typing import Any, Dict, Sequence

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from i2a_rllib.data.format import decode_frames, filesystem_and_path

# At most this many non-scoring rows are kept per scoring row (and in all): the fit
# draws half of each batch from them, so more would only cost memory.
ZERO_ROWS_PER_SCORING_ROW = 8
MAX_SCORING_ROWS = 2048


def scoring_sample(uri: str, shards: Sequence[str], obs_shape: Sequence[int], reward_values: Sequence[float],
                   seed: int = 0) -> Dict[str, Any]:  # fmt: skip
    """Every scoring row of `shards` (up to MAX_SCORING_ROWS) and a random sample of the
    others: observations (uint8), rewards, and the class frequencies over all rows."""
    fs, root = filesystem_and_path(uri)
    values = np.asarray(sorted(reward_values), dtype=np.float64)
    rewards = []
    for name in shards:  # first pass: the reward column only
        with fs.open_input_file(posixpath.join(root, name)) as f:
            rewards.append(pq.read_table(f, columns=["reward"]).column("reward").to_numpy())
    classes = [np.abs(r[:, None] - values[None, :]).argmin(1) for r in rewards]
    counts = np.bincount(np.concatenate(classes), minlength=len(values)).astype(np.float64)
    zero = int(np.abs(values).argmin())
    rng = np.random.default_rng(seed)
    # Every row as (shard, row, scores?); then exact draws without replacement.
    shard_of = np.concatenate([np.full(len(c), i) for i, c in enumerate(classes)])
    row_of = np.concatenate([np.arange(len(c)) for c in classes])
    scores = np.concatenate(classes) != zero
    scoring, others = np.flatnonzero(scores), np.flatnonzero(~scores)
    scoring = rng.choice(scoring, min(len(scoring), MAX_SCORING_ROWS), replace=False)
    others = rng.choice(others, min(len(others), ZERO_ROWS_PER_SCORING_ROW * len(scoring)), replace=False)
    chosen = np.concatenate([scoring, others])
    obs, kept_rewards = [], []
    for index, name in enumerate(shards):
        rows = np.sort(row_of[chosen[shard_of[chosen] == index]])
        if len(rows) == 0:
            continue
        with fs.open_input_file(posixpath.join(root, name)) as f:
            table = pq.read_table(f, columns=["obs", "reward"]).take(rows)
        obs.append(decode_frames(table.column("obs").to_numpy(zero_copy_only=False), tuple(obs_shape)))
        kept_rewards.append(table.column("reward").to_numpy())
    return {
        "obs": np.concatenate(obs) if obs else np.zeros((0, *obs_shape), np.uint8),
        "rewards": np.concatenate(kept_rewards) if kept_rewards else np.zeros(0),
        "class_frequencies": (counts / max(counts.sum(), 1)).tolist(),
    }


def _encode(model, obs: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """What the head reads of `obs` (uint8), kept in float16 (the spatial model's maps are
    tanh outputs in [-1, 1], the folded model's are frames in [0, 1]):
    the encoder then runs once per row, not once per row drawn (4 x 3,000 steps on
    Breakout's sample take ~50 s on 2 idle cores); the shipped Breakout model's
    8 x 42 x 42 maps take 28 KB a row, ~0.5 GB at the sample's largest, the folded model's
    16 x 42 x 42 stacks 56 KB, ~1 GB."""
    with torch.no_grad():
        return torch.cat([model.reward_head_inputs(obs[i : i + chunk].float() / 255.0).half()
                          for i in range(0, len(obs), chunk)])  # fmt: skip


def _balanced_loss(model, maps: torch.Tensor, targets: torch.Tensor, zero: int, chunk: int = 256) -> float:
    """Cross-entropy over the whole sample, scoring rows and the rest weighted half each."""
    with torch.no_grad():
        losses = torch.cat([F.cross_entropy(model.map_reward_logits(maps[i : i + chunk].float()), targets[i : i + chunk],
                                            reduction="none") for i in range(0, len(maps), chunk)])  # fmt: skip
    scores = targets != zero
    return float(0.5 * losses[scores].mean() + 0.5 * losses[~scores].mean())


def fit_reward_head(model, sample: Dict[str, Any], steps: int = 3000, restarts: int = 4, batch_size: int = 64,
                    lr: float = 1e-3, seed: int = 0) -> Dict[str, float]:  # fmt: skip
    """Fits `model`'s 'map' reward head (the rest frozen) on `sample` (`scoring_sample`)
    with half-scoring batches, then records the data's class frequencies in the model.

    The head starts afresh `restarts` times (seeded) and the start with the lowest
    balanced loss over the whole sample is kept: on the shipped Breakout maps, about
    half of single starts stall (held-out AUC 0.47-0.88 against 0.97-0.998 for the
    rest; docs/results.md), and the sample's loss tells them apart. Returns what it
    did; fits nothing where the sample has no scoring row."""
    zero = int(model.reward_class(torch.zeros(1))[0])
    targets = model.reward_class(torch.as_tensor(sample["rewards"], dtype=torch.float32))
    scoring, others = torch.nonzero(targets != zero).flatten(), torch.nonzero(targets == zero).flatten()
    if len(scoring) == 0 or len(others) == 0:
        return {"reward_head_fit_steps": 0, "reward_head_scoring_rows": len(scoring)}
    start, was_training = time.time(), model.training
    model.eval()
    head_modules = [*model.reward_map.modules(), model.reward_out]
    head = [*model.reward_map.parameters(), *model.reward_out.parameters()]
    trainable = {parameter: parameter.requires_grad for parameter in model.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in head:
        parameter.requires_grad_(True)
    maps = _encode(model, torch.from_numpy(sample["obs"]))
    half = batch_size // 2
    losses, best = [], None
    try:
        for restart in range(restarts):
            generator = torch.Generator().manual_seed(seed * 1000 + restart)
            with torch.random.fork_rng():  # a seeded fresh start that leaves the caller's RNG alone
                torch.manual_seed(seed * 1000 + restart)
                for module in head_modules:
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            optimizer = torch.optim.Adam(head, lr=lr)
            for _ in range(steps):
                rows = torch.cat([scoring[torch.randint(len(scoring), (half,), generator=generator)],
                                  others[torch.randint(len(others), (batch_size - half,), generator=generator)]])  # fmt: skip
                loss = F.cross_entropy(model.map_reward_logits(maps[rows].float()), targets[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            losses.append(_balanced_loss(model, maps, targets, zero))
            if losses[-1] == min(losses):
                best = {name: value.detach().clone() for name, value in model.state_dict().items()
                        if name.startswith(("reward_map.", "reward_out."))}  # fmt: skip
        model.load_state_dict(best, strict=False)
    finally:
        for parameter, flag in trainable.items():
            parameter.requires_grad_(flag)
        model.train(was_training)
    model.set_reward_prior(sample["class_frequencies"])
    return {
        "reward_head_fit_steps": steps,
        "reward_head_fit_restarts": restarts,
        "reward_head_scoring_rows": len(scoring),
        "reward_head_fit_loss": min(losses),
        "reward_head_fit_losses": losses,
        "reward_head_fit_seconds": time.time() - start,
    }
