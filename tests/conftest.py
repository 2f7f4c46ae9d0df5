"""Shared fixtures: one local Ray instance (2 CPUs) per test session."""

import os

import pytest

# Torch inside Ray workers: one thread each, as on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    # `address="local"` always starts a fresh embedded instance, never joins a stale
    # cluster left behind by another process.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
