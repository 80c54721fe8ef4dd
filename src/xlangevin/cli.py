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


def run_demo(out="demo_output", progress=True, n_members=32, seed=0):
    """The main job on the shipped 2-D rotational-potential archive (true Phi = [[1, -0.8],
    [0.8, 1]], Sigma = I): KGMM score -> effective Langevin model -> ensemble -> model.nc,
    sim.nc, comparison and matrix figures, and the distances. Returns the comparison report.

    (The two-scale Lorenz-96 demo that the issue asks for is not yet good enough to be the
    default: see the closing note of the Langevin issue.)"""
    import numpy as np

    import xlangevin
    from xlangevin import datasets, plot

    from .io import atomic_target

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        ds = datasets.open_dataset("potential").load()
        source = str(datasets.data_dir() / "potential.nc")
    except FileNotFoundError:
        print("shipped archive not found: simulating the 2-D potential ...")
        ds = datasets.REGISTRY["potential"].simulate(progress=progress)
        source = "simulated"
    data = ds.x
    print(f"data: {source}: {dict(data.sizes)}, sampled every {float(data.time[1] - data.time[0]):g}")
    score = data.score.fit(method="kgmm", sigma=0.05, p_min=0.005, seed=seed, progress=progress)
    print(score)
    model = data.langevin.fit(score=score, seed=seed, progress=progress)
    print(model)
    print("Phi (true [[1, -0.8], [0.8, 1]]):\n", np.round(model.Phi.values, 3))
    dt = 0.002
    save_every = int(round(float(model.space.dt) / dt))
    sim = model.generate(n_steps=100_000, dt=dt, save_every=save_every, n_members=n_members,
                         burn_in=1000, seed=seed + 1, progress=progress)
    report = xlangevin.compare(data, sim)
    model.to_netcdf(out / "model.nc")
    with atomic_target(out / "sim.nc") as tmp:
        sim.to_netcdf(tmp)
    plot.comparison(report, data=data, sim=sim, path=out / "comparison.png")
    plot.matrices({"Phi": model.Phi, "Phi_S": model.Phi_S, "Phi_A": model.Phi_A,
                   "Sigma": model.Sigma, "V": model.V}, path=out / "matrices.png")
    _print_report(report)
    print(f"wrote {out}/model.nc, sim.nc, comparison.png, matrices.png "
          f"({time.perf_counter() - t0:.0f} s)")
    return report


def _demo(args) -> int:
    run_demo(args.out, progress=not args.quiet, n_members=args.members, seed=args.seed)
    return 0


def _fit(args) -> int:
    data = _open(args.input, args.var)
    if _refuse_overwrite(args.output, args.overwrite):
        return 2
    options = json.loads(args.score_options) if args.score_options else {}
    score = data.score.fit(method=args.method, sigma=args.sigma, dim=args.dim, seed=args.seed,
                           progress=not args.quiet, **options)
    model = data.langevin.fit(score=score, dim=args.dim, cdot=args.cdot, seed=args.seed,
                              progress=not args.quiet)
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


def main(argv=None) -> int:
    from . import systems

    parser = argparse.ArgumentParser(prog="xlangevin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, seed=0):
        p.add_argument("--seed", type=int, default=seed)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", help="run the main job on the default data set")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
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
    p.add_argument("system", choices=systems.__all__)
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
