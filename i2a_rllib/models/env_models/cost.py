"""Compute cost of one imagined step: multiply-accumulates, counted with forward hooks.

Counts the layers that dominate (convolutions, transposed convolutions, linear and GRU
cells); element-wise operations are left out. Pure torch, no Ray.
"""

from __future__ import annotations

import torch
from torch import nn

from i2a_rllib.models.env_models.base import EnvironmentModel


def _layer_macs(module: nn.Module, inputs, output) -> int:
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.ConvTranspose2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.GRUCell):
        rows = output.shape[0]
        return rows * 3 * module.hidden_size * (module.input_size + module.hidden_size)
    return 0


@torch.no_grad()
def macs_per_imagined_step(model: EnvironmentModel) -> int:
    """Multiply-accumulates of one `step` of one state (what imagination pays A x depth
    times per decision; the encoder, which runs once per real observation, is not
    included)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += _layer_macs(module, inputs, output)

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    state = model.initial_state(torch.zeros(1, *model.obs_shape, device=device))
    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        model.step(state, torch.zeros(1, dtype=torch.long, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total
