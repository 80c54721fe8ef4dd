r"""Transition counts, the finite-volume rate matrix and estimators of ``Cdot(0)`` (METHODS.md §4).

Conventions (METHODS.md §0)
---------------------------
* Labels ``l_t`` of a uniformly sampled trajectory (spacing ``dt``), split into sequences by the
  bounds ``b`` (:meth:`xlangevin.FeatureSpace.sequence_bounds`): sequence ``i`` is
  ``l[b[i]:b[i+1]]``. A transition (or an ACF lag) never crosses a bound.
* Counts ``N[m, n] = #{t : l_t = n, l_{t+lag} = m}`` — row = destination, column = source.
* COLUMN generator: ``d rho / dt = Q rho``, ``Q[m, n]`` = rate ``n -> m``, columns sum to zero.
* ``C(tau) = <x(t + tau) x(t)^T>`` (mean removed). For the Langevin SDE
  ``dx = Phi s(x) dt + sqrt(2) Sigma dW`` (Ito),

      Cdot(0) = dC/dtau (0+) = <(Phi s(x)) x^T> = Phi V,        V = <s(x) x^T>,

  so ``Phi = Cdot(0) V^{-1}`` (:func:`xlangevin.mobility.mobility_from_cdot`). For a proper
  density ``V = -I`` (integration by parts), i.e. ``Phi = -Cdot(0)``. OU check: ``dx = A x dt +
  B dW`` has ``C(tau) = expm(A tau) C0``, so ``Cdot(0) = A C0`` and ``Phi = -A C0`` =
  ``xlangevin.systems.ou.langevin_phi(A, B)``. Every estimator below returns ``Cdot(0)`` in the
  units of the ``X`` it is given (standardized or physical: ``Phi = Cdot V^{-1}`` holds in any
  linear coordinates as long as ``V`` is computed in the same ones).

Rate matrix (:func:`estimate_generator`)
----------------------------------------
``Q[m, n] = kappa_n N[m, n] / (N_n tau)`` for ``m != n``, ``Q[n, n] = -sum_{m != n} Q[m, n]``,
with ``tau = lag dt``, ``N_n = sum_m N[m, n]`` the departures from ``n`` and ``L_n = N_n -
N[n, n]`` the leaves. ``kappa_n`` is the finite-dt exit-rate correction:

* ``"none"``: ``kappa_n = 1`` (exit rate ``L_n / (N_n tau)``).
* ``"per_state"``: ``kappa_n = -ln p_n / (1 - p_n)`` with ``p_n = 1 - L_n / N_n`` the stay
  probability (exit rate ``-ln p_n / tau``: the rate of an exponential holding time that stays
  put over ``tau`` with probability ``p_n``). A state that left at EVERY observed step
  (``p_n = 0``) has ``p_n`` floored at ``1 / (2 N_n)`` and is counted in ``n_capped``.
* ``"global"``: one factor for all columns, ``kappa = mean_n(-ln p_n / tau) /
  mean_n(L_n / (N_n tau))`` over the states with departures (METHODS.md §4). A global factor
  keeps the null vector of ``Q``; per-state factors do not.

The holding-time estimator (exit rate = 1 / mean holding time, holding times measured as run
lengths of equal labels) is NOT a different estimator: with ``r`` runs in state ``n`` of total
length ``N_n`` steps, ``r = L_n`` (each run but a censored last one ends with a leave), so
``1 / (mean holding time) = L_n / (N_n tau)`` — the naive exit rate, up to the censoring of the
runs cut by the end of a sequence. It is therefore not offered separately; ``"per_state"`` is the
holding-time estimator with the geometric (discrete-time) holding law replaced by the exponential
one.

Caution (METHODS.md §4 and docs/cdot_estimators.md): on diffusive data the finite-volume
``Cdot(0)`` (and more so its corrections) over-estimates ``Phi_S`` whenever the cells are large
compared with the diffusion length ``sqrt(2 Phi_S dt)``; see the table there before using it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.sparse.linalg import MatrixRankWarning, expm_multiply, lgmres, spsolve

from .backends import transition_kernels as _tk

__all__ = [
    "GeneratorWarning",
    "RateMatrix",
    "transition_counts",
    "estimate_generator",
    "generator_correlation",
    "cell_centres",
    "lagged_covariances",
    "cdot_finite_volume",
    "cdot_lagged",
    "cdot_logm",
]

CORRECTIONS = ("none", "per_state", "global")


class GeneratorWarning(UserWarning):
    """Diagnostics of a rate-matrix or Cdot(0) estimate that deserve attention."""


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _check_bounds(bounds, n: int) -> np.ndarray:
    if bounds is None:
        return np.array([0, n], dtype=np.int64)
    b = np.asarray(bounds)
    if b.ndim != 1 or b.size < 2 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError("bounds must be a 1-D integer array [0, ..., n] with at least 2 entries "
                         "(sequences are X[b[i]:b[i+1]], see FeatureSpace.sequence_bounds)")
    b = b.astype(np.int64)
    if b[0] != 0 or b[-1] != n:
        raise ValueError(f"bounds must start at 0 and end at the number of samples {n}; "
                         f"got {b[0]} ... {b[-1]}")
    if np.any(np.diff(b) < 0):
        raise ValueError("bounds must be non-decreasing")
    return b


def _check_lag(lag) -> int:
    if isinstance(lag, (bool, np.bool_)) or not isinstance(lag, (int, np.integer)) or lag < 1:
        raise ValueError(f"lag must be a positive integer (in samples), got {lag!r}")
    return int(lag)


def _check_dt(dt) -> float:
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt!r}")
    return dt


def _check_labels(labels, n_states):
    """Labels as a contiguous int64 array and the number of states (validated, one pass)."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers (cell indices), got dtype {lab.dtype}")
    lab = np.ascontiguousarray(lab, dtype=np.int64)
    if lab.size:
        lo, hi = _tk.label_range(lab)
    else:
        lo, hi = 0, -1
    if n_states is None:
        n_states = hi + 1
    if isinstance(n_states, (bool, np.bool_)) or not isinstance(n_states, (int, np.integer)) \
            or n_states < 1:
        raise ValueError(f"n_states must be a positive integer, got {n_states!r}")
    n_states = int(n_states)
    if lo < 0 or hi >= n_states:
        raise ValueError(f"labels must lie in [0, n_states) = [0, {n_states}); "
                         f"found values in [{lo}, {hi}]")
    return lab, n_states


