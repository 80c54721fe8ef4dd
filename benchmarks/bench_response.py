"""Response functions of a long record: all lags of R for 10^7 samples in 4-D.

Four observables ((x - <x>)^k, k = 1..4) of each coordinate, one forcing direction per
coordinate, 100 lags, the score a KGMM model (MLP) fitted beforehand on 10^5 of the samples:
``xlangevin.response`` (score evaluation on all samples + blocked FFT lagged covariances +
10 batch-means errors) against the direct loop of the KGMM authors' Julia code (ClustGen
``responses.jl``: for each lag, the mean over all samples of A(t + k) B(t)^T), same inputs.
Data: a 4-D OU process sampled exactly (``xlangevin.systems.ou``).

Usage: python benchmarks/bench_response.py [--n 10000000] [--lags 100]
"""

import argparse
import time

import numpy as np

import xlangevin as xl
from xlangevin.linear_response.observables import observable_functions


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--lags", type=int, default=100)
    args = p.parse_args()
    A = -np.eye(4) + 0.5 * np.diag(np.ones(3), 1) - 0.5 * np.diag(np.ones(3), -1)
    t0 = time.perf_counter()
    data = xl.systems.ou.simulate(A, np.sqrt(2) * np.eye(4), n_samples=args.n, dt=0.05, seed=0,
                                  progress=False)
    x = data[list(data.data_vars)[0]]
    print(f"data: {x.shape} in {time.perf_counter() - t0:.1f} s")
    score = xl.KGMM(seed=0, progress=False).fit(x.isel(time=slice(0, 100_000)))
    observables = ("x", "x**2", "x**3", "x**4")

    t0 = time.perf_counter()
    R = xl.response(x, score=score, observables=observables, max_lag=args.lags)
    t_fft = time.perf_counter() - t0
    print(f"xlangevin.response: {t_fft:.1f} s (score evaluation, {args.lags + 1} lags, "
          f"16 observables x 4 forcings, batch errors)")

    X = np.asarray(x.values, dtype=np.float64)
    t0 = time.perf_counter()
    S = score(X)
    t_score = time.perf_counter() - t0
    functions = observable_functions(observables, X.mean(0))
    values = np.concatenate([fn(X) for fn in functions.values()], axis=1)
    values -= values.mean(0)
    S -= S.mean(0)
    t0 = time.perf_counter()
    loop = np.stack([-(values[k:].T @ S[:len(X) - k]) / (len(X) - k)
                     for k in range(args.lags + 1)])
    t_loop = time.perf_counter() - t0
    print(f"direct loop over lags: {t_loop + t_score:.1f} s ({t_score:.1f} s of it the score)")
    print(f"max |difference| {np.abs(loop - R.response.values).max():.2e}")


if __name__ == "__main__":
    main()
