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

__all__ = ["REGISTRY", "available", "open_dataset", "make_dataset", "data_dir", "nino",
           "soi_darwin"]


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
    """Simulate archive ``name`` and write it (float32, compressed) atomically to ``path`` (the
    archive folder is the package's cache: an older copy is replaced)."""
    entry = _entry(name)
    path = Path(path) if path is not None else data_dir() / f"{name}.nc"
    ds = entry.simulate(progress=progress)
    ds.attrs.update({"dataset": name, "description": entry.description})
    encoding = {v: {"dtype": "float32", "zlib": True, "complevel": 4, "shuffle": True}
                for v in ds.data_vars}
    encoding["time"] = {"zlib": True, "complevel": 4, "shuffle": True}
    with atomic_target(path, overwrite=True) as tmp:
        ds.to_netcdf(tmp, encoding=encoding)
    return path


# ----------------------------------------------------------------------------------------------
# real climate indices shipped with installable packages (METHODS.md section 10)
# ----------------------------------------------------------------------------------------------
#: columns of PyWavelets' ERSSTv4 table: (SST, anomaly) of each Nino region
_NINO_COLUMNS = {"1+2": (2, 3), "3": (4, 5), "4": (6, 7), "3.4": (8, 9)}


def nino(region: str = "3", anomaly: bool = True, detrend: bool = True) -> xr.Dataset:
    """The monthly ERSSTv4 Nino index of ``region`` ("1+2", "3", "4", "3.4"), 1950-01 to
    2016-08 (800 months), shipped with PyWavelets (``pip install PyWavelets``), as a Dataset
    with variable ``sst`` (degC) on a datetime ``time`` axis (month starts).

    ``anomaly``: the table's anomalies (against a fixed 1981-2010 base climatology) instead of
    the SST; ``detrend``: remove the least-squares linear trend (the fixed base leaves the
    warming in the anomalies). Source: Huang et al., ERSST version 4 (via PyWavelets' data).
    """
    if region not in _NINO_COLUMNS:
        raise ValueError(f"region must be one of {sorted(_NINO_COLUMNS)}, got {region!r}")
    try:
        import importlib.resources

        table = np.load(importlib.resources.files("pywt.data") / "sst_nino3.npz")["data"]
    except ImportError as err:
        raise ImportError("the Nino indices ship with PyWavelets: pip install PyWavelets "
                          "(or pip install xlangevin[climate])") from err
    values = table[:, _NINO_COLUMNS[region][1 if anomaly else 0]].astype(np.float64)
    if detrend:
        t = np.arange(values.size, dtype=np.float64)
        values = values - np.polyval(np.polyfit(t, values, 1), t)
    time = np.array([f"{int(y):04d}-{int(m):02d}-01" for y, m in table[:, :2]],
                    dtype="datetime64[ns]")
    kind = "anomaly" if anomaly else "SST"
    return xr.Dataset(
        {"sst": ("time", values, {"long_name": f"Nino {region} {kind}"
                                  + (", linear trend removed" if detrend else ""),
                                  "units": "degC"})},
        coords={"time": ("time", time)},
        attrs={"source": "ERSSTv4 Nino indices shipped with PyWavelets (pywt.data)",
               "region": f"Nino {region}"})


def soi_darwin(dropna: bool = True) -> xr.Dataset:
    """The monthly Southern Oscillation Index (Darwin), 1866-01 to 2013-12, shipped with
    iris-sample-data (``pip install iris-sample-data``; UK Open Government Licence), as a
    Dataset with variable ``soi`` (standardized pressure, dimensionless) on a datetime axis.

    ``dropna``: leave out the 12 missing months; the gaps then split the record into sequences
    (no transition or lag crosses them). Source: Trenberth, "Signal versus noise in the
    Southern Oscillation" (Mon. Wea. Rev. 112, 1984).
    """
    try:
        import iris_sample_data
    except ImportError as err:
        raise ImportError("the SOI record ships with iris-sample-data: pip install "
                          "iris-sample-data (or pip install xlangevin[climate])") from err
    path = Path(iris_sample_data.__file__).parent / "sample_data" / "SOI_Darwin.nc"
    with xr.open_dataset(path) as ds:
        soi = ds["SOI_Darwin"].astype(np.float64).load()
    if dropna:
        soi = soi.dropna("time")
    soi.attrs = {"long_name": "Southern Oscillation Index (Darwin)", "units": "1"}
    return xr.Dataset({"soi": soi},
                      attrs={"source": "iris-sample-data SOI_Darwin.nc",
                             "reference": "Trenberth (1984), Mon. Wea. Rev. 112, 326-332"})
