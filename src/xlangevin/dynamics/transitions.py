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

  so ``Phi = Cdot(0) V^{-1}`` (:func:`xlangevin.dynamics.mobility.mobility_from_cdot`). For a proper
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

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.sparse.linalg import MatrixRankWarning, expm_multiply, lgmres, spsolve

from ..backends import kernel
from ..backends.transitions import valid_segments
from .checks import as_2d, check_bounds, check_dt, check_labels, check_lag

__all__ = [
    "GeneratorWarning",
    "RateMatrix",
    "transition_counts",
    "estimate_generator",
    "generator_correlation",
    "cell_centres",
]

CORRECTIONS = ("none", "per_state", "global")


class GeneratorWarning(UserWarning):
    """Diagnostics of a rate-matrix or Cdot(0) estimate that deserve attention."""


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
    lab, ns = check_labels(labels, n_states)
    b = check_bounds(bounds, lab.size)
    lag = check_lag(lag)
    return _counts(lab, ns, b, lag, backend, method)


def _counts(lab, ns, b, lag, backend=None, method="auto"):
    if backend not in (None, "numba", "numpy"):
        raise ValueError(f"backend must be None, 'numba' or 'numpy', got {backend!r}")
    seg_start, seg_cum = valid_segments(b, lag)
    indptr, indices, data = kernel("transition_counts", backend)(lab, seg_start, seg_cum, lag,
                                                                 ns, method)
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
    indptr, indices, data = kernel("rate_matrix")(N.indptr, N.indices, N.data, w, Ln, ns)
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
    dt = check_dt(dt)
    lag = check_lag(lag)
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if restrict not in ("none", "largest"):
        raise ValueError(f"restrict must be 'none' or 'largest', got {restrict!r}")
    lab, ns = check_labels(labels, n_states)
    b = check_bounds(bounds, lab.size)
    tau = dt * lag
    N = _counts(lab, ns, b, lag, backend)
    occ = np.bincount(lab, minlength=ns).astype(np.int64)
    if int(N.sum()) == 0:
        raise ValueError(f"no transitions at lag {lag}: every sequence is shorter than lag + 1")
    diag = {"n_states_total": ns, "n_samples": int(lab.size), "n_sequences": int(b.size - 1),
            **_visit_summary(N, occ)}
    largest_states = diag["largest_component"]
    states = largest_states if restrict == "largest" else np.arange(ns)
    Nk = sp.csr_array(N[states][:, states]) if restrict == "largest" else N
    Q, Nn, Ln, kappa, n_capped, gk = _rate_from_counts(Nk, tau, correction)
    pi = occ[states].astype(np.float64)
    kept_mass = float(pi.sum() / occ.sum())
    pi /= pi.sum()
    diag.update(kept_mass=kept_mass, n_capped=n_capped, global_kappa=gk, correction=correction,
                restrict=restrict)
    keep = np.arange(states.size) if restrict == "largest" else largest_states
    p = _null_check(Q, pi, keep, tau, diag) if check_null else np.full(states.size, np.nan)
    if not check_null:
        diag["null_distance"] = diag["null_residual"] = float("nan")
    if warn:
        _warn_generator(diag, max_leave_fraction)
    return RateMatrix(Q=Q, counts=sp.csr_array(Nk), pi=pi, states=states, dt=dt, lag=lag,
                      departures=Nn, leaves=Ln, kappa=kappa, correction=correction,
                      null_vector=p, diagnostics=diag)


def _visit_summary(N: sp.csr_array, occ: np.ndarray) -> dict:
    """Diagnostics of the counts over all states: transitions, leave fraction, unvisited,
    absorbing and end-only cells, strongly connected components and the largest one."""
    M = int(N.sum())
    visited = occ > 0
    departures_all = np.asarray(N.sum(axis=0)).ravel()
    leaves_all = departures_all - N.diagonal()
    n_comp_all, comp = _components(N)
    uniq, sizes = np.unique(comp[visited], return_counts=True)
    mass = np.bincount(comp, weights=occ, minlength=n_comp_all)[uniq] / occ.sum()
    order = np.lexsort((-sizes, -mass))
    return {
        "n_transitions": M,
        "leave_fraction": float(leaves_all.sum() / M),
        "unvisited": np.flatnonzero(~visited),
        "absorbing": np.flatnonzero(visited & (departures_all > 0) & (leaves_all == 0)),
        "no_departures": np.flatnonzero(visited & (departures_all == 0)),
        "n_components": int(uniq.size),
        "component_sizes": np.sort(sizes)[::-1],
        "largest_component": np.flatnonzero(comp == uniq[order[0]]),
        "largest_component_mass": float(mass[order[0]]),
    }


def _null_check(Q, pi, keep, tau, diag) -> np.ndarray:
    """The null vector of ``Q`` on ``keep``; records its distance to ``pi`` in ``diag``."""
    p, diag["null_method"] = _null_vector(Q, keep, pi)
    pk = pi[keep] / pi[keep].sum()
    diag["null_distance"] = float(0.5 * np.abs(p[keep] - pk).sum())
    diag["null_residual"] = float(np.abs(Q @ pi).sum() * tau)
    return p


def _warn_generator(diag: dict, max_leave_fraction: float) -> None:
    """GeneratorWarnings for a coarse ``dt``, unvisited or absorbing cells, several
    components."""
    leave_fraction, ns = diag["leave_fraction"], diag["n_states_total"]
    unvisited, absorbing, no_dep = diag["unvisited"], diag["absorbing"], diag["no_departures"]
    if leave_fraction > max_leave_fraction:
        warnings.warn(f"leave fraction {leave_fraction:.3f} > {max_leave_fraction}: the "
                      f"trajectory changes cell in {leave_fraction:.0%} of the steps, so tau "
                      "is not short against the holding times and N[m, n] / (N_n tau) misses "
                      "the jumps made within one step (use fewer cells or a finer sampling "
                      "for a rate model; for Cdot(0) prefer cdot_lagged, see "
                      "docs/cdot_estimators.md)", GeneratorWarning, stacklevel=3)
    if unvisited.size:
        warnings.warn(f"{unvisited.size} of {ns} cells are never visited (zero columns of Q, "
                      "pi = 0 there)", GeneratorWarning, stacklevel=3)
    if absorbing.size or no_dep.size:
        warnings.warn(f"{absorbing.size} visited cells are never left and {no_dep.size} are "
                      "visited only at a sequence end (absorbing: zero columns of Q)",
                      GeneratorWarning, stacklevel=3)
    if diag["n_components"] > 1 and diag["restrict"] == "none":
        warnings.warn(f"the transition graph has {diag['n_components']} strongly connected "
                      f"components (the largest holds {diag['largest_component_mass']:.3%} of "
                      "the samples); consider restrict='largest'", GeneratorWarning,
                      stacklevel=3)


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
    X = as_2d(X)
    lab, ns = check_labels(labels, n_states)
    if lab.size != X.shape[0]:
        raise ValueError(f"labels ({lab.size}) and X ({X.shape[0]} rows) differ in length")
    n = lab.size
    P = sp.csc_array((np.ones(n), lab, np.arange(n + 1)), shape=(ns, n))
    S = P @ X
    cnt = np.bincount(lab, minlength=ns)
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = S / cnt[:, None]
    return cen, cnt
