"""The probe network: a four-layer MLP over one hidden state (paper §3.1 (7)).

Linear(d→h1) · LeakyReLU · Linear(h1→h2) · LeakyReLU · Linear(h2→h3) · LeakyReLU ·
Linear(h3→1), output = the logit of P(correct). Following the uncertainty probes of
Azaria & Mitchell 2023 ("The Internal State of an LLM Knows When It's Lying") and
Kadavath et al. 2022, as used by Chuang et al. 2025 (hidden sizes 256/128/64 by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["build_probe", "LEAKY_SLOPE"]

LEAKY_SLOPE = 0.01  # torch's default negative slope


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """torch's default ``nn.Linear`` initialisation, drawn from ``generator`` (no global RNG):
    W ~ kaiming_uniform(a=√5), i.e. U(−1/√fan_in, 1/√fan_in), and b ~ U(−1/√fan_in, 1/√fan_in)."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def build_probe(input_dim: int, hidden_sizes: Sequence[int], generator: torch.Generator) -> nn.Sequential:
    """The MLP ``d → h1 → h2 → … → 1`` with LeakyReLU between layers, initialised from ``generator``.

    With the paper's three hidden sizes this is four linear layers. Parameter names
    (``0.weight``, ``2.weight``, …) are those of the saved safetensors weights.
    """
    sizes = [int(input_dim), *[int(h) for h in hidden_sizes]]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, device="meta"), nn.LeakyReLU(LEAKY_SLOPE)]
    layers.append(nn.Linear(sizes[-1], 1, device="meta"))
    # built on the meta device and materialised empty, so that only ``generator`` draws numbers
    net = nn.Sequential(*layers).to_empty(device="cpu")
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                _init_linear(layer, generator)
    return net
