"""Euler–Maruyama ensemble generation: member-steps per second of ``LangevinModel.generate``.

    x <- x + dt Phi s(x) + sqrt(2 dt) Sigma eta

for d = 4 and 32, with (a) an analytic score s(x) = -x and (b) the KGMM network
(MLP d -> 128 -> 64 -> d, swish, random weights; s = -net(x) / sigma), at 1, 1000 and 10000
members, against

* ``numpy loop`` / ``torch loop``: the plain loop one would write (one batched drift call, one
  matrix product for the noise, per step);
* ``torchsde``: ``torchsde.sdeint(..., method="euler")`` with the same drift and
  ``g = sqrt(2) Sigma``, noise type "general" and "additive" (both valid for a constant Sigma;
  the faster one is the ``torchsde`` column);
* ``xlangevin numpy``: ``generate(backend="numpy")``, the reference loop (bound checks, resets);
* ``xlangevin numba``: ``generate(backend="numba")``, the threaded kernel (MLP weights inside the
  kernel, or a numba-jitted analytic score).

Medians of repeated runs, each sized to take ~``--seconds``, interleaved (one run of every
competitor per round; the ratio to torchsde is the median of the per-round ratios, so a drift in
the speed of a shared machine cancels); the compile/warm-up call is not timed. ``pip install torchsde`` (benchmarks only). Run: ``python benchmarks/bench_generate.py``
(about 3-5 minutes on 2 cores; ``--quick`` for a smaller sweep).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import xlangevin  # noqa: F401  (first: passive OpenMP waiting before numba / torch load)
import numba
import numpy as np
import torch
import xarray as xr

from xlangevin.data import FeatureSpace
from xlangevin.dynamics import LangevinModel
from xlangevin.score import MLP, NoiseToScore, ScoreModel

SIGMA = 0.1
DT = 1e-3


@numba.njit
def linear_score_row(x, out):
    for i in range(x.shape[0]):
        out[i] = -x[i]


def linear_score(x):
    return -x


def setup(d, kind, seed=0):
    """(model, Phi, Sigma, torch network or None): unit space (mean 0, scale 1)."""
    rng = np.random.default_rng(seed)
    data = xr.DataArray(rng.standard_normal((2000, d)), dims=("time", "k"), name="x",
                        coords={"time": np.arange(2000) * 0.01})
    space = FeatureSpace.fit(data, standardize=False)
    A = rng.standard_normal((d, d)) / np.sqrt(d)
    Phi = np.eye(d) + 0.3 * (A - A.T)
    Sig = np.linalg.cholesky(0.5 * (Phi + Phi.T))
    net = None
    if kind == "analytic":
        score = linear_score_row
    else:
        torch.manual_seed(seed)
        net = MLP(d).eval()
        with torch.no_grad():
            net.layers[-1].weight.mul_(0.05)    # a small drift keeps states inside the bound
        for p in net.parameters():
            p.requires_grad_(False)
        score = ScoreModel(NoiseToScore(net, SIGMA), space, SIGMA, "kgmm")
    samples = rng.standard_normal((100, d))
    model = LangevinModel(Phi, Sig, -np.eye(d), score, space, samples, cdot_estimator="bench")
    return model, Phi, Sig, net


# -- the competitors: each returns a function run(n_steps) -------------------------------------
def xl_runner(model, m, backend, dtype, score=None):
    mdl = model if score is None else model.with_score(score)

    def run(n):
        return mdl.generate(n, DT, save_every=n, n_members=m, seed=1, backend=backend,
                            dtype=dtype, progress=False)
    return run


def numpy_loop(Phi, Sig, m, dtype):
    rng = np.random.default_rng(0)
    PhiT, SigT = Phi.T.astype(dtype), Sig.T.astype(dtype)
    sq = np.sqrt(2 * DT)

    def run(n):
        x = rng.standard_normal((m, Phi.shape[0])).astype(dtype)
        for _ in range(n):
            x += DT * ((-x) @ PhiT) + sq * (rng.standard_normal(x.shape, dtype=dtype) @ SigT)
        return x
    return run


def torch_loop(net, Phi, Sig, m, dtype, analytic):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    PhiT = torch.as_tensor(Phi.T, dtype=tdt)
    SigT = torch.as_tensor(Sig.T, dtype=tdt)
    g = torch.Generator().manual_seed(0)
    sq = float(np.sqrt(2 * DT))
    f = None if analytic else net.to(tdt)

    def run(n):
        x = torch.randn(m, Phi.shape[0], generator=g, dtype=tdt)
        with torch.no_grad():
            for _ in range(n):
                s = -x if analytic else f(x) * (-1.0 / SIGMA)
                x = x + DT * (s @ PhiT) + sq * (torch.randn(x.shape, generator=g, dtype=tdt) @ SigT)
        return x
    return run


def torchsde_runner(net, Phi, Sig, m, dtype, analytic, noise_type="general"):
    import torchsde

    tdt = torch.float64 if dtype == np.float64 else torch.float32
    PhiT = torch.as_tensor(Phi.T, dtype=tdt)
    G = torch.as_tensor(np.sqrt(2.0) * Sig, dtype=tdt)
    f_net = None if analytic else net.to(tdt)

    class SDE(torch.nn.Module):
        sde_type = "ito"

        def __init__(self):
            super().__init__()
            self.noise_type = noise_type

        def f(self, t, y):
            s = -y if analytic else f_net(y) * (-1.0 / SIGMA)
            return s @ PhiT

        def g(self, t, y):
            return G.expand(y.shape[0], *G.shape)

    sde = SDE()
    d = Phi.shape[0]

    def run(n):
        y0 = torch.zeros(m, d, dtype=tdt)
        ts = torch.tensor([0.0, n * DT], dtype=tdt)
        with torch.no_grad():
            return torchsde.sdeint(sde, y0, ts, method="euler", dt=DT)
    return run


def calibrate(run, seconds):
    """Steps for one timed run of ~``seconds`` (after a compile / warm-up call)."""
    run(2)
    n = 4
    while True:
        t = time.perf_counter()
        run(n)
        el = time.perf_counter() - t
        if el > 0.05 or n > 10**7:
            break
        n *= 4
    return max(2, int(n * seconds / max(el, 1e-9)))


def measure(runs, m, seconds, repeats):
    """Member-steps per second of each competitor in ``runs`` (name -> run(n_steps)): the runs
    are interleaved, one of each per round, so that a drift in the machine's speed (a shared
    VM) hits every competitor alike. Returns ``{name: [rate per round]}``."""
    steps = {name: calibrate(run, seconds) for name, run in runs.items()}
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run(steps[name])
            rates[name].append(m * steps[name] / (time.perf_counter() - t))
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="numba and torch threads (default: numba's default)")
    ap.add_argument("--quick", action="store_true", help="1000 members only, fewer repeats")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    torch.set_num_threads(numba.get_num_threads())
    try:
        import torchsde  # noqa: F401
        have_sde = True
    except ImportError:
        have_sde = False
        print("torchsde not installed (pip install torchsde): its column is skipped")
    members = (1000,) if args.quick else (1, 1000, 10000)
    repeats = 3 if args.quick else args.repeats
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; dt {DT}; "
          f"median of {repeats}, ~{args.seconds} s each")
    rows = []
    cases = [("analytic", "float64"), ("mlp", "float32"), ("mlp", "float64")]
    for kind, dtype in cases:
        for d in (4, 32):
            model, Phi, Sig, net = setup(d, kind)
            dt_np = np.dtype(dtype)
            for m in members:
                plain = numpy_loop(Phi, Sig, m, dt_np) if kind == "analytic" else \
                    torch_loop(net, Phi, Sig, m, dt_np, False)
                comps = {"numba": xl_runner(model, m, "numba", dtype),
                         "xl numpy": xl_runner(model, m, "numpy", dtype,
                                               score=linear_score if kind == "analytic" else None),
                         "plain loop": plain}
                if have_sde:     # both valid noise types for a constant Sigma; the faster counts
                    for nt in ("general", "additive"):
                        comps[f"torchsde {nt}"] = torchsde_runner(net, Phi, Sig, m, dt_np,
                                                                  kind == "analytic", nt)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rates = measure(comps, m, args.seconds, repeats)
                res = {name: float(np.median(r)) for name, r in rates.items()}
                if have_sde:     # per round the faster torchsde; ratios paired by round
                    sde = np.maximum(rates["torchsde general"], rates["torchsde additive"])
                    res["torchsde"] = float(np.median(sde))
                    res["numba / torchsde"] = float(np.median(np.asarray(rates["numba"]) / sde))
                row = {"drift": kind, "dtype": dtype, "d": d, "members": m, **res}
                rows.append(row)
                print(_line(row), flush=True)
    print()
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


def _fmt(v):
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v / 1e6:.3g} M" if v >= 1e5 else f"{v / 1e3:.3g} k"


def _line(row):
    return (f"{row['drift']:8s} {row['dtype']:7s} d={row['d']:<3d} m={row['members']:<6d} "
            + "  ".join(f"{k}: {_fmt(v)}" for k, v in row.items()
                        if k not in ("drift", "dtype", "d", "members", "numba / torchsde"))
            + (f"  numba / torchsde: {row['numba / torchsde']:.2f}x"
               if "numba / torchsde" in row else ""))


def _table(rows):
    head = ("| drift | dtype | d | members | xlangevin numba | xlangevin numpy | plain loop | "
            "torchsde | numba / torchsde | numba / plain |")
    out = [head, "|" + "---|" * 10]
    for r in rows:
        sde = r.get("torchsde")
        out.append(f"| {r['drift']} | {r['dtype']} | {r['d']} | {r['members']} | "
                   f"{_fmt(r['numba'])} | {_fmt(r['xl numpy'])} | {_fmt(r['plain loop'])} | "
                   f"{_fmt(sde)} | "
                   f"{r.get('numba / torchsde', float('nan')):.1f}x | "
                   f"{r['numba'] / r['plain loop']:.1f}x |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
