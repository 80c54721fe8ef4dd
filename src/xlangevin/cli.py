"""Command line: ``xlangevin demo``, ``xlangevin simulate``, ``xlangevin datasets``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _demo(args) -> int:
    """Main job on the default data set (two-scale Lorenz-96, slow variables).

    Until the score and Langevin estimators land this opens (or simulates) the archive,
    builds its feature space and writes the standardized record with a summary.
    """
    import numpy as np

    from . import datasets
    from .data import FeatureSpace
    from .io import atomic_target

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        ds = datasets.open_dataset("lorenz96").load()
        source = str(datasets.data_dir() / "lorenz96.nc")
    except FileNotFoundError:
        print("shipped archive not found: simulating two-scale Lorenz-96 ...")
        ds = datasets.REGISTRY["lorenz96"].simulate(progress=not args.quiet)
        source = "simulated"
    space = FeatureSpace.fit(ds, variables=["x"])
    X = space.transform(ds)
    print(f"data: {source}\n{space}")
    print(f"{'feature':>10s} {'mean':>10s} {'std':>10s} {'lag-1 acf':>10s}")
    for i, label in enumerate(space.feature_labels()):
        acf1 = float(np.corrcoef(X[:-1, i], X[1:, i])[0, 1])
        print(f"{label:>10s} {space.mean[i]:10.4f} {space.scale[i]:10.4f} {acf1:10.4f}")
    path = out / "lorenz96_slow.nc"
    with atomic_target(path) as tmp:
        ds.to_netcdf(tmp)
    print(f"wrote {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _simulate(args) -> int:
    from . import systems

    module = getattr(systems, args.system)
    path = Path(args.output)
    if path.exists() and not args.overwrite:
        print(f"{path} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    ds = module.simulate(n_samples=args.n_samples, seed=args.seed, path=path,
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
    p = sub.add_parser("demo", help="run the main job on the default data set")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)
    p = sub.add_parser("simulate", help="simulate a benchmark system to NetCDF")
    p.add_argument("system", choices=systems.__all__)
    p.add_argument("-o", "--output", required=True, help="NetCDF file to write")
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_simulate)
    p = sub.add_parser("datasets", help="list the sample archives")
    p.set_defaults(func=_datasets)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
