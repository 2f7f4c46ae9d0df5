"""Pure-torch I2A components: batched imagination, encoder order, gradients, copy model."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.seed_reference import seed_loop_forward, seed_loop_imagination_code
from i2a_rllib.models.env_models import (
    CopyEnvModel,
    LatentEnvModel,
    PixelEnvModel,
    build_env_model,
)
from i2a_rllib.models.i2a import I2ANetwork
from i2a_rllib.models.imagination import ImaginationCore
from i2a_rllib.models.model_free import ConvTrunk
from i2a_rllib.models import distinct as row_groups
from i2a_rllib.models.distinct import (
    GROUPED_MIN_ROWS,
    OutputMemo,
    distinct_rows,
    embed_distinct,
    once_per_distinct_row,
    padded_count,
)
from i2a_rllib.models.rollout_encoder import RolloutEncoder, shared_prefixes
from i2a_rllib.models.rollout_policy import RolloutPolicy, sample_with_noise

SMALL_FRAMES = (4, 12, 12)  # a small frame stack keeps the pixel model fast in tests
ATARI_FRAMES = (4, 84, 84)


def _obs(batch, shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)


def _env_model(kind, shape, num_actions, **kwargs):
    """'dilated' is the pixel kind with the full-resolution architecture, 'folded' the
    spatial kind's architecture that keeps the folded frames."""
    factor = 2 if shape[1] % 4 == 0 and shape[2] % 4 == 0 else 1
    if kind == "dilated":
        hparams = {"architecture": "dilated", "channels": 8, "dilations": [1, 2], "factor": factor}
        return build_env_model("pixel", shape, num_actions, hparams=hparams, **kwargs)
    if kind in ("spatial", "folded"):
        hparams = {"factor": factor, "view_pool": 2 if factor == 2 else 1}
        if kind == "folded":
            hparams["architecture"] = "folded"
        return build_env_model("spatial", shape, num_actions, hparams=hparams, **kwargs)
    return build_env_model(kind, shape, num_actions, **kwargs)


def _network(kind, shape, num_actions, depth, choice, seed=0):
    torch.manual_seed(seed)
    env_model = _env_model(kind, shape, num_actions, frame_channels=1)
    return I2ANetwork(
        env_model,
        rollout_depth=depth,
        action_choice=choice,
        model_free_hidden=32,
        rollout_policy_hidden=32,
        encoder_feature_size=16,
        encoder_hidden=16,
        head_hidden=32,
    )


@pytest.mark.parametrize("num_actions", [4, 6, 18])
@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("kind", ["pixel", "dilated", "latent", "spatial", "folded", "copy"])
def test_batched_imagination_equals_seed_loop_argmax(kind, num_actions, depth):
    net = _network(kind, SMALL_FRAMES, num_actions, depth, "argmax").eval()
    obs = _obs(3, SMALL_FRAMES)
    with torch.no_grad():
        batched = net.encode_imagination(net.imagine(obs))
    looped = seed_loop_imagination_code(net, obs)
    assert batched.shape == (3, num_actions * 16)
    torch.testing.assert_close(batched, looped, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("num_actions", [4, 18])
@pytest.mark.parametrize("kind", ["pixel", "dilated", "latent", "spatial", "folded", "copy"])
def test_batched_imagination_equals_seed_loop_with_sampling_noise(kind, num_actions):
    net = _network(kind, SMALL_FRAMES, num_actions, 5, "sample").eval()
    obs = _obs(4, SMALL_FRAMES, seed=1)
    noise = net.imagination.sample_noise(4)
    assert noise.shape == (4, num_actions, 4)
    with torch.no_grad():
        batched_logits, _ = net(obs, noise=noise)
    torch.testing.assert_close(batched_logits, seed_loop_forward(net, obs, noise), atol=1e-4, rtol=1e-4)


def test_sampled_rollout_actions_follow_the_noise():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]]).repeat(4, 1)  # uniform over 4 actions
    uniform = torch.tensor([0.1, 0.3, 0.6, 0.99])
    assert sample_with_noise(logits, uniform).tolist() == [0, 1, 2, 3]


def test_same_noise_same_imagination_and_different_noise_differs():
    net = _network("latent", SMALL_FRAMES, 6, 5, "sample").eval()
    obs = _obs(8, SMALL_FRAMES, seed=2)
    noise = net.imagination.sample_noise(8)
    with torch.no_grad():
        first = net(obs, noise=noise)[0]
        again = net(obs, noise=noise)[0]
        other = net(obs, noise=torch.rand_like(noise))[0]
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)


def test_imagination_shapes_and_frame_views_are_uint8():
    net = _network("pixel", SMALL_FRAMES, 4, 3, "argmax")
    imagination = net.imagine(_obs(2, SMALL_FRAMES))
    assert imagination.views.shape == (2, 4, 3, 1, 12, 12)
    assert imagination.views.dtype == torch.uint8
    assert imagination.rewards.shape == (2, 4, 3)
    latent = _network("latent", ATARI_FRAMES, 4, 5, "sample").imagine(_obs(2, ATARI_FRAMES))
    assert latent.views.shape == (2, 4, 5, 128) and latent.views.dtype == torch.float32


def test_snapped_imagination_rounds_only_what_the_encoder_reads():
    """snap_frames rounds each imagined frame to 0 or 1 (one-hot boards); the model
    still steps on its own unrounded output, so the states and rewards are unchanged."""
    net = _network("pixel", SMALL_FRAMES, 4, 3, "sample")
    snapped = _network("pixel", SMALL_FRAMES, 4, 3, "sample")
    snapped.imagination.snap_frames = True
    obs = _obs(3, SMALL_FRAMES)
    noise = net.imagination.sample_noise(3)
    plain = net.imagination(net.model_state(obs), noise, keep_states=True)
    rounded = snapped.imagination(snapped.model_state(obs), noise, keep_states=True)
    assert set(rounded.views.unique().tolist()) <= {0, 255}
    assert len(plain.views.unique()) > 2  # the untrained model's frames are not binary
    views = net.env_model.view(plain.states.flatten(0, 2)).round().mul(255).to(torch.uint8)
    assert torch.equal(rounded.views, views.view_as(rounded.views))
    assert torch.equal(rounded.states, plain.states) and torch.equal(rounded.rewards, plain.rewards)


def test_first_imagined_step_takes_each_action():
    """Row a of every start state imagines action a first: the pixel model's first
    predicted frames must differ across actions (action planes differ)."""
    net = _network("pixel", SMALL_FRAMES, 4, 1, "argmax")
    with torch.no_grad():
        net.env_model.action_planes.normal_(0, 5.0)
        frames = net.env_model.initial_state(_obs(1, SMALL_FRAMES).float() / 255)
        next_states, _ = net.env_model.step_every_action(frames)
        one_by_one = torch.cat(
            [net.env_model.step(frames, torch.tensor([a]))[0] for a in range(4)]
        )
    torch.testing.assert_close(next_states, one_by_one, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(next_states[0], next_states[1])


def test_reverse_order_encoder_differs_from_forward_order():
    torch.manual_seed(0)
    encoder = RolloutEncoder((8,), feature_size=8, hidden_size=8)
    views = torch.randn(2, 5, 8)
    rewards = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    reverse = encoder(views, rewards)
    encoder.reverse = False
    forward = encoder(views, rewards)
    assert not torch.allclose(reverse, forward, atol=1e-4)
    # Reading in reverse is the same as reading the flipped sequence forwards.
    torch.testing.assert_close(reverse, encoder(views.flip(1), rewards.flip(1)))


# Small boards and larger frames (numpy's byte sort on a CPU; row hashes on a GPU).
@pytest.mark.parametrize("frame_shape", [(3, 6, 6), (3, 20, 20)])
def test_encoder_embeds_each_distinct_imagined_frame_once_with_the_same_result(frame_shape):
    torch.manual_seed(0)
    encoder = RolloutEncoder(frame_shape, feature_size=16, hidden_size=8)
    distinct = torch.randint(0, 256, (4, *frame_shape), dtype=torch.uint8)
    # 6 rollouts of 5 steps over 4 distinct frames (imagined frames repeat a lot).
    views = distinct[torch.randint(0, 4, (6, 5))]
    rewards = torch.randn(6, 5)
    seen = []
    encoder.features.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    codes = encoder(views, rewards)
    assert seen == [4]
    codes.sum().backward()
    grads = [p.grad.clone() for p in encoder.parameters()]
    # The same encoder without the sharing: every step embedded on its own.
    encoder.zero_grad()
    features = encoder.features(views.flatten(0, 1)).view(6, 5, -1)
    steps = torch.cat([features, rewards.unsqueeze(-1)], -1).flip(1)
    plain = encoder.lstm(steps)[1][0][-1]
    plain.sum().backward()
    assert seen == [4, 30]
    torch.testing.assert_close(codes, plain)
    for shared, alone in zip(grads, (p.grad for p in encoder.parameters())):
        torch.testing.assert_close(shared, alone)
    # Float views (latent maps) are embedded as they are.
    encoder(views.float() / 255, rewards)
    assert seen[-1] == 30


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_once_per_distinct_row_runs_each_row_once_with_the_same_outputs_and_gradients(dtype):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.Tanh())
    seen = []
    net.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    distinct = torch.randint(0, 2, (5, 3, 4, 4)).to(dtype)
    rows = distinct[torch.tensor([4, 0, 4, 2, 2, 2, 1, 0, 3] * 2)]
    run = lambda r: net(r.float())  # noqa: E731

    def outputs_and_grads(fn):
        net.zero_grad()
        out = fn(rows)
        (out * torch.arange(1.0, 19.0).unsqueeze(1)).sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters()]

    once, once_grads = outputs_and_grads(lambda r: once_per_distinct_row(run, r))
    every, every_grads = outputs_and_grads(run)
    assert seen == [5, 18]
    torch.testing.assert_close(once, every)
    for a, b in zip(once_grads, every_grads):
        torch.testing.assert_close(a, b)
    once_per_distinct_row(run, distinct)  # nothing repeats: every row, once
    assert seen[-1] == 5
    # Fewer than GROUPED_MIN_ROWS rows run whole, repeats and all: a small network costs
    # about the same for any count that small, less than finding the repeats.
    once_per_distinct_row(run, rows[:9])
    assert seen[-1] == 9 < GROUPED_MIN_ROWS


