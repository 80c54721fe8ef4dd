"""Response from the score against perturbation ensembles: the tables of docs/response.md.

1-D double well ``V = (1 - x^2)^2 / 4`` and tilted quartic ``V = x^4/4 - x^2/2 + 0.3 x``
(``dx = -V'(x) dt + sqrt(2) dW``), 10^6 samples every 0.05 time units (100 runs of 500 time
units), and the reduced triad model with its multiplicative noise (``xlangevin.systems.triad``,
10 runs of 10^5 samples every 0.05). The truth: paired kicked ensembles
(``xlangevin.perturbation_response``, 2000 member pairs, kick 0.1 standard deviations) of the
exact dynamics (the simulators ``xlangevin.systems.double_well`` and ``triad``; for the tilted
quartic the LangevinModel with the exact score and ``Phi = 1``). Against it, the
fluctuation-dissipation response (``xlangevin.response``) with the exact score, the
polynomial, KGMM and DSM scores fitted on the record, and the quasi-Gaussian approximation.
Error: integrated relative error ``sum_t |R - R_true| / sum_t |R_true|`` over lags 0 .. 5
integrated autocorrelation times of x; moments are ``(x - <x>)^k``.

The two-scale Lorenz-96 slow variables (``xlangevin.systems.lorenz96``, K = 4, F = 4): a kick
on x_1, 10^6 samples every 0.005 (every 0.05 for the response), the truth from the full
simulator; KGMM and quasi-Gaussian.

Usage: python benchmarks/response_checks.py [--n 1000000] [--members 2000] [--figures DIR]
           [--lorenz96]
"""

import argparse
import time
import warnings

import numpy as np
import xarray as xr

import xlangevin as xl
from xlangevin.analysis import integrated_autocorrelation_time

SYSTEMS = {"double well": lambda x: x - x**3, "tilted quartic": lambda x: x - x**3 - 0.3,
           "triad": lambda x: xl.systems.triad.score(x)}
OBSERVABLES = ("x", "x**2", "x**3", "x**4")


def simulate(score, n, spacing=0.05, dt=0.001, members=100, seed=0):
    """``n`` samples every ``spacing`` of ``dx = s(x) dt + sqrt(2) dW`` (Euler-Maruyama at
    ``dt``, ``members`` independent runs end to end after a burn-in of 20 time units)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=members)
    per = n // members
    every = int(round(spacing / dt))
    for _ in range(int(20 / dt)):
        x = x + dt * score(x) + np.sqrt(2 * dt) * rng.normal(size=members)
    out = np.empty((per, members))
    for i in range(per):
        for _ in range(every):
            x = x + dt * score(x) + np.sqrt(2 * dt) * rng.normal(size=members)
        out[i] = x
    data = out.T.reshape(members, per)
    return xr.DataArray(data, dims=("member", "time"),
                        coords={"time": np.arange(per) * spacing}, name="x")


def exact_dynamics(name, data, score):
    """The simulator of the double well; for the tilted quartic the LangevinModel
    ``dx = s(x) dt + sqrt(2) dW`` (``Phi = 1``) on the data's feature space."""
    if name in ("double well", "triad"):
        return getattr(xl.systems, name.replace(" ", "_"))
    fitted = data.langevin.fit(score="gaussian", cdot="logm", n_keep=5000, seed=0,
                               progress=False)
    scale = fitted.space.scale[0]
    return xl.LangevinModel([[1 / scale**2]], [[1 / scale]], [[-1.0]], lambda X: score(X),
                            fitted.space, fitted.samples)


def model_row(name, data, truth, n_lags, members, forcing=None, component="x"):
    """The perturbation response of the effective Langevin model fitted to the record (KGMM
    score, the default Cdot): does the reduced model respond like the system?"""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = data.langevin.fit(score="kgmm", seed=0, progress=False)
        P = xl.perturbation_response(model, n_lags=n_lags, dt=0.005, save_every=10,
                                     forcing=forcing, n_members=members, seed=1,
                                     observables=OBSERVABLES)
    e = errors(P, truth, component)
    print(f"| {name} | LangevinModel (KGMM) by perturbation | 1 | "
          + " | ".join(f"{e[o]:.3f}" for o in OBSERVABLES)
          + f" | {time.perf_counter() - t0:.0f} s |", flush=True)


def errors(estimate, truth, component="x"):
    out = {}
    for name in OBSERVABLES:
        r = estimate.response.sel(observable=f"{name}[{component}]").values[:, 0]
        p = truth.response.sel(observable=f"{name}[{component}]").values[:, 0]
        out[name] = float(np.abs(r - p).sum() / np.abs(p).sum())
    return out


