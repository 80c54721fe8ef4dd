"""Diffusion-map sampler: fit (kernel + symmetric Sinkhorn) and sampling time, M = 2000 / 20000.

Data: the paper's noisy arc (d = 2, raw units, eps = 0.009) and the noisy 4-D hyper-semisphere
(eps = 0.01). M = 2000 uses the exact dense kernel; M = 20000 the automatic k-nearest-neighbour
kernel with a smaller bandwidth (it shrinks with M): eps 0.0001 for the arc (thin and dense: at
eps 0.009 or 0.0009 the ~3e7-entry cap of the kNN graph cuts the kernel at 0.8 or 0.16 of its
peak) and 0.001 for the semisphere. Sampling: 1000 chains, 50 split-step steps (data-aware noise: two kernel evaluations per
step; constant noise: one). Also times POT's log-domain Sinkhorn on the same dense kernel
(M = 2000) against the library's symmetric iteration.

Usage: python benchmarks/bench_diffmap.py [--repeats 3] [--chains 1000] [--steps 50]
       python benchmarks/bench_diffmap.py --sweep      # the eps sweep table of docs/diffmap.md
       python benchmarks/bench_diffmap.py --arc-beta [--seeds 8]
           # the variable-bandwidth table of the arc example (docs/diffmap.md): angular tail
           # fractions, std and W1(theta) for beta = 0 / -0.2 / -0.35 / -0.5 / -0.7, mean and
           # standard error over training seeds, and the paired differences against beta = 0
"""

import argparse
import time

import numpy as np
from _timing import median_time

from xlangevin import samplers as dm
from xlangevin.systems import manifolds
from xlangevin.analysis import entropic_ot_distance


def bench(args):
    cases = [("arc d=2", lambda M: manifolds.noisy_arc(M, seed=0), {2000: 0.009, 20000: 1e-4}),
             ("semisphere d=4", lambda M: manifolds.hyper_semisphere(M, 4, seed=0),
              {2000: 0.01, 20000: 1e-3})]
    print(f"{'data':16s} {'M':>6s} {'eps':>7s} {'k':>6s} {'cut':>8s} {'fit s':>7s} "
          f"{'Sinkhorn it':>11s} {'noise':>10s} {'sample s':>9s} {'chain-steps/s':>14s}")
    for name, make, eps_of in cases:
        for M, eps in eps_of.items():
            X = make(M)
            fit = lambda: dm.DiffusionMap(eps=eps, standardize=False, seed=0).fit(X)  # noqa
            model = fit()
            t_fit = median_time(fit, args.repeats)
            for noise in ("data-aware", "constant"):
                s = model.with_options(noise=noise)
                run = lambda: s.sample(args.chains, n_steps=args.steps, seed=1)  # noqa
                t = median_time(run, args.repeats)
                print(f"{name:16s} {M:6d} {eps:7.4f} {model.attrs['k_neighbors']:6d} "
                      f"{model.attrs['kernel_truncation']:8.1e} {t_fit:7.2f} "
                      f"{model.attrs['sinkhorn_iterations']:11d} {noise:>10s} {t:9.2f} "
                      f"{args.chains * args.steps / t:14.0f}", flush=True)
    try:
        import ot
    except ImportError:  # pragma: no cover
        return
    X = manifolds.noisy_arc(2000, seed=0)
    d2 = ot.dist(X, X)
    T = np.exp(-d2 / (4 * 0.009))
    a = np.full(2000, 1 / 2000)
    t_lib = median_time(lambda: dm.symmetric_sinkhorn(T, tol=1e-9), args.repeats)
    t_pot = median_time(lambda: ot.sinkhorn(a, a, d2 / 4, 0.009, method="sinkhorn_log",
                                            stopThr=1e-9, numItermax=10000), args.repeats)
    print(f"\nSinkhorn on the dense M=2000 arc kernel to 1e-9: xlangevin symmetric log-domain "
          f"{t_lib:.3f} s, POT sinkhorn_log {t_pot:.3f} s (ratio {t_pot / t_lib:.1f})")


def sweep(args):
    eps_grid = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12)
    print("entropic OT distance (reg 0.01, squared cost) between 1000 split-step data-aware "
          "samples and 1000 fresh reference samples; M = 1000 training samples; mean of "
          f"{args.seeds} seeds")
    print("d  beta  " + " ".join(f"{e:>7g}" for e in eps_grid) + "   best")
    for d in (3, 4, 9):
        for beta in (0.0, -0.2):
            row = []
            for e in eps_grid:
                vals = []
                for seed in range(args.seeds):
                    X = manifolds.hyper_semisphere(1000, d, seed=seed)
                    ref = manifolds.hyper_semisphere(1000, d, seed=seed + 100)
                    model = dm.DiffusionMap(eps=e, beta=beta, standardize=False,
                                            seed=seed).fit(X)
                    Y = model.sample(1000, n_steps=args.steps, seed=seed + 1, as_array=True)
                    vals.append(entropic_ot_distance(Y, ref, reg=0.01))
                row.append(float(np.mean(vals)))
            best = eps_grid[int(np.argmin(row))]
            print(f"{d}  {beta:4.1f}  " + " ".join(f"{v:7.4f}" for v in row)
                  + f"   {best:g} ({min(row):.4f})", flush=True)