def test_output_memo_computes_each_new_row_once_per_weight_version(monkeypatch):
    """Rows seen before (since the weights last changed) are read back, new ones are
    computed once, in padded batches; any write to a weight, or a load_state_dict,
    empties it; a full memo starts over; a hash collision costs only a plain call."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(7 * 5 * 5, 4))
    seen = []
    net.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    run = lambda r: net(r.float())  # noqa: E731
    boards = torch.randint(0, 2, (12, 7, 5, 5), dtype=torch.uint8)
    memo = OutputMemo(net)
    with torch.no_grad():
        for rows, computed in ([0, 1, 0, 2], [3]), ([2, 1, 0, 2], None), ([5, 3, 4, 4, 6], [4]):
            seen.clear()
            torch.testing.assert_close(memo(boards[rows], run), run(boards[rows]))
            assert seen[:-1] == (computed or [])  # the last call is the check's own
        assert len(memo) == 7
        net.load_state_dict(net.state_dict())  # an EnvRunner's weight sync
        seen.clear()
        memo(boards[[0, 1]], run)
        assert seen == [2] and len(memo) == 2
        net[1].bias.add_(1.0)  # written in place: the old outputs are stale
        torch.testing.assert_close(memo(boards[[0, 1]], run), run(boards[[0, 1]]))
        memo.max_rows = 3
        torch.testing.assert_close(memo(boards[[7, 8]], run), run(boards[[7, 8]]))
        assert len(memo) == 2  # 2 + 2 > 3: started over
        seen.clear()
        import i2a_rllib.models.distinct as distinct

        monkeypatch.setattr(distinct, "row_hashes", lambda rows: torch.zeros(len(rows), dtype=torch.long))
        memo = OutputMemo(net)
        torch.testing.assert_close(memo(boards[[9, 10, 11]], run), run(boards[[9, 10, 11]]))


def _is_orthogonal_with_gain_sqrt2(weight):
    rows = weight.flatten(1)
    gram = rows @ rows.T if rows.shape[0] <= rows.shape[1] else rows.T @ rows
    return torch.allclose(gram, 2 * torch.eye(len(gram)), atol=1e-4)


def test_trunk_and_i2a_head_layer_start_with_the_ppo_init_and_features_of_usable_scale():
    """Orthogonal, gain sqrt(2), zero bias (baselines' / CleanRL's PPO init) on every
    layer of the model-free trunk and on I2A's layer over [model-free, codes]; with
    PyTorch's default init the trunk's features on Sokoban-like boards had rms ~0.02."""
    torch.manual_seed(0)
    trunk = ConvTrunk((7, 5, 5), 512)
    net = _network("pixel", SMALL_FRAMES, 4, 2, "sample")
    layers = [m for m in trunk.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    layers += [m for m in net.model_free.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    layers.append(net.head_fc[0])
    assert len(layers) == 9  # 3 convolutions + 1 linear per trunk, and the head layer
    for layer in layers:
        assert _is_orthogonal_with_gain_sqrt2(layer.weight), layer
        assert torch.count_nonzero(layer.bias) == 0
    boards = (torch.rand(256, 7, 5, 5) < 0.2).float()
    assert trunk(boards).pow(2).mean().sqrt() > 0.1
    # The heads keep their own gains (0.01 policy, 1 value).
    assert not _is_orthogonal_with_gain_sqrt2(net.heads.policy.weight)


def test_distinct_rows_run_in_a_few_padded_batch_sizes_with_the_same_outputs_and_gradients():
    # oneDNN builds convolution kernels per batch shape: the distinct rows run padded to
    # one of four sizes per doubling, the padding's outputs dropped.
    assert [padded_count(n) for n in (1, 8, 9, 17, 21, 33, 146, 439)] == [1, 8, 10, 20, 24, 40, 160, 448]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 6))
    seen = []
    net.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    distinct = torch.randint(0, 256, (21, 3, 4, 4), dtype=torch.uint8)
    order = torch.randint(0, 21, (60,))
    order[:21] = torch.arange(21)
    rows = distinct[order]
    run = lambda r: net(r.float() / 255)  # noqa: E731

    def outputs_and_grads(fn):
        net.zero_grad()
        out = fn(rows)
        (out * torch.linspace(-1.0, 1.0, len(out)).unsqueeze(1)).sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters()]

    once, once_grads = outputs_and_grads(lambda r: once_per_distinct_row(run, r))
    every, every_grads = outputs_and_grads(run)
    embedded, where = embed_distinct(run, rows)
    assert seen == [24, 60, 24]
    assert len(embedded) == 21 and len(where) == 60
    torch.testing.assert_close(once, every)
    torch.testing.assert_close(embedded[where], every.detach())
    for a, b in zip(once_grads, every_grads):
        torch.testing.assert_close(a, b)
    # Where the padded size would reach the batch's, every row runs as it is.
    assert embed_distinct(run, rows[:22])[1] is None and seen[-1] == 22
    # Large rows (Atari frames) run once each, unpadded: padding would only add rows.
    big = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 2))
    big.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    large = torch.randint(0, 256, (21, 3, 24, 24), dtype=torch.uint8)[order]
    assert len(embed_distinct(lambda r: big(r.float()), large)[0]) == 21 and seen[-1] == 21


def test_small_board_trunk_runs_once_per_distinct_board_atari_frames_every_row():
    torch.manual_seed(0)
    board = (7, 5, 5)
    boards = (torch.rand(3, *board) > 0.7).float()[torch.tensor([0, 1, 0, 0, 2, 1] * 3)]
    trunk = ConvTrunk(board, 32)
    assert trunk.once_per_distinct_row
    seen = []
    trunk.convs.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    once = trunk(boards)
    once.square().sum().backward()
    grads = [p.grad.clone() for p in trunk.parameters()]
    trunk.zero_grad()
    trunk.once_per_distinct_row = False
    every = trunk(boards)
    every.square().sum().backward()
    assert seen == [3, 18]
    torch.testing.assert_close(once, every)
    for a, b in zip(grads, (p.grad for p in trunk.parameters())):
        torch.testing.assert_close(a, b)
    assert not ConvTrunk((4, 84, 84)).once_per_distinct_row


@pytest.mark.parametrize("depth", [1, 2])
def test_small_board_network_runs_once_per_distinct_observation_and_imagination(depth, monkeypatch):
    """A row's features depend on its observation and imagination alone: the network
    runs once per distinct (board, imagined frames, rewards), with the same logits and
    gradients as row by row. At depth 1 a board's imagination is fixed; deeper, rows
    group only where the sampled rollouts agree too."""
    net = _network("pixel", (7, 5, 5), 5, depth, "sample")
    obs = _obs(3, (7, 5, 5))[torch.tensor([0, 1, 0, 2, 0, 1] * 3)]
    noise = torch.rand(3, 5, depth - 1)[torch.tensor([0, 1, 0, 2, 1, 1] * 3)]  # rows 4, 10, 16 roll out otherwise
    imagination = net.imagine(obs, noise)
    seen = []
    net.head_fc.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))

    def logits_and_grads():
        net.zero_grad()
        logits, features = net(obs, imagination=imagination)
        (logits.square().sum() + features.sum()).backward()
        # A one-step read through the fused LSTM gives its recurrent weights a zero
        # gradient where the step-by-step read gives none: the same update.
        return logits, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]

    once, once_grads = logits_and_grads()
    monkeypatch.setattr(I2ANetwork, "_distinct_inputs", lambda self, obs, imagination: (None, False))
    every, every_grads = logits_and_grads()
    rows = {tuple(t[i].numpy().tobytes() for t in (obs, imagination.views, imagination.rewards)) for i in range(18)}
    assert seen[0] == len(rows) < 18 and (depth > 1 or len(rows) == 3)  # fewer than 9 rows: no padding
    assert seen[1] == 18
    torch.testing.assert_close(once, every, atol=1e-5, rtol=1e-5)
    assert any(g.any() for g in once_grads)
    for a, b in zip(once_grads, every_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rows_grouped_by_hash_match_and_a_collision_falls_back_to_whole_rows(monkeypatch):
    # On a GPU rows are grouped by a 1-D unique over row hashes, checked against the rows
    # themselves; the same function runs here on CPU tensors.
    torch.manual_seed(0)
    distinct = torch.randint(0, 256, (5, 3 * 20 * 20), dtype=torch.uint8)
    rows = distinct[torch.tensor([3, 0, 3, 1, 1, 4, 0])]
    expected_groups = [[0, 2], [1, 6], [3, 4], [5]]

    def groups_in(found, grouped):
        first, where = found
        assert torch.equal(grouped[first][where], grouped)
        return sorted(sorted(torch.nonzero(where == g).flatten().tolist()) for g in range(len(first)))

    def groups_of(found):
        return groups_in(found, rows)

    by_hash = row_groups._distinct_rows_by_hash
    assert groups_of(distinct_rows(rows)) == groups_of(by_hash(rows)) == expected_groups
    assert distinct_rows(distinct) is None and by_hash(distinct) is None and by_hash(rows[:1]) is None
    # Rows of an odd number of bytes are padded to whole 16-bit words.
    odd = rows[:, :-1]
    assert groups_in(by_hash(odd), odd) == expected_groups
    # Rows that differ in one byte get different hashes.
    near = distinct[:1].repeat(64, 1)
    near[torch.arange(64), torch.arange(64) * 17] += 1
    assert len(torch.unique(row_groups.row_hashes(near))) == 64
    # Every row hashing alike (a collision) still gives the exact groups.
    monkeypatch.setattr(row_groups, "row_hashes", lambda r: torch.zeros(len(r), dtype=torch.int64))
    assert groups_of(by_hash(rows)) == expected_groups
    assert by_hash(distinct) is None


def test_shared_prefixes_is_the_tree_of_distinct_prefixes():
    # 5 sequences of 3 steps, one key per step: 0 and 1 are equal, 2 starts like them,
    # 3 and 4 share only their first key with each other.
    keys = torch.tensor([[7, 1, 2], [7, 1, 2], [7, 1, 5], [3, 1, 2], [3, 4, 2]]).unsqueeze(2)
    steps, last = shared_prefixes(keys)
    # Distinct prefixes per step: {7, 3}, {71, 31, 34}, {712, 715, 312, 342}.
    assert [len(first) for first, _ in steps] == [2, 3, 4]
    assert last[0] == last[1] and len(set(last.tolist())) == 4
    # Walking each sequence's node back through the parents gives its own keys.
    for row in range(5):
        node, read = last[row], []
        for t in reversed(range(3)):
            first, parent = steps[t]
            read.append(int(keys[first[node], t, 0]))
            node = parent[node]
        assert read[::-1] == keys[row, :, 0].tolist()


@pytest.mark.parametrize("frame_shape", [(3, 6, 6), (3, 20, 20)])
def test_encoder_reads_shared_rollout_prefixes_once_with_the_same_result(frame_shape):
    """Rollouts that end alike share the first steps of the reverse read, equal rollouts
    are read once: the same codes and gradients as the fused LSTM over every step."""
    torch.manual_seed(0)
    encoder = RolloutEncoder(frame_shape, feature_size=16, hidden_size=8)
    distinct = torch.randint(0, 256, (3, *frame_shape), dtype=torch.uint8)
    # Rollouts 0 and 1 end alike (their last two frames), 2 is 0 again; rollout 7 has
    # rollout 0's frames but another reward.
    ids = torch.tensor([[0, 1, 2, 2], [1, 1, 2, 2], [2, 2, 2, 2]])
    pick = torch.tensor([0, 1, 0, 2, 1, 0, 2, 0] * 2)  # 16 rollouts: fewer are read one by one
    views, rewards = distinct[ids[pick]], torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(16, 1)
    rewards[[7, 15], 3] = 1.0
    flipped_ids = ids[pick].flip(1)
    bits = rewards.flip(1).view(torch.int32).long()
    steps, _ = shared_prefixes(torch.stack([flipped_ids, bits], 2))
    # Read last step first: {2 with reward 0, 2 with reward 1}, then {22, 22'}, then
    # {221, 222, 221'}, then the 4 distinct rollouts: 11 LSTM steps instead of 32.
    assert [len(first) for first, _ in steps] == [2, 2, 3, 4]
    fused_rows = []
    encoder.lstm.register_forward_hook(lambda module, inputs, output: fused_rows.append(len(inputs[0])))
    codes = encoder(views, rewards)
    assert fused_rows == []  # the step-wise read over the prefixes, not the fused layer
    codes.pow(2).sum().backward()
    grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    steps = torch.cat([encoder.features(views.flatten(0, 1)).view(16, 4, -1), rewards.unsqueeze(-1)], -1)
    plain = encoder.lstm(steps.flip(1))[1][0][-1]
    plain.pow(2).sum().backward()
    torch.testing.assert_close(codes, plain)
    assert not torch.allclose(codes[7], codes[0])
    for shared, alone in zip(grads, (p.grad for p in encoder.parameters())):
        torch.testing.assert_close(shared, alone)
    # Rewards that carry a gradient (a model trained with the agent) are read one by one,
    # and each rollout's reward gets its own gradient.
    encoder.zero_grad()
    with_grad = rewards.clone().requires_grad_()
    called = len(fused_rows)
    torch.testing.assert_close(encoder(views, with_grad), plain)
    assert fused_rows[called:] == [16]
    encoder(views, with_grad).pow(2).sum().backward()
    assert (with_grad.grad != 0).all()


@pytest.mark.parametrize("kind", ["pixel", "dilated", "latent", "spatial", "folded"])
def test_gradients_skip_env_model_and_reach_the_rest(kind):
    net = _network(kind, SMALL_FRAMES, 4, 3, "sample")
    logits, features = net(_obs(4, SMALL_FRAMES))
    rollout_logits = net.rollout_policy_logits(_obs(4, SMALL_FRAMES))
    (logits.sum() + net.values(features).sum() + rollout_logits.sum()).backward()
    assert all(p.grad is None for p in net.env_model.parameters())
    assert all(not p.requires_grad for p in net.env_model.parameters())
    for part in (net.model_free, net.rollout_encoder, net.head_fc, net.heads, net.rollout_policy):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads), type(part).__name__
        assert any(g.abs().sum() > 0 for g in grads), type(part).__name__


def test_copy_model_returns_its_input_at_every_depth():
    model = CopyEnvModel(SMALL_FRAMES, 4)
    frames = _obs(3, SMALL_FRAMES).float() / 255
    state = model.initial_state(frames)
    for _ in range(5):
        state, reward = model.step(state, torch.zeros(3, dtype=torch.long))
        torch.testing.assert_close(state, frames)
        assert torch.all(reward == 0)
    net = I2ANetwork(model, rollout_depth=5, action_choice="sample")
    imagination = net.imagine(_obs(2, SMALL_FRAMES, seed=4))
    newest = (_obs(2, SMALL_FRAMES, seed=4)[:, -1:]).unsqueeze(1).unsqueeze(1)
    assert torch.equal(imagination.views, newest.expand_as(imagination.views))


def test_spatial_views_are_half_precision_maps_not_frames():
    net = _network("spatial", SMALL_FRAMES, 4, 3, "sample")
    imagination = net.imagine(_obs(2, SMALL_FRAMES))
    assert imagination.views.dtype == torch.float16
    assert imagination.views.shape == (2, 4, 3, 8, 3, 3)  # 12x12 folded to 6x6, pooled 2x
    assert not net.env_model.states_are_frames and not net.env_model.views_are_frames


@pytest.mark.parametrize("factor, channels_last", [(2, False), (2, True), (3, False)])
@pytest.mark.parametrize("kind", ["spatial", "dilated pixel"])
def test_convolutions_over_folded_frames_read_the_frames_directly(kind, factor, channels_last):
    """The spatial encoder's first convolution and the dilated pixel model's frame
    convolution run as one strided convolution over the frames (`folded_conv`); their
    outputs and weight gradients equal those of folding the frames (pixel_unshuffle)
    first, up to rounding, in both memory layouts the module and pretraining use."""
    torch.manual_seed(0)
    if kind == "spatial":
        model = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"factor": factor, "view_pool": 4})
        conv = model.encoder[0]
        run, rest = model.initial_state, lambda x: torch.tanh(model.encoder[1:](x))
    else:
        model = build_env_model("pixel", ATARI_FRAMES, 4, hparams={"architecture": "dilated", "factor": factor})
        conv, run, rest = model.frames_conv, model._state_features, lambda x: x
    if channels_last:
        model.to(memory_format=torch.channels_last)
    frames = torch.rand(3, *ATARI_FRAMES)
    out = run(frames)
    expected = rest(conv(torch.nn.functional.pixel_unshuffle(frames, factor)))
    assert out.shape == expected.shape and out.shape[-2:] == (84 // factor, 84 // factor)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    (gradient,) = torch.autograd.grad(out.square().sum(), conv.weight)
    (expected_gradient,) = torch.autograd.grad(expected.square().sum(), conv.weight)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["spatial", "latent", "pixel"])
def test_imagination_runs_under_bf16_autocast_close_to_fp32(kind):
    """The learner's bf16 precision imagines under autocast: float16 maps must still
    stack (autocast refused them before), and the codes stay close to fp32's."""
    net = _network(kind, SMALL_FRAMES, 4, 3, "argmax")
    obs = _obs(2, SMALL_FRAMES)
    logits, _ = net(obs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        imagination = net.imagine(obs)
        bf16_logits, _ = net(obs, imagination=imagination)
    assert bf16_logits.dtype == torch.bfloat16
    # Frames (uint8), maps (float16) and latent vectors (float32) keep their storage
    # type under autocast, and rewards are float32.
    assert imagination.views.dtype == net.imagine(obs).views.dtype
    assert imagination.rewards.dtype == torch.float32
    torch.testing.assert_close(bf16_logits.float(), logits, atol=0.02, rtol=0.05)


def _moving_dot_windows(n, steps=3):
    """Windows of a dot on a 16x16 board that the action moves one cell left (0) or
    right (1) a step: 2-frame stacks (B, 2, 16, 16), actions (B, K), next frames
    (B, K, 1, 16, 16)."""
    rows, cols = torch.randint(0, 16, (n,)), torch.randint(4, 12, (n,))
    actions = torch.randint(0, 2, (n, steps))
    index = torch.arange(n)
    frames, following = torch.zeros(n, 2, 16, 16), torch.zeros(n, steps, 1, 16, 16)
    frames[index, 0, rows, cols - 1 + 2 * torch.randint(0, 2, (n,))] = 1.0  # older frame
    frames[index, 1, rows, cols] = 1.0
    position = cols.clone()
    for k in range(steps):
        position = position + 2 * actions[:, k] - 1
        following[index, k, 0, rows, position] = 1.0
    return frames, actions, following


@pytest.mark.parametrize(
    "hparams,updates,bound,action_difference",
    [
        ({"channels": 8}, 500, 0.6, None),
        ({"architecture": "folded", "view_pool": 2}, 400, 0.5, 0.2),
    ],
)
def test_spatial_models_start_as_copy_and_learn_a_dot_moved_by_the_action_open_loop(
    hparams, updates, bound, action_difference
):
    """Both spatial architectures: untrained, every imagined frame is the last real one;
    trained over 3-step windows of a dot whose move (one cell left or right a step) the
    action decides, the 3-step open-loop prediction beats copying the last frame. The
    folded one's frames also differ between the actions (an action-blind model's would
    not differ at all); the `conv` one's differ by ~0.04 here, the blindness it shows
    on Breakout (docs/results.md), so no bound is set for it."""
    torch.manual_seed(0)
    model = build_env_model("spatial", (2, 16, 16), 2, hparams=hparams)
    frames, actions, following = _moving_dot_windows(256)
    copy_error = float(((frames[:, 1:].unsqueeze(1) - following) ** 2).mean())
    with torch.no_grad():
        untrained = float(((model.predict_frames(frames, actions)[0] - following) ** 2).mean())
    assert untrained == pytest.approx(copy_error, rel=0.05)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(updates):
        train = _moving_dot_windows(32)
        loss = model.sequence_loss(train[0], train[1], torch.zeros(32, 3), train[2])
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    with torch.no_grad():
        trained = float(((model.predict_frames(frames, actions)[0] - following) ** 2).mean())
        left = model.predict_frames(frames, torch.zeros_like(actions))[0]
        right = model.predict_frames(frames, torch.ones_like(actions))[0]
    assert trained < bound * copy_error
    if action_difference is not None:
        assert float((left - right).abs().flatten(1).amax(1).mean()) > action_difference


@pytest.mark.parametrize("over_latent", [False, True])
def test_copy_model_encodes_each_state_once_with_the_same_codes_and_gradients(over_latent):
    """The copy model's shortcut (one view embedded and one LSTM pass per state, the code
    repeated for every action) gives the per-rollout path's codes and gradients."""
    torch.manual_seed(0)
    base = LatentEnvModel(SMALL_FRAMES, 4) if over_latent else None
    net = I2ANetwork(CopyEnvModel(SMALL_FRAMES, 4, base=base), rollout_depth=5, encoder_feature_size=16,
                     encoder_hidden=16, model_free_hidden=32, head_hidden=32)  # fmt: skip
    obs = _obs(6, SMALL_FRAMES, seed=3)
    obs[1] = obs[0]  # two states alike, as on a board game: de-duplication stays exact
    imagination = net.imagine(obs)
    # Imagination calls neither the model nor the rollout policy: one view, broadcast.
    assert imagination.views.stride()[1:3] == (0, 0)
    embedded = []
    net.rollout_encoder.features.register_forward_hook(lambda m, inputs, out: embedded.append(len(inputs[0])))

    def codes_and_grads(encode):
        net.zero_grad()
        codes = encode()
        (codes * torch.arange(codes.numel()).view_as(codes).sin()).sum().backward()
        return codes.detach(), [p.grad.clone() for p in net.rollout_encoder.parameters()]

    shortcut, shortcut_grads = codes_and_grads(lambda: net.encode_imagination(imagination))
    rollouts = imagination.views.flatten(0, 1).contiguous(), imagination.rewards.flatten(0, 1)
    per_rollout, per_rollout_grads = codes_and_grads(lambda: net.rollout_encoder(*rollouts).view(6, -1))
    # The shortcut embeds the 6 states' views once (all 6: fewer than GROUPED_MIN_ROWS
    # rows run whole; float latents are never de-duplicated); the per-rollout path the
    # A x depth = 20 latents per state, or, eager, the 5 distinct frames after comparing
    # all 120 (under torch.compile it embeds all 120).
    assert embedded == ([6, 120] if over_latent else [6, 5])
    torch.testing.assert_close(shortcut, per_rollout, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(shortcut_grads, per_rollout_grads):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)


def test_copy_model_over_a_latent_encoder_keeps_the_latent():
    base = LatentEnvModel(SMALL_FRAMES, 4)
    model = CopyEnvModel(SMALL_FRAMES, 4, base=base)
    frames = _obs(2, SMALL_FRAMES).float() / 255
    latent = model.initial_state(frames)
    torch.testing.assert_close(latent, base.initial_state(frames))
    assert torch.equal(model.step(latent, torch.tensor([1, 2]))[0], latent)


@pytest.mark.parametrize("kind", ["pixel", "dilated", "latent", "spatial", "folded"])
@pytest.mark.parametrize("shape,frame_channels", [((4, 84, 84), 1), ((7, 10, 10), 7), ((6, 15, 19), 6)])
def test_env_models_on_atari_and_board_frames(kind, shape, frame_channels):
    model = _env_model(kind, shape, 5, frame_channels=frame_channels, reward_values=[-1, 0, 1, 10])
    frames = torch.rand(2, *shape)
    actions = torch.tensor([0, 4])
    next_state, reward = model.step(model.initial_state(frames), actions)
    assert next_state.shape == (2, *model.state_shape)
    assert reward.shape == (2,)
    loss = model.loss(frames, actions, torch.tensor([0.0, 10.0]), torch.rand(2, frame_channels, *shape[1:]))
    loss.total.backward()
    predicted, rewards = model.predict_frames(frames, torch.zeros(2, 3, dtype=torch.long))
    assert predicted.shape == (2, 3, frame_channels, *shape[1:])
    assert 0.0 <= float(predicted.detach().min()) and float(predicted.detach().max()) <= 1.0


def test_pixel_model_pushes_the_predicted_frame_into_the_stack():
    model = PixelEnvModel(SMALL_FRAMES, 4)
    frames = torch.rand(2, *SMALL_FRAMES)
    next_state, _ = model.step(frames, torch.tensor([0, 1]))
    torch.testing.assert_close(next_state[:, :3], frames[:, 1:])


@pytest.mark.parametrize("shape", [(7, 5, 5), ATARI_FRAMES])
def test_pixel_models_decoder_gives_what_its_transposed_convolutions_give(shape, monkeypatch):
    """On small boards the stride-1 transposed convolutions run as plain ones (kernel
    flipped): the same frames, rewards and weight gradients as the layers' own forward;
    Atari's stride-2 ones run as they are."""
    torch.manual_seed(0)
    model = PixelEnvModel(shape, 5, frame_channels=shape[0], channels=8)
    frames, actions = torch.rand(3, *shape), torch.tensor([0, 3, 4])

    def run(reference):
        model.zero_grad()
        first = model._state_features(frames) + model._action_effects()[actions]
        if reference:  # the decoder spelled out with the layers' own forward
            hidden_1 = F.relu(first)
            encoded = model.encoder(hidden_1)
            own = nn.ConvTranspose2d.forward
            x = F.relu(own(model.decoder_1, encoded, output_size=hidden_1.shape[-2:]))
            x = F.relu(own(model.decoder_2, x, output_size=frames.shape[-2:]))
            frame, rewards = model.frame_out(x, model.newest_frame(frames)), model.reward_head(encoded)
        else:
            frame, rewards = model._decode(first, frames)
        (frame.square().sum() + rewards.sum()).backward()
        return frame.detach(), rewards.detach(), [p.grad.clone() for p in model.parameters()]

    own_calls, hooked = [], []
    original = nn.ConvTranspose2d.forward
    monkeypatch.setattr(nn.ConvTranspose2d, "forward", lambda *a, **k: own_calls.append(1) or original(*a, **k))
    model.decoder_1.register_forward_hook(lambda *args: hooked.append(1))
    ours = run(False)
    assert len(own_calls) == (0 if shape[1] < 36 else 2)  # which path ran
    assert hooked == [1]  # a module call either way: hooks (the MAC count) see the decoder
    reference = run(True)
    torch.testing.assert_close(ours[:2], reference[:2], rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(ours[2], reference[2]):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)


def test_reward_classes_map_rewards_to_nearest_value():
    model = build_env_model("pixel", SMALL_FRAMES, 4, reward_values=[-1.0, 0.0, 1.0])
    assert model.reward_class(torch.tensor([-4.0, 0.2, 7.0])).tolist() == [0, 1, 2]


def test_unknown_env_model_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown environment model kind 'dreamer'"):
        build_env_model("dreamer", SMALL_FRAMES, 4)


def test_change_weight_counts_the_changed_pixels_more():
    """Without a weight the frame loss is the plain Bernoulli loss; with weight w, the
    same error costs 1 + w times more on a pixel that changed since the previous real
    frame than on one that did not, and the weighted mean is exact."""
    shape = (1, 8, 8)
    plain = build_env_model("spatial", shape, 2, hparams={"factor": 1, "view_pool": 1})
    weighted = build_env_model(
        "spatial", shape, 2, hparams={"factor": 1, "view_pool": 1, "change_weight": 3.0}
    )
    previous = torch.zeros(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    target[:, 0, 4, 4] = 1.0  # one pixel changed
    off_changed, off_still = target.clone(), target.clone()
    off_changed[:, 0, 4, 4] = 0.7  # the same error on the changed pixel ...
    off_still[:, 0, 0, 0] = 0.3  # ... and on a pixel that did not change
    bce = torch.nn.functional.binary_cross_entropy
    assert torch.isclose(
        plain.frame_loss(off_changed, target, previous), bce(off_changed.clamp(1e-6, 1 - 1e-6), target)
    )
    base = weighted.frame_loss(target, target, previous)
    extra_changed = weighted.frame_loss(off_changed, target, previous) - base
    extra_still = weighted.frame_loss(off_still, target, previous) - base
    assert float(extra_changed / extra_still) == pytest.approx(4.0, rel=1e-3)
    per_pixel = bce(off_changed.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    weight = torch.ones_like(target) + 3.0 * (target != previous).float()
    assert torch.isclose(
        weighted.frame_loss(off_changed, target, previous), (per_pixel * weight).sum() / weight.sum()
    )
    assert weighted.metadata()["hparams"]["change_weight"] == 3.0
    with pytest.raises(ValueError, match="change_weight=-1.0 must be >= 0"):
        build_env_model("spatial", shape, 2, hparams={"factor": 1, "view_pool": 1, "change_weight": -1.0})


def test_change_weighted_sequence_loss_compares_each_step_with_the_real_frame_before_it():
    """Open loop over 2 steps: a dot that appears at step 1 and stays is a change at
    step 1 only; the weighted loss of a model that misses it at both steps is the
    weighted mean over both steps with weight 1 + w at step 1's dot alone."""
    torch.manual_seed(0)
    shape = (1, 8, 8)
    model = build_env_model("spatial", shape, 2, hparams={"factor": 1, "view_pool": 1, "change_weight": 5.0})
    frames = torch.zeros(3, *shape)
    following = torch.zeros(3, 2, 1, 8, 8)
    following[:, :, 0, 2, 2] = 1.0
    actions = torch.zeros(3, 2, dtype=torch.long)
    loss = model.sequence_loss(frames, actions, torch.zeros(3, 2), following)
    with torch.no_grad():
        predicted, _ = model.predict_frames(frames, actions)
    bce = torch.nn.functional.binary_cross_entropy(
        predicted.clamp(1e-6, 1 - 1e-6), following, reduction="none"
    )
    weight = torch.ones_like(following)
    weight[:, 0, 0, 2, 2] = 6.0
    assert torch.isclose(loss.frame, (bce * weight).sum() / weight.sum(), rtol=1e-4)


def _coin_flip_windows(n, shape=(2, 16, 16), generator=None):
    """A dot that moves one cell left or right at random, whatever the action: the
    frames cannot tell which, so a deterministic model can only predict both halves."""
    rows, cols = torch.randint(2, 14, (n,), generator=generator), torch.randint(2, 14, (n,), generator=generator)
    index = torch.arange(n)
    frames = torch.zeros(n, *shape)
    frames[index, :, rows, cols] = 1.0
    side = 2 * torch.randint(0, 2, (n,), generator=generator) - 1
    following = torch.zeros(n, 1, 1, *shape[1:])
    following[index, 0, 0, rows, cols + side] = 1.0
    return frames, torch.zeros(n, 1, dtype=torch.long), torch.zeros(n, 1), following, rows, cols


def _coin_flip_samples(model, generator):
    """(mean brightness of a sample's brighter side cell, share of samples lit right of
    the dot) on 256 held-out coin flips (windows from `generator`, so checking does not
    change training). The side cells, not the whole frame: an untrained model copies the
    dot where it was, brightly."""
    frames, actions, _, _, rows, cols = _coin_flip_windows(256, generator=generator)
    with torch.no_grad():
        predicted, _ = model.predict_frames(frames, actions)
    index = torch.arange(256)
    left, right = predicted[index, 0, 0, rows, cols - 1], predicted[index, 0, 0, rows, cols + 1]
    return float(torch.maximum(left, right).mean()), float((right > left).float().mean())


def _train_on_coin_flips(model, steps, check_every=None, settle=100):
    """Adam on fresh coin flips; with `check_every`, stops `settle` steps after samples
    got sharp (the prior learns the odds once the hypotheses have split)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    held_out = torch.Generator().manual_seed(1234)
    stop = steps
    for step in range(1, steps + 1):
        frames, actions, rewards, following, _, _ = _coin_flip_windows(32)
        loss = model.sequence_loss(frames, actions, rewards, following)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        if step == stop:
            break
        if check_every and stop == steps and step % check_every == 0:
            if _coin_flip_samples(model, held_out)[0] > 0.85:
                stop = step + settle
    return loss


def test_deterministic_spatial_model_blurs_a_coin_flip():
    """On a coin flip the deterministic model predicts a dim dot on both sides."""
    torch.manual_seed(0)
    model = build_env_model("spatial", (2, 16, 16), 2, hparams={"factor": 1, "view_pool": 1})
    loss = _train_on_coin_flips(model, 300)
    assert loss.code_prior is None
    peak, _ = _coin_flip_samples(model, torch.Generator().manual_seed(99))
    assert peak < 0.75  # both sides half lit


def test_stochastic_spatial_model_samples_sharp_outcomes_where_the_deterministic_one_blurs():
    """With per-step codes the model draws one bright dot per sample, on either side
    about half the time, and its prior stays uncertain (cross-entropy near log 2).
    Winner-takes-all splits the hypotheses only by chance: which seeds split, and when,
    depends on the seed and even on the CPU's rounding (docs/results.md: seeds 0 / 1 / 2
    split at ~500 steps / never / ~200 on one machine; seed 0 at ~250 on another). So
    the test asks for a split within 500 steps in one of 4 seeds, then checks it 100
    steps later, against a bar of 0.8: still well above the deterministic model's
    blur (< 0.75, the test above; ~0.5), while a split seen at 0.85 may sit just under
    it 100 steps on (2026-12-04, a new VM, one torch thread: seed 0 split at step 300
    and read 0.842 at step 400)."""
    for seed in range(4):
        torch.manual_seed(seed)
        model = build_env_model("spatial", (2, 16, 16), 2, hparams={"factor": 1, "view_pool": 1, "codes": 4})
        loss = _train_on_coin_flips(model, 500, check_every=50)
        peak, right = _coin_flip_samples(model, torch.Generator().manual_seed(99))
        if peak > 0.8:
            break
    assert peak > 0.8, "no seed of 4 split the two outcomes within 500 steps"
    assert 0.25 < right < 0.75
    assert float(loss.code_prior) > 0.5  # the prior cannot call the coin


def test_stochastic_spatial_model_interface():
    """Hypotheses per step are recorded, one code (1 hypothesis) is refused; stepping
    every action of a state keeps rows b * A + a; two draws differ once the codes act."""
    with pytest.raises(ValueError, match="codes=1: 0 .deterministic. or >= 2"):
        build_env_model("spatial", ATARI_FRAMES, 4, hparams={"codes": 1})
    model = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"codes": 4})
    assert model.metadata()["hparams"]["codes"] == 4
    state = model.initial_state(torch.rand(3, *ATARI_FRAMES))
    next_states, rewards = model.step_every_action(state)
    assert next_states.shape == (12, *model.state_shape) and rewards.shape == (12,)
    with torch.no_grad():
        model.code_shift.weight.normal_(std=3.0)
        model.code_prior.bias.zero_()
    torch.manual_seed(0)
    first, _ = model.step(state, torch.zeros(3, dtype=torch.long))
    second, _ = model.step(state, torch.zeros(3, dtype=torch.long))
    assert not torch.allclose(first, second)
    # An I2A network imagines with it (codes drawn at every imagined step).
    net = I2ANetwork(model, rollout_depth=2)
    imagination = net.imagine(_obs(2, ATARI_FRAMES))
    assert imagination.views.shape[:3] == (2, 4, 2)


@pytest.mark.parametrize(
    "kind,hparams,message",
    [
        ("pixel", {"architecture": "unet"}, "Unknown pixel architecture 'unet'"),
        ("pixel", {"architecture": "dilated", "factor": 5}, "factor=5 needs frames"),
        ("pixel", {"chanels": 8}, r"Unknown hparams \['chanels'\] for PixelEnvModel"),
        ("latent", {"latent": 8}, r"Unknown hparams \['latent'\] for LatentEnvModel"),
        ("spatial", {"reward_head": "pixels"}, "reward_head='pixels': 'features'"),
        ("spatial", {"reward_prior": [0.5, 0.5]}, r"reward_prior=\[0.5, 0.5\] must hold one frequency"),
        ("spatial", {"architecture": "folded", "view_pool": 50}, "view_pool=50 must be between 1 and"),
        ("spatial", {"architecture": "folded", "codes": 4}, r"Unknown hparams \['codes'\] for FoldedFrameEnvModel"),
        ("spatial", {"architecture": "folded", "reward_head": "features"}, "reward_head='features': 'frames'"),
        ("spatial", {"architecture": "folded", "reward_prior": [1.0]}, r"folded spatial model: reward_prior=\[1.0\]"),
    ],
)
def test_bad_env_model_hparams_are_named(kind, hparams, message):
    with pytest.raises(ValueError, match=message):
        build_env_model(kind, ATARI_FRAMES, 4, hparams=hparams)


def test_dilated_pixel_model_is_rebuilt_from_its_metadata():
    from i2a_rllib.models.env_models import DilatedPixelEnvModel, build_env_model_from_metadata

    torch.manual_seed(0)
    model = build_env_model("pixel", ATARI_FRAMES, 4, hparams={"architecture": "dilated", "channels": 8})
    metadata = model.metadata()
    assert metadata["kind"] == "pixel"
    assert metadata["hparams"] == {
        "architecture": "dilated", "channels": 8, "dilations": [1, 2, 4, 8, 1], "factor": 2,
        "frame_head": "logit",
    }
    rebuilt = build_env_model_from_metadata(metadata)
    assert isinstance(rebuilt, DilatedPixelEnvModel)
    rebuilt.load_state_dict(model.state_dict())
    frames, actions = torch.rand(2, *ATARI_FRAMES), torch.tensor([1, 3])
    torch.testing.assert_close(rebuilt.predict(frames, actions), model.predict(frames, actions))
    # A seed-architecture checkpoint (no 'architecture' in its hparams) still loads as the seed's model.
    assert type(build_env_model_from_metadata(PixelEnvModel(SMALL_FRAMES, 4).metadata())) is PixelEnvModel


def test_pixel_checkpoints_from_before_the_frame_head_choice_load_with_the_gate_head():
    """Metadata written before `frame_head` existed has no such key: those models had the
    gated canvas head, and their weights must load into the same head."""
    from i2a_rllib.models.env_models import CanvasFrameHead, build_env_model_from_metadata

    old = build_env_model(
        "pixel", ATARI_FRAMES, 4,
        hparams={"architecture": "dilated", "channels": 8, "frame_head": "gate"},
    )
    metadata = old.metadata()
    del metadata["hparams"]["frame_head"]
    rebuilt = build_env_model_from_metadata(metadata)
    assert isinstance(rebuilt.frame_out, CanvasFrameHead)
    rebuilt.load_state_dict(old.state_dict())


def test_unknown_frame_head_is_named():
    with pytest.raises(ValueError, match="Unknown frame_head 'blend'; choose one of"):
        build_env_model("pixel", ATARI_FRAMES, 4, hparams={"architecture": "dilated", "frame_head": "blend"})


@pytest.mark.parametrize("frame_head", ["logit", "gate"])
def test_dilated_pixel_model_starts_as_copy_and_learns_a_moving_dot(frame_head):
    """Both frame heads start as the last frame (logit: zero correction; gate: closed on
    the canvas); a few hundred Adam steps on a dot that moves one pixel left or right by
    the action must beat copying."""
    torch.manual_seed(0)
    shape = (2, 16, 16)
    model = build_env_model(
        "pixel", shape, 2,
        hparams={"architecture": "dilated", "channels": 16, "dilations": [1, 2], "frame_head": frame_head},
    )

    def batch(n):
        rows, cols = torch.randint(0, 16, (n,)), torch.randint(1, 15, (n,))
        actions = torch.randint(0, 2, (n,))
        frames, following = torch.zeros(n, *shape), torch.zeros(n, 1, 16, 16)
        index = torch.arange(n)
        frames[index, 1, rows, cols] = 1.0
        following[index, 0, rows, cols + 2 * actions - 1] = 1.0
        return frames, actions, following

    frames, actions, following = batch(256)
    copy_error = float(((frames[:, 1:] - following) ** 2).mean())
    with torch.no_grad():
        untrained = float(((model.predict(frames, actions)[0] - following) ** 2).mean())
    assert untrained == pytest.approx(copy_error, rel=0.05)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        train_frames, train_actions, train_following = batch(32)
        loss = model.loss(train_frames, train_actions, torch.zeros(32), train_following)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    with torch.no_grad():
        trained = float(((model.predict(frames, actions)[0] - following) ** 2).mean())
    assert trained < 0.3 * copy_error


def test_folded_model_views_maps_steps_every_action_alike_and_is_rebuilt_from_metadata(tmp_path):
    from i2a_rllib.checkpoints import load_env_model, save_env_model
    from i2a_rllib.models.env_models import FoldedFrameEnvModel
    from i2a_rllib.models.env_models.cost import macs_per_imagined_step

    torch.manual_seed(0)
    model = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"architecture": "folded"})
    assert isinstance(model, FoldedFrameEnvModel)
    assert model.state_shape == (16 + 8, 42, 42) and model.view_shape == (8, 10, 10)
    assert not model.states_are_frames and not model.views_are_frames
    # 8.1 MMAC per imagined step (4.6 for the frames, 3.6 for the reward's own
    # convolutions): 1/30 of the pixel model's ~257 MMAC.
    assert macs_per_imagined_step(model) < 9_000_000
    with torch.no_grad():  # make the step depend on the action and the frames
        model.frame_out.weight.normal_(0, 0.1)
    frames = torch.rand(3, *ATARI_FRAMES)
    state = model.initial_state(frames)
    torch.testing.assert_close(model.frame_of(state, None), frames[:, -1:])
    every, rewards = model.step_every_action(state)
    for action in range(4):
        one, reward = model.step(state, torch.full((3,), action))
        torch.testing.assert_close(every[action::4], one)
        torch.testing.assert_close(rewards[action::4], reward)
    # The stack moves on by one frame (the imagined one is the newest).
    stepped = every[1::4]
    torch.testing.assert_close(torch.nn.functional.pixel_shuffle(stepped[:, :12], 2), frames[:, 1:])
    save_env_model(model, str(tmp_path / "folded"))
    loaded, metadata = load_env_model(str(tmp_path / "folded"))
    assert metadata["kind"] == "spatial" and metadata["hparams"]["architecture"] == "folded"
    assert isinstance(loaded, FoldedFrameEnvModel)
    actions = torch.tensor([[0, 3], [2, 1], [1, 1]])
    torch.testing.assert_close(loaded.predict_frames(frames, actions)[0], model.predict_frames(frames, actions)[0])


def test_folded_model_reward_loss_trains_only_the_reward_convolutions():
    """The reward loss must not reach the frames' path: through the transition's
    features it held Breakout's imagined frames near copy (docs/results.md)."""
    torch.manual_seed(0)
    model = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"architecture": "folded"})
    with torch.no_grad():  # a frame correction that depends on the features
        model.frame_out.weight.normal_(0, 0.1)
    frames = torch.rand(2, *ATARI_FRAMES)
    actions, rewards = torch.tensor([[2, 3], [1, 0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    next_frames = torch.rand(2, 2, 1, 84, 84)
    model.sequence_loss(frames, actions, rewards, next_frames).reward.backward()
    reward_path = {"reward_stack_conv", "reward_frame_conv", "reward_body", "reward_out"}
    for name, parameter in model.named_parameters():
        grad = parameter.grad
        if name.split(".")[0] in reward_path:
            assert grad is not None and grad.abs().sum() > 0, name
        else:
            assert grad is None or not grad.any(), f"the reward loss reached {name}"


def test_folded_model_map_reward_head_reads_the_stack_once_per_state_and_costs_less():
    """reward_head='map': the reward comes from the stack before the step (the same for
    every action of a state), the reward loss trains only that head, and a step costs
    ~5.2 MMAC instead of ~8.1."""
    from i2a_rllib.models.env_models.cost import macs_per_imagined_step

    torch.manual_seed(0)
    frames_head = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"architecture": "folded"})
    model = build_env_model("spatial", ATARI_FRAMES, 4, hparams={"architecture": "folded", "reward_head": "map"})
    assert macs_per_imagined_step(model) < 5_500_000 < 8_000_000 < macs_per_imagined_step(frames_head)
    with torch.no_grad():
        model.frame_out.weight.normal_(0, 0.1)
    state = model.initial_state(torch.rand(3, *ATARI_FRAMES))
    every, rewards = model.step_every_action(state)
    for action in range(4):
        one, reward = model.step(state, torch.full((3,), action))
        torch.testing.assert_close(every[action::4], one)
        torch.testing.assert_close(rewards[action::4], reward)
    frames, actions = torch.rand(2, *ATARI_FRAMES), torch.tensor([[2, 3], [1, 0]])
    model.sequence_loss(frames, actions, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.rand(2, 2, 1, 84, 84)).reward.backward()
    for name, parameter in model.named_parameters():
        if name.startswith(("reward_map.", "reward_out.")):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None or not parameter.grad.any(), f"the reward loss reached {name}"


def test_encoder_reads_a_few_rollouts_step_by_step_with_the_fused_lstms_result():
    """Fewer than GROUPED_MIN_ROWS rollouts with nothing to group (an EnvRunner's call
    with a few new boards) are read with the LSTM's weights one step at a time, not
    through the fused layer: the same codes."""
    torch.manual_seed(0)
    encoder = RolloutEncoder((7, 5, 5), feature_size=16, hidden_size=8)
    fused_rows = []
    encoder.lstm.register_forward_hook(lambda module, inputs, output: fused_rows.append(len(inputs[0])))
    for depth in (1, 3):
        views = _obs(10 * depth, (7, 5, 5), seed=depth).view(10, depth, 7, 5, 5)
        rewards = torch.rand(10, depth)
        with torch.no_grad():
            codes = encoder(views, rewards)
            steps = torch.cat([encoder.features(views.flatten(0, 1)).view(10, depth, -1), rewards.unsqueeze(-1)], -1)
            plain = encoder.lstm(steps.flip(1))[1][0][-1]
        torch.testing.assert_close(codes, plain)
    assert fused_rows == [10, 10]  # only the reference calls
    many = _obs(GROUPED_MIN_ROWS, (7, 5, 5)).view(GROUPED_MIN_ROWS, 1, 7, 5, 5)
    encoder(many, torch.zeros(GROUPED_MIN_ROWS, 1))
    assert fused_rows[-1] == GROUPED_MIN_ROWS  # all distinct: the fused read, as before


def test_model_free_trunk_is_the_nature_cnn_on_atari_frames():
    trunk = ConvTrunk(ATARI_FRAMES)
    convs = [m for m in trunk.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)),
        (64, (4, 4), (2, 2)),
        (64, (3, 3), (1, 1)),
    ]
    assert trunk.fc[0].in_features == 64 * 7 * 7 and trunk.output_size == 512
    out = trunk(_obs(2, ATARI_FRAMES))
    assert out.shape == (2, 512)
    # uint8 frames are scaled inside: the same frames as floats in [0, 1] agree.
    torch.testing.assert_close(out, trunk(_obs(2, ATARI_FRAMES).float() / 255))