# ---------------------------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------------------------
def transition_counts(labels, n_states: int | None = None, bounds=None, lag: int = 1,
                      backend: str | None = None, method: str = "auto") -> sp.csr_array:
    """Sparse count matrix ``N[m, n] = #{t : l_t = n, l_{t+lag} = m}`` (CSR, int64 counts).

    Parameters
    ----------
    labels : (T,) integer cell labels in ``[0, n_states)``.
    n_states : number of states (default ``max(labels) + 1``).
    bounds : sequence bounds ``b`` (sequences ``labels[b[i]:b[i+1]]``); default one sequence.
        Pairs ``(t, t + lag)`` are counted only inside a sequence.
    lag : lag in samples.
    backend : ``None``/``"numba"`` (default: parallel kernels) or ``"numpy"`` (the reference).
    method : numba: ``"dense"`` (thread-local dense tables, for few states), ``"bucket"``
        (counting sort by destination, O(T + n_states) memory) or ``"auto"`` (dense up to
        512 states); numpy: ``"bincount"``, ``"sort"`` (``np.unique`` of pair keys, for
        ``n_states^2`` too large for a dense table) or ``"auto"``.

    The sum of all counts is the number of transitions ``sum_i max(0, len_i - lag)``. Column sums
    are the departures ``N_n``; the diagonal holds the stays.
    """
    lab, ns = _check_labels(labels, n_states)
    b = _check_bounds(bounds, lab.size)
    lag = _check_lag(lag)
    return _counts(lab, ns, b, lag, backend, method)


def _counts(lab, ns, b, lag, backend=None, method="auto"):
    seg_start, seg_cum = _tk.valid_segments(b, lag)
    backend = "numba" if backend is None else backend
    if backend == "numba":
        indptr, indices, data = _tk.counts_numba(lab, seg_start, seg_cum, lag, ns, method)
    elif backend == "numpy":
        indptr, indices, data = _tk.counts_numpy(lab, seg_start, seg_cum, lag, ns, method)
    else:
        raise ValueError(f"backend must be None, 'numba' or 'numpy', got {backend!r}")
    N = sp.csr_array((data, indices, indptr), shape=(ns, ns))
    N.has_sorted_indices = True
    return N


