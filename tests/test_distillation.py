"""The distillation loss: right direction (pi_hat -> pi), pi held fixed."""

import torch

from i2a_rllib.learner import distillation_loss
from i2a_rllib.models.env_models import build_env_model
from i2a_rllib.models.i2a import I2ANetwork


def test_distillation_loss_decreases_when_only_it_is_optimised():
    torch.manual_seed(0)
    net = I2ANetwork(build_env_model("latent", (4, 84, 84), 4), rollout_depth=2)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        policy_logits = torch.randn(32, 4) * 3  # a fixed, confident pi
    optimizer = torch.optim.Adam(net.rollout_policy.parameters(), lr=1e-2)
    losses, agreements = [], []
    for _ in range(150):
        loss, agreement = distillation_loss(policy_logits, net.rollout_policy_logits(obs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        agreements.append(float(agreement))
    assert losses[-1] < 0.5 * losses[0]
    assert agreements[-1] > 0.9
    # The cross-entropy is entropy(pi) + KL(pi || pi_hat): most of the KL is gone.
    entropy = float(-(policy_logits.softmax(-1) * policy_logits.log_softmax(-1)).sum(-1).mean())
    assert losses[-1] - entropy < 0.1 * (losses[0] - entropy)


def test_policy_logits_get_no_gradient_from_distillation():
    policy_logits = torch.randn(8, 5, requires_grad=True)
    rollout_logits = torch.randn(8, 5, requires_grad=True)
    distillation_loss(policy_logits, rollout_logits)[0].backward()
    assert policy_logits.grad is None
    assert rollout_logits.grad is not None and rollout_logits.grad.abs().sum() > 0


def test_loss_mask_excludes_padded_rows():
    policy = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    rollout = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    mask = torch.tensor([True, False])
    masked, agreement = distillation_loss(policy, rollout, mask)
    unmasked, _ = distillation_loss(policy, rollout)
    assert float(agreement) == 1.0 and float(masked) < float(unmasked)
