"""Environment-model pretraining as a Ray Train job (Ray Train V2, TorchTrainer, DDP).

Stage 1b of I2A. Data streams from the Parquet shards with Ray Data: shard order is
randomised every epoch and rows are shuffled in a local buffer on each worker (no
global shuffle through the object store); whole shards are held out for validation,
so held-out trajectories stay intact for the k-step evaluation.

Every epoch each worker reports metrics and rank 0 a checkpoint (weights, optimizer,
epoch). `FailureConfig(max_failures=...)` restarts a failed worker group from the
latest checkpoint; running the same command again (same --output) resumes a finished
or interrupted run from its latest checkpoint. At the end, the best model is exported
in the project's env-model format (`i2a_rllib.checkpoints`) and evaluated.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

from i2a_rllib.checkpoints import save_env_model
from i2a_rllib.data.format import (
    check_shard,
    decode_frames,
    filesystem_and_path,
    read_manifest,
    split_shards,
)
from i2a_rllib.models.env_model import (
    ATARI_REWARD_VALUES,
    ENV_MODEL_KINDS,
    build_env_model,
)

TRAIN_STATE_FILE = "train_state.pt"
ENV_MODEL_DIR = "env_model"
RUN_NAME = "pretrain"
# Set by the fault-injection test: a worker exits once, at this epoch.
FAIL_ONCE_AT_EPOCH = "_fail_once_at_epoch"
LR_SCHEDULES = ("constant", "cosine")


class EnvModelLossModule(nn.Module):
    """Wraps a model so that `forward` is its loss: DDP synchronises through `forward`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames, actions, rewards, next_frame):
        return self.model.loss(frames, actions, rewards, next_frame)


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


def _to_tensors(batch: Dict[str, np.ndarray], obs_shape, frame_channels, device):
    frames = decode_frames(batch["obs"], tuple(obs_shape))
    next_frame = decode_frames(batch["next_frame"], (frame_channels, *obs_shape[1:]))
    return (
        torch.from_numpy(frames).to(device).float().div_(255.0),
        torch.from_numpy(batch["action"].astype(np.int64)).to(device),
        torch.from_numpy(batch["reward"].astype(np.float32)).to(device),
        torch.from_numpy(next_frame).to(device).float().div_(255.0),
    )