# ---------------------------------------------------------------------------------------------
# rate matrix
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class RateMatrix:
    """Finite-volume generator estimated from labels (see the module docstring).

    Arrays are indexed by the kept states ``states`` (all states, or the largest strongly
    connected component with ``restrict="largest"``); per-state diagnostics with ``_all`` refer to
    all ``n_states_total`` states.

    Attributes
    ----------
    Q : (k, k) csr_array, float64 — the column generator (columns sum to 0).
    counts : (k, k) csr_array, int64 — ``N`` restricted to the kept states.
    pi : (k,) empirical occupancy of the kept states (renormalized to sum 1).
    states : (k,) original ids of the kept states.
    dt, lag, tau : sampling interval, lag in samples, ``tau = lag dt``.
    departures, leaves : (k,) ``N_n`` and ``L_n`` (within the kept states).
    kappa : (k,) exit-rate correction factors applied to the columns.
    exit_rates : (k,) ``-Q[n, n]`` (corrected if a correction was asked for).
    correction : ``"none"``, ``"per_state"`` or ``"global"``.
    diagnostics : dict — ``n_transitions``, ``leave_fraction`` (``sum_n L_n / n_transitions``
        over all states, before any restriction), ``unvisited``, ``absorbing`` (visited, never
        seen to leave), ``no_departures`` (visited only at a sequence end), ``n_components``
        (strongly connected components among visited states), ``component_sizes``,
        ``largest_component_mass``, ``kept_mass``, ``n_capped`` (per-state correction floors),
        ``global_kappa``, ``null_distance`` (total-variation distance ``0.5 |p - pi|_1`` between
        the null vector ``p`` of ``Q`` on its largest component and ``pi`` there),
        ``null_residual`` (``|Q pi|_1 tau``: the fraction of probability that ``Q`` moves away
        from ``pi`` per ``tau``).
    null_vector : (k,) null vector of Q on its largest strongly connected component (zero
        elsewhere), normalized to sum 1; NaN if it could not be computed.
    """

    Q: sp.csr_array
    counts: sp.csr_array
    pi: np.ndarray
    states: np.ndarray
    dt: float
    lag: int
    departures: np.ndarray
    leaves: np.ndarray
    kappa: np.ndarray
    correction: str
    null_vector: np.ndarray
    diagnostics: dict = field(default_factory=dict)

    @property
    def tau(self) -> float:
        return self.dt * self.lag

    @property
    def n_states(self) -> int:
        return int(self.Q.shape[0])

    @property
    def exit_rates(self) -> np.ndarray:
        return -self.Q.diagonal()

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"RateMatrix(n_states={self.n_states} of {d.get('n_states_total')}, "
                f"tau={self.tau:g}, correction={self.correction!r}, "
                f"nnz={self.Q.nnz}, leave_fraction={d.get('leave_fraction', float('nan')):.3g}, "
                f"n_components={d.get('n_components')}, "
                f"null_distance={d.get('null_distance', float('nan')):.3g})")


def _rate_from_counts(N: sp.csr_array, tau: float, correction: str):
    """(Q, departures, leaves, kappa, n_capped, global_kappa) from a count matrix."""
    ns = N.shape[0]
    Nn = np.asarray(N.sum(axis=0)).ravel().astype(np.int64)
    stay = N.diagonal().astype(np.int64)
    Ln = Nn - stay
    has = Nn > 0
    kappa = np.ones(ns)
    n_capped = 0
    global_kappa = 1.0
    if correction in ("per_state", "global"):
        p = np.ones(ns)
        p[has] = 1.0 - Ln[has] / Nn[has]
        zero = has & (Ln == Nn)
        n_capped = int(zero.sum())
        p[zero] = 0.5 / Nn[zero]
        move = has & (Ln > 0)
        k = np.ones(ns)
        k[move] = -np.log(p[move]) / (1.0 - p[move])
        if correction == "per_state":
            kappa = k
        else:
            naive = np.where(has, Ln / np.maximum(Nn, 1), 0.0)
            corr = naive * k
            global_kappa = float(corr[has].mean() / naive[has].mean()) if naive[has].sum() > 0 \
                else 1.0
            kappa = np.full(ns, global_kappa)
    elif correction != "none":
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    w = np.zeros(ns)
    w[has] = kappa[has] / (Nn[has] * tau)
    N = sp.csr_array(N)
    if not N.has_sorted_indices:
        N.sort_indices()
    indptr, indices, data = _tk.rate_csr(N.indptr, N.indices, N.data, w, Ln, ns)
    Q = sp.csr_array((data, indices, indptr), shape=(ns, ns))
    Q.has_sorted_indices = True
    return Q, Nn, Ln, kappa, n_capped, global_kappa


def _components(N: sp.csr_array):
    """Strong components of the transition graph (edge n -> m iff N[m, n] > 0). The components
    of a graph and of its transpose are the same, so N itself is passed to csgraph."""
    n_comp, lab = csgraph.connected_components(N, directed=True, connection="strong")
    return n_comp, lab


#: above this many nonzeros the null vector is found iteratively (LGMRES from pi), not by LU
NULL_DIRECT_MAX_NNZ = 200_000


