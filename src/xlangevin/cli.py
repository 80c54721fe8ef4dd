"""Command line: ``xlangevin demo | fit | generate | compare | simulate | datasets``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _open(path, variable=None):
    import xarray as xr

    ds = xr.open_dataset(path)
    return ds[variable] if variable else ds


def _refuse_overwrite(path, overwrite) -> bool:
    if Path(path).exists() and not overwrite:
        print(f"{path} exists; pass --overwrite to replace it", file=sys.stderr)
        return True
    return False


def _print_report(report):
    print(f"{'feature':>12s} {'KL':>8s} {'Hellinger':>10s} {'W1/std':>8s} {'ACF RMSE':>9s}")
    for i, label in enumerate(report["label"].values):
        print(f"{str(label):>12s} {float(report.kl[i]):8.4f} {float(report.hellinger[i]):10.4f} "
              f"{float(report.wasserstein_std[i]):8.4f} {float(report.acf_rmse[i]):9.4f}")
    print(f"{'mean':>12s} {report.attrs['kl_mean']:8.4f} {report.attrs['hellinger_mean']:10.4f} "
          f"{report.attrs['wasserstein_std_mean']:8.4f} {report.attrs['acf_rmse_mean']:9.4f}")


# The demo configurations (chosen and measured in docs/lorenz96_demo.md).
#   score: the score estimators offered for the data set (options of ``ds.score.fit``), the
#       first being the default; "shift_copies" fits on the data plus its circular shifts along
#       the periodic feature dim (an exact symmetry of the system).
#   langevin: options of ``ds.langevin.fit``; "coarse_lag" (time units) becomes a one-lag
#       ``cdot="lagged"`` estimate at that lag; "current_velocity" adds the state-dependent
#       non-reversible drift v(x) (xlangevin.current).
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
    from xlangevin import datasets

    try:
        return datasets.open_dataset(name).load(), str(datasets.data_dir() / f"{name}.nc")
    except FileNotFoundError:
        print(f"shipped archive not found: simulating {name} ...")
        return datasets.REGISTRY[name].simulate(progress=progress), "simulated"


def _shift_copies(data, dim, sample_dim="time"):
    """``data`` and its circular shifts along ``dim``, stacked along ``sample_dim`` (no time
    coordinate: a sample of the same stationary density, for static estimators only)."""
    import xarray as xr

    data = data.drop_vars(sample_dim) if sample_dim in data.coords else data
    return xr.concat([data.roll({dim: i}, roll_coords=False) for i in range(data.sizes[dim])],
                     dim=sample_dim)


def _wave_speed(da, dim="k", sample_dim="time"):
    """Mean phase velocity (radians per time unit) of the Fourier mode 1 of ``da`` along
    ``dim``, averaged over consecutive samples (and members)."""
    import numpy as np

    z = np.fft.fft(da.transpose(..., sample_dim, dim).values, axis=-1)[..., 1]
    step = float(da[sample_dim][1] - da[sample_dim][0])
    return float(np.angle(z[..., 1:] * np.conj(z[..., :-1])).mean() / step)


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
    import numpy as np

    import xlangevin
    from xlangevin import plot

    from .io import atomic_target

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

    dt = config["dt"]
    sim = model.generate(n_steps=int(round(config["length"] / dt)), dt=dt,
                         save_every=int(round(data_dt / dt)), n_members=n_members,
                         burn_in=int(round(config["burn_in"] / dt)), seed=seed + 1,
                         progress=progress)
    report = xlangevin.compare(data, sim)
    model.to_netcdf(out / "model.nc")
    with atomic_target(out / "sim.nc") as tmp:
        sim.to_netcdf(tmp)
    plot.comparison(report, data=data, sim=sim, path=out / "comparison.png")
    plot.matrices({"Phi": model.Phi, "Phi_S": model.Phi_S, "Phi_A": model.Phi_A,
                   "Sigma": model.Sigma, "V": model.V}, path=out / "matrices.png")
    _print_report(report)
    if dataset == "lorenz96":
        print(f"travelling wave (Fourier mode 1 of x over k): mean phase velocity "
              f"{_wave_speed(data):.2f} rad per time unit in the data, {_wave_speed(sim):.2f} in "
              "the model")
    print(f"wrote {out}/model.nc, sim.nc, comparison.png, matrices.png "
          f"({time.perf_counter() - t0:.0f} s)")
    return report


def _demo(args) -> int:
    offered = DEMOS[args.dataset]["score"]
    if args.score is not None and args.score not in offered:
        print(f"the {args.dataset} demo offers --score {' or '.join(offered)}", file=sys.stderr)
        return 2
    run_demo(args.out, progress=not args.quiet, n_members=args.members, seed=args.seed,
             dataset=args.dataset, score=args.score)
    return 0


def _fit(args) -> int:
    data = _open(args.input, args.var)
    if _refuse_overwrite(args.output, args.overwrite):
        return 2
    options = json.loads(args.score_options) if args.score_options else {}
    score = data.score.fit(method=args.method, sigma=args.sigma, dim=args.dim, seed=args.seed,
                           progress=not args.quiet, **options)
    current_options = json.loads(args.current_options) if args.current_options else None
    model = data.langevin.fit(score=score, dim=args.dim, cdot=args.cdot, seed=args.seed,
                              progress=not args.quiet, current_velocity=args.current_velocity,
                              current_options=current_options)
    model.to_netcdf(args.output)
    print(model)
    return 0


def _generate(args) -> int:
    import xlangevin

    model = xlangevin.open_model(args.model)
    if _refuse_overwrite(args.output, args.overwrite):
        return 2
    sim = model.generate(n_steps=args.n_steps, dt=args.dt, save_every=args.save_every,
                         n_members=args.members, burn_in=args.burn_in, seed=args.seed,
                         progress=not args.quiet, path=args.output)
    print(sim)
    return 0


def _compare(args) -> int:
    import xlangevin
    from xlangevin import plot

    data, sim = _open(args.data, args.var), _open(args.sim, args.var)
    report = xlangevin.compare(data, sim)
    _print_report(report)
    if args.plot:
        plot.comparison(report, data=data, sim=sim, path=args.plot)
        print(f"wrote {args.plot}")
    return 0


def _simulate(args) -> int:
    from . import systems

    module = getattr(systems, args.system)
    if _refuse_overwrite(args.output, args.overwrite):
        return 2
    ds = module.simulate(n_samples=args.n_samples, seed=args.seed, path=args.output,
                         progress=not args.quiet)
    print(ds)
    return 0


def _datasets(args) -> int:
    from . import datasets

    for name, text in datasets.available().items():
        print(f"{name:12s} {text}")
    return 0


def _simulable_systems():
    """The systems whose ``simulate`` runs with defaults for everything but the run options."""
    import inspect

    from . import systems

    def ready(name):
        params = inspect.signature(getattr(systems, name).simulate).parameters.values()
        return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in params)

    return [name for name in systems.__all__ if ready(name)]


def main(argv=None) -> int:
    from . import systems

    parser = argparse.ArgumentParser(prog="xlangevin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, seed=0):
        p.add_argument("--seed", type=int, default=seed)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", help="run the main job on a shipped archive (default: the "
                       "two-scale Lorenz-96 slow variables)")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--dataset", default="lorenz96", choices=sorted(DEMOS))
    p.add_argument("--score", choices=["dsm", "kgmm"],
                   help="score estimator (default: the data set's first; lorenz96: dsm, "
                        "potential: kgmm)")
    p.add_argument("--members", type=int, default=32)
    common(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("fit", help="fit a score and a Langevin model to a NetCDF archive")
    p.add_argument("input")
    p.add_argument("--var", help="data variable (default: all with the sample dim)")
    p.add_argument("--dim", default="time")
    p.add_argument("--method", default="kgmm", choices=["kgmm", "gmm", "dsm"])
    p.add_argument("--sigma", type=float, default=0.1, help="standardized units")
    p.add_argument("--score-options", help='JSON, e.g. \'{"p_min": 0.005}\'')
    p.add_argument("--cdot", default="lagged", choices=["lagged", "logm", "finite_volume"])
    p.add_argument("--current-velocity", action="store_true",
                   help="add the state-dependent current velocity v(x) to the drift "
                        "(non-reversible data, e.g. travelling waves; docs/current_velocity.md)")
    p.add_argument("--current-options", help="JSON dict of CurrentVelocity options, e.g. "
                   "'{\"shift_augmentation\": true}'")
    p.add_argument("-o", "--output", required=True, help="model file (.nc)")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_fit)

    p = sub.add_parser("generate", help="generate an ensemble from a saved model")
    p.add_argument("model")
    p.add_argument("--n-steps", type=int, required=True)
    p.add_argument("--dt", type=float, required=True, help="data time units")
    p.add_argument("--save-every", type=int, default=1)
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--burn-in", type=int, default=0, help="steps")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_generate)

    p = sub.add_parser("compare", help="PDFs, ACFs and distances of data vs simulation")
    p.add_argument("data")
    p.add_argument("sim")
    p.add_argument("--var")
    p.add_argument("--plot", help="write the comparison figure here (.png)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("simulate", help="simulate a benchmark system to NetCDF")
    p.add_argument("system", choices=_simulable_systems(),
                   help="systems whose parameters all have defaults (ou needs A and B: use "
                        "xlangevin.systems.ou.simulate from Python)")
    p.add_argument("-o", "--output", required=True, help="NetCDF file to write")
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_simulate)

    p = sub.add_parser("datasets", help="list the sample archives")
    p.set_defaults(func=_datasets)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
