"""Transition collection (Ray actors -> Parquet) and env-model pretraining (Ray Train)."""

import io
import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from i2a_rllib.checkpoints import CheckpointError, check_env_model_metadata, load_env_model
from i2a_rllib.models.env_models import build_env_model
from i2a_rllib.data.format import (
    DatasetError,
    MANIFEST_FILE,
    decode_frames,
    list_shards,
    read_manifest,
    transition_schema,
)

pytestmark = pytest.mark.slow

ENV = "ALE/Breakout-v5"


@pytest.fixture(scope="module")
def dataset(ray_session, tmp_path_factory):
    from i2a_rllib.data.collect import collect

    path = str(tmp_path_factory.mktemp("data") / "breakout")
    collect(ENV, path, 400, num_actors=2, num_envs_per_actor=4, shard_size=100, seed=1)
    return path


def test_collect_writes_shards_manifest_and_schema(dataset):
    manifest = read_manifest(dataset)
    assert manifest.env_id == ENV and manifest.num_transitions == 400
    assert manifest.obs_shape == [4, 84, 84] and manifest.num_actions == 4
    assert manifest.frame_channels == 1 and manifest.policy == "random"
    shards = [n for n in os.listdir(dataset) if n.endswith(".parquet")]
    assert sorted(shards) == sorted(manifest.shards) and len(shards) == 4
    assert {int(n.split("-")[1][1:]) for n in shards} == {0, 1}  # both actors wrote
    table = pq.read_table(os.path.join(dataset, shards[0]))
    assert table.schema.equals(transition_schema((4, 84, 84), 1))
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False), (4, 84, 84))
    next_frame = decode_frames(table.column("next_frame").to_numpy(zero_copy_only=False), (1, 84, 84))
    assert obs.dtype == np.uint8 and obs.max() > 0
    # next_frame of (episode, t) is the newest frame of the observation at (episode, t+1).
    rows = {(e, s): i for i, (e, s) in enumerate(zip(table.column("episode").to_numpy(), table.column("step").to_numpy()))}
    pairs = [(i, rows[(e, s + 1)]) for (e, s), i in rows.items() if (e, s + 1) in rows]
    assert len(pairs) > 50
    assert all(np.array_equal(next_frame[i, 0], obs[j, -1]) for i, j in pairs)


def test_collect_resume_adds_only_what_is_missing(ray_session, dataset, tmp_path):
    from i2a_rllib.data.collect import collect

    copy = str(tmp_path / "copy")
    shutil.copytree(dataset, copy)
    before = set(list_shards(*_fs(copy)))
    # A half-written shard from a killed run is hidden and cleaned up.
    open(os.path.join(copy, ".tmp-dead-shard-a000-000099.parquet"), "wb").write(b"PAR1 partial")
    manifest = collect(ENV, copy, 400, num_actors=2, num_envs_per_actor=4, shard_size=100, seed=1)
    assert manifest.num_transitions == 400 and set(list_shards(*_fs(copy))) == before
    manifest = collect(ENV, copy, 650, num_actors=2, num_envs_per_actor=4, shard_size=100, seed=1)
    after = set(list_shards(*_fs(copy)))
    assert manifest.num_transitions == 650
    assert before < after and len(after - before) == 3  # 100 + 100 + 50 rows
    assert not any(n.startswith(".tmp-") for n in os.listdir(copy))
    assert json.load(open(os.path.join(copy, MANIFEST_FILE)))["num_transitions"] == 650
    # New shards hold new data (new seeds): no observation sequence repeats an old shard.
    old = pq.read_table(os.path.join(copy, sorted(before)[0])).column("obs").to_numpy(zero_copy_only=False)
    new = pq.read_table(os.path.join(copy, sorted(after - before)[0])).column("obs").to_numpy(zero_copy_only=False)
    assert not np.array_equal(old[20:40], new[20:40])


def test_collect_takes_large_seeds(ray_session, tmp_path):
    """ALE seeds are 32-bit; a large --seed (actor seeds are derived from it) collects."""
    from i2a_rllib.data.collect import collect

    manifest = collect(ENV, str(tmp_path / "big_seed"), 64, num_actors=1, num_envs_per_actor=2,
                       shard_size=64, seed=1_000_001)  # fmt: skip
    assert manifest.num_transitions == 64


