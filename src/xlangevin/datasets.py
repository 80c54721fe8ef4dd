"""Small sample archives of the benchmark systems, shipped in the repository's ``datasets/``.

``open_dataset(name)`` opens one; ``make_dataset(name, path)`` regenerates it deterministically
from its simulator (``datasets/make_datasets.py`` does all of them). ``REGISTRY`` says how each
file is made; ``available()`` lists the names with a one-line description.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from . import systems
from .io import atomic_target

__all__ = ["REGISTRY", "available", "open_dataset", "make_dataset", "data_dir"]


@dataclass(frozen=True)
class SampleDataset:
    """How one sample archive is produced: ``systems.<system>.simulate(**kwargs)``."""

    system: str
    description: str
    kwargs: dict
    variables: tuple | None = None  # keep only these data variables
    attrs: dict = field(default_factory=dict)

    def simulate(self, progress: bool = True) -> xr.Dataset:
        ds = getattr(systems, self.system).simulate(progress=progress, **self.kwargs)
        if self.variables is not None:
            ds = ds[list(self.variables)]
        return ds.load()


REGISTRY = {
    "double_well": SampleDataset(
        "double_well", "1-D double well dx = (x - x^3) dt + sqrt(2) dW, 10^5 samples every 0.1",
        dict(n_samples=100_000, seed=20261123)),
    "triad": SampleDataset(
        "triad", "reduced triad model with CAM noise (KGMM paper), 10^5 samples",
        dict(n_samples=100_000, seed=20261124)),
    "potential": SampleDataset(
        "potential", "2-D asymmetric potential with rotation C = 0.8, 10^5 samples every 0.01",
        dict(n_samples=100_000, C=0.8, seed=20261125)),
    "ou": SampleDataset(
        "ou", "2-D Ornstein-Uhlenbeck, Phi = [[1, -0.8], [0.8, 1]], Sigma = I, 10^5 samples "
        "every 0.01 (exact transitions)",
        dict(n_samples=100_000, A=[[-1.0, 0.8], [-0.8, -1.0]], B=np.sqrt(2) * np.eye(2),
             dt=0.01, seed=20261126)),
    "lorenz63": SampleDataset(
        "lorenz63", "stochastic Lorenz-63 (noise 5), 5x10^4 samples every 0.01",
        dict(n_samples=50_000, seed=20261127)),
    "lorenz96": SampleDataset(
        "lorenz96", "two-scale stochastic Lorenz-96 (K = 4, J = 10, F = 4): slow x only, "
        "10^5 samples every 0.05", dict(n_samples=100_000, save_every=100, seed=20261128),
        variables=("x",)),
    "ks": SampleDataset(
        "ks", "Kuramoto-Sivashinsky L = 34, 64-point ETDRK4 run resolved on 32 points, "
        "10^4 samples every 1.0", dict(n_samples=10_000, burn_in=1000.0, resolved=32,
                                        seed=20261129)),
    "slowfast": SampleDataset(
        "slowfast", "slow z driven by fast Lorenz-63 (diffusion-map paper, h(z) = 1), "
        "10^4 samples every 0.1", dict(n_samples=10_000, seed=20261130)),
}


def available() -> dict:
    """``{name: description}`` of the sample archives."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def data_dir() -> Path:
    """Folder of the archives: ``$XLANGEVIN_DATASETS`` or the repository's ``datasets/``."""
    env = os.environ.get("XLANGEVIN_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "datasets"


def _entry(name: str) -> SampleDataset:
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]


def open_dataset(name: str, **kwargs) -> xr.Dataset:
    """Open the sample archive ``name`` (keyword arguments go to ``xr.open_dataset``)."""
    _entry(name)
    path = data_dir() / f"{name}.nc"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; regenerate it with xlangevin.datasets.make_dataset({name!r}, "
            f"{str(path)!r}) or `python datasets/make_datasets.py`, or point "
            "$XLANGEVIN_DATASETS at a folder holding it")
    return xr.open_dataset(path, **kwargs)


def make_dataset(name: str, path=None, progress: bool = True) -> Path:
    """Simulate archive ``name`` and write it (float32, compressed) atomically to ``path``."""
    entry = _entry(name)
    path = Path(path) if path is not None else data_dir() / f"{name}.nc"
    ds = entry.simulate(progress=progress)
    ds.attrs.update({"dataset": name, "description": entry.description})
    encoding = {v: {"dtype": "float32", "zlib": True, "complevel": 4, "shuffle": True}
                for v in ds.data_vars}
    encoding["time"] = {"zlib": True, "complevel": 4, "shuffle": True}
    with atomic_target(path) as tmp:
        ds.to_netcdf(tmp, encoding=encoding)
    return path