ARC_BETA_CASES = (
    # (scheme, noise, output, beta)
    ("split-step", "data-aware", "noisy", 0.0), ("split-step", "data-aware", "noisy", -0.2),
    ("split-step", "data-aware", "noisy", -0.35), ("split-step", "data-aware", "noisy", -0.5),
    ("split-step", "data-aware", "noisy", -0.7),
    ("split-step", "data-aware", "mean", 0.0), ("split-step", "data-aware", "mean", -0.2),
    ("split-step", "constant", "noisy", 0.0), ("split-step", "constant", "noisy", -0.2),
    ("split-step", "constant", "noisy", -0.5),
    ("split-step", "constant", "mean", 0.0), ("split-step", "constant", "mean", -0.2),
    ("langevin", "constant", "mean", 0.0), ("langevin", "constant", "mean", -0.2),
    ("langevin", "constant", "mean", -0.5),
)


def arc_theta_stats(Y, X, ref_theta):
    """Angular statistics of samples Y (..., 2) of the arc example: tail fractions beyond 2,
    2.5 and 3 true sd (0.6 rad), std and W1 against reference angles; the same tail fractions
    of the training set X."""
    from scipy.stats import wasserstein_distance

    def theta(Z):
        Z = np.asarray(Z).reshape(-1, 2)
        return np.arctan2(Z[:, 1], Z[:, 0]) - np.pi / 4

    th, td = theta(Y), theta(X)
    out = {f"t{k}": float(np.mean(np.abs(th) > c)) for k, c in (("2", 1.2), ("2.5", 1.5),
                                                                  ("3", 1.8))}
    out.update(sd=float(th.std()), W1=float(wasserstein_distance(th, ref_theta)))
    out.update({f"data_t{k}": float(np.mean(np.abs(td) > c))
                for k, c in (("2", 1.2), ("2.5", 1.5), ("3", 1.8))})
    return out


def arc_beta(args, n_chains=300, n_steps=400, save_every=4, burn_in=40):
    """Variable bandwidth on the arc example, over ``args.seeds`` training sets (M = 2000,
    eps = 0.009, raw units); chains start from data points (seed 1000 + training seed)."""
    ref = manifolds.noisy_arc(100_000, seed=12345)
    ref_theta = np.arctan2(ref[:, 1], ref[:, 0]) - np.pi / 4
    keys = ("t2", "t2.5", "t3", "sd", "W1")
    print(f"arc example: {args.seeds} training seeds, {n_chains} chains x {n_steps} steps, "
          f"every {save_every}th after {burn_in}; mean +- standard error over seeds; "
          "d = paired difference against beta = 0 of the same sampler")
    print("truth: t2 0.0455, t2.5 0.0124, t3 0.0027, sd 0.6")
    results = {}
    for scheme, noise, output, beta in ARC_BETA_CASES:
        rows = []
        for seed in range(args.seeds):
            X = manifolds.noisy_arc(2000, seed=seed)
            model = dm.DiffusionMap(eps=0.009, beta=beta, standardize=False, seed=seed).fit(X)
            s = model.with_options(scheme=scheme, noise=noise, output=output)
            Y = s.generate(n_steps, n_members=n_chains, save_every=save_every,
                           burn_in=burn_in, seed=1000 + seed, as_array=True)
            rows.append(arc_theta_stats(Y, X, ref_theta))
        A = {k: np.array([r[k] for r in rows]) for k in rows[0]}
        results[scheme, noise, output, beta] = A
        se = lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")  # noqa
        line = "  ".join(f"{k} {A[k].mean():.4f}+-{se(A[k]):.4f}" for k in keys)
        base = results.get((scheme, noise, output, 0.0))
        if beta != 0.0 and base is not None:
            line += "  |  " + "  ".join(f"d{k} {(A[k] - base[k]).mean():+.4f}+-"
                                        f"{se(A[k] - base[k]):.4f}" for k in keys)
        print(f"{scheme:10s} {noise:10s} {output:5s} beta={beta:5.2f}: {line}", flush=True)
    A = results[ARC_BETA_CASES[0][:3] + (0.0,)]
    print("training sets: " + "  ".join(f"{k} {A['data_' + k].mean():.4f}"
                                        for k in ("t2", "t2.5", "t3")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--seeds", type=int, default=None,
                    help="training seeds (default 2 for --sweep, 8 for --arc-beta)")
    ap.add_argument("--arc-beta", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.arc_beta:
        args.seeds = 8 if args.seeds is None else args.seeds
        arc_beta(args)
    elif args.sweep:
        args.seeds = 2 if args.seeds is None else args.seeds
        sweep(args)
    else:
        bench(args)
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
