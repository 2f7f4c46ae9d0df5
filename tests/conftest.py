"""Shared fixtures: one local Ray instance (2 CPUs, no GPUs) per test session."""

import os

import pytest

# Torch inside Ray workers: one thread each, as on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The suite runs on the CPU even on a machine with GPUs: the scripts it starts (and
# this process's Ray) would otherwise detect them and place learners there. Only
# tests/test_gpu.py, which asks for a GPU, hands them back to its own subprocesses.
# (Recorded once: a second import of this file must not record the hidden value.)
os.environ.setdefault("I2A_TESTS_VISIBLE_GPUS", os.environ.get("CUDA_VISIBLE_DEVICES", "all"))
os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(scope="session")
def ray_session():
    import ray

    # `address="local"` always starts a fresh embedded instance, never joins a stale
    # cluster left behind by another process.
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