def _null_vector(Q: sp.csr_array, keep: np.ndarray, x0: np.ndarray | None = None):
    """Null vector of Q restricted to the states ``keep`` (diagonal re-balanced so that the
    restricted columns sum to zero), normalized to sum 1; full length, zero outside ``keep``.

    Solves ``Q_S p = 0`` with the last equation replaced by ``sum p = 1`` (any k - 1 rows of an
    irreducible generator are independent): sparse LU for small systems, LGMRES started from
    ``x0`` (the occupancy) for large ones. Returns ``(p, method)``; NaN if it fails.
    """
    ns = Q.shape[0]
    out = np.zeros(ns)
    k = keep.size
    if k == 1:
        out[keep] = 1.0
        return out, "trivial"
    Qs = sp.csr_array(Q[keep][:, keep])
    exits = np.asarray(Qs.sum(axis=0)).ravel() - Qs.diagonal()       # off-diagonal sums
    Qs = (Qs - sp.diags_array(Qs.diagonal() + exits)).tocsr()        # rebalance the diagonal
    A = sp.vstack([Qs[: k - 1], sp.csr_array(np.ones((1, k)))], format="csr")
    rhs = np.zeros(k)
    rhs[-1] = 1.0
    p = None
    method = "lu"
    if Qs.nnz <= NULL_DIRECT_MAX_NNZ:
        with warnings.catch_warnings():
            warnings.simplefilter("error", MatrixRankWarning)
            try:
                p = spsolve(sp.csc_array(A), rhs)
            except (MatrixRankWarning, RuntimeError, ValueError):
                p = None
    else:
        method = "lgmres"
        guess = None if x0 is None else np.asarray(x0, dtype=np.float64)[keep]
        if guess is not None and guess.sum() > 0:
            guess = guess / guess.sum()
        try:
            p, info = lgmres(A, rhs, x0=guess, rtol=1e-10, atol=0.0, maxiter=200)
        except TypeError:  # scipy < 1.12 spells rtol "tol"
            p, info = lgmres(A, rhs, x0=guess, tol=1e-10, atol=0.0, maxiter=200)
        if info != 0:
            p = None
            method = "lgmres (not converged)"
    if p is None or not np.all(np.isfinite(p)):
        out[:] = np.nan
        return out, method
    p = np.clip(p, 0.0, None)
    out[keep] = p / p.sum()
    return out, method


