"""The report writers and batch checks of the benchmark scripts (pure functions, no Ray)."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.paper_comparison import (
    ROOT,
    SECTION_TITLE,
    board_name,
    mean_and_sample_sd,
    replace_section,
    target_verdict,
)


def test_replace_section_keeps_the_rest_of_the_document():
    document = f"# Results\n\n## Breakout\nold breakout\n\n{SECTION_TITLE} (old)\nold table\n\n## Later\nkept\n"
    updated = replace_section(document, f"{SECTION_TITLE} (new)\nnew table\n")
    assert "old table" not in updated and "new table" in updated
    assert updated.index("## Breakout") < updated.index("new table") < updated.index("## Later\nkept")
    assert updated.count(SECTION_TITLE) == 1


def test_replace_section_appends_when_missing_and_replaces_a_last_section():
    appended = replace_section("# Results\n", f"{SECTION_TITLE}\nfirst\n")
    assert appended.startswith("# Results") and appended.endswith("first\n")
    again = replace_section(appended, f"{SECTION_TITLE}\nsecond\n")
    assert "first" not in again and again.endswith("second\n")


def test_target_verdict_needs_15_points_over_ppo_and_a_lead_over_copy():
    row = lambda agent, solved: (agent, 3, solved, 0.0, 0.0, 0.0, 0.1, 0.2)  # noqa: E731
    met = target_verdict([row("i2a", 0.60), row("copy", 0.50), row("ppo", 0.44)])
    assert "+16.0 points" in met and "**met**" in met
    assert "**not met**" in target_verdict([row("i2a", 0.60), row("copy", 0.61), row("ppo", 0.40)])
    assert "**not met**" in target_verdict([row("i2a", 0.224), row("copy", 0.2), row("ppo", 0.2)])
    assert "needs all three" in target_verdict([row("i2a", 0.5)])


def test_spread_over_seeds_is_the_sample_standard_deviation():
    # docs/results.md's I2A seeds, rounded (unrounded: population sd 0.168, sample sd 0.206).
    mean, sd = mean_and_sample_sd([0.96, 0.56, 0.86])
    assert round(mean, 3) == 0.793 and round(sd, 3) == 0.208
    assert mean_and_sample_sd([0.4, 0.6]) == pytest.approx((0.5, 0.1414), abs=1e-4)
    mean, sd = mean_and_sample_sd([0.7])
    assert mean == 0.7 and sd != sd  # one seed: no spread to estimate (nan)


def test_learner_benchmark_fingerprint_tells_batches_apart():
    """Both learners print this fingerprint of the batch they loaded; it must survive the
    pickle round trip and change with any observation or rollout-noise value."""
    import pickle

    import numpy as np
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from benchmarks.learner import batch_fingerprint

    def episode(noise_scale=1.0, first_frame=0):
        frames = np.zeros((4, 2, 3, 3), dtype=np.uint8)
        frames[0, 0, 0, 0] = first_frame
        noise = noise_scale * np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
        return SingleAgentEpisode(
            observations=list(frames), actions=[0, 1, 2], rewards=[0.0, 1.0, 0.0],
            extra_model_outputs={"i2a_rollout_noise": list(noise)}, len_lookback_buffer=0,
        ).to_numpy()  # fmt: skip

    batch = [episode(), episode()]
    reference = batch_fingerprint(batch)
    assert reference["rows"] == 6 and reference["episodes"] == 2
    assert reference["extra_columns"] == ["i2a_rollout_noise"]
    assert batch_fingerprint(pickle.loads(pickle.dumps(batch))) == reference
    assert batch_fingerprint([episode(), episode(noise_scale=0.5)])["sha256"] != reference["sha256"]
    assert batch_fingerprint([episode(), episode(first_frame=1)])["sha256"] != reference["sha256"]


def test_sampling_table_states_every_rows_threads():
    from benchmarks.sampling import markdown_table

    table = markdown_table([
        dict(what="raw", processes=1, ale_threads=2, torch_threads=None, steps_per_s=5000.0),
        dict(what="actors", processes=2, ale_threads=1, torch_threads=1, steps_per_s=2500.0),
    ])  # fmt: skip
    assert "| ale-py threads each | torch threads each |" in table.splitlines()[0]
    assert "| raw | 1 | 2 | - | 5,000 |" in table and "| actors | 2 | 1 | 1 | 2,500 |" in table


def test_board_name_fills_defaults_and_rejects_bad_boards():
    assert board_name({"dim_room": [5, 5], "num_boxes": 1}) == "5x5, 1 box"
    assert board_name({}) == "10x10, 4 boxes"  # the paper's defaults
    with pytest.raises(ValueError, match="too small"):
        board_name({"dim_room": [3, 3]})


def test_comparison_rejects_a_bad_board_before_ray_starts():
    script = os.path.join(ROOT, "benchmarks", "paper_comparison.py")
    for env_config, message in (
        ('{"dim_room": [5, 5], "num_boxes": 9}', "num_boxes=9 is more boxes than"),
        ("{dim_room: 5}", "--env-config must be a JSON object"),
    ):
        done = subprocess.run(
            [sys.executable, script, "--env-config", env_config],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert "Started a local Ray instance" not in done.stdout + done.stderr


def test_report_only_without_runs_names_what_is_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "paper_comparison.py"), "--report-only",
         "--work-dir", str(tmp_path), "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--report-only: no runs and env model in" in done.stderr and "5x5_1box" in done.stderr
    assert not (tmp_path / "results.md").exists()


def test_report_only_writes_the_section_from_finished_runs(tmp_path):
    """--report-only: table, verdict and PNG from runs.json, seeds >= --seeds left out."""
    from i2a_rllib.checkpoints import save_env_model
    from i2a_rllib.models.env_models import build_env_model

    board_dir = tmp_path / "work" / "5x5_1box"
    model = build_env_model("pixel", (7, 5, 5), 5, frame_channels=7, hparams={"channels": 4})
    save_env_model(model, str(board_dir / "env_model" / "env_model"),
                   extra_metadata={"evaluation": {"error_ratio_1_step": 0.05}})  # fmt: skip
    solved_by_seed = {"i2a": (0.9, 0.7), "copy": (0.4, 0.4), "ppo": (0.3, 0.3)}
    runs = [
        {
            "agent": agent,
            "seed": seed,
            "budget": 1000,
            "curve": [
                {"env_steps": steps, "return": 1.0, "solved": solved[seed] if seed < 2 else 0.0, "seconds": steps / 100}
                for steps in range(100, 1001, 100)
            ],
        }
        for agent, solved in solved_by_seed.items()
        for seed in range(3)  # seed 2 must not count with --seeds 2
    ]
    (board_dir / "runs.json").write_text(json.dumps(runs))
    out = tmp_path / "docs"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "paper_comparison.py"), "--report-only",
         "--budget", "1000", "--seeds", "2", "--work-dir", str(tmp_path / "work"), "--out-dir", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = (out / "results.md").read_text()
    # Mean ± sample sd over the 2 seeds: 0.8 ± 0.141 (the population sd would be 0.100).
    assert "| i2a | 2 | 0.800 ± 0.141 |" in results and "| ppo | 2 | 0.300 ± 0.000 |" in results
    assert "I2A - PPO: +50.0 points" in results and "**met**" in results
    assert "Sokoban 5x5, 1 box" in results and "0.050" in results
    assert (out / "figures" / "sokoban_learning_curves.png").stat().st_size > 0
    assert len(json.loads((out / "results_sokoban.json").read_text())["runs"]) == 6