def test_collect_refuses_a_dataset_of_another_env(ray_session, dataset):
    from i2a_rllib.data.collect import collect

    with pytest.raises(DatasetError, match="env_id='ALE/Breakout-v5'"):
        collect("ALE/Pong-v5", dataset, 500, num_actors=1, shard_size=100)


def _fs(path):
    from i2a_rllib.data.format import filesystem_and_path

    return filesystem_and_path(path)


# One Ray Train run serves every test below that reads a pretrained model: each run costs
# ~40 s of fixed start-up on 2 cores. It trains the spatial model open loop over
# 1 -> 2 -> 3 steps, and one worker dies in epoch 2 (the group restarts from epoch 1).
PRETRAIN_SETTINGS = dict(kind="spatial", epochs=3, batch_size=16, lr=2e-3, horizon=3, lr_schedule="cosine",
                         hparams={"reward_head": "map"})  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(ray_session, dataset, tmp_path_factory):
    from i2a_rllib.pretrain.train import FAIL_ONCE_AT_EPOCH, pretrain

    output = str(tmp_path_factory.mktemp("pretrain") / "run")
    summary = pretrain(
        dataset,
        output,
        num_workers=2,
        log_every=1000,
        extra_train_config={FAIL_ONCE_AT_EPOCH: 2},
        **PRETRAIN_SETTINGS,  # the cosine schedule's state is restored with the optimizer's
    )
    return output, summary


def test_pretrain_writes_a_checkpoint_with_metadata(pretrained, dataset):
    from i2a_rllib.pretrain.train import plan_pretraining

    output, summary = pretrained
    path = summary["checkpoint"]
    assert path == os.path.join(output, "env_model")
    model, metadata = load_env_model(path)
    assert metadata["kind"] == "spatial" and metadata["env_id"] == ENV
    assert metadata["obs_shape"] == [4, 84, 84] and metadata["num_actions"] == 4
    assert metadata["epochs_trained"] == 3 and metadata["dataset"]["num_transitions"] == 400
    assert metadata["reward_values"] == [-1.0, 0.0, 1.0]
    evaluation = metadata["evaluation"]
    for k in (1, 5, 15):
        # Random play moves the paddle: copying the last frame has an error to beat.
        assert evaluation[f"copy_error_{k}_step"] > 0
        assert evaluation[f"error_ratio_{k}_step"] == pytest.approx(
            evaluation[f"frame_error_{k}_step"] / evaluation[f"copy_error_{k}_step"]
        )
    assert os.path.getsize(os.path.join(output, "evaluation", "real_vs_imagined.png")) > 1000
    assert os.path.getsize(os.path.join(output, "evaluation", "k_step_error.png")) > 1000
    assert any(f.startswith("events") for f in os.listdir(os.path.join(output, "evaluation", "tensorboard")))
    # The imagined reward's AUC: NaN only where the held-out rows lack a scoring step or a
    # non-scoring one.
    auc, scored = evaluation["reward_signal_auc"], evaluation["nonzero_reward_rows"]
    assert (auc != auc) if scored == 0 else 0.0 <= auc <= 1.0
    # The 'map' reward head is fitted after training on the training shards' scoring
    # rows, where there are any (random play may not score in 400 steps).
    plan = plan_pretraining(dataset, output + "_planned", **PRETRAIN_SETTINGS)
    scoring = sum(int((pq.read_table(os.path.join(dataset, n), columns=["reward"]).column("reward").to_numpy() != 0).sum())
                  for n in plan.train_shards)  # fmt: skip
    fit = metadata["reward_head_fit"]
    assert metadata["hparams"]["reward_head"] == "map" and fit["reward_head_scoring_rows"] == scoring
    assert fit["reward_head_fit_steps"] == (3000 if scoring else 0)
    assert metadata["data_lineage"] == [{"uri": dataset, "num_transitions": 400, "policy": "random"}]


