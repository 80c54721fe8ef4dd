"""Accuracy of the Cdot(0) estimators of xlangevin.dynamics.cdot (the table of docs/cdot_estimators.md).

1. 2-D OU with Phi = I + 0.8 J, Sigma = I in standardized units (A = -Phi, B = sqrt(2) I, C0 = I),
   sampled exactly at dt in {0.001, 0.01, 0.05, 0.1}, 1e6 samples, several seeds. Phi = -Cdot(0)
   (V = -I, exact here). Relative Frobenius errors of Phi_S and Phi_A for: the one-step lagged
   difference, the extrapolated lagged difference (lags 1-3), the matrix log (lag 1), and the
   finite-volume rate matrix on bisecting k-means partitions of ~50, ~200, ~1000 cells, with the
   finite-dt corrections none / per_state / global.
2. The rotational 2-D potential (C = 0.8), 1e6 samples at spacing 0.01 (and subsampled to 0.05,
   0.1), V = <s x^T> from the exact score on the data: Phi against true_phi(0.8).

Run:  .venv/bin/python benchmarks/cdot_table.py [--n 1000000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from xlangevin.dynamics import cdot as g
from xlangevin.dynamics.mobility import mobility_from_cdot, stein_matrix
from xlangevin.dynamics.transitions import GeneratorWarning, estimate_generator
from xlangevin.partition import BisectingPartition
from xlangevin.systems import ou, potential

J = np.array([[0.0, -1.0], [1.0, 0.0]])
PHI = np.eye(2) + 0.8 * J
DTS = (0.001, 0.01, 0.05, 0.1)
CELLS = (50, 200, 1000)
CORRECTIONS = ("none", "per_state", "global")


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def parts(M):
    return 0.5 * (M + M.T), 0.5 * (M - M.T)


def errors(Phi, true):
    S, A = parts(Phi)
    St, At = parts(true)
    return rel(S, St), rel(A, At), float(np.trace(S) / 2), float(A[1, 0])


def estimators(X, dt, partitions):
    """name -> (cdot, extra) for one data set; partitions: n_clusters -> (labels, n_cells)."""
    out = {}
    out["lagged, lag 1"] = g.cdot_lagged(X, dt, lags=(1,))[0], {}
    out["lagged, lags 1-3 (extrap.)"] = g.cdot_lagged(X, dt, lags=(1, 2, 3))[0], {}
    try:
        out["logm, lag 1"] = g.cdot_logm(X, dt, lag=1)[0], {}
    except ValueError as err:
        out["logm, lag 1"] = None, {"error": str(err)}
    for nc, (lab, n_cells) in partitions.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeneratorWarning)
            G0 = estimate_generator(lab, dt, n_cells)
            for corr in CORRECTIONS:
                G = G0 if corr == "none" else estimate_generator(lab, dt, n_cells,
                                                                   correction=corr)
                cdot, d = g.cdot_finite_volume(X, lab, dt, generator=G)
                out[f"finite volume, ~{nc} cells, {corr}"] = cdot, {
                    "n_cells": n_cells, "leave_fraction": d["leave_fraction"],
                    "null_distance": d["null_distance"]}
    return out


def ou_table(n, seeds):
    A, B = -PHI, np.sqrt(2.0) * np.eye(2)
    res = {}          # (name, dt) -> list of (eS, eA, trS/2, A10, extra)
    for dt in DTS:
        for seed in range(seeds):
            t0 = time.perf_counter()
            X = ou.simulate(A, B, n, dt, seed=1000 * seed + int(dt * 1e4), progress=False).x.values
            partitions = {}
            for nc in CELLS:
                part = BisectingPartition(n_clusters=nc, seed=seed).fit(X)
                partitions[nc] = (part.assign(X), part.n_cells)
            for name, (cdot, extra) in estimators(X, dt, partitions).items():
                row = (np.nan,) * 4 if cdot is None else errors(-cdot, PHI)
                res.setdefault((name, dt), []).append(row + (extra,))
            print(f"  OU dt={dt} seed={seed}: {time.perf_counter() - t0:.1f} s", flush=True)
    return res


def print_ou(res, n, seeds):
    names = list(dict.fromkeys(k[0] for k in res))
    print(f"\n### OU, Phi = I + 0.8 J, {n:.0e} samples, mean over {seeds} seeds "
          "(relative Frobenius error of Phi_S / Phi_A, in %)\n")
    print("| estimator | " + " | ".join(f"dt = {dt}" for dt in DTS) + " |")
    print("|---|" + "---|" * len(DTS))
    for name in names:
        cells = []
        for dt in DTS:
            r = np.array([x[:4] for x in res[(name, dt)]], dtype=float)
            if np.all(np.isnan(r)):
                cells.append("fails")
                continue
            m = np.nanmean(r, axis=0)
            cells.append(f"{100 * m[0]:.1f} / {100 * m[1]:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n### OU: mean of tr(Phi_S)/2 (true 1) and Phi_A[1,0] (true 0.8); finite volume: "
          "cells, leave fraction\n")
    print("| estimator | " + " | ".join(f"dt = {dt}" for dt in DTS) + " |")
    print("|---|" + "---|" * len(DTS))
    for name in names:
        cells = []
        for dt in DTS:
            rows = res[(name, dt)]
            r = np.array([x[:4] for x in rows], dtype=float)
            if np.all(np.isnan(r)):
                cells.append("fails")
                continue
            m = np.nanmean(r, axis=0)
            s = f"{m[2]:.3f}, {m[3]:.3f}"
            ex = rows[0][4]
            if "leave_fraction" in ex:
                s += f" ({ex['n_cells']}, {np.mean([x[4]['leave_fraction'] for x in rows]):.2f})"
            cells.append(s)
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nStatistical floor of Phi_A (1 sigma, relative, V = -I): ~"
          + ", ".join(f"{100 * 1.6 / np.sqrt(n * dt) / 0.8:.1f}% (dt={dt})" for dt in DTS))


def potential_table(n, seed=0):
    t0 = time.perf_counter()
    ds = potential.simulate(n, C=0.8, seed=seed, progress=False)
    X0 = ds.x.values
    base = float(ds.attrs["dt"]) * int(ds.attrs["save_every"])
    true = potential.true_phi(0.8)
    print(f"\n### Rotational potential, C = 0.8, {n:.0e} samples at spacing {base:g} "
          f"(simulated in {time.perf_counter() - t0:.1f} s); V = <s x^T> on the data; "
          "relative error of Phi / Phi_S / Phi_A in %\n")
    rows = {}
    for sub in (1, 5, 10):
        X = X0[::sub]
        dt = base * sub
        V = stein_matrix(X, potential.score(X))
        partitions = {}
        for nc in CELLS:
            part = BisectingPartition(n_clusters=nc, seed=seed).fit(X)
            partitions[nc] = (part.assign(X), part.n_cells)
        for name, (cdot, extra) in estimators(X, dt, partitions).items():
            if cdot is None:
                rows.setdefault(name, {})[dt] = ("fails", None)
                continue
            m = mobility_from_cdot(cdot, V)
            S, A = parts(m.Phi_raw)
            St, At = parts(true)
            rows.setdefault(name, {})[dt] = (
                f"{100 * rel(m.Phi_raw, true):.1f} / {100 * rel(S, St):.1f} / "
                f"{100 * rel(A, At):.1f}", m.Phi_raw)
        print(f"  |V + I|_F = {np.linalg.norm(V + np.eye(2)):.3f} at dt={dt:g} "
              f"(n={X.shape[0]})", flush=True)
    dts = sorted({dt for r in rows.values() for dt in r})
    print("\n| estimator | " + " | ".join(f"dt = {dt:g}" for dt in dts) + " |")
    print("|---|" + "---|" * len(dts))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(r[dt][0] for dt in dts) + " |")
    print("\nPhi estimates at dt = 0.01 (true [[1, -0.8], [0.8, 1]]):")
    for name, r in rows.items():
        P = r[dts[0]][1]
        if P is not None:
            print(f"  {name:40s} {np.array2string(P.ravel(), precision=3)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-ou", action="store_true")
    ap.add_argument("--skip-potential", action="store_true")
    args = ap.parse_args()
    if not args.skip_ou:
        res = ou_table(args.n, args.seeds)
        print_ou(res, args.n, args.seeds)
    if not args.skip_potential:
        potential_table(args.n)


if __name__ == "__main__":
    main()
