"""GPU code paths, run where CUDA exists (skipped elsewhere, with the reason).

The rest of the suite hides the GPUs (tests/conftest.py); these tests give them back to
their own subprocesses, each with its own Ray where one is needed.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gpu_env():
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")}
    visible = os.environ.get("I2A_TESTS_VISIBLE_GPUS", "all")
    if visible != "all":
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def _run(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO, env=_gpu_env(), capture_output=True, text=True, timeout=timeout,
    )


def _cuda_available() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        result = _run("import torch; print(torch.cuda.is_available())", timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return result.stdout.strip().endswith("True")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _cuda_available(), reason="needs CUDA (no GPU on this machine)"),
]


def test_modules_forward_and_update_on_cuda_like_on_cpu():
    result = _run(
        """
        import gymnasium as gym, numpy as np, torch
        from ray.rllib.core.columns import Columns
        from i2a_rllib.rl_module import I2ARLModule, NatureCNNRLModule

        obs_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        obs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 4, 84, 84), dtype=np.uint8))
        for cls, config in ((NatureCNNRLModule, {}), (I2ARLModule, {"env_model": "latent", "rollout_action_choice": "argmax"})):
            torch.manual_seed(0)
            module = cls(observation_space=obs_space, action_space=gym.spaces.Discrete(4), model_config=config)
            cpu = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
            module = module.cuda()
            out = module.forward_train({Columns.OBS: obs.cuda()})
            logits = out[Columns.ACTION_DIST_INPUTS]
            assert logits.is_cuda
            torch.testing.assert_close(logits.cpu(), cpu, atol=1e-3, rtol=1e-3)
            params = [p for p in module.parameters() if p.requires_grad]
            before = [p.detach().clone() for p in params]
            optimizer = torch.optim.Adam(params, lr=1e-3)
            loss = logits.logsumexp(-1).mean() + module.compute_values({Columns.OBS: obs.cuda()}, out[Columns.EMBEDDINGS]).pow(2).mean()
            loss.backward()
            optimizer.step()
            assert any(not torch.equal(p, b) for p, b in zip(params, before))
            print(cls.__name__, "ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "I2ARLModule ok" in result.stdout


def _one_iteration(env_model: str, env_runners: int, env_runner_gpus: int, learner_gpus: int, report: str):
    """One I2A training iteration on Breakout with a GPU; `report` prints where the
    modules ran (it sees `algo`). Returns the finished process; the env steps trained
    are checked here."""
    result = _run(
        f"""
        import ray
        from i2a_rllib.config import I2AConfig, configure_environment

        ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
        config = configure_environment(I2AConfig(), "ALE/Breakout-v5").imagination(
            env_model={env_model!r}, rollout_depth=2, imagination_image_interval=0)
        config.env_runners(num_env_runners={env_runners}, num_envs_per_env_runner=2, rollout_fragment_length=32,
                           num_gpus_per_env_runner={env_runner_gpus})
        config.training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
        config.learners(num_learners=0, num_gpus_per_learner={learner_gpus})
        algo = config.build_algo()
        result = algo.train()
        {report}
        print("trained", result["learners"]["default_policy"]["num_module_steps_trained"])
        algo.stop()
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split("trained")[-1].split()[0]) >= 64
    return result


def test_one_training_iteration_with_a_gpu_learner():
    result = _one_iteration("latent", 0, 0, 1, report=(
        'print("device", next(algo.learner_group._learner.module["default_policy"].parameters()).device.type)'))
    assert "device cuda" in result.stdout


def test_one_training_iteration_with_the_env_runner_imagining_on_a_gpu():
    """`--num-gpus-per-env-runner`: RLlib moves the EnvRunner's module to the GPU; I2A
    imagines there and ships its imagined maps (spatial model) back to a CPU learner.
    Written 2026-12-04 after the H200 run, which had no device time left to run it."""
    result = _one_iteration("spatial", 1, 1, 0, report=(
        'print("env runner devices", algo.env_runner_group.foreach_env_runner('
        'lambda runner: next(runner.module.parameters()).device.type, local_env_runner=False))'))
    assert "env runner devices ['cuda']" in result.stdout


def test_sampling_benchmark_infers_on_the_gpu(tmp_path):
    """`sampling.py --env-runner-device cuda` (gpu.sh): every in-process EnvRunner row,
    overlapped ones included, samples with its module on the card; the CPU-only actor
    row is left out. Written 2026-12-05, without a card to run it on."""
    out = tmp_path / "sampling.json"
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "sampling.py"), "--seconds", "0.5", "--num-envs", "4",
         "--env-runner-device", "cuda", "--json", str(out)],
        cwd=REPO, env=_gpu_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    runner_rows = [r for r in figures["rows"] if "EnvRunner" in r["what"]]
    assert figures["env_runner_device"] == "cuda" and len(runner_rows) >= 4
    assert all(r["what"].endswith("(module on cuda)") and r["steps_per_s"] > 0 for r in runner_rows)
    in_process = [r for r in runner_rows if "module_device" in r]
    assert len(in_process) == len(runner_rows) and {r["module_device"] for r in in_process} == {"cuda"}


def test_rollout_encoder_groups_repeated_frames_on_cuda_like_on_cpu():
    """On a GPU repeated imagined frames are grouped by row hashes (not numpy's byte
    sort): the same groups, codes and gradients as on the CPU."""
    result = _run(
        """
        import torch
        from i2a_rllib.models.distinct import distinct_rows
        from i2a_rllib.models.rollout_encoder import RolloutEncoder

        torch.manual_seed(0)
        distinct = torch.randint(0, 256, (6, 4, 84, 84), dtype=torch.uint8)
        views = distinct[torch.randint(0, 6, (12, 5))]
        rows = views.flatten(0, 1).flatten(1)
        first, where = distinct_rows(rows)
        first_cuda, where_cuda = distinct_rows(rows.cuda())
        assert torch.equal(rows[first][where], rows)
        assert torch.equal(rows.cuda()[first_cuda][where_cuda], rows.cuda())
        assert len(first) == len(first_cuda) == len(torch.unique(rows, dim=0))
        encoder = RolloutEncoder((4, 84, 84), feature_size=32, hidden_size=16)
        rewards = torch.randn(12, 5)
        codes = encoder(views, rewards)
        codes.pow(2).sum().backward()
        grads = [p.grad.clone() for p in encoder.parameters()]
        encoder.zero_grad()
        encoder = encoder.cuda()
        codes_cuda = encoder(views.cuda(), rewards.cuda())
        codes_cuda.pow(2).sum().backward()
        torch.testing.assert_close(codes_cuda.cpu(), codes, atol=1e-4, rtol=1e-3)
        for cpu, cuda in zip(grads, (p.grad for p in encoder.parameters())):
            torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=1e-3)
        print("encoder ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "encoder ok" in result.stdout