def test_the_nature_cnn_reads_channels_last_with_the_outputs_and_gradients_of_nchw():
    """The trunk converts Atari frames to channels-last (a faster convolution gradient);
    outputs and weight gradients are those of the plain NCHW computation. Small boards
    stay NCHW."""
    torch.manual_seed(0)
    trunk = ConvTrunk(ATARI_FRAMES)
    frames = _obs(16, ATARI_FRAMES)
    out = trunk(frames)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in trunk.parameters()]
    trunk.zero_grad()
    nchw = trunk.fc(trunk.convs(frames.float() / 255))
    nchw.square().sum().backward()
    torch.testing.assert_close(out, nchw, atol=1e-5, rtol=1e-5)
    for grad, p in zip(grads, trunk.parameters()):
        torch.testing.assert_close(grad, p.grad, atol=1e-4, rtol=1e-4)
    assert trunk.channels_last and not ConvTrunk(SMALL_FRAMES).channels_last


def test_spatial_decoder_width_is_saved_and_costs_imagination_nothing(tmp_path):
    from i2a_rllib.checkpoints import load_env_model, save_env_model
    from i2a_rllib.models.env_models.cost import macs_per_imagined_step

    shape = (4, 84, 84)
    narrow = build_env_model("spatial", shape, 4)
    wide = build_env_model("spatial", shape, 4, hparams={"decoder_channels": 16})
    assert narrow.hparams()["decoder_channels"] == 4 and wide.decoder[0].out_channels == 16
    assert macs_per_imagined_step(wide) == macs_per_imagined_step(narrow)
    save_env_model(wide, str(tmp_path / "wide"))
    loaded, metadata = load_env_model(str(tmp_path / "wide"))
    assert metadata["hparams"]["decoder_channels"] == 16 and loaded.decoder[0].out_channels == 16
    frames = torch.rand(2, *shape)
    torch.testing.assert_close(
        loaded.predict_frames(frames, torch.zeros(2, 2, dtype=torch.long))[0],
        wide.predict_frames(frames, torch.zeros(2, 2, dtype=torch.long))[0],
    )
    with pytest.raises(ValueError, match="decoder_channels=0 must be >= 1"):
        build_env_model("spatial", shape, 4, hparams={"decoder_channels": 0})