def test_separation_auc_ranks_with_ties_counting_half():
    from i2a_rllib.pretrain.evaluate import separation_auc

    t = torch.tensor
    assert separation_auc(t([0.9, 0.8]), t([0.1, 0.2, 0.3])) == 1.0
    assert separation_auc(t([0.1]), t([0.2, 0.3])) == 0.0
    assert separation_auc(t([0.5]), t([0.5, 0.1])) == 0.75  # one tie (half), one win
    assert separation_auc(t([0.5]), t([])) != separation_auc(t([0.5]), t([]))  # NaN


def _dot_frames(n, shape, rng, rate):
    """Frames with one lit pixel, or (in `rate` of the rows, which score 1) a lit 2x2
    block: a reward the frame shows, as rare as Breakout's under random play."""
    obs = np.zeros((n, *shape), np.uint8)
    rewards = (rng.random(n) < rate).astype(np.float32)
    y, x = rng.integers(0, shape[1] - 1, n), rng.integers(0, shape[2] - 1, n)
    for i in range(n):
        size = 2 if rewards[i] else 1
        obs[i, :, y[i] : y[i] + size, x[i] : x[i] + size] = 255
    return obs, rewards


MAP_HEADS = {
    "spatial": {"factor": 1, "view_pool": 1, "reward_head": "map"},
    # The folded model's head reads the folded frame stack itself.
    "folded": {"architecture": "folded", "factor": 2, "view_pool": 1, "reward_head": "map"},
}


