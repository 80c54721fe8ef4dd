"""The committed model files of tests/data/models/: one small model of every kind, and what each
must evaluate to. They hold the backward-compatibility promise of the file format
(docs/reliability.md): a file written by this version opens, and evaluates identically, in
every later one.

``python tests/model_fixtures.py`` writes them (only when the format changes on purpose: then
add files, never replace the old ones). tests/test_model_files.py opens each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

FOLDER = Path(__file__).resolve().parent / "data" / "models"


def _record(n=1500, d=2, seed=0):
    """A skewed, correlated 2-D record with a datetime axis and units."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d))
    for t in range(1, n):
        x[t] = 0.9 * x[t - 1] + rng.normal(size=d) * 0.5
    x[:, 0] += 0.3 * x[:, 0] ** 2
    return xr.DataArray(x, dims=("time", "k"), name="x",
                        coords={"time": pd.date_range("2000-01-01", periods=n, freq="D"),
                                "k": ["a", "b"]}, attrs={"units": "K"})


def _probe(da):
    return da.isel(time=slice(0, 40))


def _generate(model):
    return model.generate(20, "1D", n_members=2, seed=1, progress=False,
                          max_reset_fraction=None).values


def _build():
    import xlangevin

    da = _record()
    built = {
        "score_kgmm": (xlangevin.KGMM(sigma=0.1, p_min=0.05, epochs=20, seed=0,
                                      progress=False).fit(da), "score"),
        "score_dsm": (xlangevin.DSM(sigma=0.2, epochs=5, seed=0, progress=False).fit(da),
                      "score"),
        "score_gmm": (xlangevin.GMM(sigma=0.3).fit(da), "score"),
        "score_polynomial": (da.score.fit(method="polynomial", seed=0, progress=False),
                             "score"),
        "langevin_gaussian": (da.langevin.fit(score="gaussian", seed=0, progress=False),
                              "generate"),
        "langevin_polynomial_current": (da.langevin.fit(
            score="polynomial", current_velocity="polynomial", seed=0, progress=False),
            "generate"),
        "partition": (xlangevin.BisectingPartition(p_min=0.1, seed=0).fit(
            (da.values - da.values.mean(0)) / da.values.std(0)), "assign"),
        "diffusion_map": (xlangevin.DiffusionMap(eps=0.05, seed=0, max_samples=300).fit(da),
                          "sample"),
        "time_score_spectral": (xlangevin.SpectralScore(order=3, n_times=8).fit(da),
                                "time_score"),
        "flow_map": (xlangevin.FlowMap(hidden=(8, 8), epochs=2, seed=0).fit(
            xlangevin.systems.lorenz63.simulate(n_samples=300, noise=0.0, seed=0,
                                                progress=False)), "orbit"),
    }
    return da, built


def evaluate(model, how, da):
    """What a fixture must reproduce, as one array."""
    if how == "score":
        return np.asarray(model(_probe(da)).values)
    if how == "generate":
        return _generate(model)
    if how == "assign":
        x = (da.values - da.values.mean(0)) / da.values.std(0)
        return np.asarray(model.assign(x[:200]))
    if how == "sample":
        return model.sample(10, n_steps=20, seed=1, as_array=True)
    if how == "time_score":
        return np.stack([np.asarray(model(t, _probe(da)).values) for t in (0.0, 0.3, 1.0)])
    if how == "orbit":
        return model.orbit(np.ones(model.dim), 10)
    raise ValueError(how)


def write(folder: Path = FOLDER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    da, built = _build()
    da.to_netcdf(folder / "record.nc")
    for name, (model, how) in built.items():
        model.to_netcdf(folder / f"{name}.nc", overwrite=True)
        xr.Dataset({"expected": (("i",), evaluate(model, how, da).ravel())},
                   attrs={"evaluate": how}).to_netcdf(folder / f"{name}.expected.nc")
        print(f"{name}: {(folder / f'{name}.nc').stat().st_size // 1024} KiB")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
