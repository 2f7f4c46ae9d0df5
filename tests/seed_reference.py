"""The seed's I2A imagination, re-implemented faithfully: a Python loop over actions.

The tests' oracle for the batched `ImaginationCore` (tests/test_models.py); it lives
here, with the tests, and `benchmarks/imagination.py` imports it from here as the
baseline it times batched imagination against. It uses the very same components and
weights as `I2ANetwork`; only the loop structure is the seed's (`I2A.imagine` in
../shared/seeds: for each action, for each step, one env-model call on B rows, then one
encoder call per action).
"""

from __future__ import annotations

from typing import Optional

import torch

from i2a_rllib.models.i2a import I2ANetwork
from i2a_rllib.models.model_free import to_float_frames


@torch.no_grad()
def seed_loop_imagination_code(
    net: I2ANetwork, obs: torch.Tensor, noise: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """(B, A * encoder_hidden): the concatenated rollout codes, computed action by action."""
    core, env_model = net.imagination, net.env_model
    state = env_model.initial_state(to_float_frames(obs))
    batch = obs.shape[0]
    codes = []
    for first_action in range(env_model.num_actions):
        current, views, rewards = state, [], []
        for step in range(core.rollout_depth):
            if step == 0:
                action = torch.full((batch,), first_action, dtype=torch.long, device=obs.device)
            else:
                uniform = None if noise is None else noise[:, first_action, step - 1]
                action = net.rollout_policy.act(current, core.action_choice, uniform)
            current, reward = env_model.step(current, action)
            views.append(core._view(current))
            rewards.append(reward)
        codes.append(net.rollout_encoder(torch.stack(views, 1), torch.stack(rewards, 1)))
    return torch.cat(codes, dim=-1)


@torch.no_grad()
def seed_loop_forward(net: I2ANetwork, obs: torch.Tensor, noise: Optional[torch.Tensor] = None):
    """Policy logits of `net` with the seed's loop in place of batched imagination."""
    frames = to_float_frames(obs)
    code = seed_loop_imagination_code(net, obs, noise)
    features = net.head_fc(torch.cat([net.model_free(frames), code], dim=-1))
    return net.heads.logits(features)