def run(n, members, figures=None):
    print("| system | score | R_x(0) | mean | x^2 | x^3 | x^4 | time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, score in SYSTEMS.items():
        data = (simulate(score, n) if name != "triad" else
                xl.systems.triad.simulate(n_samples=n // 10, dt=0.001, save_every=50,
                                          n_members=10, seed=0, progress=False).x)
        tau = float(integrated_autocorrelation_time(data.values.T).mean())   # samples
        n_lags = int(np.ceil(5 * tau))
        t0 = time.perf_counter()
        truth = xl.perturbation_response(exact_dynamics(name, data, score), n_lags=n_lags,
                                         dt=0.005, save_every=10, n_members=members, seed=1,
                                         observables=OBSERVABLES)
        t_truth = time.perf_counter() - t0
        se = {o: float(np.sqrt((truth.response_stderr.sel(observable=f"{o}[x]") ** 2).sum())
                       / np.abs(truth.response.sel(observable=f"{o}[x]")).sum())
              for o in OBSERVABLES}
        print(f"| {name} | perturbation (its MC error) | 1 | "
              + " | ".join(f"{se[o]:.3f}" for o in OBSERVABLES) + f" | {t_truth:.0f} s |")
        shown = {"perturbation": truth}
        for label, s in (("exact", lambda X: score(X)), ("polynomial", "polynomial"),
                         ("kgmm", "kgmm"), ("dsm", "dsm"), ("quasi-Gaussian", "gaussian")):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                R = xl.response(data, score=s, observables=OBSERVABLES, max_lag=n_lags,
                                seed=0)
            if label in ("kgmm", "quasi-Gaussian"):
                shown[f"score: {label}"] = R
            e = errors(R, truth)
            print(f"| {name} | {label} | {R.response.values[0, 0, 0]:.3f} | "
                  + " | ".join(f"{e[o]:.3f}" for o in OBSERVABLES)
                  + f" | {time.perf_counter() - t0:.0f} s |", flush=True)
        model_row(name, data, truth, n_lags, members)
        if figures:
            xl.plot.responses(shown, path=f"{figures}/response_{name.replace(' ', '_')}.png")


def run_lorenz96(n, members, figures=None):
    """The two-scale Lorenz-96 slow variables (K = 4, J = 10, F = 4, noise 0.2): a kick on
    x_1; the truth from the full simulator (fast variables carried along, unkicked)."""
    data = xl.systems.lorenz96.simulate(n_samples=n // 10, n_members=10, seed=0,
                                        progress=False).x
    tau = float(integrated_autocorrelation_time(
        data.isel(k=0).values.T).mean())                      # samples of 0.005
    n_lags = int(np.ceil(5 * tau / 10))                         # lags of 0.05
    sub = data.isel(time=slice(None, None, 10))                 # samples every 0.05
    forcing = [1.0, 0.0, 0.0, 0.0]
    t0 = time.perf_counter()
    truth = xl.perturbation_response(xl.systems.lorenz96, n_lags=n_lags, dt=0.0005,
                                     save_every=100, forcing=forcing, n_members=members,
                                     seed=1, observables=OBSERVABLES)
    first = "x[k=0]"
    se = {o: float(np.sqrt((truth.response_stderr.sel(observable=f"{o}[{first}]") ** 2).sum())
                   / np.abs(truth.response.sel(observable=f"{o}[{first}]")).sum())
          for o in OBSERVABLES}
    print("| Lorenz-96 x_1 | perturbation (its MC error) | 1 | "
          + " | ".join(f"{se[o]:.3f}" for o in OBSERVABLES)
          + f" | {time.perf_counter() - t0:.0f} s |")
    shown = {"perturbation": truth}
    for label, s in (("kgmm", "kgmm"), ("quasi-Gaussian", "gaussian")):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            R = xl.response(sub, score=s, forcing=forcing, observables=OBSERVABLES,
                            max_lag=n_lags, seed=0)
        shown[f"score: {label}"] = R
        e = errors(R, truth, first)
        r0 = float(R.response.sel(observable=f"x[{first}]").values[0, 0])
        print(f"| Lorenz-96 x_1 | {label} | {r0:.3f} | "
              + " | ".join(f"{e[o]:.3f}" for o in OBSERVABLES)
              + f" | {time.perf_counter() - t0:.0f} s |", flush=True)
    model_row("Lorenz-96 x_1", sub, truth, n_lags, members, forcing, first)
    if figures:
        xl.plot.responses(shown, observables=[f"{o}[x[k=0]]" for o in OBSERVABLES],
                          path=f"{figures}/response_lorenz96.png")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--figures", default=None, help="folder for response_<system>.png")
    p.add_argument("--lorenz96", action="store_true", help="only the Lorenz-96 rows")
    args = p.parse_args()
    if not args.lorenz96:
        run(args.n, args.members, args.figures)
    run_lorenz96(args.n, args.members, args.figures)


if __name__ == "__main__":
    main()