def test_inverse_step_weighting_counts_step_k_by_one_over_k(tmp_path):
    """'inverse': a change to what step k of a window must predict moves the loss by
    w_k = (1/k) / sum(1/j) times that step's own change; 'mean' moves it by 1/K. A
    one-step window scores the same either way."""
    from i2a_rllib.checkpoints import load_env_model, save_env_model

    shape, steps = (4, 20, 20), 3
    torch.manual_seed(0)
    # No latent-consistency term: it reads the real frames stacked so far, so a target
    # of step k would reach the later steps' terms too.
    hparams = {"dilations": [1], "consistency_coeff": 0.0}
    mean = build_env_model("spatial", shape, 3, hparams=hparams)
    inverse = build_env_model("spatial", shape, 3, hparams={**hparams, "step_weighting": "inverse"})
    torch.nn.init.normal_(mean.frame_out.conv.weight, std=0.3)  # leave "copy": steps differ
    inverse.load_state_dict(mean.state_dict())
    frames = torch.rand(4, *shape)
    actions, rewards = torch.randint(0, 3, (4, steps)), torch.zeros(4, steps)
    targets = torch.rand(4, steps, 1, *shape[1:])
    weights = torch.tensor([1.0, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)

    def total(model, targets):
        return float(model.sequence_loss(frames, actions, rewards, targets).total)

    for k in range(steps):
        moved = targets.clone()
        moved[:, k] = torch.rand(4, 1, *shape[1:])
        change_mean = total(mean, moved) - total(mean, targets)
        change_inverse = total(inverse, moved) - total(inverse, targets)
        assert abs(change_mean) > 1e-4
        assert change_inverse / change_mean == pytest.approx(float(weights[k]) * steps, rel=1e-3)
    one_step = (frames, actions[:, :1], rewards[:, :1], targets[:, :1])
    assert float(inverse.sequence_loss(*one_step).total) == float(mean.sequence_loss(*one_step).total)
    save_env_model(inverse, str(tmp_path / "inverse"))
    loaded, metadata = load_env_model(str(tmp_path / "inverse"))
    assert metadata["hparams"]["step_weighting"] == "inverse" == loaded.step_weighting
    assert mean.step_weighting == "mean"  # the default, and what older checkpoints load as
    with pytest.raises(ValueError, match="step_weighting='last'"):
        build_env_model("spatial", shape, 3, hparams={"step_weighting": "last"})


def _counting_env_model_rows(env_model, monkeypatch):
    """Rows the env model steps, per call of `step_every_action` (A per state) or `step`."""
    calls = []
    every, step = env_model.step_every_action, env_model.step

    def counted_every(state):
        calls.append(len(state) * env_model.num_actions)
        return every(state)

    def counted_step(state, action):
        calls.append(len(state))
        return step(state, action)

    monkeypatch.setattr(env_model, "step_every_action", counted_every)
    monkeypatch.setattr(env_model, "step", counted_step)
    return calls


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_memoised_first_steps_imagine_what_the_model_does_and_run_it_only_for_new_steps(depth, monkeypatch):
    board = (7, 5, 5)
    torch.manual_seed(0)
    env_model = build_env_model("pixel", board, 5, frame_channels=7, hparams={"channels": 8})
    policy_net = _network("pixel", board, 5, depth, "sample").rollout_policy
    memoised = ImaginationCore(env_model, policy_net, rollout_depth=depth, snap_frames=True)
    plain = ImaginationCore(env_model, policy_net, rollout_depth=depth, snap_frames=True, memoize=False)
    assert memoised.memo is not None and plain.memo is None
    boards = (torch.rand(4, *board) > 0.7).float()
    rows = _counting_env_model_rows(env_model, monkeypatch)
    for batch, seed in [([0, 1, 0, 2], 0), ([2, 1, 1, 3, 0], 1), ([3, 0], 2)]:
        state, noise = boards[batch], torch.rand(len(batch), 5, depth - 1, generator=torch.Generator().manual_seed(seed))
        rows.clear()
        got = memoised(state, noise)
        memo_calls = len(rows)
        rows.clear()
        want = plain(state, noise)
        assert torch.equal(got.views, want.views)
        torch.testing.assert_close(got.rewards, want.rewards)
        assert memo_calls <= len(rows)  # never more model calls than without the memo
    assert len(memoised.memo) == 4
    # The same states and actions again: the model runs only for steps after the second.
    rows.clear()
    again = memoised(state, noise)
    assert torch.equal(again.views, want.views)
    assert rows == [len(state) * 5] * max(depth - 2, 0)


def test_memo_fills_a_few_new_states_unpadded_at_depth_1_only(monkeypatch):
    """At depth 1 nothing imagined travels, so one new board runs alone (an EnvRunner's
    usual call); deeper, where the learner replays what the runner imagined, fills are
    padded to REPLAY_MIN_ROWS states so that both round alike."""
    from i2a_rllib.models.imagination_memo import REPLAY_MIN_ROWS

    board = (7, 5, 5)
    torch.manual_seed(0)
    env_model = build_env_model("pixel", board, 5, frame_channels=7, hparams={"channels": 8})
    rows = _counting_env_model_rows(env_model, monkeypatch)
    for depth, first_fill in [(1, 5), (2, REPLAY_MIN_ROWS * 5)]:
        core = ImaginationCore(env_model, RolloutPolicy(board, 5, 16), rollout_depth=depth, snap_frames=True)
        plain = ImaginationCore(env_model, core.rollout_policy, rollout_depth=depth, snap_frames=True, memoize=False)
        state = (torch.rand(1, *board) > 0.7).float()
        noise = torch.rand(1, 5, depth - 1)
        rows.clear()
        got = core(state, noise)
        assert rows[0] == first_fill
        assert torch.equal(got.views, plain(state, noise).views)


def test_memo_survives_a_sync_of_the_same_weights_and_empties_when_they_change(monkeypatch):
    board = (7, 5, 5)
    torch.manual_seed(0)
    net = _network("pixel", board, 5, 2, "sample")
    obs = ((torch.rand(3, *board) > 0.7) * 255).to(torch.uint8)[torch.tensor([0, 1, 2, 0, 1, 2])]
    noise = net.imagination.sample_noise(6)
    rows = _counting_env_model_rows(net.env_model, monkeypatch)
    with torch.no_grad():
        first = net(obs, noise=noise)[0]
        rows.clear()
        net.load_state_dict(net.state_dict())  # what an EnvRunner's weight sync does
        assert torch.equal(net(obs, noise=noise)[0], first) and rows == []
        for parameter in net.env_model.parameters():
            parameter.add_(0.05)
        changed = net(obs, noise=noise)[0]
        assert rows  # imagined again with the new weights
        net.imagination.memo = None
        torch.testing.assert_close(changed, net(obs, noise=noise)[0])


def test_memo_serves_small_boards_only():
    assert ImaginationCore(build_env_model("pixel", (7, 5, 5), 5), None).memo is not None
    for model in (build_env_model("pixel", ATARI_FRAMES, 4), build_env_model("copy", (7, 5, 5), 5),
                  build_env_model("latent", SMALL_FRAMES, 4), build_env_model("mlp", (4,), 2)):
        assert ImaginationCore(model, None).memo is None


def test_memo_grows_by_doubling_and_starts_over_when_full_with_the_same_results(monkeypatch):
    import i2a_rllib.models.imagination_memo as memo_module

    monkeypatch.setattr(memo_module, "INITIAL_STATES", 2)
    board = (7, 5, 5)
    torch.manual_seed(0)
    env_model = build_env_model("pixel", board, 5, frame_channels=7, hparams={"channels": 8})
    policy = RolloutPolicy(board, 5, 16)
    memoised = ImaginationCore(env_model, policy, rollout_depth=3)
    plain = ImaginationCore(env_model, policy, rollout_depth=3, memoize=False)
    memoised.memo.max_bytes = 12 * 27_100  # room for 12 states (27,100 bytes each here)
    boards = (torch.rand(20, *board) > 0.7).float()
    sizes = []
    for batch in ([0, 1, 2], [3, 4, 5, 6, 0], [7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17], [18, 19, 0]):
        noise = torch.rand(len(batch), 5, 2)
        got, want = memoised(boards[batch], noise), plain(boards[batch], noise)
        assert torch.equal(got.views, want.views)
        torch.testing.assert_close(got.rewards, want.rewards)
        sizes.append((len(memoised.memo), len(memoised.memo._buffers["rows"])))
    assert memoised.memo.max_states == 12
    # Room for 2, doubled to 4 for 3 states, to 8 for 7; 13 would not fit: start over
    # with the batch's 6; 11 in 12 (doubling stops at max_states); 14 would not fit.
    assert sizes == [(3, 4), (7, 8), (6, 8), (11, 12), (3, 12)]
    # More new states in one batch than the memo holds: imagined without it.
    noise = torch.rand(13, 5, 2)
    got, want = memoised(boards[:13], noise), plain(boards[:13], noise)
    assert torch.equal(got.views, want.views)
    assert len(memoised.memo) == 0