@pytest.mark.parametrize("family", sorted(MAP_HEADS))
def test_the_map_reward_head_learns_a_rare_reward_from_half_scoring_batches(tmp_path, family):
    """A reward in 3% of the rows: the sample keeps every scoring row and a bounded share
    of the rest; the head, fitted alone, ranks held-out scoring rows first, and its
    expected reward stays near the data's rate where nothing scores (the prior's shift)."""
    import pyarrow as pa

    from i2a_rllib.models.env_models import build_env_model_from_metadata
    from i2a_rllib.pretrain.evaluate import separation_auc
    from i2a_rllib.pretrain.reward_head import ZERO_ROWS_PER_SCORING_ROW, fit_reward_head, scoring_sample

    shape, rng = (2, 16, 16), np.random.default_rng(0)
    names, scoring = [], 0
    for index in range(2):  # only the columns the sample reads
        obs, rewards = _dot_frames(1000, shape, rng, 0.03)
        scoring += int(rewards.sum())
        column = pa.array([row.tobytes() for row in obs], pa.binary(int(np.prod(shape))))
        names.append(f"shard-a000-{index:06d}.parquet")
        pq.write_table(pa.table({"obs": column, "reward": pa.array(rewards)}), str(tmp_path / names[-1]))
    sample = scoring_sample(str(tmp_path), names, shape, [-1.0, 0.0, 1.0])
    kept = sample["rewards"] > 0
    assert kept.sum() == scoring and 0 < (~kept).sum() <= ZERO_ROWS_PER_SCORING_ROW * scoring
    assert sample["class_frequencies"] == pytest.approx([0.0, 1 - scoring / 2000, scoring / 2000])
    assert (sample["obs"][kept].reshape(int(kept.sum()), -1).sum(1) == 4 * 2 * 255).all()

    torch.manual_seed(0)
    model = build_env_model("spatial", shape, 2, hparams=MAP_HEADS[family])
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("reward_map", "reward_out"))}
    fit = fit_reward_head(model, sample, steps=300)
    assert fit["reward_head_fit_steps"] == 300 and fit["reward_head_scoring_rows"] == scoring
    assert len(fit["reward_head_fit_losses"]) == fit["reward_head_fit_restarts"] == 4
    assert fit["reward_head_fit_loss"] == min(fit["reward_head_fit_losses"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())  # only the head moved
    # The fit's own seeded starts decide the head, not the head it was handed (an
    # unseeded new head once gave held-out AUC 0.996 in one run and 0.70 in the next).
    torch.manual_seed(1)
    other = build_env_model("spatial", shape, 2, hparams=MAP_HEADS[family])
    other.load_state_dict(frozen, strict=False)
    fit_reward_head(other, sample, steps=300)
    for key, value in model.state_dict().items():
        if key.startswith(("reward_map", "reward_out")):
            torch.testing.assert_close(other.state_dict()[key], value)

    obs, rewards = _dot_frames(2000, shape, rng, 0.03)
    with torch.no_grad():
        _, expected = model.step(model.initial_state(torch.from_numpy(obs).float() / 255), torch.zeros(2000, dtype=torch.long))
    scored = torch.from_numpy(rewards > 0)
    assert separation_auc(expected[scored], expected[~scored]) > 0.95
    assert expected[~scored].mean() < 0.1  # ~0.01; ~0.2 without the shift (a check by hand)

    # The prior travels in the metadata: the rebuilt model gives the same rewards.
    rebuilt = build_env_model_from_metadata(model.metadata())
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        again = rebuilt.step(rebuilt.initial_state(torch.from_numpy(obs[:8]).float() / 255), torch.zeros(8, dtype=torch.long))[1]
    torch.testing.assert_close(again, expected[:8])


def test_a_sample_without_scoring_rows_fits_nothing():
    from i2a_rllib.pretrain.reward_head import fit_reward_head

    model = build_env_model("spatial", (2, 16, 16), 2, hparams={"factor": 1, "view_pool": 1, "reward_head": "map"})
    sample = {"obs": np.zeros((4, 2, 16, 16), np.uint8), "rewards": np.zeros(4), "class_frequencies": [0, 1, 0]}
    assert fit_reward_head(model, sample)["reward_head_fit_steps"] == 0
    assert model.reward_prior == []  # nothing recorded: the head was not fitted


SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained", "breakout_spatial")


def test_zero_epochs_from_a_checkpoint_exports_it_as_it_is_without_ray(dataset, tmp_path):
    """`--epochs 0 --init-from X`: X's weights, evaluated on the dataset's held-out
    shards, written as a new env_model; no Ray Train run."""
    from i2a_rllib.pretrain.train import RUN_NAME, pretrain

    summary = pretrain(dataset, str(tmp_path / "as_is"), epochs=0, init_from=SHIPPED, log_every=1000)
    exported, metadata = load_env_model(summary["checkpoint"])
    shipped, shipped_metadata = load_env_model(SHIPPED)
    # The same settings (the export also writes the defaults the older file leaves out).
    assert shipped_metadata["hparams"].items() <= metadata["hparams"].items() and metadata["epochs_trained"] == 0
    for key, value in shipped.state_dict().items():
        assert torch.equal(exported.state_dict()[key], value), key
    assert metadata["evaluation"]["error_ratio_5_step"] > 0 and metadata["reward_head_fit"] is None
    assert not (tmp_path / "as_is" / RUN_NAME).exists()  # nothing trained
    # The data behind the weights: the shipped model's and this dataset (whose rows the
    # evaluation and a reward head's fit read), counted by the Breakout comparison.
    shipped_data = shipped_metadata["dataset"]
    assert metadata["data_lineage"] == [
        {"uri": shipped_data["uri"], "num_transitions": 100_000, "policy": shipped_data["policy"]},
        {"uri": dataset, "num_transitions": 400, "policy": "random"},
    ]  # fmt: skip
    from benchmarks.atari_comparison import env_model_data_steps

    assert env_model_data_steps(summary["checkpoint"]) == {"collected_transitions": 100_400,
                                                         "collecting_policy_steps": 293 * 1024}  # fmt: skip


def test_init_from_adds_a_map_reward_head_to_a_trained_model(dataset, tmp_path):
    """Only `reward_head` may change on --init-from: the new head starts untrained, every
    other weight is the checkpoint's; with --epochs 0 it needs scoring steps to fit on."""
    from i2a_rllib.pretrain.train import _initial_model, plan_pretraining

    plan = plan_pretraining(dataset, str(tmp_path / "one"), epochs=1, init_from=SHIPPED, hparams={"reward_head": "map"})
    model, (shipped, _) = _initial_model(plan.train_config), load_env_model(SHIPPED)
    assert model.reward_head == "map"
    for key, value in shipped.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert {k for k in model.state_dict()} - set(shipped.state_dict()) == {
        "reward_map.0.weight", "reward_map.0.bias", "reward_map.2.weight", "reward_map.2.bias"
    }  # fmt: skip
    # The fixture's 400 random-play steps never score: nothing to fit the head on.
    with pytest.raises(DatasetError, match="--epochs 0 with a 'map' reward head"):
        plan_pretraining(dataset, str(tmp_path / "zero"), epochs=0, init_from=SHIPPED, hparams={"reward_head": "map"})
    with pytest.raises(ValueError, match=r"epochs=0 must be an integer >= 1 \(0 only with --init-from"):
        plan_pretraining(dataset, str(tmp_path / "fresh"), epochs=0)
    assert not (tmp_path / "zero").exists() and not (tmp_path / "fresh").exists()


def test_the_module_loads_the_pretrained_weights(pretrained):
    import gymnasium as gym

    from i2a_rllib.rl_module import I2ARLModule

    _, summary = pretrained
    saved, _ = load_env_model(summary["checkpoint"])
    module = I2ARLModule(
        observation_space=gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
        action_space=gym.spaces.Discrete(4),
        model_config={"env_model_checkpoint": summary["checkpoint"]},
    )
    loaded = module.net.env_model.state_dict()
    assert module.net.env_model.kind == "spatial"
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_pretrain_exports_the_model_with_the_best_held_out_loss(dataset, tmp_path):
    """A run whose last epoch is worse than an earlier one exports the earlier model
    (before the fix it exported the last)."""
    from types import SimpleNamespace

    import ray.train

    from i2a_rllib.pretrain.train import TRAIN_STATE_FILE, export_env_model, plan_pretraining

    plan = plan_pretraining(dataset, str(tmp_path / "run"), kind="latent", epochs=3)
    best_model, last_model = (
        build_env_model("latent", [4, 84, 84], 4) for _ in range(2)
    )
    state_dir = tmp_path / "checkpoint"
    state_dir.mkdir()
    torch.save(
        {
            "model": last_model.state_dict(),
            "epoch": 2,
            "best": {"model": best_model.state_dict(), "validation_loss": 0.1, "epoch": 2},
        },
        state_dir / TRAIN_STATE_FILE,
    )
    result = SimpleNamespace(checkpoint=ray.train.Checkpoint.from_directory(str(state_dir)), metrics={})
    summary = export_env_model(plan, result, evaluate=False)
    exported, metadata = load_env_model(summary["checkpoint"])
    for key, value in best_model.state_dict().items():
        assert torch.equal(exported.state_dict()[key], value), key
    assert any(
        not torch.equal(exported.state_dict()[k], v) for k, v in last_model.state_dict().items()
    )
    assert (metadata["best_epoch"], metadata["epochs_trained"]) == (2, 3)

    # A resumed run exports over the model its first run wrote.
    torch.save({"model": last_model.state_dict(), "epoch": 3, "best": {}}, state_dir / TRAIN_STATE_FILE)
    export_env_model(plan, result, evaluate=False)
    exported, metadata = load_env_model(summary["checkpoint"])
    for key, value in last_model.state_dict().items():
        assert torch.equal(exported.state_dict()[key], value), key
    assert (metadata["best_epoch"], metadata["epochs_trained"]) == (4, 4)


def test_pretrain_best_epoch_has_the_lowest_reported_held_out_loss(pretrained):
    output, summary = pretrained
    _, metadata = load_env_model(summary["checkpoint"])
    assert metadata["best_validation_loss"] <= summary["metrics"]["validation_loss"]
    assert 1 <= metadata["best_epoch"] <= metadata["epochs_trained"]


def test_multi_step_pretraining_survives_a_killed_worker_and_lowers_the_held_out_loss(pretrained, dataset):
    """The spatial model trained open loop over 1 -> 2 -> 3 steps (Ray Train, windows
    streamed by Ray Data) predicts held-out 3-step windows better than untrained, although
    one worker died in epoch 2 and the group restarted from epoch 1's checkpoint."""
    from i2a_rllib.data.windows import shard_windows
    from i2a_rllib.pretrain.train import _to_tensors, _untrained_model, plan_pretraining

    output, summary = pretrained
    assert os.path.exists(os.path.join(output, ".failed_once_epoch_2"))  # it did fail
    trained, metadata = load_env_model(summary["checkpoint"])
    assert metadata["epochs_trained"] == 3
    # Epoch 1's checkpoint was kept: the restarted workers began after it, not from scratch.
    assert summary["metrics"]["started_at_epoch"] == 1
    assert metadata["training"]["horizon"] == 3 and metadata["kind"] == "spatial"
    assert 0 < metadata["macs_per_imagined_step"] < 257_000_000 / 8

    # The held-out windows, re-planned in a fresh directory: the same split, same seed.
    plan = plan_pretraining(dataset, output + "_replanned", **PRETRAIN_SETTINGS)
    windows = [shard_windows(pq.read_table(os.path.join(dataset, n)), 3) for n in plan.validation_shards]
    batch = {k: np.concatenate([w[k] for w in windows]) for k in windows[0]}
    held_out = _to_tensors(batch, [4, 84, 84], 1, "cpu")

    def held_out_loss(model):
        with torch.no_grad():
            return float(model.sequence_loss(*held_out).total)

    assert held_out_loss(trained) < held_out_loss(_untrained_model(plan.train_config))


def test_init_from_fine_tunes_a_trained_model_at_the_full_horizon(ray_session, pretrained, dataset, tmp_path):
    """`--init-from` starts from the checkpoint's architecture and weights and trains every
    epoch at --horizon (a fresh model's one epoch of a 1 -> 2 -> 3 curriculum is at 1)."""
    from i2a_rllib.pretrain.train import pretrain

    _, source = pretrained
    start, start_metadata = load_env_model(source["checkpoint"])
    # A learning rate this small leaves the weights where they started: what is
    # exported shows where training began.
    summary = pretrain(
        dataset, str(tmp_path / "fine_tuned"), epochs=1, batch_size=16, lr=1e-12, horizon=3,
        num_workers=1, evaluate=False, log_every=1000, init_from=source["checkpoint"],
    )  # fmt: skip
    tuned, metadata = load_env_model(summary["checkpoint"])
    assert summary["metrics"]["horizon"] == 3
    assert metadata["hparams"] == start_metadata["hparams"] and metadata["kind"] == "spatial"
    assert metadata["training"]["init_from"] == os.path.abspath(source["checkpoint"])
    assert metadata["data_lineage"] == start_metadata["data_lineage"]  # the same data, counted once
    for key, value in start.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    untrained = build_env_model("spatial", [4, 84, 84], 4, hparams=start_metadata["hparams"])
    assert any(
        not torch.allclose(untrained.state_dict()[k], v) for k, v in start.state_dict().items()
        if v.is_floating_point()
    )


def test_pretrain_refuses_to_overwrite_a_finished_run(ray_session, pretrained, dataset):
    """(Resuming with --resume is checked on a killed run: tests/test_faults.py.)"""
    from i2a_rllib.pretrain.train import pretrain

    output, summary = pretrained
    before = os.path.getmtime(os.path.join(summary["checkpoint"], "env_model.pt"))
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(dataset, output, **PRETRAIN_SETTINGS, num_workers=1)
    assert os.path.getmtime(os.path.join(summary["checkpoint"], "env_model.pt")) == before


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lr_schedule_spans_every_epoch_of_every_worker(schedule):
    from i2a_rllib.pretrain.train import _lr_scheduler

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    # 640 rows, batch 32, 2 workers: 10 steps per epoch, 20 in 2 epochs.
    scheduler = _lr_scheduler(optimizer, {"lr_schedule": schedule, "train_rows": 640, "batch_size": 32, "epochs": 2}, 2)
    rates = []
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    # The state goes into every checkpoint, which torch.load reads with weights_only=True.
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    assert torch.load(buffer)["scheduler"]["last_epoch"] == 20
    if schedule == "constant":
        assert rates == [1e-3] * 20
    else:
        assert rates[9] == pytest.approx(0.5e-3) and rates[-1] == pytest.approx(0.0, abs=1e-12)
        assert all(a > b for a, b in zip(rates[:-1], rates[1:]))


def test_mismatched_checkpoints_are_rejected(pretrained):
    _, summary = pretrained
    _, metadata = load_env_model(summary["checkpoint"])
    with pytest.raises(CheckpointError, match="trained on 'ALE/Breakout-v5'.*'ALE/Pong-v5'"):
        check_env_model_metadata(metadata, (4, 84, 84), 4, "spatial", env_id="ALE/Pong-v5")
    with pytest.raises(CheckpointError, match="expects observations of shape"):
        check_env_model_metadata(metadata, (4, 64, 64), 4, "spatial")
    with pytest.raises(CheckpointError, match="has 4 actions, the environment 6"):
        check_env_model_metadata(metadata, (4, 84, 84), 6, "spatial")
    with pytest.raises(CheckpointError, match="is a 'spatial' model but env_model='pixel'"):
        check_env_model_metadata(metadata, (4, 84, 84), 4, "pixel")


def test_corrupt_checkpoint_files_are_clear_errors(pretrained, tmp_path):
    _, summary = pretrained
    broken = str(tmp_path / "broken")
    shutil.copytree(summary["checkpoint"], broken)
    weights = os.path.join(broken, "env_model.pt")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_env_model(broken)
    with open(os.path.join(broken, "metadata.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(CheckpointError, match="metadata.json' is corrupt"):
        load_env_model(broken)


def test_empty_corrupt_and_foreign_datasets_are_clear_errors(ray_session, dataset, tmp_path):
    from i2a_rllib.pretrain.train import pretrain

    with pytest.raises(DatasetError, match="does not exist"):
        pretrain(str(tmp_path / "nothing"), str(tmp_path / "out"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / MANIFEST_FILE).write_text(json.dumps({"env_id": ENV, "obs_shape": [4, 84, 84], "num_actions": 4, "frame_channels": 1, "policy": "random", "num_transitions": 0, "shards": {}}))
    with pytest.raises(DatasetError, match="is empty"):
        pretrain(str(empty), str(tmp_path / "out"))
    corrupt = str(tmp_path / "corrupt")
    shutil.copytree(dataset, corrupt)
    shard = os.path.join(corrupt, sorted(n for n in os.listdir(corrupt) if n.endswith(".parquet"))[0])
    with open(shard, "r+b") as f:
        f.truncate(100)
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        pretrain(corrupt, str(tmp_path / "out"))
    foreign = str(tmp_path / "foreign")
    shutil.copytree(dataset, foreign)
    manifest = json.load(open(os.path.join(foreign, MANIFEST_FILE)))
    manifest["obs_shape"] = [4, 64, 64]
    json.dump(manifest, open(os.path.join(foreign, MANIFEST_FILE), "w"))
    with pytest.raises(DatasetError, match="schema"):
        pretrain(foreign, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")  # nothing was written for bad input


def test_shift_playfield_moves_the_paddle_and_keeps_the_walls():
    from benchmarks.breakout_error_floor import shift_playfield

    band = np.zeros((3, 84), dtype=np.float32)
    band[:, :4] = band[:, 80:] = 0.5  # walls
    band[:, 20:28] = 1.0  # paddle
    moved = shift_playfield(band, 3)
    assert np.array_equal(np.nonzero(moved[0, 5:79])[0] + 5, np.arange(23, 31))
    assert np.array_equal(moved[:, :5], band[:, :5]) and np.array_equal(moved[:, 79:], band[:, 79:])
    half = shift_playfield(band, -1.5)
    assert np.allclose(half, 0.5 * shift_playfield(band, -2) + 0.5 * shift_playfield(band, -1))


def test_breakout_error_floor_runs_on_a_collected_dataset(dataset, monkeypatch, capsys):
    import re

    from benchmarks import breakout_error_floor

    monkeypatch.setattr("sys.argv", ["breakout_error_floor.py", dataset])
    breakout_error_floor.main()
    out = capsys.readouterr().out
    row_shares = [float(v) for v in re.findall(r"^  rows +\d+-\s*\d+: ([0-9.]+)", out, re.M)]
    assert len(row_shares) == 7 and abs(sum(row_shares) - 1.0) < 0.01
    ratios = [float(v) for v in re.findall(r"= ([0-9.]+) of the total copy error", out)]
    assert len(ratios) == 4 and all(r >= 0 for r in ratios)


def test_breakout_error_floor_names_a_missing_dataset(monkeypatch, tmp_path):
    from benchmarks import breakout_error_floor

    missing = str(tmp_path / "nothing_here")
    monkeypatch.setattr("sys.argv", ["breakout_error_floor.py", missing])
    with pytest.raises(SystemExit, match="does not exist.*i2a collect"):
        breakout_error_floor.main()


def test_stochastic_models_are_scored_on_one_draw_and_on_the_mean_of_draws(dataset):
    """Deterministic models have one error per horizon; stochastic ones (codes > 0) also
    the error of the mean of several draws, which differs from one draw's."""
    from i2a_rllib.data.format import read_rows
    from i2a_rllib.pretrain.evaluate import k_step_errors

    manifest = read_manifest(dataset)
    table = read_rows(dataset, sorted(manifest.shards)[:1])
    torch.manual_seed(0)
    deterministic = build_env_model("spatial", (4, 84, 84), 4)
    assert k_step_errors(deterministic, table, [4, 84, 84], 1, horizon=3, max_windows=8)["mean_error"] is None
    stochastic = build_env_model("spatial", (4, 84, 84), 4, hparams={"codes": 4})
    with torch.no_grad():
        stochastic.code_shift.weight.normal_(std=3.0)
        stochastic.transition_out.weight.normal_(std=0.3)
        stochastic.frame_out.conv.weight.normal_(std=0.3)
    errors = k_step_errors(stochastic, table, [4, 84, 84], 1, horizon=3, max_windows=8)
    assert len(errors["mean_error"]) == 3
    assert errors["mean_error"] != pytest.approx(errors["model_error"], rel=1e-3)


def test_validation_scores_a_stochastic_model_without_its_code_prior(dataset):
    """The held-out loss that picks the exported epoch is the frame + reward + latent
    loss; a stochastic model's code-prior term (which grows as its hypotheses learn to
    differ) is left out."""
    from i2a_rllib.data.windows import shard_windows
    from i2a_rllib.pretrain.train import EnvModelLossModule, _to_tensors, _validate

    windows = shard_windows(pq.read_table(os.path.join(dataset, sorted(read_manifest(dataset).shards)[0])), 2)
    batch = {key: value[:16] for key, value in windows.items()}

    class Batches:  # what Ray Data's iterator yields here: numpy batches
        def iter_batches(self, **_):
            yield batch

    torch.manual_seed(0)
    model = build_env_model("spatial", (4, 84, 84), 4, hparams={"codes": 3})
    config = {"batch_size": 16, "obs_shape": [4, 84, 84], "frame_channels": 1}
    torch.manual_seed(1)
    scored = _validate(EnvModelLossModule(model), Batches(), config, "cpu")["validation_loss"]
    torch.manual_seed(1)
    with torch.no_grad():
        loss = model.sequence_loss(*_to_tensors(batch, [4, 84, 84], 1, "cpu"))
    assert float(loss.code_prior) > 0.5  # log 3 at the start: a large share of the total
    assert scored == pytest.approx(float(loss.frame + loss.reward + loss.consistency), rel=1e-5)


def test_pretraining_arithmetic_alone_trains_the_exported_model_on_windows_in_memory(pretrained, dataset):
    """benchmarks/collection.py's reference for the pipeline's share: the same model and
    windows, no Ray; it runs, counts samples, and leaves torch's thread count as it was."""
    import math

    from benchmarks.collection import arithmetic_samples_per_s

    threads = torch.get_num_threads()
    rate = arithmetic_samples_per_s(os.path.join(pretrained[0], "env_model"), dataset, 2, 8, threads=1, steps=2)
    assert math.isfinite(rate) and rate > 0
    assert torch.get_num_threads() == threads
