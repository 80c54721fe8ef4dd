"""The demo (``xlangevin demo``, ``make demo``): the main job on a shipped archive, score ->
effective Langevin model -> ensemble -> comparison with the data (docs/lorenz96_demo.md).

:data:`DEMOS` holds the configurations; :func:`run_demo` runs one and prints what it finds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr

from . import datasets
from .analysis import compare, plot
from .analysis.report import format_report
from .io import atomic_target

__all__ = ["DEMOS", "run_demo"]

# The demo configurations (chosen and measured in docs/lorenz96_demo.md).
#   score: the score estimators offered for the data set (options of ``ds.score.fit``), the
#       first being the default; "shift_copies" fits on the data plus its circular shifts along
#       the periodic feature dim (an exact symmetry of the system).
#   langevin: options of ``ds.langevin.fit``; "coarse_lag" (time units) becomes a one-lag
#       ``cdot="lagged"`` estimate at that lag; "current_velocity" adds the state-dependent
#       non-reversible drift v(x) (xlangevin.dynamics.current).
#   dt, length, burn_in: Euler-Maruyama step, length per member and burn-in, in time units.
DEMOS = {
    "lorenz96": {
        "title": "two-scale Lorenz-96 (K = 4, J = 10, F = 4), slow variables x",
        "score": {
            "dsm": dict(sigma=0.1, shift_augmentation=True),
            "kgmm": dict(sigma=0.15, n_clusters=6000, batch_size=256, epochs=1000,
                         shift_copies="k"),
        },
        "langevin": {"coarse_lag": 0.1, "current_velocity": True,
                     "current_options": {"shift_augmentation": True}},
        "dt": 0.0025, "length": 500.0, "burn_in": 10.0,
    },
    "potential": {
        "title": "2-D asymmetric potential with rotation C = 0.8 (true Phi = [[1, -0.8], "
                 "[0.8, 1]], Sigma = I)",
        "score": {"kgmm": dict(sigma=0.05, p_min=0.005)},
        "langevin": {},
        "dt": 0.002, "length": 200.0, "burn_in": 2.0,
    },
}


def _open_archive(name, progress):
    try:
        return datasets.open_dataset(name).load(), str(datasets.data_dir() / f"{name}.nc")
    except FileNotFoundError:
        print(f"shipped archive not found: simulating {name} ...")
        return datasets.REGISTRY[name].simulate(progress=progress), "simulated"


def _shift_copies(data, dim, sample_dim="time"):
    """``data`` and its circular shifts along ``dim``, stacked along ``sample_dim`` (no time
    coordinate: a sample of the same stationary density, for static estimators only)."""
    data = data.drop_vars(sample_dim) if sample_dim in data.coords else data
    return xr.concat([data.roll({dim: i}, roll_coords=False) for i in range(data.sizes[dim])],
                     dim=sample_dim)


def _wave_speed(da, dim="k", sample_dim="time"):
    """Mean phase velocity (radians per time unit) of the Fourier mode 1 of ``da`` along
    ``dim``, averaged over consecutive samples (and members)."""
    z = np.fft.fft(da.transpose(..., sample_dim, dim).values, axis=-1)[..., 1]
    step = float(da[sample_dim][1] - da[sample_dim][0])
    return float(np.angle(z[..., 1:] * np.conj(z[..., :-1])).mean() / step)


def _fit_model(data, data_dt, config, method, seed, progress):
    """The score (``method`` with the demo's options) and the effective Langevin model on it
    (``data_dt``: the data's sampling step); prints both and the model's checks."""
    options = dict(config["score"][method])
    shift_dim = options.pop("shift_copies", None)
    fit_data = _shift_copies(data, shift_dim) if shift_dim else data
    score_model = fit_data.score.fit(method=method, seed=seed, progress=progress, **options)
    print(score_model)

    options = dict(config["langevin"])
    coarse_lag = options.pop("coarse_lag", None)
    if coarse_lag is not None:
        options.update(cdot="lagged", lags=(int(round(coarse_lag / data_dt)),), order=0)
    model = data.langevin.fit(score=score_model, seed=seed, progress=progress, **options)
    print(model)
    d = model.dim
    print(f"Stein check max|V~ + I| = {np.abs(model.V_std + np.eye(d)).max():.3f}; "
          f"eig(Phi_S~) = {np.round(np.linalg.eigvalsh(model.Phi_S_std), 3)}")
    print("Phi (physical units):\n", np.round(model.Phi.values, 3))
    return model


def _write(out, model, data, sim, report):
    """model.nc, sim.nc, comparison.png and matrices.png in ``out`` (the demo's own folder:
    its files are replaced on every run)."""
    model.to_netcdf(out / "model.nc", overwrite=True)
    with atomic_target(out / "sim.nc", overwrite=True) as tmp:
        sim.to_netcdf(tmp)
    plot.comparison(report, data=data, sim=sim, path=out / "comparison.png")
    plot.matrices({"Phi": model.Phi, "Phi_S": model.Phi_S, "Phi_A": model.Phi_A,
                   "Sigma": model.Sigma, "V": model.V}, path=out / "matrices.png")


def run_demo(out="demo_output", progress=True, n_members=32, seed=0, dataset="lorenz96",
             score=None):
    """The main job on a shipped archive: score -> effective Langevin model -> ensemble ->
    model.nc, sim.nc, comparison and matrix figures, and the distances. Returns the
    comparison report.

    ``dataset="lorenz96"`` (default): the slow variables of the two-scale Lorenz-96 archive.
    Score by denoising score matching with circular-shift augmentation (``score="dsm"``,
    default) or KGMM on the data and its circular shifts (``score="kgmm"``); ``Cdot(0)`` from
    the increments at the coarse-graining lag 0.1 (the slow variables are smooth at the
    sampling step, so the short-lag limit is ~0 and carries no effective noise), and the
    current velocity ``v(x)`` from central differences with shift augmentation: the data carry
    a travelling wave (Fourier mode 1 of x, mean phase velocity ~1.9 rad per time unit around a
    ring that never comes near 0) that a constant ``Phi_A`` cannot carry (its mean phase
    velocity is proportional to the density at the centre of the ring, ~0); the drift
    ``Phi_S s(x) + v(x)`` does. The demo prints both phase velocities. See
    docs/lorenz96_demo.md.

    ``dataset="potential"``: the 2-D rotational-potential archive (true ``Phi``, ``Sigma``
    known), KGMM score and the default ``Cdot(0)`` estimator.
    """
    if dataset not in DEMOS:
        raise ValueError(f"unknown demo dataset {dataset!r}; choose from {sorted(DEMOS)}")
    config = DEMOS[dataset]
    method = score or next(iter(config["score"]))
    if method not in config["score"]:
        raise ValueError(f"the {dataset} demo offers the scores {sorted(config['score'])}, "
                         f"not {method!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds, source = _open_archive(dataset, progress)
    data = ds.x
    data_dt = float(data.time[1] - data.time[0])
    print(f"{config['title']}\ndata: {source}: {dict(data.sizes)}, sampled every {data_dt:g}")
    model = _fit_model(data, data_dt, config, method, seed, progress)

    dt = config["dt"]
    sim = model.generate(n_steps=int(round(config["length"] / dt)), dt=dt,
                         save_every=int(round(data_dt / dt)), n_members=n_members,
                         burn_in=int(round(config["burn_in"] / dt)), seed=seed + 1,
                         progress=progress)
    report = compare(data, sim)
    _write(out, model, data, sim, report)
    print(format_report(report))
    if dataset == "lorenz96":
        print(f"travelling wave (Fourier mode 1 of x over k): mean phase velocity "
              f"{_wave_speed(data):.2f} rad per time unit in the data, {_wave_speed(sim):.2f} in "
              "the model")
    print(f"wrote {out}/model.nc, sim.nc, comparison.png, matrices.png "
          f"({time.perf_counter() - t0:.0f} s)")
    return report
