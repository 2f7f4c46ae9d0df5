"""The RLModules: forward passes on uint8 frames, values, checkpoints, bad configs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from i2a_rllib.rl_module import (
    IMAGINED_REWARDS,
    IMAGINED_VIEWS,
    MODEL_STATE,
    ROLLOUT_NOISE,
    ROLLOUT_POLICY_LOGITS,
    I2ARLModule,
    NatureCNNRLModule,
)

ATARI_OBS = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
BOARD_OBS = gym.spaces.Box(0, 255, (7, 10, 10), np.uint8)


def _batch(space, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return {Columns.OBS: torch.from_numpy(rng.integers(0, 256, (n, *space.shape), dtype=np.uint8))}


def _i2a(obs_space=ATARI_OBS, num_actions=4, **model_config):
    return I2ARLModule(
        observation_space=obs_space,
        action_space=gym.spaces.Discrete(num_actions),
        model_config=model_config,
    )


def _kind(kind):
    """model_config entries of an env-model kind; 'folded' is the spatial kind's
    architecture that keeps the folded frames in its state."""
    if kind == "folded":
        return {"env_model": "spatial", "env_model_hparams": {"architecture": "folded"}}
    return {"env_model": kind}


def test_baseline_forward_on_uint8_frames_and_values():
    module = NatureCNNRLModule(
        observation_space=ATARI_OBS, action_space=gym.spaces.Discrete(4), model_config={}
    )
    batch = _batch(ATARI_OBS)
    assert module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS].shape == (5, 4)
    out = module.forward_train(batch)
    assert out[Columns.EMBEDDINGS].shape == (5, 512)
    values = module.compute_values(batch)
    assert values.shape == (5,)
    torch.testing.assert_close(values, module.compute_values(batch, out[Columns.EMBEDDINGS]))


def test_baseline_checkpoint_round_trip(tmp_path):
    module = NatureCNNRLModule(
        observation_space=ATARI_OBS, action_space=gym.spaces.Discrete(4), model_config={}
    )
    module.save_to_path(str(tmp_path / "m"))
    restored = RLModule.from_checkpoint(str(tmp_path / "m"))
    batch = _batch(ATARI_OBS)
    torch.testing.assert_close(
        restored.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
        module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
    )


@pytest.mark.parametrize(
    "obs_space,num_actions,kind",
    [(ATARI_OBS, 4, "latent"), (ATARI_OBS, 18, "latent"), (ATARI_OBS, 4, "spatial"), (ATARI_OBS, 4, "folded"),
     (BOARD_OBS, 5, "pixel"), (BOARD_OBS, 5, "copy")],  # fmt: skip
)
def test_i2a_forward_shapes(obs_space, num_actions, kind):
    module = _i2a(obs_space, num_actions, **_kind(kind), rollout_depth=3)
    batch = _batch(obs_space)
    assert module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS].shape == (5, num_actions)
    explore = module.forward_exploration(batch)
    assert explore[Columns.ACTION_DIST_INPUTS].shape == (5, num_actions)
    assert explore[ROLLOUT_NOISE].shape == (5, num_actions, 2)
    train = module.forward_train({**batch, ROLLOUT_NOISE: explore[ROLLOUT_NOISE]})
    assert train[ROLLOUT_POLICY_LOGITS].shape == (5, num_actions)
    # Replaying the EnvRunner's noise reproduces its logits exactly.
    torch.testing.assert_close(
        train[Columns.ACTION_DIST_INPUTS], explore[Columns.ACTION_DIST_INPUTS], atol=1e-5, rtol=1e-5
    )
    values = module.compute_values(batch)
    assert values.shape == (5,)


@pytest.mark.parametrize("depth", [1, 2])
def test_the_rollout_policy_runs_and_trains_only_where_it_acts(depth):
    """At depth 1 each rollout's only action is its own: no rollout policy acts, so none
    is run in training nor trained (no logits, no gradients); from depth 2 it is both."""
    module = _i2a(BOARD_OBS, 5, **_kind("pixel"), rollout_depth=depth)
    train = module.forward_train(_batch(BOARD_OBS))
    assert (ROLLOUT_POLICY_LOGITS in train) == (depth > 1)
    assert module.rollout_policy_is_trainable == (depth > 1)
    assert all(p.requires_grad == (depth > 1) for p in module.net.rollout_policy.parameters())
    train[Columns.ACTION_DIST_INPUTS].sum().backward()  # the policy still trains at depth 1
    assert any(p.grad is not None for p in module.net.model_free.parameters())


@pytest.mark.parametrize("kind", ["latent", "spatial"])
def test_precomputed_imagination_gives_the_same_outputs(kind):
    module = _i2a(env_model=kind)
    batch = _batch(ATARI_OBS, n=6)
    batch[ROLLOUT_NOISE] = module.net.imagination.sample_noise(6)
    columns = module.precompute_imagination(batch)
    assert set(columns) == {IMAGINED_VIEWS, IMAGINED_REWARDS, MODEL_STATE}
    assert columns[MODEL_STATE].shape == (6, *module.net.env_model.state_shape)
    fresh = module.forward_train(batch)
    reused = module.forward_train({**batch, **columns})
    for key in (Columns.ACTION_DIST_INPUTS, ROLLOUT_POLICY_LOGITS):
        torch.testing.assert_close(fresh[key], reused[key], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(
            module.compute_values({**batch, **columns}), module.compute_values(batch), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize(
    "obs_space,num_actions,kind,ships",
    [
        (ATARI_OBS, 4, "spatial", True),  # maps: 12 of 8 x 10 x 10 float16 per step
        (ATARI_OBS, 4, "folded", True),  # its feature maps, as small
        (BOARD_OBS, 5, "pixel", True),  # small frames: 15 boards of 7 x 10 x 10 bytes
        (ATARI_OBS, 4, "pixel", False),  # 12 frames of 84 x 84: 85 KB per step
        (BOARD_OBS, 5, "copy", False),  # one view repeated: the learner broadcasts it
    ],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_exploring_ships_imagination_and_the_learner_imagines_only_the_bootstrap_rows(
    obs_space, num_actions, kind, ships, precision
):
    """Maps and small frames travel with the episodes (large frames would be A x depth
    frames per step); the learner keeps them and imagines again only the rows RLlib
    appended, whose outputs are copies of the previous step's. With bf16 imagination
    both sides imagine in bf16 (the setting is the module's)."""
    module = _i2a(obs_space, num_actions, **_kind(kind), rollout_depth=3, imagination_precision=precision)
    assert module.net.imagination.precision == precision
    batch = _batch(obs_space, n=6)
    explore = module.forward_exploration(batch)
    assert module.ships_imagination == ships
    if not ships:
        assert IMAGINED_VIEWS not in explore
        return
    assert explore[IMAGINED_VIEWS].shape == (6, num_actions, 3, *module.net.env_model.view_shape)
    assert explore[IMAGINED_REWARDS].shape == (6, num_actions, 3)
    # Row 5 plays RLlib's appended bootstrap step: its outputs are row 4's.
    shipped = {k: explore[k].clone() for k in (ROLLOUT_NOISE, IMAGINED_VIEWS, IMAGINED_REWARDS)}
    for column in shipped.values():
        column[5] = column[4]
    loss_mask = torch.tensor([True] * 5 + [False])
    columns = module.precompute_imagination({**batch, **shipped, Columns.LOSS_MASK: loss_mask})
    replayed = module.precompute_imagination({**batch, ROLLOUT_NOISE: shipped[ROLLOUT_NOISE]})
    for key in (IMAGINED_VIEWS, IMAGINED_REWARDS):
        assert torch.equal(columns[key][:5], explore[key][:5])  # kept as shipped
        # Row 5 imagined alone, not in a batch of 6: float rounding differs.
        torch.testing.assert_close(columns[key], replayed[key], atol=1e-3, rtol=1e-3)
    assert not torch.allclose(columns[IMAGINED_VIEWS][5], shipped[IMAGINED_VIEWS][5])
    # Shipped imagination reproduces the behaviour logits.
    train = module.forward_train({**batch, **columns})
    torch.testing.assert_close(
        train[Columns.ACTION_DIST_INPUTS][:5], explore[Columns.ACTION_DIST_INPUTS][:5], atol=1e-5, rtol=1e-5
    )


def test_at_depth_1_over_small_boards_nothing_but_logits_travels_and_the_learner_reads_its_memo():
    """At depth 1 no rollout policy acts (no noise to carry), and over small boards the
    memo keeps every imagined step: the learner looks the frames up instead of the
    episodes carrying them, and trains on the same imagination the EnvRunner acted on.
    Large frames at depth 1 (no memo) still travel."""
    module = _i2a(BOARD_OBS, 5, env_model="pixel", rollout_depth=1, rollout_action_choice="sample")
    assert module.net.imagination.memo is not None and not module.ships_imagination
    batch = _batch(BOARD_OBS, n=6)
    batch[Columns.OBS][3] = batch[Columns.OBS][1]  # a repeated board: one memo slot
    explore = module.forward_exploration(batch)
    assert set(explore) == {Columns.ACTION_DIST_INPUTS}
    columns = module.precompute_imagination(batch)
    assert columns[IMAGINED_VIEWS].shape == (6, 5, 1, *module.net.env_model.view_shape)
    assert len(module.net.imagination.memo) == 5
    train = module.forward_train({**batch, **columns})
    torch.testing.assert_close(
        train[Columns.ACTION_DIST_INPUTS], explore[Columns.ACTION_DIST_INPUTS], atol=1e-5, rtol=1e-5
    )
    assert _i2a(ATARI_OBS, 4, env_model="pixel", rollout_depth=1).ships_imagination


@pytest.mark.parametrize("agent", ["ppo", "i2a_depth_1"])
def test_exploring_over_small_boards_runs_each_board_once_per_weight_version(agent):
    """An EnvRunner meets the same boards again and again between weight syncs: where
    the exploring output is the logits alone (the baseline; I2A at depth 1, which draws
    no noise and ships nothing), a board seen since the last sync is read back, with
    the logits the network gives it; a weight sync (set_state) empties the memo."""
    if agent == "ppo":
        module = NatureCNNRLModule(observation_space=BOARD_OBS, action_space=gym.spaces.Discrete(5), model_config={})
        counted = module.trunk
    else:
        module = _i2a(BOARD_OBS, 5, env_model="pixel", rollout_depth=1)
        counted = module.net.head_fc
    seen = []
    counted.register_forward_hook(lambda m, inputs, out: seen.append(len(inputs[0])))
    batch = _batch(BOARD_OBS, n=6)
    batch[Columns.OBS][4] = batch[Columns.OBS][0]
    logits = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
    assert seen == [5] and len(module._exploring_memo) == 5
    with torch.no_grad():
        torch.testing.assert_close(logits, module._forward_exploration(batch)[Columns.ACTION_DIST_INPUTS])
    seen.clear()
    again = module.forward_exploration({Columns.OBS: batch[Columns.OBS][[3, 0, 1]]})[Columns.ACTION_DIST_INPUTS]
    assert seen == [] and torch.equal(again, logits[[3, 0, 1]])
    state = module.get_state()
    module.set_state({k: v + 0.01 if np.issubdtype(v.dtype, np.floating) else v for k, v in state.items()})
    synced = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
    assert seen == [5] and not torch.allclose(synced, logits, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(synced, module._forward_exploration(batch)[Columns.ACTION_DIST_INPUTS])
    # The learner's passes set training mode again (exploring left it in eval mode).
    assert not module.training
    module.forward_train(batch if agent == "ppo" else {**batch, **module.precompute_imagination(batch)})
    assert module.training


def test_exploring_with_noise_shipped_columns_or_large_frames_runs_every_call():
    """Where exploring draws rollout noise (depth >= 2, sampled actions), ships imagined
    frames, or meets large frames, every call runs the network: no memo."""
    for module, space in (
        (_i2a(BOARD_OBS, 5, env_model="pixel", rollout_depth=2, rollout_action_choice="sample"), BOARD_OBS),
        (_i2a(BOARD_OBS, 5, env_model="pixel", rollout_depth=2, rollout_action_choice="argmax"), BOARD_OBS),
        (_i2a(ATARI_OBS, 4, env_model="pixel", rollout_depth=1), ATARI_OBS),
        (NatureCNNRLModule(observation_space=ATARI_OBS, action_space=gym.spaces.Discrete(4), model_config={}),
         ATARI_OBS),
    ):  # fmt: skip
        out = module.forward_exploration(_batch(space, n=2))
        assert module._exploring_memo is None
        assert set(out) != {Columns.ACTION_DIST_INPUTS} or space is ATARI_OBS


@pytest.mark.parametrize("has_amx", [True, False])
@pytest.mark.parametrize("kind", ["spatial", "folded", "latent", "pixel"])
def test_auto_imagination_precision_is_bf16_only_for_spatial_models_on_a_cpu_with_amx(kind, has_amx, monkeypatch):
    """The default: where bf16 imagination was measured to pay and to learn as fp32 does
    (the spatial models, the Atari default, on AMX CPUs); fp32 for every other model,
    on other CPUs and on GPUs."""
    from i2a_rllib.models import imagination

    monkeypatch.setattr(imagination, "cpu_has_amx", lambda: has_amx)
    module = _i2a(ATARI_OBS, 4, **_kind(kind), rollout_depth=2)
    assert module.net.imagination.precision == "auto"
    bf16 = kind in ("spatial", "folded") and has_amx
    assert module.net.imagination.bf16_on(torch.device("cpu")) is bf16
    assert module.net.imagination.bf16_on(torch.device("cuda")) is False
    seen = set()  # the rollout policy acts inside imagination (depth 2: once per rollout)
    module.net.rollout_policy.logits_layer.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    module.forward_exploration(_batch(ATARI_OBS, n=2))
    assert (torch.bfloat16 in seen) is bf16 and seen


@pytest.mark.parametrize("kind, depth", [("spatial", 2), ("folded", 2), ("latent", 5), ("pixel", 5), ("copy", 5)])
def test_auto_rollout_depth_is_2_for_spatial_models_and_the_papers_5_else(kind, depth):
    """The default: 2 imagined steps where 2 passed its learning check and costs far
    less than 5 (the spatial models on Breakout); the paper's 5 for every other model.
    An explicit depth wins."""
    module = _i2a(ATARI_OBS, 4, **_kind(kind))
    assert module.i2a_config["rollout_depth"] == module.net.imagination.rollout_depth == depth
    explore = module.forward_exploration(_batch(ATARI_OBS, n=2))
    if module.ships_imagination:  # the maps that travel: A x depth per step
        assert explore[IMAGINED_VIEWS].shape[:3] == (2, 4, depth)
    assert _i2a(ATARI_OBS, 4, **_kind(kind), rollout_depth=4).net.imagination.rollout_depth == 4


def test_env_model_is_frozen_in_the_module():
    module = _i2a(env_model="latent")
    assert all(not p.requires_grad for p in module.net.env_model.parameters())
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and not any(".env_model." in n for n in trainable)


@pytest.mark.parametrize("kind", ["spatial", "folded", "pixel"])
def test_the_env_model_runs_channels_last_with_the_same_outputs(kind):
    """The module keeps its frozen env model's weights channels-last (faster small
    convolutions on CPU); the policy is the one an NCHW copy of the same weights gives."""
    torch.manual_seed(0)
    module = _i2a(**_kind(kind), rollout_depth=2)
    convolutions = [m for m in module.net.env_model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convolutions)
    assert not any(c.weight.is_contiguous() for c in convolutions if c.in_channels > 1)
    nchw = _i2a(**_kind(kind), rollout_depth=2)
    nchw.load_state_dict(module.state_dict())
    nchw.net.env_model.to(memory_format=torch.contiguous_format)
    batch = _batch(ATARI_OBS, n=4)
    outs = []
    for each in (module, nchw):
        torch.manual_seed(1)
        outs.append(each.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def test_the_latent_env_model_stays_nchw():
    """Channels-last made the latent model's I2A slower (benchmarks/imagination.py)."""
    module = _i2a(env_model="latent")
    convolutions = [m for m in module.net.env_model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(c.weight.is_contiguous() for c in convolutions)


@pytest.mark.parametrize("kind", ["latent", "spatial", "folded"])
def test_i2a_checkpoint_round_trip(tmp_path, kind):
    module = _i2a(**_kind(kind), rollout_depth=2, rollout_action_choice="argmax")
    module.save_to_path(str(tmp_path / "i2a"))
    restored = RLModule.from_checkpoint(str(tmp_path / "i2a"))
    assert isinstance(restored, I2ARLModule)
    batch = _batch(ATARI_OBS)
    torch.testing.assert_close(
        restored.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
        module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
    )
    for a, b in zip(restored.net.env_model.parameters(), module.net.env_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "model_config,message",
    [
        ({"env_model": "dreamer"}, "env_model'\\]='dreamer' is not an environment model kind"),
        ({"rollout_depth": 0}, "rollout_depth'\\]=0 must be an integer >= 1"),
        ({"rollout_depth": "deep"}, "rollout_depth'\\]='deep' must be an integer >= 1 \\(the paper uses 5\\) or 'auto'"),
        ({"rollout_action_choice": "greedy"}, "rollout_action_choice"),
        ({"encoder_hidden": -3}, "encoder_hidden"),
        ({"encoder_hidden": 0}, "encoder_hidden'\\]=0 must be a positive integer"),
        ({"head_hidden": -1}, "head_hidden'\\]=-1 must be an integer >= 0 \\(0: no such layer\\)"),
        ({"imagined_frame_conv_channels": 0}, "imagined_frame_conv_channels'\\]=0 must be a positive integer"),
        ({"env_model_checkpoint": "/no/such/env_model"}, "does not exist"),
    ],
)
def test_bad_model_config_is_a_clear_error_at_build_time(model_config, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        _i2a(**model_config)


def test_imagined_frame_conv_channels_size_both_conv_stacks_over_imagined_frames():
    """The rollout policy's and the rollout encoder's convolutions over imagined frames
    take (c, 2c, 2c) channels; the model-free path keeps its own; the default is 16."""

    def conv_channels(net):
        return [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]

    from i2a_rllib.imagination_settings import DEFAULT_I2A_MODEL_CONFIG
    from i2a_rllib.models.rollout_policy import IMAGINED_FRAME_CONV_CHANNELS

    # The RLModule's default and the pure-torch networks' default are one number.
    assert DEFAULT_I2A_MODEL_CONFIG["imagined_frame_conv_channels"] == IMAGINED_FRAME_CONV_CHANNELS
    default = _i2a(BOARD_OBS, num_actions=5, env_model="pixel").net
    narrow = _i2a(BOARD_OBS, num_actions=5, env_model="pixel", imagined_frame_conv_channels=8).net
    for part in ("rollout_encoder", "rollout_policy"):
        assert conv_channels(getattr(default, part)) == [16, 32, 32]
        assert conv_channels(getattr(narrow, part)) == [8, 16, 16]
    assert conv_channels(narrow.model_free) == conv_channels(default.model_free)
    obs = torch.randint(0, 2, (3, *BOARD_OBS.shape), dtype=torch.uint8) * 255
    logits, _ = narrow(obs)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()


def test_head_hidden_zero_lets_the_policy_and_value_heads_read_the_joined_features():
    """head_hidden 0: no layer between [model-free features, rollout codes] and the
    heads, which read the concatenation (512 + A x encoder_hidden wide) directly; the
    module explores, trains and computes values as with the layer."""
    module = _i2a(BOARD_OBS, 5, env_model="pixel", rollout_depth=1, head_hidden=0, encoder_hidden=16)
    net = module.net
    assert isinstance(net.head_fc, torch.nn.Identity)
    joined = 512 + 5 * 16
    assert net.heads.policy.in_features == net.heads.value.in_features == joined
    batch = _batch(BOARD_OBS, n=6)
    logits = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
    out = module.forward_train(batch)
    assert out[Columns.EMBEDDINGS].shape == (6, joined)
    torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS], logits)
    values = module.compute_values(batch, embeddings=out[Columns.EMBEDDINGS])
    assert values.shape == (6,) and torch.isfinite(values).all()
    values.sum().backward()
    assert net.model_free.fc[0].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.rollout_encoder.parameters())


def test_non_discrete_action_space_is_rejected():
    with pytest.raises(ValueError, match="discrete action space"):
        I2ARLModule(
            observation_space=ATARI_OBS,
            action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
            model_config={},
        )


@pytest.mark.parametrize(
    "obs_space,named",
    [
        (gym.spaces.Box(-1, 1, (8, 8), np.float32), "a 2-dimensional Box of shape (8, 8)"),
        (gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))}), "a Dict space"),
        (gym.spaces.Discrete(16), "a Discrete space"),
    ],
)
def test_observations_neither_images_nor_flat_vectors_are_rejected(obs_space, named):
    for module_class in (I2ARLModule, NatureCNNRLModule):
        with pytest.raises(ValueError, match="image observations .* or flat vectors") as error:
            module_class(observation_space=obs_space, action_space=gym.spaces.Discrete(2), model_config={})
        assert named in str(error.value)


