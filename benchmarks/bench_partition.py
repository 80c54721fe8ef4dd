"""Benchmark: state-space partition fit and assignment against scikit-learn and naive numpy.

Run (not a test):  python benchmarks/bench_partition.py [--quick] [--threads 2] [--n N]

For each case (d = 4 with ~3800 cells, d = 32 with ~2000 cells, standard Gaussian data) it times

* assignment of n points (default 10^6): xlangevin tree descent (numba lockstep, the default
  path of ``Partition.assign``; numba one point at a time; numpy reference), scikit-learn
  ``BisectingKMeans.predict`` (fitted with the same number of clusters), xlangevin nearest leaf
  centroid (numba), and a chunked numpy nearest-centroid (|x|^2 - 2 x.c + |c|^2 with a GEMM);
* the fit: ``BisectingPartition(n_clusters=...).fit`` against ``BisectingKMeans.fit``,

and prints one table with throughputs and ratios to scikit-learn. numba is warmed up before any
timing; times are medians of repeats (scikit-learn's fit: a single run, it is slow). Results go in
the issue notes, not into assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (~1 min)")
    ap.add_argument("--threads", type=int, default=2, help="threads for numba and scikit-learn")
    ap.add_argument("--n", type=int, default=None, help="points to assign (default 1e6, quick 2e5)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per timing (median)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


ARGS = _parse()
for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before numpy / numba / sklearn are imported

import numpy as np  # noqa: E402
from _timing import median_time  # noqa: E402

from xlangevin.backends import cupy_available  # noqa: E402
from xlangevin.backends import assign  # noqa: E402
from xlangevin.backends.kmeans import num_threads  # noqa: E402
from xlangevin.partition import BisectingPartition  # noqa: E402

try:
    from sklearn.cluster import BisectingKMeans
except ImportError:  # pragma: no cover
    BisectingKMeans = None




def numpy_nearest(X, C, chunk=4096):
    """Naive numpy nearest centroid: chunked |x|^2 - 2 x.c + |c|^2 (GEMM) and argmin."""
    cc = np.einsum("ij,ij->i", C, C)
    out = np.empty(len(X), dtype=np.int64)
    for s in range(0, len(X), chunk):
        x = X[s : s + chunk]
        dist = cc[None, :] - 2.0 * (x @ C.T)
        out[s : s + len(x)] = np.argmin(dist, axis=1)
    return out


def main():
    quick = ARGS.quick
    n = ARGS.n or (200_000 if quick else 1_000_000)
    reps = ARGS.repeats or (3 if quick else 5)
    cases = [(4, 3818), (32, 2000)]
    if quick:
        cases = [(4, 1000), (32, 500)]
    rng = np.random.default_rng(ARGS.seed)
    rows = []  # (case, task, method, seconds, points, note)
    print(
        f"# xlangevin partition benchmark: n={n:,}, threads={ARGS.threads} "
        f"(numba {num_threads()} threads), repeats={reps}, cpu count={os.cpu_count()}",
        flush=True,
    )
    # warm numba up (compilation is cached on disk, but load it before timing)
    Xw = rng.standard_normal((20_000, 3))
    pw = BisectingPartition(p_min=0.01, seed=0).fit(Xw)
    pw.assign(Xw)
    pw.assign(Xw.astype(np.float32))
    pw.assign(Xw, method="nearest")
    assign.descend_single(Xw, pw.tree.records(), pw.n_nodes, np.empty(len(Xw), np.int64))

    for d, ncl in cases:
        case = f"d={d}"
        X = rng.standard_normal((n, d))
        est = BisectingPartition(n_clusters=ncl, seed=0)
        part = est.fit(X)
        t_fit = median_time(lambda: est.fit(X), max(1, reps // 2 + 1))
        k = part.n_cells
        case = f"d={d}, N_C={k}"
        print(f"{case}: {part}", flush=True)
        rows.append((case, "fit", "xlangevin BisectingPartition.fit (numba)", t_fit, n,
                     f"tree on {part.attrs['n_tree_samples']:,} pts"))

        out = np.empty(n, dtype=np.int64)
        T = part.tree.records()
        rows.append((case, "assign", "xlangevin tree, numba lockstep (assign)",
                     median_time(lambda: part.assign(X), reps), n, "default path"))
        X32 = X.astype(np.float32)
        part.assign(X32)
        rows.append((case, "assign", "xlangevin tree, numba lockstep, float32 input",
                     median_time(lambda: part.assign(X32), reps), n, ""))
        rows.append((case, "assign", "xlangevin tree, numba one point at a time",
                     median_time(lambda: assign.descend_single(X, T, part.n_nodes, out), reps), n, ""))
        n_ref = min(n, 200_000)
        rows.append((case, "assign", "xlangevin tree, numpy reference",
                     median_time(lambda: part.assign(X[:n_ref], backend="numpy"), 1), n_ref, ""))
        lab = part.assign(X)
        n_near = min(n, 100_000 if d == 4 else 200_000)
        rows.append((case, "assign", "xlangevin nearest centroid, numba",
                     median_time(lambda: part.assign(X[:n_near], method="nearest"), 1), n_near,
                     f"agrees with tree on "
                     f"{np.mean(part.assign(X[:n_near], method='nearest') == lab[:n_near]):.0%}"))
        C = np.ascontiguousarray(part.centroids)
        n_np = min(n, 100_000)
        numpy_nearest(X[:1000], C)
        rows.append((case, "assign", "numpy nearest centroid (chunked GEMM)",
                     median_time(lambda: numpy_nearest(X[:n_np], C), 1), n_np, ""))
        if cupy_available():
            import cupy as cp

            Xd = cp.asarray(X)
            cp.cuda.Device().synchronize()

            def gpu_assign():
                part.assign(Xd)
                cp.cuda.Device().synchronize()

            gpu_assign()
            rows.append((case, "assign", "xlangevin tree, cupy (GPU, data on device)",
                         median_time(gpu_assign, reps), n, "not 2 cores"))
            assert np.array_equal(cp.asnumpy(part.assign(Xd[:50_000])), lab[:50_000])
        if BisectingKMeans is not None:
            sk = BisectingKMeans(n_clusters=k, random_state=0, n_init=1)
            t0 = time.perf_counter()
            sk.fit(X)
            t_skfit = time.perf_counter() - t0
            rows.append((case, "fit", "scikit-learn BisectingKMeans.fit", t_skfit, n,
                         "full data, 1 run"))
            sk.predict(X[:1000])
            rows.append((case, "assign", "scikit-learn BisectingKMeans.predict",
                         median_time(lambda: sk.predict(X), max(1, reps // 2)), n, ""))
        # sanity: the fast path equals the reference
        assert np.array_equal(part.assign(X[:50_000]), part.assign(X[:50_000], backend="numpy"))

    # ---- table ----------------------------------------------------------------------------
    print()
    hdr = f"{'case':<18} {'task':<7} {'method':<48} {'time s':>8} {'Mpts/s':>8} {'vs sklearn':>10}  note"
    print(hdr)
    print("-" * len(hdr))
    for case in dict.fromkeys(r[0] for r in rows):
        ref = {}
        for c, task, meth, t, npts, _ in rows:
            if c == case and meth.startswith("scikit-learn"):
                ref[task] = t / npts if task == "assign" else t
        for c, task, meth, t, npts, note in rows:
            if c != case:
                continue
            rate = npts / t / 1e6
            if task == "assign":
                ratio = ref["assign"] / (t / npts) if "assign" in ref else float("nan")
            else:
                ratio = ref["fit"] / t if "fit" in ref else float("nan")
            ratio_s = "1.0x" if meth.startswith("scikit-learn") else f"{ratio:.1f}x"
            print(f"{c:<18} {task:<7} {meth:<48} {t:>8.3f} {rate:>8.2f} {ratio_s:>10}  {note}")
    print("\nratios > 1: faster than scikit-learn (assignment: per point; fit: wall time).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