def estimate_generator(labels, dt: float, n_states: int | None = None, bounds=None,
                       correction: str = "none", lag: int = 1, restrict: str = "none",
                       backend: str | None = None, check_null: bool = True,
                       max_leave_fraction: float = 0.3, warn: bool = True) -> RateMatrix:
    """Finite-volume rate matrix ``Q`` (column generator) from cell labels.

    Parameters
    ----------
    labels : (T,) integer cell labels of a uniformly sampled trajectory.
    dt : sampling interval (time units of the rates).
    n_states : number of cells (default ``max(labels) + 1``).
    bounds : sequence bounds (default one sequence); no transition crosses a bound.
    correction : ``"none"`` (default), ``"per_state"`` or ``"global"`` finite-dt exit-rate
        correction (module docstring). They over-correct diffusive data (METHODS.md §4).
    lag : lag in samples (``tau = lag dt``).
    restrict : ``"none"`` or ``"largest"``: keep only the strongly connected component with the
        largest occupancy; transitions leaving it are dropped, ``pi`` renormalized.
    backend : counting backend (see :func:`transition_counts`).
    check_null : compute the null vector of ``Q`` and its distance to ``pi``.
    max_leave_fraction : warn (``GeneratorWarning``) when ``sum_n L_n / n_transitions`` exceeds
        this: the chain then jumps at most steps and ``dt`` is coarse for the cells.
    warn : emit warnings (leave fraction, unvisited/absorbing cells, several components).

    ``pi`` is the empirical occupancy (fraction of ALL samples in each cell, sequence ends
    included), not the null vector of ``Q``; ``diagnostics["null_distance"]`` measures how far
    they are apart (zero up to sequence-end effects for ``"none"`` and ``"global"``).
    """
    dt = _check_dt(dt)
    lag = _check_lag(lag)
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if restrict not in ("none", "largest"):
        raise ValueError(f"restrict must be 'none' or 'largest', got {restrict!r}")
    lab, ns = _check_labels(labels, n_states)
    b = _check_bounds(bounds, lab.size)
    tau = dt * lag
    N = _counts(lab, ns, b, lag, backend)
    occ = np.bincount(lab, minlength=ns).astype(np.int64)
    M = int(N.sum())
    if M == 0:
        raise ValueError(f"no transitions at lag {lag}: every sequence is shorter than lag + 1")
    visited = occ > 0
    departures_all = np.asarray(N.sum(axis=0)).ravel()
    leaves_all = departures_all - N.diagonal()
    leave_fraction = float(leaves_all.sum() / M)
    absorbing = np.flatnonzero(visited & (departures_all > 0) & (leaves_all == 0))
    no_dep = np.flatnonzero(visited & (departures_all == 0))
    unvisited = np.flatnonzero(~visited)

    n_comp_all, comp = _components(N)
    vis_comp = comp[visited]
    uniq, sizes = np.unique(vis_comp, return_counts=True)
    mass = np.bincount(comp, weights=occ, minlength=n_comp_all)[uniq] / occ.sum()
    order = np.lexsort((-sizes, -mass))
    largest = uniq[order[0]]
    largest_states = np.flatnonzero(comp == largest)

    if restrict == "largest":
        states = largest_states
        Nk = sp.csr_array(N[states][:, states])
    else:
        states = np.arange(ns)
        Nk = N
    Q, Nn, Ln, kappa, n_capped, gk = _rate_from_counts(Nk, tau, correction)
    pi = occ[states].astype(np.float64)
    kept_mass = float(pi.sum() / occ.sum())
    pi /= pi.sum()

    diag = {
        "n_states_total": ns,
        "n_samples": int(lab.size),
        "n_sequences": int(b.size - 1),
        "n_transitions": M,
        "leave_fraction": leave_fraction,
        "unvisited": unvisited,
        "absorbing": absorbing,
        "no_departures": no_dep,
        "n_components": int(uniq.size),
        "component_sizes": np.sort(sizes)[::-1],
        "largest_component": largest_states,
        "largest_component_mass": float(mass[order[0]]),
        "kept_mass": kept_mass,
        "n_capped": n_capped,
        "global_kappa": gk,
        "correction": correction,
        "restrict": restrict,
    }
    if check_null:
        if restrict == "largest":
            keep = np.arange(states.size)
        else:
            keep = largest_states
        p, null_method = _null_vector(Q, keep, pi)
        diag["null_method"] = null_method
        pk = pi[keep] / pi[keep].sum()
        diag["null_distance"] = float(0.5 * np.abs(p[keep] - pk).sum())
        diag["null_residual"] = float(np.abs(Q @ pi).sum() * tau)
    else:
        p = np.full(states.size, np.nan)
        diag["null_distance"] = float("nan")
        diag["null_residual"] = float("nan")

    if warn:
        if leave_fraction > max_leave_fraction:
            warnings.warn(f"leave fraction {leave_fraction:.3f} > {max_leave_fraction}: the "
                          f"trajectory changes cell in {leave_fraction:.0%} of the steps, so tau "
                          "is not short against the holding times and N[m, n] / (N_n tau) misses "
                          "the jumps made within one step (use fewer cells or a finer sampling "
                          "for a rate model; for Cdot(0) prefer cdot_lagged, see "
                          "docs/cdot_estimators.md)", GeneratorWarning, stacklevel=2)
        if unvisited.size:
            warnings.warn(f"{unvisited.size} of {ns} cells are never visited (zero columns of Q, "
                          "pi = 0 there)", GeneratorWarning, stacklevel=2)
        if absorbing.size or no_dep.size:
            warnings.warn(f"{absorbing.size} visited cells are never left and {no_dep.size} are "
                          "visited only at a sequence end (absorbing: zero columns of Q)",
                          GeneratorWarning, stacklevel=2)
        if uniq.size > 1 and restrict == "none":
            warnings.warn(f"the transition graph has {uniq.size} strongly connected components "
                          f"(the largest holds {mass[order[0]]:.3%} of the samples); consider "
                          "restrict='largest'", GeneratorWarning, stacklevel=2)
    return RateMatrix(Q=Q, counts=sp.csr_array(Nk), pi=pi, states=states, dt=dt, lag=lag,
                      departures=Nn, leaves=Ln, kappa=kappa, correction=correction,
                      null_vector=p, diagnostics=diag)


