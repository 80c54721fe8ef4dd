"""One KGMM pass (noise + assignment + accumulation) on 10^6 x 4 data with N_C ~ 3800 cells.

Compares, in one run, the library pass (numba lockstep tree descent + numba thread-local
accumulation, antithetic pairs on or off) with a straightforward numpy implementation (numpy
noise, the numpy reference tree descent, np.bincount). Prints median seconds of repeats.

Usage: python benchmarks/bench_kgmm.py [--n 1000000] [--d 4] [--repeats 5]
"""

import argparse

import numpy as np
from _timing import median_time

from xlangevin.backends import kernel
from xlangevin.score.cells import kgmm_cell_statistics
from xlangevin.partition import BisectingPartition




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--p-min", type=float, default=1.84e-4)  # N_C ~ 3800
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gpu", action="store_true", help="also time the cupy pass")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((args.n, args.d))
    sigma = 0.05
    part = BisectingPartition(p_min=args.p_min, seed=0).fit(Y + sigma * rng.standard_normal(Y.shape))
    print(f"data {args.n} x {args.d}, N_C = {part.n_cells}")

    def library(antithetic):
        def run():
            kgmm_cell_statistics(Y, sigma, part, np.random.default_rng(1), max_passes=1,
                                 min_passes=1, antithetic=antithetic, chunk_size=1 << 20,
                                 progress=False)
        return run

    def numpy_pass():
        z = np.random.default_rng(1).standard_normal(Y.shape)
        x = Y + sigma * z
        labels = kernel("tree_descend", "numpy")(x, part.tree)
        kernel("accumulate_cells", "numpy")(labels, z, x, part.n_cells)

    library(True)()  # compile
    rows = [("xlangevin pass, antithetic (2 draws/sample)", median_time(library(True), args.repeats)),
            ("xlangevin pass, plain (1 draw/sample)", median_time(library(False), args.repeats)),
            ("numpy: RNG + reference descent + bincount", median_time(numpy_pass, max(1, args.repeats // 2)))]
    if args.gpu:
        import cupy as cp

        Yd = cp.asarray(Y)

        def gpu_pass():
            kgmm_cell_statistics(Yd, sigma, part, np.random.default_rng(1), max_passes=1,
                                 min_passes=1, antithetic=True, chunk_size=1 << 20,
                                 backend="cupy", progress=False)
            cp.cuda.Device().synchronize()

        gpu_pass()
        rows.insert(0, ("cupy pass, antithetic (data on the GPU)", median_time(gpu_pass, args.repeats)))
    base = rows[-1][1]
    print(f"{'method':48s} {'seconds':>8s} {'Mpts/s':>8s} {'speed-up':>9s}")
    for name, t in rows:
        draws = 2 if "antithetic" in name else 1
        print(f"{name:48s} {t:8.3f} {draws * args.n / t / 1e6:8.1f} {base / t:8.1f}x")


if __name__ == "__main__":
    main()
