"""Environment-model pretraining as a Ray Train job (Ray Train V2, TorchTrainer, DDP).

Stage 1b of I2A. Data streams from the Parquet shards with Ray Data: shard order is
randomised every epoch and rows are shuffled in a local buffer on each worker (no
global shuffle through the object store); whole shards are held out for validation,
so held-out trajectories stay intact for the k-step evaluation.

Every epoch each worker reports metrics and rank 0 a checkpoint (weights, optimizer,
epoch). `FailureConfig(max_failures=...)` restarts a failed worker group from the
latest checkpoint; running the same command again (same --output) resumes a finished
or interrupted run from its latest checkpoint. Each checkpoint also carries the best
model so far by held-out loss (over all workers' validation shards); at the end that
model is exported in the project's env-model format (`i2a_rllib.checkpoints`) and
evaluated.

    pretrain() = plan_pretraining()   every check, no Ray: settings, dataset, output
                 -> run_pretraining()  the Ray Train job
                 -> export_env_model() best model -> checkpoint, evaluation
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from i2a_rllib.checkpoints import (
    CheckpointError,
    check_env_model_metadata,
    load_env_model,
    read_env_model_metadata,
    save_env_model,
)
from i2a_rllib.data.format import (
    DatasetError,
    check_shard,
    decode_frames,
    filesystem_and_path,
    read_manifest,
    read_rows,
    split_shards,
)
from i2a_rllib.models.env_models.cost import macs_per_imagined_step
from i2a_rllib.models.env_models import (
    ATARI_REWARD_VALUES,
    ENV_MODEL_KINDS,
    RULE_KINDS,
    EnvironmentModel,
    env_model_class,
    hparams_of,
    resolve_env_model,
    resolve_kind,
)
from i2a_rllib.models.model_free import to_float_frames

TRAIN_STATE_FILE = "train_state.pt"
ENV_MODEL_DIR = "env_model"
RUN_NAME = "pretrain"
# Set by the fault-injection test: a worker exits once, at this epoch.
FAIL_ONCE_AT_EPOCH = "_fail_once_at_epoch"
LR_SCHEDULES = ("constant", "cosine")
GRAD_CLIP = 10.0


class EnvModelLossModule(nn.Module):
    """Wraps a model so that `forward` is its loss: DDP synchronises through `forward`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames, actions, rewards, next_frames):
        return self.model.sequence_loss(frames, actions, rewards, next_frames)


def _say(message: str) -> None:
    """One progress line from a Train worker.

    Ray Train V2 patches `print` in workers to tee into its logger, so every printed
    line reached the driver twice; the process's own stdout is forwarded once.
    """
    sys.__stdout__.write(message + "\n")
    sys.__stdout__.flush()


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "module", module)  # DDP
    return module.model if isinstance(module, EnvModelLossModule) else module


def _to_tensors(batch: Dict[str, np.ndarray], obs_shape, frame_channels, device, horizon=None):
    """A batch of windows -> frames (B, C, H, W) and, over the first `horizon` steps,
    actions and rewards (B, K), next frames (B, K, fc, H, W); frames in [0, 1] (flat
    vector datasets: (B, D) and (B, K, D) as stored)."""
    horizon = horizon or batch["actions"].shape[1]
    frame_shape = (frame_channels, *obs_shape[1:])
    frames = np.ascontiguousarray(batch["obs"]).reshape(-1, *obs_shape)
    next_frames = np.ascontiguousarray(batch["next_frames"][:, :horizon]).reshape(
        len(frames), horizon, *frame_shape
    )
    return (
        to_float_frames(torch.from_numpy(frames).to(device)),
        torch.from_numpy(np.ascontiguousarray(batch["actions"][:, :horizon])).to(device),
        torch.from_numpy(np.ascontiguousarray(batch["rewards"][:, :horizon])).to(device),
        to_float_frames(torch.from_numpy(next_frames).to(device)),
    )


def update_step(module: nn.Module, optimizer, tensors, grad_clip: float):
    """One optimiser step of the model's open-loop loss on a batch of windows (what each
    Train worker does per batch); returns the loss."""
    loss = module(*tensors)
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    return loss