# ---------------------------------------------------------------------------------------------
# model correlation functions
# ---------------------------------------------------------------------------------------------
def generator_correlation(Q, pi, centres, taus, center: bool = True) -> np.ndarray:
    """Model correlation ``C(tau) = Xc expm(Q tau) diag(pi) Xc^T`` for each ``tau`` in ``taus``.

    ``centres`` has shape (n_states, d) (one row per cell; ``Xc = centres.T``). With ``center``
    the pi-weighted mean of the centres is removed first (the data mean, for occupancy ``pi``
    and cell-mean centres). Uses ``scipy.sparse.linalg.expm_multiply`` on the (n_states, d)
    block ``diag(pi) Xc^T`` — never a dense ``expm``. Returns (n_tau, d, d) (or (d, d) for a
    scalar ``tau``). Compare with :func:`lagged_covariances` of the data.
    """
    Q = sp.csr_array(Q)
    ns = Q.shape[0]
    pi = np.asarray(pi, dtype=np.float64)
    C = np.asarray(centres, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != ns:
        raise ValueError(f"centres must have shape (n_states, d) = ({ns}, d), got {C.shape}")
    if pi.shape != (ns,):
        raise ValueError(f"pi must have shape ({ns},), got {pi.shape}")
    if center:
        C = C - (pi @ C) / pi.sum()
    taus_arr = np.asarray(taus, dtype=np.float64)
    scalar = taus_arr.ndim == 0
    t = np.atleast_1d(taus_arr)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("taus must be finite and >= 0")
    Bm = pi[:, None] * C                               # diag(pi) Xc^T, (ns, d)
    out = np.empty((t.size, C.shape[1], C.shape[1]))
    uniform = t.size > 2 and t[0] == 0 and np.allclose(np.diff(t), t[1] - t[0], rtol=1e-12,
                                                       atol=0)
    if uniform:
        Y = expm_multiply(Q, Bm, start=0.0, stop=float(t[-1]), num=t.size, endpoint=True)
        for k in range(t.size):
            out[k] = C.T @ Y[k]
    else:
        for k, tk in enumerate(t):
            Y = Bm if tk == 0 else expm_multiply(Q * tk, Bm)
            out[k] = C.T @ Y
    return out[0] if scalar else out


def cell_centres(X, labels, n_states: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the samples in each cell, ``(centres (n_states, d), counts (n_states,))``.
    Empty cells get NaN centres. One sparse indicator product, O(n d)."""
    X = _as_2d(X)
    lab, ns = _check_labels(labels, n_states)
    if lab.size != X.shape[0]:
        raise ValueError(f"labels ({lab.size}) and X ({X.shape[0]} rows) differ in length")
    n = lab.size
    P = sp.csc_array((np.ones(n), lab, np.arange(n + 1)), shape=(ns, n))
    S = P @ X
    cnt = np.bincount(lab, minlength=ns)
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = S / cnt[:, None]
    return cen, cnt


# ---------------------------------------------------------------------------------------------
# lagged second moments of the data (within sequences)
# ---------------------------------------------------------------------------------------------
def _as_2d(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` over i (empty ranges skipped), vectorized."""
    ln = np.maximum(hi - lo, 0)
    tot = int(ln.sum())
    if tot == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(ln)[:-1]]), ln)
    return np.arange(tot, dtype=np.int64) + starts


def _excluded(b: np.ndarray, k: int, which: str) -> np.ndarray:
    """Positions left out of the full-array sums at lag k: ``"src"`` = the last k of every
    sequence (their t + k lies in the next sequence or past the end), ``"dst"`` = the first k."""
    if which == "src":
        return _ranges(np.maximum(b[:-1], b[1:] - k), b[1:])
    return _ranges(b[:-1], np.minimum(b[1:], b[:-1] + k))


class _Moments:
    """Sums over the valid pairs (t, t + k) of one lag k, X centred and float64."""

    def __init__(self, Xc, b, k):
        n = Xc.shape[0]
        self.k = k
        self.M = int(np.maximum(np.diff(b) - k, 0).sum())
        if self.M == 0:
            raise ValueError(f"no pairs at lag {k}: every sequence is shorter than {k + 1}")
        src_bad = _excluded(b, k, "src")                 # t with t + k across a bound (or past n)
        dst_bad = _excluded(b, k, "dst")                 # first k positions of every sequence
        # S_ds = sum x_{t+k} x_t^T over valid t: full shifted product minus the crossing pairs
        cross = src_bad[src_bad + k < n]
        self.S_ds = Xc[k:].T @ Xc[:-k] - Xc[cross + k].T @ Xc[cross]
        full = Xc.T @ Xc
        self.S_ss = full - Xc[src_bad].T @ Xc[src_bad]   # sources: all but the last k of each seq
        self.S_dd = full - Xc[dst_bad].T @ Xc[dst_bad]   # destinations: all but the first k


def _centred(X, b):
    X = _as_2d(X)
    if X.shape[0] != b[-1]:
        raise ValueError(f"bounds end at {b[-1]} but X has {X.shape[0]} rows")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf values")
    X = X.astype(np.float64, copy=False)
    return X - X.mean(axis=0)


