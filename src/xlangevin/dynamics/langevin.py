r"""The effective Langevin estimator: ``Phi`` from data and a score (METHODS.md §4, §5).

In the standardized units ``x~ = S^{-1}(x - m)`` of the data's
:class:`~xlangevin.data.FeatureSpace`, :class:`EffectiveLangevin` estimates

* ``Cdot~(0)`` from the data by one of the estimators of :mod:`xlangevin.dynamics.cdot`
  (default the lagged finite difference extrapolated over lags 1-3, docs/cdot_estimators.md);
* the Stein matrix ``V~ = <s~(x~) x~^T>`` over ``sigma``-perturbed samples ``x~ = y~ + sigma z``
  (``sigma`` = the score's smoothing scale; 0 for exact scores);
* ``Phi~ = Cdot~ V~^{-1}``, its parts and ``Sigma~ = chol(Phi_S~)`` with the PSD clipping of
  :func:`xlangevin.dynamics.mobility.mobility_from_cdot`;
* optionally (``current_velocity=True``) a state-dependent current velocity ``v~(x~)``
  (:mod:`xlangevin.dynamics.current`) replacing ``Phi_A s``: the drift is then
  ``Phi_S s(x) + v(x)``.

The data layer runs once per fit; a score given by name is fitted on the same arrays and
FeatureSpace (a nested estimator). The result is a :class:`~xlangevin.LangevinModel`.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import scipy.linalg as sla

from ..base import Estimator, Flag, Interval, OneOf, Options, Seed, provenance
from ..data.checks import require_samples
from ..data.timeaxis import time_units
from ..partition import BisectingPartition
from ..score import score_estimator
from ..score.kgmm import MIN_SAMPLES as CELL_RULE_MIN_SAMPLES
from .cdot import cdot_finite_volume, cdot_lagged, cdot_logm, lagged_covariances
from .current import CurrentVelocity
from .drift import as_score
from .mobility import mobility_from_cdot, stein_matrix
from .model import LangevinModel
from .stationary_current import StationaryCurrent

__all__ = ["EffectiveLangevin", "CDOT_ESTIMATORS"]

CDOT_ESTIMATORS = ("auto", "lagged", "logm", "finite_volume")
#: the current-velocity estimators by the value of ``current_velocity`` (True means "mlp")
CURRENT_ESTIMATORS = {"mlp": CurrentVelocity, "polynomial": StationaryCurrent}
#: the order in which ``cdot="auto"`` tries the estimators
CDOT_AUTO_ORDER = ("lagged", "logm", "finite_volume")
#: ``cdot="auto"`` rejects an estimator whose ``|Phi_A|_F / |Phi_S|_F`` exceeds this (a
#: mobility dominated by its antisymmetric part is the mark of a Cdot(0) estimate that the
#: data's finite sampling interval has spoiled, docs/cdot_estimators.md)
MAX_ANTISYMMETRY = 100.0
#: the Cdot(0) estimators average pairs of samples k steps apart within the record's sequences
#: (k up to the largest lag; 3 for ``cdot="auto"``, whose check fits C(1..3)): at least this
#: many pairs at the largest k, or the covariances C(k) whose differences make Cdot(0) carry a
#: relative error of 10 % (1/sqrt(pairs)) or more
MIN_LAG_PAIRS = 100


def _lags_ok(lags) -> bool:
    try:
        a = np.atleast_1d(np.asarray(lags))
    except Exception:  # pragma: no cover
        return False
    return (a.ndim == 1 and a.size >= 1 and np.issubdtype(a.dtype, np.integer)
            and bool(np.all(a >= 1)) and np.unique(a).size == a.size)


class EffectiveLangevin(Estimator):
    """Estimator of an effective Langevin model ``dx = Phi s dt + sqrt(2) Sigma dW``.

    Parameters
    ----------
    cdot : ``"auto"`` (default: ``"lagged"`` or ``"logm"``, whichever needs no eigenvalue
        clipping of ``Phi_S``, keeps ``|Phi_A| / |Phi_S|`` below 100 and fits the data's
        ``C(k)``, k = 1..3, best by its linear propagator (lagged when within 10 %);
        ``"finite_volume"`` when neither is acceptable; the tries are recorded in
        ``attrs["cdot_selection"]``), ``"lagged"`` (lagged
        finite difference extrapolated over ``lags``), ``"logm"`` (matrix log of the
        lag-``lag`` propagator) or ``"finite_volume"`` (rate matrix of a bisecting k-means
        partition with ``n_clusters`` / ``p_min`` cells; ``correction``, ``restrict``). See
        docs/cdot_estimators.md for which to use when.
    lags, order : lags (in samples) and polynomial order of ``"lagged"`` (default (1, 2, 3),
        Richardson extrapolation).
    lag : lag in samples of ``"logm"`` and ``"finite_volume"``.
    n_clusters, p_min, correction, restrict : the ``"finite_volume"`` partition and rate matrix
        (also used when ``"auto"`` gets to it).
    stein_samples : at most this many samples (drawn at random) enter ``V = <s x^T>``.
    eps : relative floor of the eigenvalues of ``Phi_S`` (clipped, ``Phi`` rebuilt, reported).
    n_keep : data states (standardized, drawn at random) kept in the model for initial states and
        blow-up resets.
    score_options : options of the score estimator when ``fit`` is given a method name
        (``"auto"``, ``"kgmm"``, ``"gmm"``, ``"dsm"``, ``"gaussian"``, ``"polynomial"``), e.g.
        ``{"sigma": 0.05, "p_min": 0.001}`` for KGMM.
    current_velocity : False (default): the drift is ``Phi s(x)`` with a constant ``Phi``. True
        or ``"mlp"``: the drift is ``Phi_S s(x) + v(x)`` with the current velocity ``v = j / p``
        learned from central differences by cells and an MLP (:mod:`xlangevin.dynamics.current`):
        for non-reversible dynamics whose rotation a constant ``Phi_A`` cannot carry, e.g. a
        travelling wave (docs/lorenz96_demo.md). ``"polynomial"``: ``v = A(x) s(x) + div A(x)``
        with a polynomial antisymmetric ``A(x)`` fitted by least squares
        (:mod:`xlangevin.dynamics.stationary_current`), which keeps the score's density invariant
        exactly; for short records (e.g. a delay-embedded climate index). ``Phi_S`` and
        ``Sigma`` come from ``cdot`` as before.
    current_options : options of the current estimator:
        :class:`~xlangevin.dynamics.current.CurrentVelocity` (``lag``, ``n_clusters``,
        ``hidden``, ``shift_augmentation``, ...) or
        :class:`~xlangevin.dynamics.stationary_current.StationaryCurrent` (``degree``, ``lag``,
        ``order``).
    dim, variables : the sample dim and the variables of xarray input.
    seed : seeds every random draw (Stein perturbations and subsample, kept states, partition,
        score fit, current velocity).
    progress : progress bars.
    """

    cdot: str = "auto"
    lags: tuple = (1, 2, 3)
    order: int | None = None
    lag: int = 1
    n_clusters: int | None = None
    p_min: float | None = None
    correction: str = "none"
    restrict: str = "largest"
    stein_samples: int = 200_000
    eps: float = 1e-6
    n_keep: int = 1000
    score_options: dict | None = None
    current_velocity: bool = False
    current_options: dict | None = None
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = True

    _constraints = {
        "cdot": OneOf(CDOT_ESTIMATORS),
        "order": Interval(0, None, integer=True, optional=True),
        "lag": Interval(1, None, integer=True),
        "n_clusters": Interval(2, None, integer=True, optional=True),
        "p_min": Interval(0, 0.5, closed="right", optional=True),
        "correction": OneOf(("none", "per_state", "global")),
        "restrict": OneOf(("none", "largest")),
        "stein_samples": Interval(1, None, integer=True),
        "eps": Interval(0, None, closed="neither"),
        "n_keep": Interval(1, None, integer=True),
        "score_options": Options(),
        "current_velocity": OneOf((False, True, "mlp", "polynomial")),
        "current_options": Options(),
        "seed": Seed(),
        "progress": Flag(),
    }

    def _check(self) -> None:
        if not _lags_ok(self.lags):
            raise ValueError(f"lags must be distinct positive integers (samples), got "
                             f"{self.lags!r}")
        if self.order is not None and self.order >= np.atleast_1d(self.lags).size:
            raise ValueError(f"order must be < the number of lags ({len(self.lags)}), got "
                             f"{self.order}")
        if self.cdot in ("finite_volume", "auto"):
            if self.n_clusters is not None and self.p_min is not None:
                raise ValueError("give either n_clusters or p_min, not both")
        elif self.n_clusters is not None or self.p_min is not None:
            raise ValueError(f"n_clusters / p_min only apply to cdot='finite_volume' (or "
                             f"'auto'), not {self.cdot!r}")
        if self.current_options and not self.current_velocity:
            raise ValueError("current_options given without current_velocity=True")
        if self.current_options:
            known = set(CURRENT_ESTIMATORS[self._current_kind()]._param_names())
            unknown = sorted(set(self.current_options) - known)
            if unknown:
                raise ValueError(f"unknown current_options {unknown}; known: {sorted(known)}")

    def _current_kind(self) -> str:
        return "mlp" if self.current_velocity is True else str(self.current_velocity)

    def _data_options(self) -> dict:
        return {"sequences": True}

    # -----------------------------------------------------------------------------------------
    def fit(self, data, score="auto", reduce=None, member_dim="member") -> LangevinModel:
        """Fit on ``data`` (xarray Dataset/DataArray, regularly sampled along ``dim``, or an
        (n, d) array of consecutive samples) with ``score``: a :class:`~xlangevin.ScoreModel`, a
        callable on physical (n, d) arrays (exact score), a numba-jitted ``f(x_row, out_row)``
        (exact score, physical units; enables the numba generation kernel), or a method name
        fitted first, on the same data, with ``score_options``: ``"auto"`` (default: the
        estimator chosen on a held-out block of the record, :class:`xlangevin.score.AutoScore`),
        ``"kgmm"``, ``"gmm"``, ``"dsm"``, ``"polynomial"`` or ``"gaussian"`` (the linear
        baseline). ``reduce``: an :class:`xlangevin.EOF` reduction of a gridded field
        (docs/fields.md). ``member_dim``: the dim of independent ensemble members."""
        return super().fit(data, score=score, reduce=reduce, member_dim=member_dim)

    def _fit(self, features, score="auto") -> LangevinModel:
        features = features.in_memory()
        rng = np.random.default_rng(self.seed)
        space, X, bounds = features.space, np.asarray(features.X, np.float64), features.bounds
        n, d = X.shape
        self._require_length(n, bounds, score)
        if isinstance(score, str):
            score = self._fit_score(features, score, rng)
        adapter = as_score(score, space)
        if self.cdot == "auto":
            cdot_name, cdot, diag, V, mob = self._auto_cdot(X, bounds, space.dt, adapter, rng)
        else:
            cdot_name, (cdot, diag) = self.cdot, self._cdot(X, bounds, space.dt, rng, self.cdot)
            V = self._stein(X, adapter, rng)
            mob = mobility_from_cdot(cdot, V, eps=self.eps)
        if mob.clip["n_clipped"]:
            warnings.warn(f"Phi_S had {mob.clip['n_clipped']} eigenvalue(s) below the floor "
                          f"{mob.clip['floor']:.3g}; clipped (|shift| = "
                          f"{mob.clip['shift_norm']:.3g}) and Phi rebuilt as Phi_S + Phi_A",
                          stacklevel=3)
        keep = rng.choice(n, size=min(n, self.n_keep), replace=False)
        current, Phi = None, mob.Phi
        if self.current_velocity:
            options = {"progress": self.progress, "seed": int(rng.integers(2**31)),
                       **(self.current_options or {})}
            estimator = CURRENT_ESTIMATORS[self._current_kind()](**options)
            current = (estimator.fit(X, bounds, space.dt, adapter.std, rotation=mob.Phi_A @ V)
                       if isinstance(estimator, StationaryCurrent)
                       else estimator.fit(X, bounds, space.dt, space))
            Phi = mob.Phi_S
        attrs = provenance(
            self, cdot_estimator=cdot_name, cdot_requested=self.cdot,
            cdot_options=json.dumps(self._cdot_options(cdot_name), default=str),
            score_kind=adapter.kind, score_method=getattr(score, "method", adapter.kind),
            score_sigma=adapter.sigma, n_samples=int(n), n_sequences=int(bounds.size - 1),
            n_features=int(d), data_dt=float(space.dt), time_units=time_units(space),
            stein_samples=int(min(n, self.stein_samples)),
            V_deviation=float(np.linalg.norm(V + np.eye(d))), eps=float(self.eps),
            n_clipped=int(mob.clip["n_clipped"]),
            drift="Phi_S s(x) + v(x)" if current is not None else "Phi s(x)",
            current_velocity=json.dumps(current.diagnostics) if current is not None else "")
        if "selection" in diag:
            attrs["cdot_selection"] = json.dumps(diag["selection"])
        return LangevinModel(Phi, mob.Sigma, V, score, space, X[np.sort(keep)], cdot=cdot,
                             cdot_estimator=cdot_name, cdot_diagnostics=diag, clip=mob.clip,
                             attrs=attrs, time_origin=features.time_origin, current=current)

    def _require_length(self, n, bounds, score):
        """:class:`~xlangevin.data.DataError` unless the record has the samples this fit needs:
        :data:`MIN_LAG_PAIRS` lagged pairs for Cdot(0); for ``cdot="finite_volume"`` with the
        automatic ``p_min`` (``20 / n``, as KGMM's) the cells of KGMM's minimum record; for a
        score fitted by name, that estimator's minimum (``"auto"``: KGMM's on its training
        part). The largest need is reported, with its reason."""
        longest = int(np.max(self.lags))
        k = {"lagged": longest, "auto": max(longest, self.lag, 3)}.get(self.cdot, self.lag)
        pairs = int(np.sum(np.maximum(np.diff(bounds) - k, 0)))
        needs = [(n + max(MIN_LAG_PAIRS - pairs, 0),
                  f"its Cdot(0) estimate averages pairs of samples up to {k} steps apart within "
                  f"the record's sequences and needs at least {MIN_LAG_PAIRS} of them")]
        if self.cdot == "finite_volume" and self.n_clusters is None and self.p_min is None:
            needs.append((CELL_RULE_MIN_SAMPLES, "the finite-volume Cdot(0) partition with the "
                          "automatic p_min = 20/n needs about 7 cells of ~20 samples; or pass "
                          "n_clusters / p_min"))
        if isinstance(score, str):
            estimator = score_estimator(score, **(self.score_options or {}))
            if hasattr(estimator, "sample_requirement"):
                needed, why = estimator.sample_requirement()
                needs.append((needed, f"its score, {type(estimator).__name__}, needs them: {why}"))
        needed, why = max(needs, key=lambda need: need[0])
        require_samples(n, needed, "EffectiveLangevin", why)

    def _cdot_options(self, which):
        if which == "lagged":
            return {"lags": [int(k) for k in np.atleast_1d(self.lags)], "order": self.order}
        if which == "logm":
            return {"lag": self.lag}
        return {"lag": self.lag, "n_clusters": self.n_clusters, "p_min": self.p_min,
                "correction": self.correction, "restrict": self.restrict}

    def _fit_score(self, features, method, rng):
        """The score estimator ``method`` fitted on the same arrays and FeatureSpace."""
        options = dict(self.score_options or {})
        options.setdefault("progress", self.progress)
        if self.seed is not None:
            options.setdefault("seed", int(rng.integers(2**31)))
        return score_estimator(method, **options).fit_features(features)

    def _auto_cdot(self, X, bounds, dt, adapter, rng):
        """``cdot="auto"`` (the class docstring): lagged and logm are assessed by the clipping
        and antisymmetry of their ``Phi`` and by the fit of their linear propagator
        ``expm(k dt Cdot C0^{-1}) C0`` to the data's ``C(k)``, k = 1, 2, 3
        (``propagator_error``, relative to ``|C0|``); the earlier of the acceptable ones within
        10 % of the best fit is taken, and the finite-volume estimator only when neither is
        acceptable. The Stein matrix is computed once, after the first candidate (so a record
        for which lagged is chosen gives the same model as ``cdot="lagged"``)."""
        C = lagged_covariances(X, [0, 1, 2, 3], bounds)
        tried, V = {}, None
        for which in CDOT_AUTO_ORDER:
            if which == "finite_volume" and any(map(_acceptable, tried.values())):
                break
            try:
                cdot, diag = self._cdot(X, bounds, dt, rng, which)
            except ValueError as err:          # e.g. a propagator without a real logarithm
                tried[which] = {"error": str(err)[:200]}
                continue
            if V is None:
                V = self._stein(X, adapter, rng)
            mob = mobility_from_cdot(cdot, V, eps=self.eps)
            tried[which] = {**_assess(cdot, mob, C, dt), "result": (which, cdot, diag, mob)}
        which, cdot, diag, mob = _choose_cdot(tried)["result"]
        diag = dict(diag, selection={k: {a: b for a, b in t.items() if a != "result"}
                                     for k, t in tried.items()})
        return which, cdot, diag, V, mob

    def _cdot(self, X, bounds, dt, rng, which):
        if which == "lagged":
            return cdot_lagged(X, dt, bounds, lags=tuple(int(k) for k in np.atleast_1d(self.lags)),
                               order=self.order)
        if which == "logm":
            return cdot_logm(X, dt, bounds, lag=self.lag)
        if self.n_clusters is None and self.p_min is None:
            kw = {"p_min": max(1e-3, 20.0 / X.shape[0])}
        elif self.n_clusters is not None:
            kw = {"n_clusters": self.n_clusters}
        else:
            kw = {"p_min": self.p_min}
        partition = BisectingPartition(seed=int(rng.integers(2**31)), **kw).fit(X)
        labels = partition.assign(X)
        cdot, diag = cdot_finite_volume(X, labels, dt, bounds, n_states=partition.n_cells,
                                        correction=self.correction, lag=self.lag,
                                        restrict=self.restrict)
        diag["partition"] = partition
        return cdot, diag

    def _stein(self, X, adapter, rng):
        n, d = X.shape
        rows = np.sort(rng.choice(n, size=self.stein_samples, replace=False)) \
            if n > self.stein_samples else slice(None)
        Y = X[rows]
        if np.any(adapter.perturb > 0):
            Y = Y + rng.standard_normal(Y.shape) * adapter.perturb
        S = np.asarray(adapter.std(Y), dtype=np.float64)
        if not np.all(np.isfinite(S)):
            raise ValueError("the score is not finite at some data points; check the score")
        return stein_matrix(Y, S)


def _assess(cdot, mob, C, dt) -> dict:
    """Clipping, antisymmetry and the propagator fit of one ``Cdot(0)`` estimate."""
    A = cdot @ np.linalg.inv(C[0])
    errors = [np.linalg.norm(sla.expm(A * k * dt) @ C[0] - C[k]) for k in range(1, len(C))]
    return {"n_clipped": int(mob.clip["n_clipped"]),
            "antisymmetry_ratio": round(float(np.linalg.norm(mob.Phi_A)
                                              / max(np.linalg.norm(mob.Phi_S), 1e-300)), 6),
            "propagator_error": round(float(np.mean(errors) / np.linalg.norm(C[0])), 6)}


def _acceptable(tried: dict) -> bool:
    return ("result" in tried and tried["n_clipped"] == 0
            and tried["antisymmetry_ratio"] < MAX_ANTISYMMETRY)


def _choose_cdot(tried: dict) -> dict:
    """The earliest acceptable estimate within 10 % (+ 1e-3) of the best propagator fit, or,
    when none is acceptable, the one with the fewest clipped eigenvalues."""
    ok = [t for t in tried.values() if _acceptable(t)]
    if ok:
        best = min(t["propagator_error"] for t in ok)
        return next(t for t in ok if t["propagator_error"] <= 1.1 * best + 1e-3)
    fitted = [t for t in tried.values() if "result" in t]
    if not fitted:
        raise ValueError(f"no Cdot(0) estimator worked on this record: {tried}")
    return min(fitted, key=lambda t: (t["n_clipped"], t["antisymmetry_ratio"]))