def horizon_stages(horizon: int) -> List[int]:
    """The open-loop horizons a run trains through, shortest first (Oh et al. 2015's
    curriculum): 1 -> 3 -> 5 for horizon 5, 1 -> 5 -> 10 for 10, just 1 for 1."""
    return sorted({1, (horizon + 1) // 2, horizon})


def horizon_of_epoch(epoch: int, epochs: int, horizon: int, curriculum: bool = True) -> int:
    """The horizon of `epoch` (0-based): the stages share the epochs evenly. Without the
    curriculum (a model that starts from trained weights) every epoch is at `horizon`."""
    if not curriculum:
        return horizon
    stages = horizon_stages(horizon)
    return stages[min(len(stages) - 1, epoch * len(stages) // max(epochs, 1))]


class ShardWindows:
    """Ray Data map: a batch of shard names -> every window of `horizon` steps in them.

    One shard per call, read whole: windows never cross a shard, and a worker holds
    one shard's windows at a time (plus the shuffle buffer), never the dataset.
    """

    def __init__(self, uri: str, horizon: int):
        self.uri, self.horizon = uri, horizon

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import posixpath

        import pyarrow.parquet as pq

        from i2a_rllib.data.windows import shard_windows

        fs, root = filesystem_and_path(self.uri)
        parts = []
        for name in batch["shard"]:
            with fs.open_input_file(posixpath.join(root, str(name))) as f:
                parts.append(shard_windows(pq.read_table(f), self.horizon))
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _count_windows(uri: str, names: List[str], horizon: int) -> int:
    """Windows of `horizon` steps in the shards `names` (reads only their index columns)."""
    import posixpath

    import pyarrow.parquet as pq

    from i2a_rllib.data.windows import INDEX_COLUMNS, table_window_rows

    fs, root = filesystem_and_path(uri)
    total = 0
    for name in names:
        with fs.open_input_file(posixpath.join(root, name)) as f:
            total += len(table_window_rows(pq.read_table(f, columns=INDEX_COLUMNS), horizon))
    return total


def _scoring_rows(uri: str, names: List[str]) -> int:
    """Rows with a non-zero reward in the shards `names` (reads only their reward column)."""
    import posixpath

    import pyarrow.parquet as pq

    fs, root = filesystem_and_path(uri)
    total = 0
    for name in names:
        with fs.open_input_file(posixpath.join(root, name)) as f:
            total += int((pq.read_table(f, columns=["reward"]).column("reward").to_numpy() != 0).sum())
    return total


def window_dataset(uri: str, names: List[str], horizon: int, seed: Optional[int] = None):
    """A Ray Dataset streaming the windows of the shards `names` (one read task per
    shard; shard order shuffled with `seed`)."""
    import ray.data

    dataset = ray.data.from_items([{"shard": name} for name in names], override_num_blocks=len(names))
    if seed is not None:
        dataset = dataset.randomize_block_order(seed=seed)
    return dataset.map_batches(ShardWindows(uri, horizon), batch_size=1, batch_format="numpy")


def _untrained_model(config: Dict[str, Any]) -> EnvironmentModel:
    return resolve_env_model(
        config["kind"],
        config["obs_shape"],
        config["num_actions"],
        hparams=config["hparams"],
        frame_channels=config["frame_channels"],
        reward_values=config["reward_values"],
    )


# The hparam `--init-from` may change: a new reward head is fitted on the frozen maps.
CHANGEABLE_ON_INIT = ("reward_head",)


def _initial_model(config: Dict[str, Any]) -> EnvironmentModel:
    """An untrained model, or (`init_from`) that checkpoint's weights in a model built
    with `config`'s hparams: a 'map' reward head added to a model without one starts
    untrained, one dropped is left out."""
    model = _untrained_model(config)
    if config.get("init_from"):
        weights = load_env_model(config["init_from"])[0].state_dict()
        missing, unexpected = model.load_state_dict(weights, strict=False)
        # Reward-head weights may come and go with `reward_head`; nothing else may.
        odd = [k for k in missing + unexpected if not k.startswith("reward_")]
        if odd:
            raise CheckpointError(f"--init-from {config['init_from']!r} does not fit the model: {odd}")
    return model


def train_loop_per_worker(config: Dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config["seed"] + rank)
    # Fine-tuning starts from a trained checkpoint's weights (a resumed run's own
    # checkpoint, loaded below, replaces them).
    model = _initial_model(config)
    module = ray.train.torch.prepare_model(EnvModelLossModule(model))
    device = ray.train.torch.get_device()
    optimizer = torch.optim.Adam(module.parameters(), lr=config["lr"])
    scheduler = _lr_scheduler(optimizer, config, world)
    start_epoch = 0
    # The best model so far by held-out loss: what the run exports at the end.
    best = {"model": None, "validation_loss": math.inf, "epoch": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, TRAIN_STATE_FILE), map_location=device)
        _unwrap(module).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        best = state.get("best", best)
        start_epoch = state["epoch"] + 1
        if rank == 0:
            _say(f"[pretrain] resumed from epoch {state['epoch'] + 1} checkpoint")

    train_shard = ray.train.get_dataset_shard("train")
    validation_shard = ray.train.get_dataset_shard("validation")
    batch_size = config["batch_size"]
    samples_per_epoch = config["train_rows"]
    for epoch in range(start_epoch, config["epochs"]):
        module.train()
        start, seen, sums = time.time(), 0, {"loss": 0.0, "frame_mse": 0.0, "reward_accuracy": 0.0}
        batches = 0
        horizon = horizon_of_epoch(
            epoch, config["epochs"], config["horizon"], curriculum=not config.get("init_from")
        )
        for batch in train_shard.iter_batches(
            batch_size=batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=config["shuffle_buffer"],
        ):
            loss = update_step(
                module,
                optimizer,
                _to_tensors(batch, config["obs_shape"], config["frame_channels"], device, horizon),
                config["grad_clip"],
            )
            scheduler.step()
            seen += len(batch["actions"]) * world
            batches += 1
            sums["loss"] += float(loss.total.detach())
            sums["frame_mse"] += float(loss.frame_mse)
            sums["reward_accuracy"] += float(loss.reward_accuracy)
            if rank == 0 and batches % config["log_every"] == 0:
                rate = seen / max(time.time() - start, 1e-9)
                left = (config["epochs"] - epoch) * samples_per_epoch - seen
                _say(
                    f"[pretrain] epoch {epoch + 1}/{config['epochs']} (horizon {horizon})  "
                    f"{seen:,}/{samples_per_epoch:,} windows  loss {sums['loss'] / batches:.4f}  "
                    f"{rate:,.0f} samples/s  ETA {left / max(rate, 1e-9):,.0f}s"
                )
        metrics = {f"train_{k}": v / max(batches, 1) for k, v in sums.items()}
        metrics["samples_per_second"] = seen / max(time.time() - start, 1e-9)
        metrics["epoch"] = epoch + 1
        metrics["horizon"] = horizon
        # Epochs already done when this worker group started (> 0 after a restore).
        metrics["started_at_epoch"] = start_epoch
        metrics.update(_validate(module, validation_shard, config, device))
        if metrics["validation_loss"] < best["validation_loss"]:
            best = {
                "model": copy.deepcopy(_unwrap(module).state_dict()),
                "validation_loss": metrics["validation_loss"],
                "epoch": epoch + 1,
            }
        metrics["best_epoch"] = best["epoch"]
        metrics["best_validation_loss"] = best["validation_loss"]

        if config.get(FAIL_ONCE_AT_EPOCH) == epoch + 1 and rank == world - 1:
            marker = os.path.join(config["output"], f".failed_once_epoch_{epoch + 1}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                # Ray Train V2's controller collects reported checkpoints when it polls
                # the workers (every 2 s by default): die only after the last epoch's
                # checkpoint was surely collected, as a crash mid-epoch would.
                time.sleep(5.0)
                _say(f"[pretrain] injected failure: worker {rank} exits at epoch {epoch + 1}")
                os._exit(1)

        with tempfile.TemporaryDirectory() as directory:
            report_checkpoint = None
            if rank == 0:
                torch.save(
                    {
                        "model": _unwrap(module).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch,
                        "best": best,
                    },
                    os.path.join(directory, TRAIN_STATE_FILE),
                )
                with open(os.path.join(directory, "metrics.json"), "w") as f:
                    json.dump(metrics, f)
                report_checkpoint = ray.train.Checkpoint.from_directory(directory)
                _say(
                    f"[pretrain] epoch {epoch + 1} done: train loss {metrics['train_loss']:.4f}, "
                    f"validation loss {metrics['validation_loss']:.4f} (best: epoch "
                    f"{best['epoch']}), frame MSE {metrics['validation_frame_mse']:.5f}, "
                    f"{metrics['samples_per_second']:,.0f} samples/s"
                )
            ray.train.report(metrics, checkpoint=report_checkpoint)


def _lr_scheduler(optimizer, config, world: int):
    """'constant', or 'cosine': lr decays to 0 over the whole run (all epochs), which
    settles the end of a short run where a constant lr keeps the error oscillating."""
    if config.get("lr_schedule", "constant") == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    per_epoch = -(-config["train_rows"] // (config["batch_size"] * world))
    total = max(1, config["epochs"] * per_epoch)
    # math, not numpy: a numpy float in the scheduler state makes the checkpoint
    # unloadable with torch.load's default weights_only=True.
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0)))
    )


@torch.no_grad()
def _validate(module, shard, config, device) -> Dict[str, float]:
    """Held-out means over every worker's validation shard (each worker reads a part)."""
    module.eval()
    # loss, frame MSE, reward accuracy (each summed over rows), rows
    sums = torch.zeros(4, dtype=torch.float64)
    # Always over the full horizon, so the losses of all epochs compare. Without a
    # stochastic model's code-prior term: it grows as the hypotheses learn to differ
    # (the winner gets harder to predict), so it would pick the least stochastic epoch.
    for batch in shard.iter_batches(batch_size=config["batch_size"], batch_format="numpy"):
        loss = _unwrap(module).sequence_loss(
            *_to_tensors(batch, config["obs_shape"], config["frame_channels"], device)
        )
        rows = len(batch["actions"])
        scored = loss.total if loss.code_prior is None else loss.total - loss.code_prior
        sums += torch.tensor(
            [float(scored) * rows, float(loss.frame_mse) * rows, float(loss.reward_accuracy) * rows, rows],
            dtype=torch.float64,
        )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        reduced = sums.to(device)
        torch.distributed.all_reduce(reduced)
        sums = reduced.cpu()
    rows = max(float(sums[3]), 1.0)
    return {
        "validation_loss": float(sums[0]) / rows,
        "validation_frame_mse": float(sums[1]) / rows,
        "validation_reward_accuracy": float(sums[2]) / rows,
    }


def _cpus_per_worker(num_workers: int, use_gpu: bool) -> float:
    """CPUs each Train worker reserves, leaving one CPU for Ray Data's read tasks.

    With every CPU held by a Train worker, Ray Data cannot schedule a single read and
    the job hangs; on small machines the workers therefore take fractions of a CPU.
    """
    import ray

    available = ray.cluster_resources().get("CPU", 1.0)
    if use_gpu:
        needed = ray.cluster_resources().get("GPU", 0.0)
        if needed < num_workers:
            raise ValueError(
                f"use_gpu with num_workers={num_workers} needs {num_workers} GPUs, the Ray "
                f"cluster has {needed:g}. Lower --num-workers or drop --use-gpu."
            )
    if available - 1.0 >= num_workers:
        return 1.0
    return max(0.1, round((available - 1.0) / num_workers, 2)) if available > 1 else 0.1


def reward_values_for(manifest) -> list:
    """Reward classes: {-1, 0, +1} for Atari (rewards are clipped for the agent);
    the distinct rewards of the data for other environments. With too many distinct
    rewards to be classes, none for flat-vector data (its model regresses the reward)
    and Atari's for frames."""
    if len(manifest.obs_shape) == 1 and manifest.reward_values is None:
        return []
    if manifest.env_id.startswith("ALE/") or not manifest.reward_values:
        return list(ATARI_REWARD_VALUES)
    return list(manifest.reward_values)


# Training transitions a family's data statistics are measured on (at most).
STATISTICS_ROWS = 100_000


def measure_data_hparams(
    kind: str, hparams: Dict[str, Any], data: str, shards: List[str], manifest
) -> Dict[str, Any]:
    """`hparams` plus what the family measures on the training shards (the mlp model's
    scales) where the user did not set it; read before Ray starts."""
    model_class = env_model_class(kind, hparams.get("architecture"))
    fits = len(manifest.obs_shape) in model_class.observation_ranks  # else the build says why
    if not fits or not set(model_class.data_statistics) - set(hparams):
        return hparams
    table = read_rows(data, shards, max_rows=STATISTICS_ROWS)
    obs_shape = tuple(manifest.obs_shape)
    frame_shape = (manifest.frame_channels, *obs_shape[1:])
    measured = model_class.hparams_from_data(
        decode_frames(table.column("obs").to_numpy(zero_copy_only=False), obs_shape),
        decode_frames(table.column("next_frame").to_numpy(zero_copy_only=False), frame_shape),
        table.column("reward").to_numpy(),
    )
    return {**measured, **hparams}


@dataclass
class PretrainPlan:
    """Everything a pretraining run needs, checked before Ray starts."""

    data: str
    output: str
    manifest: Any
    train_shards: List[str]
    validation_shards: List[str]
    train_config: Dict[str, Any]

    @property
    def kind(self) -> str:
        return self.train_config["kind"]


def _fine_tuning_settings(init_from: str, manifest, kind: str, hparams) -> Tuple[str, Dict[str, Any]]:
    """The kind and hparams of the checkpoint `--init-from` names, checked against the
    dataset and the command line."""
    _, metadata = load_env_model(init_from)  # a missing or corrupt file fails here, before Ray
    check_env_model_metadata(metadata, manifest.obs_shape, manifest.num_actions, path=init_from, env_id=manifest.env_id)
    if kind not in ("auto", metadata["kind"]):
        raise ValueError(
            f"--kind {kind} with --init-from {init_from!r}, a {metadata['kind']!r} model: drop "
            f"--kind or pass --kind {metadata['kind']}."
        )
    if set(hparams or {}) - set(CHANGEABLE_ON_INIT):
        raise ValueError(
            f"--hparams {json.dumps(hparams)} with --init-from: the model's settings come "
            f"from {init_from!r} ({json.dumps(metadata.get('hparams') or {})}); only "
            f"{list(CHANGEABLE_ON_INIT)} may change: drop the rest."
        )
    if list(metadata["reward_values"]) != list(reward_values_for(manifest)):
        raise CheckpointError(
            f"--init-from {init_from!r} predicts the rewards {list(metadata['reward_values'])}, "
            f"the dataset's are {list(reward_values_for(manifest))}; fine-tune on data of the same game."
        )
    return metadata["kind"], {**hparams_of(metadata), **(hparams or {})}


def plan_pretraining(
    data: str,
    output: str,
    *,
    kind: str = "auto",
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
    horizon: int = 1,
    validation_fraction: float = 0.1,
    hparams: Optional[Dict[str, Any]] = None,
    resume: bool = False,
    seed: int = 0,
    log_every: int = 50,
    extra_train_config: Optional[Dict[str, Any]] = None,
    init_from: Optional[str] = None,
) -> PretrainPlan:
    """Checks the settings, the dataset and the output location; starts nothing.

    Raises:
        DatasetError / ValueError / FileExistsError / FileNotFoundError: naming the
            problem and the fix.
    """
    if kind not in ENV_MODEL_KINDS + ("auto",) or kind in RULE_KINDS:
        trainable = [k for k in ENV_MODEL_KINDS if k not in RULE_KINDS]
        raise ValueError(
            f"kind={kind!r}: pretrain one of {trainable} or 'auto' (the copy and perfect "
            "models have nothing to learn)."
        )
    for name, value in (("batch_size", batch_size), ("horizon", horizon)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")
    if not isinstance(epochs, int) or epochs < (0 if init_from is not None else 1):
        raise ValueError(
            f"epochs={epochs!r} must be an integer >= 1 (0 only with --init-from: that model "
            "exported as it is, a new reward head fitted and the whole evaluated)."
        )
    if not lr > 0:
        raise ValueError(f"lr={lr} must be > 0.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r}: choose one of {list(LR_SCHEDULES)}.")
    manifest = read_manifest(data)
    new_map_head = init_from is not None and (hparams or {}).get("reward_head") == "map"
    if init_from is not None:
        kind, hparams = _fine_tuning_settings(init_from, manifest, kind, hparams)
    kind = resolve_kind(kind, manifest.obs_shape)
    shards = sorted(manifest.shards)
    for name in shards:
        check_shard(data, name, manifest)
    train_shards, validation_shards = split_shards(shards, validation_fraction)
    train_windows = _count_windows(data, train_shards, horizon)
    validation_windows = _count_windows(data, validation_shards, horizon)
    if not train_windows or not validation_windows:
        raise DatasetError(
            f"horizon={horizon}: the dataset's train or held-out shards hold no run of "
            f"{horizon} consecutive steps of one episode ({train_windows} / "
            f"{validation_windows} windows). Collect longer shards (--shard-size) or "
            "use a shorter horizon."
        )
    if epochs == 0 and new_map_head and not _scoring_rows(data, train_shards):
        raise DatasetError(
            f"--epochs 0 with a 'map' reward head: the head is fitted on the training shards' "
            f"scoring steps and {data!r} holds none there; collect more transitions (or with a policy)."
        )
    train_config = {
        "kind": kind,
        "obs_shape": list(manifest.obs_shape),
        "num_actions": manifest.num_actions,
        "frame_channels": manifest.frame_channels,
        "reward_values": reward_values_for(manifest),
        "hparams": (
            dict(hparams)
            if init_from is not None
            else measure_data_hparams(kind, dict(hparams or {}), data, train_shards, manifest)
        ),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_schedule": lr_schedule,
        "grad_clip": GRAD_CLIP,
        "seed": seed,
        "shuffle_buffer": max(4 * batch_size, 2000),
        # Open-loop training horizon; epochs step through `horizon_stages(horizon)`.
        "horizon": horizon,
        "train_rows": train_windows,
        "validation_rows": validation_windows,
        "log_every": log_every,
        "output": os.path.abspath(output),
        # A trained checkpoint to start from (no curriculum then: every epoch at `horizon`).
        "init_from": os.path.abspath(init_from) if init_from is not None else None,
        **(extra_train_config or {}),
    }
    # Bad hparams (unknown name, a factor that does not divide the frame) fail here,
    # not inside a Train worker; so does --epochs 0 with a new head nothing would train.
    model = _untrained_model(train_config)
    if init_from is not None and epochs == 0:
        weights = load_env_model(init_from)[0].state_dict()
        untrained = sorted({k.split(".")[0] for k in model.state_dict() if k not in weights} - {"reward_map"})
        if untrained:
            raise ValueError(
                f"--epochs 0 with --init-from {init_from!r}: {untrained} would stay untrained "
                f"(reward_head={hparams.get('reward_head')!r}); train them (--epochs >= 1) or pass "
                "--hparams '{\"reward_head\": \"map\"}' (fitted after)."
            )

    output = os.path.abspath(output)
    run_dir = os.path.join(output, RUN_NAME)
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not resume:
        raise FileExistsError(
            f"{output} already holds a pretraining run; nothing was changed. Pass "
            "--resume to continue it, or choose another --output."
        )
    if resume and not os.path.isdir(run_dir):
        raise FileNotFoundError(f"--resume: {output} holds no pretraining run to continue.")
    from i2a_rllib.experiment import check_writable

    check_writable(output, "--output")
    return PretrainPlan(data, output, manifest, train_shards, validation_shards, train_config)


def run_pretraining(
    plan: PretrainPlan,
    *,
    num_workers: int = 2,
    use_gpu: bool = False,
    max_failures: int = 3,
    num_cpus: Optional[int] = None,
):
    """Runs the Ray Train job of `plan` (starting a local Ray if none is running);
    returns its `ray.train.Result`."""
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    from i2a_rllib.experiment import init_ray

    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers={num_workers!r} must be an integer >= 1.")
    os.makedirs(plan.output, exist_ok=True)
    init_ray(num_cpus=num_cpus)
    cpus_per_worker = _cpus_per_worker(num_workers, use_gpu)

    data, config = plan.data, plan.train_config
    train_ds = window_dataset(data, plan.train_shards, config["horizon"], seed=config["seed"])
    validation_ds = window_dataset(data, plan.validation_shards, config["horizon"])
    stages = " -> ".join(str(k) for k in horizon_stages(config["horizon"]))
    if config.get("init_from"):
        stages = f"{config['horizon']}, from the weights of {config['init_from']}"
    print(
        f"[pretrain] {plan.kind} model on {data}: {config['train_rows']:,} train / "
        f"{config['validation_rows']:,} held-out windows of {config['horizon']} step(s) "
        f"(open-loop horizon {stages}), {config['epochs']} epochs, {num_workers} "
        f"worker(s){' on GPU' if use_gpu else ''}",
        flush=True,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=RUN_NAME,
            storage_path=plan.output,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": train_ds, "validation": validation_ds},
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError("Pretraining finished without a checkpoint.")
    return result


def export_env_model(plan: PretrainPlan, result, *, evaluate: bool = True) -> Dict[str, Any]:
    """Writes the best model of the run (by held-out loss) as `<output>/env_model`,
    evaluated on the held-out shards when `evaluate`."""
    with result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, TRAIN_STATE_FILE), map_location="cpu")
    best = state.get("best") or {}
    model = _untrained_model(plan.train_config)
    # Checkpoints of runs started before the best model was kept hold only the last one.
    model.load_state_dict(best.get("model") or state["model"])
    best_epoch = best.get("epoch") or state["epoch"] + 1
    return _export(plan, model, dict(result.metrics), state["epoch"] + 1, best_epoch, best.get("validation_loss"), evaluate)


def _export(plan: PretrainPlan, model, metrics: Dict[str, Any], epochs_trained: int, best_epoch: int,
            best_validation_loss: Optional[float], evaluate: bool) -> Dict[str, Any]:  # fmt: skip
    """Fits a 'map' reward head, evaluates (when `evaluate`) and writes `model`."""
    summary: Dict[str, Any] = {"metrics": metrics, "best_epoch": best_epoch}
    if model.fits_reward_head:
        summary["reward_head_fit"] = _fit_reward_head(plan, model)
    if evaluate:
        from i2a_rllib.pretrain.evaluate import evaluate_env_model

        summary["evaluation"] = evaluate_env_model(
            model,
            plan.data,
            plan.validation_shards,
            plan.manifest,
            os.path.join(plan.output, "evaluation"),
        )
    manifest = plan.manifest
    checkpoint_path = save_env_model(
        model,
        os.path.join(plan.output, ENV_MODEL_DIR),
        extra_metadata={
            "env_id": manifest.env_id,
            "env_config": manifest.env_config,
            "dataset": {"uri": plan.data, **manifest.__dict__},
            "training": {k: v for k, v in plan.train_config.items() if k != "output"},
            "final_metrics": summary["metrics"],
            "evaluation": summary.get("evaluation", {}).get("metrics"),
            "epochs_trained": epochs_trained,
            "macs_per_imagined_step": macs_per_imagined_step(model),
            "best_epoch": best_epoch,
            "best_validation_loss": best_validation_loss,
            "reward_head_fit": summary.get("reward_head_fit"),
            "data_lineage": _data_lineage(plan),
        },
    )
    summary["checkpoint"] = checkpoint_path
    which = (
        f"best held-out loss, epoch {best_epoch} of {epochs_trained}" if epochs_trained
        else "the --init-from weights, no epoch trained"
    )  # fmt: skip
    print(f"[pretrain] environment model ({which}): {checkpoint_path}", flush=True)
    return summary


def _data_lineage(plan: PretrainPlan) -> List[Dict[str, Any]]:
    """Every dataset behind the exported weights, each once: the `--init-from` model's
    (its own lineage, or its dataset) and this run's. What a budget counts as the env
    steps behind the model."""
    def entry(uri, dataset):
        return {"uri": uri, "num_transitions": int(dataset.get("num_transitions", 0)), "policy": dataset.get("policy")}

    lineage = []
    init_from = plan.train_config.get("init_from")
    if init_from:
        metadata = read_env_model_metadata(init_from)
        dataset = metadata.get("dataset") or {}
        lineage = list(metadata.get("data_lineage") or [entry(dataset.get("uri"), dataset)])
    if all(e["uri"] != plan.data for e in lineage):
        lineage.append(entry(plan.data, plan.manifest.__dict__))
    return lineage


def _fit_reward_head(plan: PretrainPlan, model) -> Dict[str, Any]:
    """The 'map' reward head, fitted on the frozen maps of the training shards'
    scoring rows and a sample of the rest (pretrain/reward_head.py)."""
    from i2a_rllib.pretrain.reward_head import fit_reward_head, scoring_sample

    sample = scoring_sample(
        plan.data, plan.train_shards, plan.manifest.obs_shape, model.reward_values.tolist(),
        seed=plan.train_config["seed"],
    )  # fmt: skip
    fit = fit_reward_head(model, sample, seed=plan.train_config["seed"])
    if fit["reward_head_fit_steps"]:
        print(
            f"[pretrain] reward head fitted on {fit['reward_head_scoring_rows']:,} scoring rows and "
            f"{len(sample['rewards']) - fit['reward_head_scoring_rows']:,} others in half-scoring batches "
            f"({fit['reward_head_fit_restarts']} starts x {fit['reward_head_fit_steps']} steps, balanced loss "
            f"{', '.join(f'{x:.3f}' for x in fit['reward_head_fit_losses'])}: kept the lowest; "
            f"{fit['reward_head_fit_seconds']:.0f}s)",
            flush=True,
        )
    else:
        print("[pretrain] reward head not fitted: the training shards hold no scoring step", flush=True)
    return fit


def pretrain(
    data: str,
    output: str,
    *,
    kind: str = "auto",
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
    horizon: int = 1,
    num_workers: int = 2,
    use_gpu: bool = False,
    validation_fraction: float = 0.1,
    hparams: Optional[Dict[str, Any]] = None,
    max_failures: int = 3,
    resume: bool = False,
    seed: int = 0,
    evaluate: bool = True,
    log_every: int = 50,
    extra_train_config: Optional[Dict[str, Any]] = None,
    num_cpus: Optional[int] = None,
    init_from: Optional[str] = None,
) -> Dict[str, Any]:
    """Trains an environment model on the dataset at `data`; writes `<output>/env_model`.

    Returns:
        A dict with the env-model checkpoint path, the final metrics, the epoch whose
        model was exported and the evaluation.

    Raises:
        DatasetError / ValueError: bad settings or data, before Ray starts (a local Ray
            with `num_cpus` is started after the checks if none is running).
    """
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers={num_workers!r} must be an integer >= 1.")
    plan = plan_pretraining(
        data,
        output,
        kind=kind,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        horizon=horizon,
        validation_fraction=validation_fraction,
        hparams=hparams,
        resume=resume,
        seed=seed,
        log_every=log_every,
        extra_train_config=extra_train_config,
        init_from=init_from,
    )
    if plan.train_config["epochs"] == 0:  # nothing to train: no Ray
        print(f"[pretrain] 0 epochs: {init_from} as it is", flush=True)
        return _export(plan, _initial_model(plan.train_config), {}, 0, 0, None, evaluate)
    result = run_pretraining(
        plan, num_workers=num_workers, use_gpu=use_gpu, max_failures=max_failures, num_cpus=num_cpus
    )
    return export_env_model(plan, result, evaluate=evaluate)
