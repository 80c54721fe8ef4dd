"""Spectral score matching: the whole fit (one moment pass + the solves over the time grid).

Target (issue 21): 10^6 samples and up to 500 basis functions in under 2 s on 2 cores. Cases:
``d = 2``, Hermite, full tensor basis of order 21 (484 functions, moment tensors of
43 x 43); ``d = 3``, full tensor of order 7 (512 functions... capped here at order 6: 343
functions, 13^3 moments); ``d = 8``, Hermite, cluster basis ``interaction = 2``, ``band = 1``,
order 4 (1 + 32 + 7 * 16 = 145 functions, but moment tensors over up to 4 coordinates: 9^4
each for ~100 unions), timed on ``--n-cluster`` samples (default 10^6). Each fit is timed ``--repeats`` times after a warm-up (median); the data are Gaussian
(the time does not depend on the values). ``--threads`` sets the BLAS threads (default 2; on a
machine shared with other jobs, 1 avoids OpenBLAS spinning).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_spectral.py --threads 1
    python benchmarks/bench_spectral.py --n 1000000 --repeats 3
"""

import argparse
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = {"d2-tensor-o21": dict(d=2, order=21),
         "d3-tensor-o6": dict(d=3, order=6),
         "d8-cluster-j2-band1-o4": dict(d=8, order=4, interaction=2, band=1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-cluster", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-times", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    from _timing import median_time
    from xlangevin.score import SpectralScore

    rng = np.random.default_rng(0)
    print(f"n = {args.n}, grid times = {args.n_times}, BLAS threads = {args.threads}")
    print(f"{'case':26s} {'samples':>8s} {'basis':>6s} {'moments':>8s} {'fit [s]':>8s}")
    for name in args.cases:
        case = dict(CASES[name])
        d = case.pop("d")
        n = args.n_cluster if "cluster" in name else args.n
        X = rng.normal(size=(n, d))
        est = SpectralScore(n_times=args.n_times, **case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = est.fit(X)
            seconds = median_time(lambda: est.fit(X), args.repeats)
        print(f"{name:26s} {n:8d} {model.attrs['n_basis']:6d} {model.attrs['n_moments']:8d} "
              f"{seconds:8.2f}")


if __name__ == "__main__":
    main()
