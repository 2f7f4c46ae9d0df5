"""Checks that run before Ray starts (or, for cluster resources, before any actor):
the output location, free space, custom resources, checkpoints that must load.
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Dict

# Below this much free space a run would die part-way (checkpoints, shards); refused up front.
DEFAULT_MIN_FREE_MB = 64
MIN_FREE_MB_ENV = "I2A_MIN_FREE_MB"


class RunDirectoryError(ValueError):
    """The output location cannot be used as asked (exists, not writable, or nearly full)."""


def check_custom_resources(config, args: argparse.Namespace, cluster: Dict[str, float]) -> None:
    """Refuses custom resources that would place nothing, or that no node offers.

    A missing resource would leave the trial PENDING forever instead of failing. Too
    few units are not refused: an autoscaler may still add nodes that offer them.
    """
    remote_env_runners = config.num_env_runners + (
        config.evaluation_num_env_runners if config.evaluation_interval else 0
    )
    for flag, resources, actors, fix in (
        ("--env-runner-resources", getattr(args, "env_runner_resources", None), remote_env_runners,
         "sampling runs inside the algorithm's driver actor; set --num-env-runners >= 1"),
        ("--learner-resources", getattr(args, "learner_resources", None), config.num_learners,
         "the learner runs inside the algorithm's driver actor; set --num-learners >= 1"),
    ):  # fmt: skip
        if not resources:
            continue
        if not actors:
            raise ValueError(
                f"{flag} places remote actors, and there are none: {fix} or drop the flag."
            )
        for name in resources:
            if cluster.get(name, 0) <= 0:
                raise ValueError(
                    f"{flag} asks for {name!r}, which no node of this Ray cluster offers; start "
                    f"the nodes with --resources '{{\"{name}\": N}}' (cluster/aws.yaml, "
                    "cluster/kuberay/*.yaml: `resources`) or drop the flag."
                )


def check_output_location(storage_path: str, name: str, resume: bool) -> str:
    """Refuses to reuse an experiment directory unless resuming; checks it is writable.

    Returns:
        The experiment directory (local paths only; URIs are left to Tune).
    """
    if "://" in storage_path:
        return f"{storage_path.rstrip('/')}/{name}"
    experiment_dir = os.path.abspath(os.path.join(storage_path, name))
    exists = os.path.isdir(experiment_dir) and bool(os.listdir(experiment_dir))
    if exists and not resume:
        raise RunDirectoryError(
            f"{experiment_dir} already holds an experiment; nothing was changed. Pass "
            "--resume to continue it, or another --name / --storage-path."
        )
    if resume and not exists:
        raise RunDirectoryError(
            f"--resume was given but {experiment_dir} holds no experiment to continue."
        )
    check_writable(experiment_dir, "--storage-path")
    return experiment_dir


def min_free_mb() -> float:
    """The free space (MiB) an output location needs: I2A_MIN_FREE_MB, else 64."""
    text = os.environ.get(MIN_FREE_MB_ENV)
    if text is None:
        return DEFAULT_MIN_FREE_MB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(
            f"{MIN_FREE_MB_ENV}={text!r} must be a number of MiB >= 0 (0 turns the free-space "
            f"check off); unset it for the default of {DEFAULT_MIN_FREE_MB}."
        )
    return value


def _nearest_existing(path: str) -> str:
    """`path` itself or its closest ancestor that exists (nothing is created)."""
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def check_writable(path: str, flag: str) -> None:
    """Raises RunDirectoryError unless the directory `path` exists or can be created, on
    a filesystem with at least `min_free_mb()` MiB free.

    Checks the nearest existing ancestor without creating anything. `os.access` alone
    passes for root everywhere but read-only mounts, so a file in the way is caught too.
    A disk that fills up during the run is not prevented (docs/reliability.md).
    """
    parent = _nearest_existing(path)
    if not os.path.isdir(parent):
        raise RunDirectoryError(
            f"Cannot create {os.path.abspath(path)}: {parent} is a file, not a directory. "
            f"Choose another {flag}."
        )
    if not os.access(parent, os.W_OK):
        raise RunDirectoryError(
            f"Cannot write to {parent} (needed for {os.path.abspath(path)}); choose a "
            f"writable {flag}."
        )
    check_free_space(path, flag)


def check_free_space(path: str, flag: str) -> None:
    """Raises RunDirectoryError if the filesystem `path` would be on has less than
    `min_free_mb()` MiB free (measured at its nearest existing ancestor)."""
    parent = _nearest_existing(path)
    needed = min_free_mb()
    free = shutil.disk_usage(parent).free / 2**20
    if free < needed:
        raise RunDirectoryError(
            f"Only {free:.1f} MiB free on the filesystem of {parent} (needed for "
            f"{os.path.abspath(path)}); at least {needed:g} MiB are required "
            f"(set by {MIN_FREE_MB_ENV}). Free space or choose another {flag}."
        )


def check_checkpoints_load(config) -> None:
    """The environment model an I2A config names must load: a truncated or corrupt
    weights file fails here, in one line, not inside a learner actor (`validate()` reads
    only metadata). Env models are small: this takes well under a second."""
    path = getattr(config, "env_model_checkpoint", None)
    if path and "://" not in path and os.path.isdir(path):
        from i2a_rllib.checkpoints import load_env_model

        load_env_model(path)
