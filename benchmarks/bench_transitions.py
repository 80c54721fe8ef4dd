"""Benchmark: transition counting (10^7 labels, N_C = 4000) against numpy and deeptime.

Run (not a test):  python benchmarks/bench_transitions.py [--threads 2] [--n 10000000]
                   [--states 4000] [--repeats 5]

Label sequences: uniform random labels (every pair equally likely: the worst case for locality)
and a random walk on a ring of N_C cells (steps -2..2: what a finely sampled trajectory through a
partition looks like). Timed, each producing the full count matrix:

* ``xlangevin numba (auto)`` — :func:`xlangevin.dynamics.transitions.transition_counts` default: for
  N_C > 512 the counting-sort ("bucket") path, straight to CSR;
* ``xlangevin numba dense`` — thread-local dense tables + scan to CSR (the small-N_C path);
* ``numpy bincount`` — the reference: ``np.bincount(m * N_C + n)`` reshaped, then to CSR;
* ``numpy bincount (dense only)`` — the bincount alone, no CSR (the PERFORMANCE.md number);
* ``numpy sort`` — ``np.unique`` of the pair keys (the reference for huge N_C);
* ``scipy coo -> csr`` — ``coo_array((ones, (m, n))).tocsr()``;
* ``deeptime TransitionCountEstimator`` — ``sparse=False`` and ``sparse=True`` (if deeptime
  imports; ``pip install deeptime`` — it is a benchmark-only dependency).

Warm-up first (numba compiled, caches touched), then the median of ``--repeats`` runs. Prints
transitions/s and the ratio to deeptime dense. The results are checked to be equal.
"""

from __future__ import annotations

import argparse
import os


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for numba")
    ap.add_argument("--n", type=int, default=10_000_000, help="number of labels")
    ap.add_argument("--states", type=int, default=4000, help="number of cells N_C")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


ARGS = _parse()
for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before numpy / numba are imported

import numpy as np  # noqa: E402
from _timing import median_time  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from xlangevin.backends import transitions as tk  # noqa: E402
from xlangevin.dynamics.transitions import transition_counts  # noqa: E402

try:
    from deeptime.markov import TransitionCountEstimator
    import deeptime
    DEEPTIME = deeptime.__version__
except ImportError:  # pragma: no cover
    TransitionCountEstimator = None
    DEEPTIME = None




def main():
    n, ns, reps = ARGS.n, ARGS.states, ARGS.repeats
    rng = np.random.default_rng(ARGS.seed)
    cases = {
        "uniform": rng.integers(0, ns, n),
        "random walk": np.mod(np.cumsum(rng.integers(-2, 3, n)), ns),
    }
    M = n - 1
    print(f"transition counting: {n:.0e} labels (int64), N_C = {ns}, lag 1, one sequence; "
          f"{ARGS.threads} numba threads; median of {reps}; deeptime: "
          f"{DEEPTIME or 'not installed'}")
    for case, lab in cases.items():
        ss, sc = tk.valid_segments(np.array([0, n]), 1)

        def numpy_dense_only():
            return np.bincount(lab[1:] * ns + lab[:-1], minlength=ns * ns)

        def coo():
            return sp.coo_array((np.ones(M, dtype=np.int64), (lab[1:], lab[:-1])),
                                shape=(ns, ns)).tocsr()

        runs = {
            "xlangevin numba (auto)": lambda: transition_counts(lab, ns),
            "xlangevin numba dense": lambda: transition_counts(lab, ns, method="dense"),
            "numpy bincount -> CSR": lambda: transition_counts(lab, ns, backend="numpy",
                                                              method="bincount"),
            "numpy bincount (dense only)": numpy_dense_only,
            "numpy sort (np.unique)": lambda: transition_counts(lab, ns, backend="numpy",
                                                               method="sort"),
            "scipy coo -> csr": coo,
        }
        if TransitionCountEstimator is not None:
            dense = TransitionCountEstimator(1, "sliding", sparse=False, n_states=ns)
            sparse = TransitionCountEstimator(1, "sliding", sparse=True, n_states=ns)
            runs["deeptime dense"] = lambda: dense.fit(lab).fetch_model()
            runs["deeptime sparse"] = lambda: sparse.fit(lab).fetch_model()
        # warm-up and agreement
        ref = transition_counts(lab, ns, backend="numpy")
        for name, fn in runs.items():
            out = fn()
            if name.startswith("xlangevin") or name.startswith("numpy sort"):
                assert (out != ref).nnz == 0, name
            if name.startswith("deeptime"):
                cm = out.count_matrix
                cm = cm.toarray() if sp.issparse(cm) else cm
                # deeptime counts rows = from, columns = to: the transpose of ours
                assert np.array_equal(cm.T, ref.toarray()), name
        times = {name: median_time(fn, reps) for name, fn in runs.items()}
        base = times.get("deeptime dense")
        print(f"\n{case} labels (nnz = {ref.nnz}):")
        print(f"  {'method':32s} {'time [ms]':>10s} {'M transitions/s':>16s} "
              f"{'x deeptime dense':>17s}")
        for name, t in times.items():
            ratio = f"{base / t:17.2f}" if base else f"{'-':>17s}"
            print(f"  {name:32s} {1e3 * t:10.1f} {M / t / 1e6:16.1f} {ratio}")


if __name__ == "__main__":
    main()
