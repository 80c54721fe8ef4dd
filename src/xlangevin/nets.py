"""Torch networks used as score interpolators and denoisers.

Every network here maps standardized states ``(n, d)`` to ``(n, d)`` and can be rebuilt from
plain arrays (``config`` + ``state_arrays``), so models save to NetCDF without pickle.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

__all__ = ["MLP", "Swish", "network_from_arrays", "network_to_arrays", "torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch CPU ops on ``n`` threads inside the block (small networks train several times
    faster on one thread: per-op threading overhead dominates their tiny matrix products)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Swish(nn.Module):
    """``x * sigmoid(x)`` (SiLU)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class MLP(nn.Module):
    """``d -> hidden[0] -> ... -> d`` with swish activations and a linear output (KGMM paper:
    hidden = (128, 64))."""

    def __init__(self, dim: int, hidden=(128, 64)):
        super().__init__()
        self.dim = int(dim)
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (self.dim, *self.hidden, self.dim)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(Swish())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)

    @property
    def config(self) -> dict:
        return {"type": "MLP", "dim": self.dim, "hidden": list(self.hidden)}


_NETWORKS = {"MLP": MLP}


def network_to_arrays(net: nn.Module) -> tuple[dict, dict]:
    """(config, {parameter name: float array}) of a network of this module."""
    return net.config, {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def network_from_arrays(config: dict, arrays: dict) -> nn.Module:
    """Rebuild a network from :func:`network_to_arrays` output."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in _NETWORKS:
        raise ValueError(f"unknown network type {kind!r}; known: {sorted(_NETWORKS)}")
    net = _NETWORKS[kind](**config)
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}
    net.load_state_dict(state)
    return net.eval()