def test_spatial_views_pooled_in_one_pass_act_as_the_encoder_pooling_them_again():
    """view_pool 4 hands the rollout encoder the 10 x 10 cells it pooled the 21 x 21 views
    of view_pool 2 down to: with the same weights its rollout codes and the policy's
    logits are the same (float16 rounding apart), and the EnvRunners ship 4.4x fewer
    values per imagined step."""
    torch.manual_seed(0)
    twice = _i2a(env_model="spatial", env_model_hparams={"view_pool": 2}, rollout_depth=2)
    once = _i2a(env_model="spatial", env_model_hparams={"view_pool": 4}, rollout_depth=2)
    once.load_state_dict(twice.state_dict())
    batch = _batch(ATARI_OBS, n=4)
    outs = []
    for module in (twice, once):
        torch.manual_seed(1)
        out = module.forward_exploration(batch)
        views, rewards = out[IMAGINED_VIEWS], out[IMAGINED_REWARDS]
        with torch.no_grad():
            codes = module.net.rollout_encoder(views.flatten(0, 1), rewards.flatten(0, 1))
        outs.append((views.shape[-3:], codes, out[Columns.ACTION_DIST_INPUTS]))
    (shape_twice, codes_twice, logits_twice), (shape_once, codes_once, logits_once) = outs
    assert shape_twice == (8, 21, 21) and shape_once == (8, 10, 10)
    scale = float(codes_twice.abs().max())
    assert scale > 1e-2
    torch.testing.assert_close(codes_once, codes_twice, rtol=0, atol=2e-3 * scale)
    torch.testing.assert_close(logits_once, logits_twice, rtol=1e-2, atol=1e-6)
    # Not a comparison that always passes: other weights give other codes.
    with torch.no_grad():
        other = _i2a(env_model="spatial", rollout_depth=2).net.rollout_encoder(views.flatten(0, 1), rewards.flatten(0, 1))
    assert (other - codes_once).abs().max() > 20 * 2e-3 * scale


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_torch_compile_worker_explores_as_the_eager_module_does(precision):
    """RLlib's `torch_compile_worker` (which its new-stack EnvRunners do not read) makes
    the I2A module explore through torch.compile: the same actions' logits and the same
    shipped imagination as the eager module with the same weights and noise, within
    rounding (bf16's, where the rollouts run in bf16: compiled kernels round elsewhere);
    nothing is compiled before the first exploration (a learner never explores)."""
    torch.manual_seed(0)
    eager = _i2a(env_model="spatial", rollout_depth=2, imagination_precision=precision)
    compiled = _i2a(env_model="spatial", rollout_depth=2, torch_compile_worker=True, imagination_precision=precision)
    compiled.load_state_dict(eager.state_dict())
    assert compiled._compiled_explore is None
    batch = _batch(ATARI_OBS, n=4)
    torch.manual_seed(1)
    out_compiled = compiled.forward_exploration(batch)
    torch.manual_seed(1)
    out_eager = eager.forward_exploration(batch)
    assert compiled._compiled_explore is not None
    torch.testing.assert_close(out_compiled[ROLLOUT_NOISE], out_eager[ROLLOUT_NOISE], rtol=0, atol=0)
    tolerance = {} if precision == "fp32" else {"rtol": 0, "atol": 1e-2}
    torch.testing.assert_close(out_compiled[Columns.ACTION_DIST_INPUTS], out_eager[Columns.ACTION_DIST_INPUTS], **tolerance)
    torch.testing.assert_close(out_compiled[IMAGINED_REWARDS], out_eager[IMAGINED_REWARDS], **tolerance)
    # float16 maps: one rounding step apart at most (fp32); bf16's rounding (bf16).
    torch.testing.assert_close(out_compiled[IMAGINED_VIEWS].float(), out_eager[IMAGINED_VIEWS].float(), rtol=0,
                               atol=1e-3 if precision == "fp32" else 1e-2)  # fmt: skip


def test_torch_compile_worker_explores_with_a_frame_model():
    """Frame models (copy, pixel, perfect) imagine uint8 frames, which the rollout
    encoder groups in numpy when eager; compiled exploration embeds every frame instead
    (the numpy grouping crashed Sokoban's EnvRunners under torch.compile) and gives
    the same logits."""
    torch.manual_seed(0)
    eager = _i2a(BOARD_OBS, num_actions=5, env_model="copy", rollout_depth=2)
    compiled = _i2a(BOARD_OBS, num_actions=5, env_model="copy", rollout_depth=2, torch_compile_worker=True)
    compiled.load_state_dict(eager.state_dict())
    batch = _batch(BOARD_OBS, n=4)
    torch.manual_seed(1)
    out_compiled = compiled.forward_exploration(batch)
    torch.manual_seed(1)
    out_eager = eager.forward_exploration(batch)
    torch.testing.assert_close(out_compiled[Columns.ACTION_DIST_INPUTS], out_eager[Columns.ACTION_DIST_INPUTS])
