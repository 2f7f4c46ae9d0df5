"""Multi-step training windows: consecutive steps of one episode, never across an
episode end or a shard."""

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from i2a_rllib.data.windows import shard_windows, table_window_rows, window_rows


def test_windows_hold_consecutive_steps_of_one_episode_and_end_only_at_their_last_step():
    # Actor 0, episode 7: steps 0..5, terminated at step 3 (a window may end there, not
    # pass it); actor 1 reuses the episode id 7 (ids are unique per actor only) for
    # steps 0..3. Rows are shuffled, as rows of several envs interleave in a shard.
    actor = np.array([0] * 6 + [1] * 4)
    episode = np.full(10, 7)
    step = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    ended = step == 3
    ended[6:] = False
    order = np.random.default_rng(0).permutation(10)
    actor, episode, step, ended = actor[order], episode[order], step[order], ended[order]
    rows = window_rows(actor, episode, step, ended, horizon=3)
    found = {(int(actor[w[0]]), *(int(step[r]) for r in w)) for w in rows}
    assert found == {(0, 0, 1, 2), (0, 1, 2, 3), (1, 0, 1, 2), (1, 1, 2, 3)}
    assert all((actor[w] == actor[w[0]]).all() for w in rows)
    assert window_rows(actor, episode, step, ended, horizon=1).shape == (10, 1)
    assert window_rows(actor, episode, step, ended, horizon=7).shape == (0, 7)
    with pytest.raises(ValueError, match="horizon=0"):
        window_rows(actor, episode, step, ended, horizon=0)


@pytest.mark.slow
def test_real_windows_replay_the_data_and_stay_inside_their_shard(ray_session, tmp_path):
    from i2a_rllib.data.collect import collect
    from i2a_rllib.data.format import decode_frames, read_manifest, read_rows
    from i2a_rllib.pretrain.train import window_dataset

    data = str(tmp_path / "breakout")
    collect("ALE/Breakout-v5", data, 600, num_actors=1, num_envs_per_actor=2, shard_size=200, seed=3)
    shards = sorted(read_manifest(data).shards)
    tables = [pq.read_table(os.path.join(data, name)) for name in shards]
    horizon = 4
    per_shard = [len(table_window_rows(t, horizon)) for t in tables]
    # One actor's episodes run on from shard to shard: windows of the concatenated data
    # would include some crossing a shard boundary; the dataset has none of them.
    across = len(table_window_rows(read_rows(data, shards), horizon))
    assert across > sum(per_shard) > 0
    rows = window_dataset(data, shards, horizon).take_all()
    assert len(rows) == sum(per_shard)

    table = tables[0]
    windows, rows = shard_windows(table, horizon), table_window_rows(table, horizon)
    obs = decode_frames(table.column("obs").to_numpy(zero_copy_only=False), (4, 84, 84))
    actions = table.column("action").to_numpy()
    assert np.array_equal(windows["actions"], actions[rows])
    assert np.array_equal(windows["obs"].reshape(-1, 4, 84, 84), obs[rows[:, 0]])
    # The k-th real frame of a window is the newest frame of the observation one step
    # later in the same episode: what the model's rebuilt stacks are made of.
    next_frames = windows["next_frames"].reshape(len(rows), horizon, 84, 84)
    for k in range(horizon - 1):
        assert np.array_equal(next_frames[:, k], obs[rows[:, k + 1], -1])