def train_loop_per_worker(config: Dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config["seed"] + rank)
    model = build_env_model(
        config["kind"],
        config["obs_shape"],
        config["num_actions"],
        frame_channels=config["frame_channels"],
        reward_values=config["reward_values"],
        hparams=config["hparams"],
    )
    module = ray.train.torch.prepare_model(EnvModelLossModule(model))
    device = ray.train.torch.get_device()
    optimizer = torch.optim.Adam(module.parameters(), lr=config["lr"])
    scheduler = _lr_scheduler(optimizer, config, world)
    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, TRAIN_STATE_FILE), map_location=device)
        _unwrap(module).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
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
        for batch in train_shard.iter_batches(
            batch_size=batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=config["shuffle_buffer"],
        ):
            frames, actions, rewards, next_frame = _to_tensors(
                batch, config["obs_shape"], config["frame_channels"], device
            )
            loss = module(frames, actions, rewards, next_frame)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            nn.utils.clip_grad_norm_(module.parameters(), config["grad_clip"])
            optimizer.step()
            scheduler.step()
            seen += len(actions) * world
            batches += 1
            sums["loss"] += float(loss.total.detach())
            sums["frame_mse"] += float(loss.frame_mse)
            sums["reward_accuracy"] += float(loss.reward_accuracy)
            if rank == 0 and batches % config["log_every"] == 0:
                rate = seen / max(time.time() - start, 1e-9)
                left = (config["epochs"] - epoch) * samples_per_epoch - seen
                _say(
                    f"[pretrain] epoch {epoch + 1}/{config['epochs']}  "
                    f"{seen:,}/{samples_per_epoch:,} samples  loss {sums['loss'] / batches:.4f}  "
                    f"{rate:,.0f} samples/s  ETA {left / max(rate, 1e-9):,.0f}s"
                )
        metrics = {f"train_{k}": v / max(batches, 1) for k, v in sums.items()}
        metrics["samples_per_second"] = seen / max(time.time() - start, 1e-9)
        metrics["epoch"] = epoch + 1
        # Epochs already done when this worker group started (> 0 after a restore).
        metrics["started_at_epoch"] = start_epoch
        metrics.update(_validate(module, validation_shard, config, device))

        if config.get(FAIL_ONCE_AT_EPOCH) == epoch + 1 and rank == world - 1:
            marker = os.path.join(config["output"], f".failed_once_epoch_{epoch + 1}")
            if not os.path.exists(marker):
                open(marker, "w").close()
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
                    },
                    os.path.join(directory, TRAIN_STATE_FILE),
                )
                with open(os.path.join(directory, "metrics.json"), "w") as f:
                    json.dump(metrics, f)
                report_checkpoint = ray.train.Checkpoint.from_directory(directory)
                _say(
                    f"[pretrain] epoch {epoch + 1} done: train loss {metrics['train_loss']:.4f}, "
                    f"validation loss {metrics['validation_loss']:.4f}, frame MSE "
                    f"{metrics['validation_frame_mse']:.5f}, "
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
    module.eval()
    sums = {"loss": 0.0, "frame_mse": 0.0, "reward_accuracy": 0.0}
    batches = 0
    for batch in shard.iter_batches(batch_size=config["batch_size"], batch_format="numpy"):
        loss = _unwrap(module).loss(
            *_to_tensors(batch, config["obs_shape"], config["frame_channels"], device)
        )
        sums["loss"] += float(loss.total)
        sums["frame_mse"] += float(loss.frame_mse)
        sums["reward_accuracy"] += float(loss.reward_accuracy)
        batches += 1
    return {f"validation_{k}": v / max(batches, 1) for k, v in sums.items()}


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
    the distinct rewards of the data for other environments."""
    if manifest.env_id.startswith("ALE/") or not manifest.reward_values:
        return list(ATARI_REWARD_VALUES)
    return list(manifest.reward_values)


def pretrain(
    data: str,
    output: str,
    *,
    kind: str = "latent",
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
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
) -> Dict[str, Any]:
    """Trains an environment model on the dataset at `data`; writes `<output>/env_model`.

    Returns:
        A dict with the env-model checkpoint path, the final metrics and the evaluation.

    Raises:
        DatasetError / ValueError: bad settings or data, before Ray starts (a local Ray
            with `num_cpus` is started after the checks if none is running).
    """
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    if kind not in ENV_MODEL_KINDS or kind == "copy":
        raise ValueError(
            f"kind={kind!r}: pretrain a 'latent' or 'pixel' model (the copy model has "
            "nothing to learn)."
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("num_workers", num_workers)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")
    if not lr > 0:
        raise ValueError(f"lr={lr} must be > 0.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r}: choose one of {list(LR_SCHEDULES)}.")
    manifest = read_manifest(data)
    shards = sorted(manifest.shards)
    rows = {name: check_shard(data, name, manifest) for name in shards}
    train_shards, validation_shards = split_shards(shards, validation_fraction)
    # Bad hparams (unknown name, a factor that does not divide the frame) fail here,
    # before Ray starts, not inside a Train worker.
    build_env_model(
        kind,
        manifest.obs_shape,
        manifest.num_actions,
        frame_channels=manifest.frame_channels,
        reward_values=reward_values_for(manifest),
        hparams=dict(hparams or {}),
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
    from i2a_rllib.experiment import check_writable, init_ray

    check_writable(output, "--output")
    os.makedirs(output, exist_ok=True)

    init_ray(num_cpus=num_cpus)  # only now: every check above runs without Ray
    cpus_per_worker = _cpus_per_worker(num_workers, use_gpu)

    fs, root = filesystem_and_path(data)
    to_uri = (lambda n: os.path.join(root, n)) if "://" not in data else (lambda n: f"{data.rstrip('/')}/{n}")
    train_ds = ray.data.read_parquet([to_uri(n) for n in train_shards]).randomize_block_order(seed=seed)
    validation_ds = ray.data.read_parquet([to_uri(n) for n in validation_shards])
    train_config = {
        "kind": kind,
        "obs_shape": list(manifest.obs_shape),
        "num_actions": manifest.num_actions,
        "frame_channels": manifest.frame_channels,
        "reward_values": reward_values_for(manifest),
        "hparams": dict(hparams or {}),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_schedule": lr_schedule,
        "grad_clip": 10.0,
        "seed": seed,
        "shuffle_buffer": max(4 * batch_size, 2000),
        "train_rows": sum(rows[n] for n in train_shards),
        "log_every": log_every,
        "output": output,
        **(extra_train_config or {}),
    }
    print(
        f"[pretrain] {kind} model on {data}: {train_config['train_rows']:,} train / "
        f"{sum(rows[n] for n in validation_shards):,} held-out transitions, {epochs} epochs, "
        f"{num_workers} worker(s){' on GPU' if use_gpu else ''}",
        flush=True,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=train_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=RUN_NAME,
            storage_path=output,
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
    model = build_env_model(
        kind,
        manifest.obs_shape,
        manifest.num_actions,
        frame_channels=manifest.frame_channels,
        reward_values=train_config["reward_values"],
        hparams=train_config["hparams"],
    )
    with result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, TRAIN_STATE_FILE), map_location="cpu")
    model.load_state_dict(state["model"])
    summary: Dict[str, Any] = {"metrics": dict(result.metrics)}
    if evaluate:
        from i2a_rllib.pretrain.evaluate import evaluate_env_model

        summary["evaluation"] = evaluate_env_model(
            model, data, validation_shards, manifest, os.path.join(output, "evaluation")
        )
    checkpoint_path = save_env_model(
        model,
        os.path.join(output, ENV_MODEL_DIR),
        extra_metadata={
            "env_id": manifest.env_id,
            "env_config": manifest.env_config,
            "dataset": {"uri": data, **manifest.__dict__},
            "training": {k: v for k, v in train_config.items() if k != "output"},
            "final_metrics": summary["metrics"],
            "evaluation": summary.get("evaluation", {}).get("metrics"),
            "epochs_trained": state["epoch"] + 1,
        },
    )
    summary["checkpoint"] = checkpoint_path
    print(f"[pretrain] environment model: {checkpoint_path}", flush=True)
    return summary
