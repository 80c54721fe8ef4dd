"""Command line: ``xlangevin demo | fit | generate | compare | simulate | datasets``.

An error the user can fix is printed as one line on stderr (``xlangevin: error: ...``, with the
traceback only when ``XLANGEVIN_DEBUG=1``) and ends the run with a documented exit status:

====  ===========================================================================
0     success
1     an unexpected internal error (a bug: the traceback is printed)
2     bad arguments or parameters (argparse, ``ValueError``, ``TypeError``)
3     the data cannot be used as given (:class:`xlangevin.DataError`)
4     a file problem: missing input, not a model file, output exists or is read-only
5     the run failed: blow-up of the ensemble, not enough memory
130   interrupted (SIGINT); 143: terminated (SIGTERM). No partial file is left.
====  ===========================================================================
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import sys
import threading

import xarray as xr

from . import datasets, systems
from .analysis import compare, format_report, plot
from .data import DataError
from .demo import DEMOS, run_demo
from .dynamics import CDOT_ESTIMATORS, BlowUpError
from .io import ModelFileError, Terminated, open_model, refuse_existing, terminate_safely
from .score import SCORE_METHODS

#: (exception types, exit status), the first match wins
EXIT_STATUS = [((DataError,), 3),
               ((ModelFileError, FileNotFoundError, FileExistsError, PermissionError,
                 IsADirectoryError), 4),
               ((BlowUpError, MemoryError), 5),
               ((ValueError, TypeError), 2)]


def _open(path, variable=None):
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no input file {path}")
    ds = xr.open_dataset(path)
    if variable is not None and variable not in ds:
        raise ValueError(f"--var {variable!r} is not in {path}; it holds {list(ds.data_vars)}")
    return ds[variable] if variable else ds


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
    refuse_existing(args.output, args.overwrite)   # at the start; the writer checks again
    options = json.loads(args.score_options) if args.score_options else {}
    score = data.score.fit(method=args.method, sigma=args.sigma, dim=args.dim, seed=args.seed,
                           progress=not args.quiet, member_dim=args.member_dim, **options)
    current_options = json.loads(args.current_options) if args.current_options else None
    model = data.langevin.fit(score=score, dim=args.dim, cdot=args.cdot, seed=args.seed,
                              progress=not args.quiet, current_velocity=args.current_velocity,
                              current_options=current_options, member_dim=args.member_dim)
    model.to_netcdf(args.output, overwrite=args.overwrite)
    print(model)
    return 0


def _generate(args) -> int:
    model = open_model(args.model)
    refuse_existing(args.output, args.overwrite)   # at the start; the writer checks again
    sim = model.generate(n_steps=args.n_steps, dt=args.dt, save_every=args.save_every,
                         n_members=args.members, burn_in=args.burn_in, seed=args.seed,
                         progress=not args.quiet, path=args.output,
                         overwrite=args.overwrite)
    print(sim)
    return 0


def _compare(args) -> int:
    data, sim = _open(args.data, args.var), _open(args.sim, args.var)
    report = compare(data, sim)
    print(format_report(report))
    if args.plot:
        plot.comparison(report, data=data, sim=sim, path=args.plot)
        print(f"wrote {args.plot}")
    return 0


def _simulate(args) -> int:
    module = getattr(systems, args.system)
    refuse_existing(args.output, args.overwrite)   # at the start; the writer checks again
    ds = module.simulate(n_samples=args.n_samples, seed=args.seed, path=args.output,
                         progress=not args.quiet, overwrite=args.overwrite)
    print(ds)
    return 0


def _datasets(args) -> int:
    for name, text in datasets.available().items():
        print(f"{name:12s} {text}")
    return 0


def _simulable_systems():
    """The systems with a ``simulate`` that runs with defaults for everything but the run
    options (modules of static example data, such as ``manifolds``, have none)."""

    def ready(name):
        simulate = getattr(getattr(systems, name), "simulate", None)
        if simulate is None:
            return False
        params = inspect.signature(simulate).parameters.values()
        return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in params)

    return [name for name in systems.__all__ if ready(name)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xlangevin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, seed=0):
        p.add_argument("--seed", type=int, default=seed)
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", help="run the main job on a shipped archive (default: the "
                       "two-scale Lorenz-96 slow variables)")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--dataset", default="lorenz96", choices=sorted(DEMOS))
    p.add_argument("--score", choices=sorted({m for c in DEMOS.values() for m in c["score"]}),
                   help="score estimator (default: the data set's first; lorenz96: dsm, "
                        "potential: kgmm)")
    p.add_argument("--members", type=int, default=32)
    common(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("fit", help="fit a score and a Langevin model to a NetCDF archive")
    p.add_argument("input")
    p.add_argument("--var", help="data variable (default: all with the sample dim)")
    p.add_argument("--dim", default="time")
    p.add_argument("--member-dim", default="member",
                   help="dim of independent ensemble members (e.g. realization; default member)")
    p.add_argument("--method", default="auto", choices=SCORE_METHODS,
                   help="score estimator (default auto: chosen on a held-out block)")
    p.add_argument("--sigma", type=float, default=None,
                   help="standardized units (default: the estimator's)")
    p.add_argument("--score-options", help='JSON, e.g. \'{"p_min": 0.005}\'')
    p.add_argument("--cdot", default="auto", choices=CDOT_ESTIMATORS)
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
    return _run(args)


def _run(args) -> int:
    """``args.func(args)`` with the documented exit statuses and one-line errors."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate_safely) if main_thread else None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("xlangevin: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("xlangevin: terminated", file=sys.stderr)
        return 143
    except Exception as err:
        status = next((code for kinds, code in EXIT_STATUS if isinstance(err, kinds)), None)
        if status is None or os.environ.get("XLANGEVIN_DEBUG"):
            raise
        print(f"xlangevin: error: {' '.join(str(err).split())}", file=sys.stderr)
        return status
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