def lagged_covariances(X, lags, bounds=None) -> np.ndarray:
    """``C(k) = mean over valid t of (x_{t+k} - m)(x_t - m)^T`` (m = overall mean; lag 0 = all
    samples), pairs within sequences only. ``lags`` in samples; returns (n_lags, d, d)."""
    X = _as_2d(X)
    b = _check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    out = []
    for k in np.atleast_1d(lags):
        k = int(k)
        if k < 0:
            raise ValueError("lags must be >= 0")
        if k == 0:
            out.append(Xc.T @ Xc / Xc.shape[0])
        else:
            m = _Moments(Xc, b, k)
            out.append(m.S_ds / m.M)
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# Cdot(0) estimators
# ---------------------------------------------------------------------------------------------
def cdot_finite_volume(X, labels, dt: float, bounds=None, n_states: int | None = None,
                       correction: str = "none", lag: int = 1, restrict: str = "none",
                       generator: RateMatrix | None = None, warn: bool = True, **kwargs):
    """Finite-volume ``Cdot(0) = Xc Q diag(pi) Xc^T`` (METHODS.md §4).

    ``Xc`` = cell centres (mean of the samples of ``X`` in each cell, pi-weighted mean removed),
    ``Q``, ``pi`` from :func:`estimate_generator` (or the given ``generator``, whose ``states``
    select the centres). Computed as ``((Xc Q) diag(pi)) Xc^T`` with sparse ``Q``.

    Its symmetric part equals ``-(1/2) sum_{m,n} Q[m,n] pi_n (c_m - c_n)(c_m - c_n)^T`` when
    ``Q pi = 0``: the quadratic variation of the CELL-CENTRE process per unit time, which
    over-estimates ``Phi_S`` of a diffusion by ~``h / sqrt(dt)`` when the cell size ``h`` exceeds
    the diffusion length (boundary re-crossings). See docs/cdot_estimators.md.

    Returns ``(cdot (d, d), diagnostics)``; diagnostics holds ``"generator"`` (the
    :class:`RateMatrix`), ``"centres"`` (k, d) and the generator's summary numbers.
    """
    X = _as_2d(X)
    if generator is None:
        generator = estimate_generator(labels, dt, n_states=n_states, bounds=bounds,
                                       correction=correction, lag=lag, restrict=restrict,
                                       warn=warn, **kwargs)
    G = generator
    ns_total = G.diagnostics["n_states_total"]
    cen, cnt = cell_centres(X, labels, ns_total)
    cen = cen[G.states]
    pi = G.pi
    ok = cnt[G.states] > 0
    cen = np.where(ok[:, None], cen, 0.0)              # unvisited: pi = 0, zero column of Q
    cen = cen - (pi @ cen)
    XQ = (G.Q.T @ cen).T                               # Xc Q, (d, k)
    cdot = (XQ * pi[None, :]) @ cen
    d = G.diagnostics
    diag = {
        "estimator": "finite_volume",
        "tau": G.tau,
        "correction": G.correction,
        "n_cells": G.n_states,
        "leave_fraction": d["leave_fraction"],
        "null_distance": d["null_distance"],
        "n_components": d["n_components"],
        "generator": G,
        "centres": cen,
    }
    return cdot, diag


def _increment_moments(Xc, b, k):
    """Per lag k: (M, D_sym = -<dx dx^T>/2, D_anti = antisym <x_{t+k} x_t^T>) over valid pairs."""
    m = _Moments(Xc, b, k)
    S_ds = m.S_ds
    E = (m.S_dd + m.S_ss - S_ds - S_ds.T) / m.M       # <dx dx^T>, dx = x_{t+k} - x_t
    A = (S_ds - S_ds.T) / (2.0 * m.M)
    return m.M, -0.5 * E, A


def cdot_lagged(X, dt: float, bounds=None, lags=(1, 2, 3), order: int | None = None):
    """Lagged finite difference ``f(tau) = (C(tau) - C(0)) / tau``, extrapolated to ``tau -> 0``.

    ``C(tau) - C(0)`` is computed from the increments over each lag ``k`` (``tau = k dt``):
    symmetric part ``-(1/2) <dx dx^T>`` and antisymmetric part ``antisym <x_{t+k} x_t^T>``, both
    over the pairs inside sequences (mean removed). This equals ``C(tau) - C(0)`` of the usual
    estimators up to sequence-end terms, without their O(n_sequences k / n) bias — which matters
    at small ``tau`` with many short sequences.

    Extrapolation: ``f(tau) = Cdot(0) + tau Cddot(0) / 2 + tau^2 C'''(0) / 6 + ...`` is fitted by
    a polynomial of degree ``order`` in ``tau`` over the given lags (least squares) and evaluated
    at 0. Default ``order = len(lags) - 1`` interpolates (Richardson extrapolation): with
    ``lags=(1, 2, 3)`` the weights are ``3 f(dt) - 3 f(2 dt) + f(3 dt)`` and the remaining
    error is ``O(dt^3)``; ``lags=(1,)`` is the plain one-step difference (error ``O(dt)``).

    Returns ``(cdot (d, d), diagnostics)`` with ``f`` (n_lags, d, d), ``taus``, ``weights``
    (the linear combination of the ``f`` giving the estimate) and ``n_pairs``.
    """
    dt = _check_dt(dt)
    lags = np.atleast_1d(np.asarray(lags))
    if lags.ndim != 1 or lags.size < 1 or not np.issubdtype(lags.dtype, np.integer) \
            or np.any(lags < 1) or np.unique(lags).size != lags.size:
        raise ValueError(f"lags must be distinct positive integers (samples), got {lags}")
    order = lags.size - 1 if order is None else int(order)
    if not 0 <= order < lags.size:
        raise ValueError(f"order must be in [0, {lags.size - 1}] for {lags.size} lags")
    X = _as_2d(X)
    b = _check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    taus = lags.astype(np.float64) * dt
    f = []
    npairs = []
    for k in lags:
        M, Ds, Da = _increment_moments(Xc, b, int(k))
        f.append((Ds + Da) / (k * dt))
        npairs.append(M)
    f = np.array(f)
    w = _extrapolation_weights(taus, order)
    cdot = np.tensordot(w, f, axes=1)
    diag = {"estimator": "lagged", "taus": taus, "lags": lags, "order": order, "f": f,
            "weights": w, "n_pairs": np.array(npairs)}
    return cdot, diag


def _extrapolation_weights(taus, order):
    """Weights w with sum_k w_k f(tau_k) = value at 0 of the least-squares polynomial of degree
    ``order`` through the points (tau_k, f_k)."""
    V = np.vander(np.asarray(taus, dtype=np.float64), order + 1, increasing=True)
    pinv = np.linalg.pinv(V)
    return pinv[0]


def cdot_logm(X, dt: float, bounds=None, lag: int = 1, imag_tol: float = 1e-8):
    """Matrix-log estimator ``Cdot(0) = logm(K) C0 / tau``, ``K = C(tau) C0^-1``, ``tau = lag dt``.

    ``K`` is the least-squares propagator ``x_{t+lag} ~ K x_t`` (``C(tau) = <x_{t+lag} x_t^T>``,
    ``C0 = <x_t x_t^T>`` over the same pairs, mean removed, within sequences). For a linear
    (OU) process ``K = expm(A tau)`` and the estimate is exact at ANY ``tau`` (no
    finite-difference error); for nonlinear dynamics it is the generator of the best linear
    (quasi-Gaussian) model at that lag, which tends to ``Cdot(0)`` as ``tau -> 0``.

    Raises ``ValueError`` when ``K`` has a real eigenvalue ``<= 0`` (no real logarithm: the lag
    is too long, or the data are not Markov/linear at this lag) or when ``logm`` comes back
    complex beyond ``imag_tol`` (relative). Eigenvalues of modulus ``>= 1`` (a non-contracting
    propagator) give a ``GeneratorWarning``.

    Returns ``(cdot (d, d), diagnostics)`` with ``K``, its eigenvalues, ``tau``, ``n_pairs`` and
    ``logm_residual = |expm(logm K) - K|_1 / |K|_1``.
    """
    dt = _check_dt(dt)
    lag = _check_lag(lag)
    X = _as_2d(X)
    b = _check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    m = _Moments(Xc, b, lag)
    Ct = m.S_ds / m.M
    C0 = m.S_ss / m.M
    K = np.linalg.solve(C0.T, Ct.T).T                 # K C0 = C(tau)
    ev = np.linalg.eigvals(K)
    scale = np.max(np.abs(ev)) if ev.size else 1.0
    bad = (np.abs(ev.imag) <= 1e-12 * max(scale, 1e-300)) & (ev.real <= 0)
    if np.any(bad):
        raise ValueError(f"the lag-{lag} propagator K = C(tau) C(0)^-1 has real eigenvalue(s) "
                         f"<= 0 ({ev[bad].real}); it has no real matrix logarithm. Use a shorter "
                         "lag or another Cdot estimator (cdot_lagged)")
    if np.any(np.abs(ev) >= 1.0):
        warnings.warn(f"the lag-{lag} propagator has eigenvalues of modulus >= 1 "
                      f"({np.abs(ev).max():.4g}): the fitted linear dynamics do not decay",
                      GeneratorWarning, stacklevel=2)
    L = sla.logm(K)
    if np.iscomplexobj(L):
        im = np.max(np.abs(L.imag))
        if im > imag_tol * max(np.max(np.abs(L.real)), 1e-300):
            raise ValueError(f"logm of the lag-{lag} propagator is complex (max |imag| = "
                             f"{im:.3g}); use a shorter lag or cdot_lagged")
        L = L.real
    resid = float(np.linalg.norm(sla.expm(L) - K, 1) / np.linalg.norm(K, 1))
    tau = lag * dt
    cdot = L @ C0 / tau
    diag = {"estimator": "logm", "tau": tau, "lag": lag, "K": K, "eigenvalues": ev,
            "n_pairs": m.M, "logm_residual": resid}
    return cdot, diag
