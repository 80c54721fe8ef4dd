r"""Effective Langevin models: fit ``Phi`` from data and a score, generate ensembles.

The model (METHODS.md §0, §4, §5) is the Ito SDE

    dx = Phi s(x) dt + sqrt(2) Sigma dW,      Sigma Sigma^T = Phi_S,  Sigma lower triangular,

with ``s = grad log p`` the score of the data's stationary density. :class:`EffectiveLangevin`
estimates, in the standardized units ``x~ = S^{-1}(x - m)`` of the data's
:class:`~xlangevin.data.FeatureSpace`,

* ``Cdot~(0)`` from the data by one of the estimators of :mod:`xlangevin.generator` (default the
  lagged finite difference extrapolated over lags 1-3, see docs/cdot_estimators.md);
* the Stein matrix ``V~ = <s~(x~) x~^T>`` over ``sigma``-perturbed samples ``x~ = y~ + sigma z``
  (``sigma`` = the score's smoothing scale; 0 for exact scores);
* ``Phi~ = Cdot~ V~^{-1}``, its parts and ``Sigma~ = chol(Phi_S~)`` with the PSD clipping of
  :func:`xlangevin.mobility.mobility_from_cdot`;
* optionally (``current_velocity=True``) a state-dependent current velocity ``v~(x~)``
  (:mod:`xlangevin.current`) replacing ``Phi_A s``: the drift is then ``Phi_S s(x) + v(x)``.

:class:`LangevinModel` shows them in physical units (``Phi = S Phi~ S``, ``Sigma = S Sigma~``,
``V = S^{-1} V~ S``, equal to ``V~`` when ``V~ = -I``) and integrates the SDE by Euler–Maruyama
in standardized units, ``x~ <- x~ + dt Phi~ s~(x~) + sqrt(2 dt) Sigma~ eta``, for a whole
ensemble at once (:meth:`LangevinModel.generate`).

Time units: ``dt`` here is in the time units of the data's sample coordinate (``FeatureSpace.dt``
is the data spacing in those units; for datetime coordinates days, or one step of a calendar
frequency such as months); ``Phi`` is per that time unit.

Backends of :meth:`LangevinModel.generate` (one set of noise, so all give the same trajectories
up to rounding; the normals come from seeded numpy generators in float64 and torch generators
in float32, drawn in fixed pieces on threads):

* ``"numpy"`` — the reference loop: one batched score call per step (a torch call for a
  :class:`~xlangevin.ScoreModel`, with the update in torch too; a numpy call and numpy
  arithmetic for a plain callable).
* ``"numba"`` — :func:`xlangevin.backends.em_kernels.em_blocks` on threads over blocks of
  members, many steps per call, with the score evaluated inside the kernel: the KGMM MLP (weights
  taken from the network, unit maps folded in) or a user's numba-jitted ``f(x_row, out_row)``.
* ``"auto"`` (default) — numba when the score allows it, else numpy.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import numbers
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import io
from ._params import Interval, OneOf, validate_params
from ._version import __version__
from .current import CurrentField, CurrentVelocity
from .data import DataError, FeatureSpace
from .generator import cdot_finite_volume, cdot_lagged, cdot_logm
from .mobility import mobility_from_cdot, stein_matrix
from .nets import torch_threads
from .score import NoiseToScore, ScoreModel

__all__ = ["EffectiveLangevin", "LangevinModel", "BlowUpError", "CDOT_ESTIMATORS"]

CDOT_ESTIMATORS = ("lagged", "logm", "finite_volume")
BACKENDS = ("auto", "numba", "numpy")
DEFAULT_BOUND = 10.0
#: members per block of the numba MLP kernel: large blocks make the layer products efficient
#: GEMMs (256 members: 1.3-1.9x the member-steps per second of 32, benchmarks/bench_generate.py);
#: the kernel runs with OpenBLAS limited to one thread (threadpoolctl), so a large product never
#: starts BLAS threads inside numba's
MLP_BLOCK = 256


class BlowUpError(FloatingPointError):
    """A member left the bound or became non-finite with ``on_blowup="raise"``."""


def _n_threads() -> int:
    import numba

    return max(1, int(numba.get_num_threads()))


def _is_numba_function(f) -> bool:
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover
        return False
    return isinstance(f, CPUDispatcher)


# =============================================================================================
# scores as standardized functions
# =============================================================================================
class _Score:
    """A score seen in the model's standardized units: ``std(X~) -> s~(X~)`` on (n, d) arrays.

    ``kind`` names it, ``sigma`` is its smoothing scale (0 for an exact score) and ``perturb``
    (d,) the standard deviation of the Stein-matrix perturbation in the model's units.
    """

    kind = "score"
    sigma = 0.0

    def __init__(self, space: FeatureSpace):
        self.space = space
        self.perturb = np.zeros(space.n_features)

    def std(self, X):
        raise NotImplementedError

    def strategy(self, dtype):
        """``(drift, p, ip, scratch_per_member, block)`` for the numba kernel, or None."""
        return None


class _ModelScore(_Score):
    """A :class:`~xlangevin.ScoreModel`; its own FeatureSpace may differ from the model's: then
    ``s~(x~) = a * field(a x~ + b)`` with ``a = S / S'``, ``b = (m - m') / S'``."""

    kind = "ScoreModel"

    def __init__(self, model: ScoreModel, space: FeatureSpace):
        super().__init__(space)
        ms = model.space
        if ms.n_features != space.n_features:
            raise DataError(f"the score model has {ms.n_features} features, the data "
                            f"{space.n_features}; fit the score on the same variables")
        self.model = model
        self.sigma = float(model.sigma)
        self.a = space.scale / ms.scale
        self.b = (space.mean - ms.mean) / ms.scale
        self.identity = bool(np.allclose(self.a, 1.0, rtol=1e-12, atol=0.0)
                             and np.allclose(self.b, 0.0, rtol=0.0, atol=1e-12))
        self.perturb = self.sigma / self.a
        self._fields = {}

    def _field(self, dtype):
        tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        if tdtype not in self._fields:
            field = self.model.field
            if self.model.dtype != tdtype:
                field = copy.deepcopy(field).to(tdtype)
            self._fields[tdtype] = field.eval()
        return self._fields[tdtype], tdtype

    def std(self, X):
        X = np.asarray(X)
        out = np.empty(X.shape, dtype=X.dtype)
        batch_size = self.model.batch_size
        for start in range(0, X.shape[0], batch_size):
            t = torch.from_numpy(np.ascontiguousarray(X[start:start + batch_size]))
            out[start:start + batch_size] = self.std_tensor(t).cpu().numpy()
        return out

    def std_tensor(self, t):
        """``s~`` of a CPU tensor in the model's units (the field runs on its own device)."""
        field, tdtype = self._field(np.float64 if t.dtype == torch.float64 else np.float32)
        device = self.model.device
        # small batches run faster on one thread (per-op threading overhead dominates, and
        # collapses on a busy machine)
        threads = torch_threads(1) if t.shape[0] < 512 and device.type == "cpu" else \
            contextlib.nullcontext()
        with torch.no_grad(), threads:
            x = t.to(device=device, dtype=tdtype)
            if self.identity:
                s = field(x)
            else:
                a = torch.as_tensor(self.a, dtype=tdtype, device=device)
                b = torch.as_tensor(self.b, dtype=tdtype, device=device)
                s = field(x * a + b) * a
        return s.to(device="cpu", dtype=t.dtype)

    def mlp_layers(self):
        """``(weights (out, in), biases)`` of the score MLP in float64 with the unit maps and the
        ``-1/sigma`` factor folded in (``s~`` of the model's units), or None for other nets."""
        from .nets import MLP

        field = self.model.field
        factor, net = 1.0, field
        if isinstance(field, NoiseToScore):
            factor, net = -1.0 / field.sigma, field.net
        if not isinstance(net, MLP):
            return None
        linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
        W = [lin.weight.detach().cpu().numpy().astype(np.float64) for lin in linears]
        bias = [lin.bias.detach().cpu().numpy().astype(np.float64) for lin in linears]
        if not self.identity:          # input map x' = a x~ + b, output s~ = a s'
            bias[0] = W[0] @ self.b + bias[0]
            W[0] = W[0] * self.a[None, :]
        out_scale = factor * (1.0 if self.identity else self.a)
        W[-1] = np.asarray(out_scale).reshape(-1, 1) * W[-1]
        bias[-1] = out_scale * bias[-1]
        return W, bias

    def strategy(self, dtype):
        layers = self.mlp_layers()
        return None if layers is None else _mlp_strategy(*layers, dtype)


def _mlp_strategy(W, bias, dtype):
    """The numba kernel's drift strategy for an MLP given as (out, in) weights and biases."""
    from .backends import em_kernels

    p, ip = em_kernels.pack_mlp(W, bias, dtype)
    hidden = max([w.shape[0] for w in W[:-1]], default=1)
    return em_kernels.mlp_drift, p, ip, 2 * hidden, MLP_BLOCK


def _fold_mobility(layers, Phi):
    """The MLP ``x -> Phi net(x)``: ``Phi`` multiplied into the output layer."""
    W, bias = list(layers[0]), list(layers[1])
    W[-1], bias[-1] = Phi @ W[-1], Phi @ bias[-1]
    return W, bias


def _joint_mlp(score_layers, current_layers, Phi):
    """One MLP computing ``Phi s(x) + v(x)`` from the score MLP and the current-velocity MLP
    (same depth): stacked first layers, block-diagonal hidden layers and a summed output layer
    (swish acts element-wise, so the two networks stay independent inside)."""
    (Ws, bs), (Wv, bv) = _fold_mobility(score_layers, Phi), current_layers
    W = [np.vstack([Ws[0], Wv[0]])]
    bias = [np.concatenate([bs[0], bv[0]])]
    for a, b in zip(Ws[1:-1], Wv[1:-1]):
        block = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
        block[:a.shape[0], :a.shape[1]], block[a.shape[0]:, a.shape[1]:] = a, b
        W.append(block)
    W.append(np.hstack([Ws[-1], Wv[-1]]))
    bias += [np.concatenate([a, b]) for a, b in zip(bs[1:-1], bv[1:-1])]
    bias.append(bs[-1] + bv[-1])
    return W, bias


class _CallableScore(_Score):
    """A plain callable on physical (n, d) arrays, taken as the exact score (``sigma = 0``):
    ``s~(x~) = S f(m + S x~)``."""

    kind = "callable"

    def __init__(self, f, space):
        super().__init__(space)
        self.f = f

    def _physical(self, X):
        return self.space.mean + self.space.scale * np.asarray(X, dtype=np.float64)

    def std(self, X):
        X = np.asarray(X)
        s = np.asarray(self.f(self._physical(X)), dtype=np.float64)
        if s.shape != X.shape:
            raise ValueError(f"the score callable returned shape {s.shape} for input of shape "
                             f"{X.shape}; it must map (n, d) physical states to (n, d) scores")
        return (s * self.space.scale).astype(X.dtype, copy=False)


class _NumbaScore(_CallableScore):
    """A numba-jitted ``f(x_row, out_row)`` on one physical state (exact score)."""

    kind = "numba"

    def std(self, X):
        from .backends import em_kernels

        X = np.asarray(X)
        P = self._physical(X)
        out = np.empty_like(P)
        em_kernels.apply_rows(self.f)(P, out)
        return (out * self.space.scale).astype(X.dtype, copy=False)

    def strategy(self, dtype):
        from .backends import em_kernels

        d = self.space.n_features
        p = np.concatenate([self.space.mean, self.space.scale]).astype(dtype)
        return em_kernels.row_drift(self.f), p, np.zeros(1, np.int64), 2 * d, 32


def _as_score(score, space) -> _Score:
    if isinstance(score, ScoreModel):
        return _ModelScore(score, space)
    if _is_numba_function(score):
        return _NumbaScore(score, space)
    if callable(score):
        return _CallableScore(score, space)
    raise TypeError(f"score must be a ScoreModel, a callable on (n, d) physical arrays, a "
                    f"numba-jitted f(x_row, out_row), or a method name such as 'kgmm'; got "
                    f"{type(score).__name__}")


# =============================================================================================
# the estimator
# =============================================================================================
def _lags_ok(lags) -> bool:
    try:
        a = np.atleast_1d(np.asarray(lags))
    except Exception:  # pragma: no cover
        return False
    return (a.ndim == 1 and a.size >= 1 and np.issubdtype(a.dtype, np.integer)
            and bool(np.all(a >= 1)) and np.unique(a).size == a.size)


class EffectiveLangevin:
    """Estimator of an effective Langevin model ``dx = Phi s dt + sqrt(2) Sigma dW``.

    Parameters
    ----------
    cdot : ``"lagged"`` (default: lagged finite difference extrapolated over ``lags``),
        ``"logm"`` (matrix log of the lag-``lag`` propagator) or ``"finite_volume"`` (rate matrix
        of a bisecting k-means partition with ``n_clusters`` / ``p_min`` cells; ``correction``,
        ``restrict``). See docs/cdot_estimators.md for which to use when.
    lags, order : lags (in samples) and polynomial order of ``"lagged"`` (default (1, 2, 3),
        Richardson extrapolation).
    lag : lag in samples of ``"logm"`` and ``"finite_volume"``.
    n_clusters, p_min, correction, restrict : the ``"finite_volume"`` partition and rate matrix.
    stein_samples : at most this many samples (drawn at random) enter ``V = <s x^T>``.
    eps : relative floor of the eigenvalues of ``Phi_S`` (clipped, ``Phi`` rebuilt, reported).
    n_keep : data states (standardized, drawn at random) kept in the model for initial states and
        blow-up resets.
    score_options : options of the score estimator when ``fit`` is given a method name
        (``"kgmm"``/``"gmm"``), e.g. ``{"sigma": 0.05, "p_min": 0.001}``.
    current_velocity : False (default): the drift is ``Phi s(x)`` with a constant ``Phi``. True:
        the drift is ``Phi_S s(x) + v(x)`` with the current velocity ``v = j / p`` learned from
        central differences (:mod:`xlangevin.current`): for non-reversible dynamics whose
        rotation a constant ``Phi_A`` cannot carry, e.g. a travelling wave (docs/
        lorenz96_demo.md). ``Phi_S`` and ``Sigma`` come from ``cdot`` as before.
    current_options : options of :class:`~xlangevin.current.CurrentVelocity` (``lag``,
        ``n_clusters``, ``hidden``, ``shift_augmentation``, ...).
    dim, variables : the sample dim and the variables of xarray input.
    seed : seeds every random draw (Stein perturbations and subsample, kept states, partition,
        score fit, current velocity).
    progress : progress bars.
    """

    _table = {
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
        "current_velocity": OneOf((True, False)),
        "progress": OneOf((True, False)),
    }

    def __init__(self, cdot="lagged", lags=(1, 2, 3), order=None, lag=1, n_clusters=None,
                 p_min=None, correction="none", restrict="largest", stein_samples=200_000,
                 eps=1e-6, n_keep=1000, score_options=None, current_velocity=False,
                 current_options=None, dim="time", variables=None, seed=None, progress=True):
        self.cdot = cdot
        self.lags = lags
        self.order = order
        self.lag = lag
        self.n_clusters = n_clusters
        self.p_min = p_min
        self.correction = correction
        self.restrict = restrict
        self.stein_samples = stein_samples
        self.eps = eps
        self.n_keep = n_keep
        self.score_options = score_options
        self.current_velocity = current_velocity
        self.current_options = current_options
        self.dim = dim
        self.variables = variables
        self.seed = seed
        self.progress = progress

    def get_params(self) -> dict:
        return dict(vars(self))

    def _validate(self):
        validate_params(self.get_params(), self._table)
        if not _lags_ok(self.lags):
            raise ValueError(f"lags must be distinct positive integers (samples), got "
                             f"{self.lags!r}")
        if self.order is not None and self.order >= np.atleast_1d(self.lags).size:
            raise ValueError(f"order must be < the number of lags ({len(self.lags)}), got "
                             f"{self.order}")
        if self.cdot == "finite_volume":
            if self.n_clusters is not None and self.p_min is not None:
                raise ValueError("give either n_clusters or p_min, not both")
        elif self.n_clusters is not None or self.p_min is not None:
            raise ValueError(f"n_clusters / p_min only apply to cdot='finite_volume', not "
                             f"{self.cdot!r}")
        for name in ("score_options", "current_options"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict, got {value!r}")
        if self.current_options and not self.current_velocity:
            raise ValueError("current_options given without current_velocity=True")
        if self.current_options:
            known = set(CurrentVelocity().get_params())
            unknown = sorted(set(self.current_options) - known)
            if unknown:
                raise ValueError(f"unknown current_options {unknown}; known: {sorted(known)}")

    # -----------------------------------------------------------------------------------------
    def fit(self, data, score="kgmm") -> "LangevinModel":
        """Fit on ``data`` (xarray Dataset/DataArray, regularly sampled along ``dim``, or an
        (n, d) array of consecutive samples) with ``score``: a :class:`~xlangevin.ScoreModel`, a
        callable on physical (n, d) arrays (exact score), a numba-jitted ``f(x_row, out_row)``
        (exact score, physical units; enables the numba generation kernel), or a method name
        (``"kgmm"``, ``"gmm"``) fitted first with ``score_options``."""
        self._validate()
        rng = np.random.default_rng(self.seed)
        obj = _as_xarray(data, self.dim)
        space = FeatureSpace.fit(obj, dim=self.dim, variables=self.variables,
                                 require_regular=True)
        X = np.ascontiguousarray(np.asarray(space.transform(obj), dtype=np.float64))
        bounds = space.sequence_bounds(obj)
        n, d = X.shape
        if isinstance(score, str):
            score = self._fit_score(obj, score, rng)
        adapter = _as_score(score, space)
        cdot, diag = self._cdot(X, bounds, space.dt, rng)
        V = self._stein(X, adapter, rng)
        mob = mobility_from_cdot(cdot, V, eps=self.eps)
        if mob.clip["n_clipped"]:
            warnings.warn(f"Phi_S had {mob.clip['n_clipped']} eigenvalue(s) below the floor "
                          f"{mob.clip['floor']:.3g}; clipped (|shift| = "
                          f"{mob.clip['shift_norm']:.3g}) and Phi rebuilt as Phi_S + Phi_A",
                          stacklevel=2)
        keep = rng.choice(n, size=min(n, self.n_keep), replace=False)
        samples = X[np.sort(keep)]
        current, Phi = None, mob.Phi
        if self.current_velocity:
            options = {"progress": self.progress, "seed": int(rng.integers(2**31)),
                       **(self.current_options or {})}
            current = CurrentVelocity(**options).fit_arrays(X, bounds, space.dt, space)
            Phi = mob.Phi_S
        attrs = {
            "cdot_estimator": self.cdot,
            "cdot_options": json.dumps(self._cdot_options(), default=str),
            "score_kind": adapter.kind,
            "score_method": getattr(score, "method", adapter.kind),
            "score_sigma": adapter.sigma,
            "n_samples": int(n),
            "n_sequences": int(bounds.size - 1),
            "n_features": int(d),
            "data_dt": float(space.dt),
            "time_units": _time_units(space),
            "stein_samples": int(min(n, self.stein_samples)),
            "V_deviation": float(np.linalg.norm(V + np.eye(d))),
            "eps": float(self.eps),
            "n_clipped": int(mob.clip["n_clipped"]),
            "drift": "Phi_S s(x) + v(x)" if current is not None else "Phi s(x)",
            "current_velocity": json.dumps(current.diagnostics) if current is not None else "",
            "seed": "None" if self.seed is None else str(self.seed),
            "xlangevin_version": __version__,
        }
        return LangevinModel(Phi, mob.Sigma, V, score, space, samples, cdot=cdot,
                             cdot_estimator=self.cdot, cdot_diagnostics=diag, clip=mob.clip,
                             attrs=attrs, time_origin=_last_time(obj, space), current=current)

    def _cdot_options(self):
        if self.cdot == "lagged":
            return {"lags": [int(k) for k in np.atleast_1d(self.lags)], "order": self.order}
        if self.cdot == "logm":
            return {"lag": self.lag}
        return {"lag": self.lag, "n_clusters": self.n_clusters, "p_min": self.p_min,
                "correction": self.correction, "restrict": self.restrict}

    def _fit_score(self, obj, method, rng):
        from .accessors import score_estimator

        options = dict(self.score_options or {})
        options.setdefault("dim", self.dim)
        options.setdefault("variables", self.variables)
        options.setdefault("progress", self.progress)
        if self.seed is not None:
            options.setdefault("seed", int(rng.integers(2**31)))
        return score_estimator(method, **options).fit(obj)

    def _cdot(self, X, bounds, dt, rng):
        if self.cdot == "lagged":
            return cdot_lagged(X, dt, bounds, lags=tuple(int(k) for k in np.atleast_1d(self.lags)),
                               order=self.order)
        if self.cdot == "logm":
            return cdot_logm(X, dt, bounds, lag=self.lag)
        from .partition import BisectingPartition

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


def _as_xarray(data, dim):
    if isinstance(data, (xr.DataArray, xr.Dataset)):
        return data
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"expected xarray data or an array (n_samples, n_features), got shape "
                        f"{np.shape(data)}")
    return xr.DataArray(arr, dims=(dim, "feature"), name="x")


def _last_time(obj, space):
    dim = space.sample_dim
    if dim not in obj.coords:
        return None
    return obj[dim].values[-1]


def _time_units(space) -> str:
    kind = space.time.get("kind")
    if kind == "index":
        return "samples"
    if kind == "numeric":
        return space.time.get("units") or "time units of the data coordinate"
    if space.time.get("freq"):
        return f"steps of frequency {space.time['freq']}"
    return "days"


# =============================================================================================
# noise
# =============================================================================================
class _Noise:
    """Standard normals for chunks of steps, (n, m, d), from seeded generators.

    The flat buffer is cut into ``k`` equal pieces (``k`` fixed by the buffer size only, never by
    the machine) filled by ``k`` independent streams on threads (the fills release the GIL), so
    the draws depend only on the seed, the dtype and the sizes. float64: numpy generators on
    SFC64 bit generators (~9 ns a draw on the 2-core test machine, 13 ns with the default
    PCG64); float32: torch generators (``normal_``, ~4 ns a draw, 2.5x faster than numpy's
    float32 ziggurat).
    """

    PIECE = 1 << 16
    MAX_STREAMS = 8

    def __init__(self, seed_sequence, dtype, n_threads=1):
        self.dtype = np.dtype(dtype)
        seqs = seed_sequence.spawn(self.MAX_STREAMS)
        self._torch = self.dtype == np.float32
        if self._torch:
            self._streams = [torch.Generator().manual_seed(
                int(q.generate_state(1, np.uint64)[0] >> np.uint64(1))) for q in seqs]
        else:
            self._streams = [np.random.Generator(np.random.SFC64(q)) for q in seqs]
        self.n_threads = max(1, int(n_threads))
        self._pool = None

    def _fill(self, i, piece):
        if self._torch:
            torch.from_numpy(piece).normal_(generator=self._streams[i])
        else:
            self._streams[i].standard_normal(out=piece, dtype=self.dtype)

    def draw(self, n, m, d):
        out = np.empty((n, m, d), dtype=self.dtype)
        flat = out.reshape(-1)
        k = int(min(self.MAX_STREAMS, max(1, flat.size // self.PIECE)))
        if k == 1 or self.n_threads == 1:
            edges = np.linspace(0, flat.size, k + 1).astype(np.int64)
            for i in range(k):
                self._fill(i, flat[edges[i]:edges[i + 1]])
            return out
        edges = np.linspace(0, flat.size, k + 1).astype(np.int64)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        list(self._pool.map(lambda i: self._fill(i, flat[edges[i]:edges[i + 1]]), range(k)))
        return out

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


# =============================================================================================
# steppers (one chunk of steps; same arguments for every backend)
# =============================================================================================
class _NumbaStepper:
    """:func:`~xlangevin.backends.em_kernels.em_blocks` on ``numba.get_num_threads()`` threads,
    each advancing a contiguous range of member blocks (the kernel releases the GIL)."""

    name = "numba"

    def __init__(self, strategy, Phi, Sig):
        self.drift, self.p, self.ip, self.scratch, self.block = strategy
        # Phi None: the strategy returns the whole drift (an empty Phi^T tells the kernel)
        self.PhiT = np.empty((0, Sig.shape[0]), Sig.dtype) if Phi is None else \
            np.ascontiguousarray(Phi.T)
        self.SigT = np.ascontiguousarray(Sig.T)
        self.n_threads = _n_threads()
        self._pool = None
        self._blas = None

    def __call__(self, x, noise, dt, bound, mode, samples, pool, resets, frozen, out, g0,
                 save_every):
        from threadpoolctl import threadpool_limits

        from .backends import em_kernels

        if self._blas is None:      # one-thread OpenBLAS until close() (generate's finally)
            self._blas = threadpool_limits(1, user_api="blas")
        T = x.dtype.type
        m = x.shape[0]
        # at least one block per thread where the members allow
        block = max(1, min(self.block, max(8, -(-m // self.n_threads))))
        n_blocks = -(-m // block)
        k = min(self.n_threads, n_blocks)
        edges = np.linspace(0, n_blocks, k + 1).astype(np.int64)

        def run(i):
            em_kernels.em_blocks(self.drift, self.p, self.ip, self.scratch, block,
                                 edges[i], edges[i + 1], x, self.PhiT, self.SigT, noise, T(dt),
                                 T(math.sqrt(2.0 * dt)), T(bound), mode, samples, pool, resets,
                                 frozen, out, g0, save_every)

        if k == 1:
            run(0)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        list(self._pool.map(run, range(k)))

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None


class _ReferenceStepper:
    """The reference loop: one batched score call per step. With a torch score (``torch_std``)
    the update products run in torch too, on the same threads as the network (numpy's BLAS
    threads and torch's would otherwise contend for the cores)."""

    name = "numpy"

    def __init__(self, score_std, Phi, Sig, torch_std=None, current=None):
        self.score_std = score_std
        self.torch_std = torch_std
        self.current = current
        self.PhiT = np.ascontiguousarray(Phi.T)
        self.SigT = np.ascontiguousarray(Sig.T)

    def close(self):
        pass

    def _products(self, x, noise, dt_, sq):
        """Generator of the proposed states ``x + dt (Phi s(x) + v(x)) + sq Sigma eta_j``, step
        by step (``x`` is read afresh at every step; ``v`` the current velocity, if any)."""
        v = self.current
        if self.torch_std is None:
            for j in range(noise.shape[0]):
                f = self.score_std(x) @ self.PhiT
                if v is not None:
                    f += v(x)
                yield x + dt_ * f + sq * (noise[j] @ self.SigT)
            return
        xt, nt = torch.from_numpy(x), torch.from_numpy(noise)
        PhiT, SigT = torch.from_numpy(self.PhiT), torch.from_numpy(self.SigT)
        small = torch_threads(1) if x.shape[0] < 512 else contextlib.nullcontext()
        with torch.no_grad(), small:
            for j in range(noise.shape[0]):
                f = self.torch_std(xt) @ PhiT
                if v is not None:
                    f += v.tensor(xt)
                yield (xt + dt_ * f + sq * (nt[j] @ SigT)).numpy()

    def __call__(self, x, noise, dt, bound, mode, samples, pool, resets, frozen, out, g0,
                 save_every):
        T = x.dtype.type
        dt_, sq, bound = T(dt), T(math.sqrt(2.0 * dt)), T(bound)
        s0 = g0 // save_every if save_every > 0 else 0
        K = pool.shape[1]
        for j, new in enumerate(self._products(x, noise, dt_, sq)):
            g = g0 + j
            with np.errstate(invalid="ignore"):
                bad = ~np.all(np.abs(new) <= bound, axis=1)
            if bad.any():
                idx = np.flatnonzero(bad)
                if mode == 0:
                    new[idx] = samples[pool[idx, resets[idx] % K]]
                    resets[idx] += 1
                else:
                    frozen[idx] = g
                    x[~bad] = new[~bad]
                    return
            x[...] = new
            if save_every > 0 and (g + 1) % save_every == 0:
                out[(g + 1) // save_every - 1 - s0] = x


# =============================================================================================
# the model
# =============================================================================================
@io.register_model("LangevinModel")
class LangevinModel:
    """A fitted effective Langevin model ``dx = Phi s(x) dt + sqrt(2) Sigma dW``.

    Made by :meth:`EffectiveLangevin.fit` (or ``ds.langevin.fit``). Holds the standardized
    ``Phi_std``, ``Sigma_std`` (lower Cholesky factor of ``Phi_S_std``), ``V_std`` and
    ``cdot_std``, the ``score`` (ScoreModel or callable), the data's FeatureSpace ``space``, a
    sample of standardized data states ``samples`` (initial states and resets), the Cdot
    estimator's name and diagnostics, the clip report and provenance ``attrs``. Properties
    ``Phi``, ``Phi_S``, ``Phi_A``, ``Sigma``, ``V`` are xr.DataArrays over
    ``("feature_i", "feature_j")`` in physical units.

    With a current velocity ``current`` (:class:`~xlangevin.current.CurrentField`, fitted with
    ``current_velocity=True``) the drift is ``Phi_S s(x) + v(x)``: ``Phi`` is symmetric and the
    state-dependent ``v`` replaces the constant ``Phi_A s``.
    """

    def __init__(self, Phi_std, Sigma_std, V_std, score, space: FeatureSpace, samples, *,
                 cdot=None, cdot_estimator="", cdot_diagnostics=None, clip=None, attrs=None,
                 time_origin=None, current=None):
        d = space.n_features
        self.Phi_std = _square(Phi_std, d, "Phi_std")
        self.Sigma_std = _square(Sigma_std, d, "Sigma_std")
        if np.any(np.triu(self.Sigma_std, 1) != 0):
            raise ValueError("Sigma_std must be lower triangular (the Cholesky factor of Phi_S)")
        self.V_std = _square(V_std, d, "V_std")
        self.cdot_std = None if cdot is None else _square(cdot, d, "cdot")
        self.space = space
        self.samples = np.ascontiguousarray(samples, dtype=np.float64)
        if self.samples.ndim != 2 or self.samples.shape[1] != d or not self.samples.shape[0]:
            raise ValueError(f"samples must have shape (n, {d}) with n >= 1")
        self.cdot_estimator = cdot_estimator
        self.cdot_diagnostics = dict(cdot_diagnostics or {})
        self.clip = dict(clip or {})
        self.attrs = dict(attrs or {})
        self.time_origin = time_origin
        if current is not None and not isinstance(current, CurrentField):
            raise TypeError(f"current must be a CurrentField, got {type(current).__name__}")
        if current is not None and np.any(self.Phi_std != self.Phi_std.T):
            raise ValueError("with a current velocity v(x) the drift is Phi_S s(x) + v(x): "
                             "Phi_std must be symmetric")
        self.current = current
        self._adapter = None
        self.score = score

    # -- score ---------------------------------------------------------------------------------
    @property
    def score(self):
        return self._score

    @score.setter
    def score(self, value):
        self._score = value
        self._adapter = None if value is None else _as_score(value, self.space)

    def with_score(self, score) -> "LangevinModel":
        """A copy using ``score`` (e.g. a callable again after loading from a file)."""
        new = copy.copy(self)
        new.score = score
        return new

    def _need_score(self):
        if self._adapter is None:
            raise ValueError("this model has no score (plain callables are not saved with the "
                             "model): attach one with model.with_score(f)")
        return self._adapter

    def standardized_score(self, X):
        """``s~(x~)`` on standardized states (n, d) in the model's units."""
        return self._need_score().std(np.asarray(X, dtype=np.float64))

    # -- matrices in physical units ----------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.space.n_features

    @property
    def Phi_S_std(self):
        return 0.5 * (self.Phi_std + self.Phi_std.T)

    @property
    def Phi_A_std(self):
        return 0.5 * (self.Phi_std - self.Phi_std.T)

    def _matrix(self, values, name, long_name, units):
        coords = dict(self.space.feature_coords("feature_i"))
        coords.update(self.space.feature_coords("feature_j"))
        attrs = {"long_name": long_name, "cdot_estimator": self.cdot_estimator}
        if units:
            attrs["units"] = units
        return xr.DataArray(np.asarray(values), dims=("feature_i", "feature_j"), coords=coords,
                            name=name, attrs=attrs)

    def _units(self, power):
        u = {str(self.space._template[l.name].attrs.get("units", "")) for l in self.space.layouts}
        if len(u) != 1 or not next(iter(u)):
            return ""
        unit = next(iter(u))
        t = _time_units(self.space)
        return {2: f"({unit})^2 / ({t})", 1: f"({unit}) / ({t})^(1/2)", 0: "1"}[power]

    @property
    def Phi(self) -> xr.DataArray:
        """Mobility ``Phi = S Phi~ S`` (physical units, per data time unit)."""
        return self._matrix(self.space.matrix_to_physical(self.Phi_std), "Phi", "mobility Phi",
                            self._units(2))

    @property
    def Phi_S(self) -> xr.DataArray:
        """Symmetric part of ``Phi`` (= ``Sigma Sigma^T``)."""
        return self._matrix(self.space.matrix_to_physical(self.Phi_S_std), "Phi_S",
                            "symmetric part of Phi", self._units(2))

    @property
    def Phi_A(self) -> xr.DataArray:
        """Antisymmetric part of ``Phi``."""
        return self._matrix(self.space.matrix_to_physical(self.Phi_A_std), "Phi_A",
                            "antisymmetric part of Phi", self._units(2))

    @property
    def Sigma(self) -> xr.DataArray:
        """Noise factor ``Sigma = S Sigma~`` (lower triangular, ``Sigma Sigma^T = Phi_S``)."""
        return self._matrix(self.space.factor_to_physical(self.Sigma_std), "Sigma",
                            "noise factor Sigma (lower Cholesky of Phi_S)", self._units(1))

    @property
    def V(self) -> xr.DataArray:
        """Stein matrix ``V = <s(x) x^T> = S^{-1} V~ S`` (``= -I`` for an exact score)."""
        s = self.space.scale
        return self._matrix(self.V_std / s[:, None] * s[None, :], "V",
                            "Stein matrix <s(x) x^T>", "1")

    # -- drift -----------------------------------------------------------------------------------
    def drift(self, x):
        """Drift ``Phi s(x)`` (``+ v(x)`` with a current velocity) in physical units at ``x``:
        ndarray (n, d) or (d,), or xarray shaped like the fitted data (same type back)."""
        name = "drift Phi s(x)" + (" + v(x)" if self.current is not None else "")
        return self._vector_field(x, self._drift_std, name)

    def current_velocity(self, x):
        """The current velocity ``v(x) = j / p`` in physical units (per time unit of the data)
        at ``x``, shaped like ``x`` (see :meth:`drift`); only for models fitted with
        ``current_velocity=True``."""
        if self.current is None:
            raise ValueError("this model has no current velocity: fit it with "
                             "current_velocity=True (its non-reversible drift is Phi_A s(x))")
        return self._vector_field(x, self.current, "current velocity v(x) = j(x) / p(x)")

    def _vector_field(self, x, field_std, name):
        """``S field_std(x~)`` (a vector field in physical units) at physical states ``x``."""
        sp = self.space
        if isinstance(x, (xr.DataArray, xr.Dataset)):
            Xs = np.asarray(sp.transform(x), dtype=np.float64)
            out = sp.match_input(sp.states_like(field_std(Xs) * sp.scale, x), x)
            out.attrs = {"long_name": name} if isinstance(out, xr.DataArray) \
                else {"description": name}
            return out
        X = np.asarray(x, dtype=np.float64)
        single = X.ndim == 1
        X = X[None, :] if single else X
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise DataError(f"expected states of shape (n, {self.dim}), got {np.shape(x)}")
        f = field_std(sp.to_standard(X)) * sp.scale
        return f[0] if single else f

    def _drift_std(self, X):
        f = self._need_score().std(X) @ self.Phi_std.T
        if self.current is not None:
            f += self.current(X)
        return f

    # -- generation ------------------------------------------------------------------------------
    _gen_table = {
        "n_steps": Interval(1, None, integer=True),
        "dt": Interval(0, None, closed="neither"),
        "save_every": Interval(1, None, integer=True),
        "n_members": Interval(1, None, integer=True),
        "burn_in": Interval(0, None, integer=True),
        "on_blowup": OneOf(("reset", "raise")),
        "bound": Interval(0, None, closed="neither", optional=True),
        "backend": OneOf(BACKENDS),
        "dtype": OneOf((np.float32, np.float64, "float32", "float64", np.dtype("float32"),
                        np.dtype("float64"))),
        "progress": OneOf((True, False)),
        "chunk_steps": Interval(1, None, integer=True, optional=True),
    }

    def generate(self, n_steps, dt, save_every=1, n_members=1, burn_in=0, init=None, seed=None,
                 on_blowup="reset", bound=DEFAULT_BOUND, backend="auto", dtype="float64",
                 progress=True, path=None, time_origin="data", chunk_steps=None):
        """Integrate the model by Euler–Maruyama and return the ensemble as xarray.

        ``x~ <- x~ + dt Phi~ s~(x~) + sqrt(2 dt) Sigma~ eta`` in standardized units, all members
        at once (one score evaluation per step for the ensemble).

        Parameters
        ----------
        n_steps : steps after the burn-in; ``n_steps // save_every`` states are returned.
        dt : step in the time units of the data's sample coordinate (``model.space.dt`` is the
            data spacing; ``save_every * dt == space.dt`` reproduces the data's sampling).
        save_every : keep every ``save_every``-th state.
        n_members : ensemble size.
        burn_in : number of STEPS integrated first and discarded (a time ``T`` is
            ``round(T / dt)`` steps).
        init : None (default: states drawn at random from the data sample kept in the model),
            an array (n_members, d) or (d,) in physical units, or xarray shaped like the data
            (one state per member along ``member``, or a single state; with the sample dim the
            last sample is used).
        seed : seed of all random draws (noise, initial states, resets); the seed sequence's
            entropy is recorded in the attrs, so ``seed=None`` runs can be repeated too.
        on_blowup : a member that leaves ``bound`` or becomes non-finite is reset to a random
            data state (``"reset"``, counted in the attrs) or stops the run with
            :class:`BlowUpError` (``"raise"``).
        bound : bound on ``|x~_i|`` in STANDARDIZED units (standard deviations from the data
            mean), default 10 (METHODS.md §5); None checks finiteness only.
        backend : ``"auto"``, ``"numba"`` (MLP ScoreModels and numba-jitted scores) or
            ``"numpy"`` (reference loop); all consume the same noise.
        dtype : float64 (default) or float32 state, noise and arithmetic.
        progress : progress bar.
        path : stream the result to this NetCDF file (written under a temporary name and renamed
            when complete) and return it opened lazily; for runs that do not fit in memory.
        time_origin : ``"data"`` (default): the time coordinate continues from the last time of
            the fitted data; or a value of the coordinate's type (e.g. 0.0). Sample ``k``
            (1-based) is at ``origin + (burn_in + k save_every) dt``.
        chunk_steps : steps per kernel call (default: as many as keep the noise buffer near
            16 MB).

        Returns
        -------
        xr.DataArray or xr.Dataset (like the fitted data) with dims ``(member, <sample dim>,
        ...)``; attrs record dt, save_every, n_steps, burn_in, seed, n_members, backend, dtype,
        bound, on_blowup, resets (total and per member), the Cdot estimator and the model's
        Phi/Sigma.
        """
        validate_params(dict(n_steps=n_steps, dt=dt, save_every=save_every,
                             n_members=n_members, burn_in=burn_in, on_blowup=on_blowup,
                             bound=bound, backend=backend, dtype=dtype, progress=progress,
                             chunk_steps=chunk_steps), self._gen_table)
        adapter = self._need_score()
        n_steps, save_every, m, burn_in = int(n_steps), int(save_every), int(n_members), \
            int(burn_in)
        dt = float(dt)
        dtype = np.dtype(dtype)
        d = self.dim
        stepper = self._stepper(adapter, backend, dtype)
        ss = np.random.SeedSequence(seed)
        noise_ss, init_ss, reset_ss = ss.spawn(3)
        rng_reset = np.random.default_rng(reset_ss)
        samples = np.ascontiguousarray(self.samples, dtype=dtype)
        x = np.ascontiguousarray(self._initial_states(init, m, np.random.default_rng(init_ss)),
                                 dtype=dtype)
        mode = 0 if on_blowup == "reset" else 1
        bnd = np.finfo(dtype).max if bound is None else float(bound)
        resets = np.zeros(m, np.int64)
        frozen = np.full(m, -1, np.int64)
        n_save = n_steps // save_every
        if chunk_steps is None:
            chunk_steps = int(np.clip((1 << 21) // (m * d), 1, 1 << 16))
        origin = self._origin(time_origin)
        attrs = self._gen_attrs(n_steps, dt, save_every, m, burn_in, seed, ss, on_blowup, bound,
                                stepper.name, dtype)
        writer = _Writer(self, m, path, attrs, origin, dt, burn_in, save_every)
        noise = _Noise(noise_ss, dtype, _n_threads())
        empty = np.empty((0, m, d), dtype)
        bar = tqdm(total=burn_in + n_steps, disable=not progress, desc="langevin", unit="step",
                   unit_scale=True, leave=False)
        try:
            for phase, total in (("burn_in", burn_in), ("run", n_steps)):
                g = 0
                while g < total:
                    n = min(chunk_steps, total - g)
                    eta = noise.draw(n, m, d)
                    pool = rng_reset.integers(self.samples.shape[0], size=(m, 2)) if mode == 0 \
                        else np.zeros((m, 1), np.int64)
                    se = save_every if phase == "run" else 0
                    n_out = ((g + n) // se - g // se) if se else 0
                    out = np.empty((n_out, m, d), dtype) if n_out else empty
                    stepper(x, eta, dt, bnd, mode, samples, pool, resets, frozen, out, g, se)
                    if mode == 1 and np.any(frozen >= 0):
                        self._raise_blowup(frozen, phase, dt, bound)
                    if n_out:
                        writer.append(out)
                    g += n
                    bar.update(n)
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
            noise.close()
            stepper.close()
        attrs["resets"] = int(resets.sum())
        attrs["resets_per_member"] = resets
        if attrs["resets"]:
            warnings.warn(f"{attrs['resets']} blow-up reset(s) in {int(np.count_nonzero(resets))}"
                          f" of {m} member(s) (|x~| > {bound} standard deviations or non-finite):"
                          " reduce dt or check the model", stacklevel=2)
        return writer.close(attrs)

    def _stepper(self, adapter, backend, dtype):
        Phi = np.ascontiguousarray(self.Phi_std, dtype=dtype)
        Sig = np.ascontiguousarray(self.Sigma_std, dtype=dtype)
        if backend in ("auto", "numba"):
            strategy, folded = self._numba_strategy(adapter, dtype)
            if strategy is not None:
                return _NumbaStepper(strategy, None if folded else Phi, Sig)
            if backend == "numba":
                with_current = " (with a current velocity: an MLP ScoreModel of the same depth " \
                    "as the current's network)" if self.current is not None else ""
                raise ValueError(f"backend='numba' needs a score the kernel can evaluate: an MLP "
                                 f"ScoreModel (KGMM) or a numba-jitted f(x_row, out_row)"
                                 f"{with_current}; this score is a {adapter.kind}. Use "
                                 f"backend='numpy' or 'auto'")
        return _ReferenceStepper(adapter.std, Phi, Sig, getattr(adapter, "std_tensor", None),
                                 current=self.current)

    def _numba_strategy(self, adapter, dtype):
        """``(strategy or None, folded)``: an MLP score (and current velocity) becomes one
        network computing the whole drift ``Phi s(x) [+ v(x)]`` (``folded``); other numba
        scores give ``s`` alone."""
        score_layers = adapter.mlp_layers() if isinstance(adapter, _ModelScore) else None
        if self.current is None:
            if score_layers is None:
                return adapter.strategy(dtype), False
            return _mlp_strategy(*_fold_mobility(score_layers, self.Phi_std), dtype), True
        current_layers = self.current.mlp_layers()
        if score_layers is None or len(score_layers[0]) != len(current_layers[0]):
            return None, False
        return _mlp_strategy(*_joint_mlp(score_layers, current_layers, self.Phi_std), dtype), True

    def _initial_states(self, init, m, rng):
        d, sp = self.dim, self.space
        if init is None:
            return self.samples[rng.integers(self.samples.shape[0], size=m)]
        if isinstance(init, (xr.DataArray, xr.Dataset)):
            obj = init
            if sp.sample_dim in obj.dims:
                obj = obj.isel({sp.sample_dim: -1})
            if sp.sample_dim in obj.coords:
                obj = obj.drop_vars(sp.sample_dim)
            member = "member" if "member" in obj.dims else sp.sequence_dim \
                if sp.sequence_dim in obj.dims else None
            obj = obj.rename({member: sp.sample_dim}) if member else \
                obj.expand_dims(sp.sample_dim)
            if sp.sample_dim in obj.coords:
                obj = obj.drop_vars(sp.sample_dim)
            X = np.asarray(sp.transform(obj), dtype=np.float64)
        else:
            X = sp.to_standard(np.asarray(init, dtype=np.float64).reshape(-1, d)
                               if np.ndim(init) in (1, 2) and np.shape(init)[-1] == d
                               else _bad_init(init, m, d))
        if X.shape[0] == 1:
            X = np.repeat(X, m, axis=0)
        if X.shape != (m, d):
            raise DataError(f"init holds {X.shape[0]} states; need 1 or n_members = {m}")
        if not np.all(np.isfinite(X)):
            raise DataError("init has non-finite values")
        return X

    def _origin(self, time_origin):
        if isinstance(time_origin, str) and time_origin == "data":
            return self.time_origin
        return time_origin

    def _gen_attrs(self, n_steps, dt, save_every, m, burn_in, seed, ss, on_blowup, bound,
                   backend, dtype):
        return {
            "title": "effective Langevin simulation (xlangevin)",
            "equation": ("dx = (Phi_S s(x) + v(x)) dt + sqrt(2) Sigma dW" if self.current is not None
                         else "dx = Phi s(x) dt + sqrt(2) Sigma dW")
            + " (Euler-Maruyama, standardized units)",
            "generated_by": "xlangevin.LangevinModel.generate",
            "dt": dt, "save_every": save_every, "sample_interval": dt * save_every,
            "n_steps": n_steps, "burn_in_steps": burn_in, "burn_in": burn_in * dt,
            "n_members": m, "seed": "None" if seed is None else str(seed),
            "seed_entropy": str(ss.entropy), "on_blowup": on_blowup,
            "bound": "None" if bound is None else float(bound),
            "bound_units": "standard deviations (standardized units)",
            "backend": backend, "dtype": dtype.name,
            "cdot_estimator": self.cdot_estimator,
            "score_kind": self._adapter.kind,
            "score_sigma": self._adapter.sigma,
            "Phi_std": self.Phi_std.ravel(), "Sigma_std": self.Sigma_std.ravel(),
            "time_units": _time_units(self.space),
            "xlangevin_version": __version__,
        }

    def _raise_blowup(self, frozen, phase, dt, bound):
        bad = np.flatnonzero(frozen >= 0)
        first = bad[np.argmin(frozen[bad])]
        raise BlowUpError(f"{bad.size} member(s) left the bound |x~| <= {bound} (standardized "
                          f"units) or became non-finite during the {phase.replace('_', '-')}; "
                          f"the first: member {first} at step {frozen[first] + 1}. Reduce dt "
                          f"(now {dt:g}), check the score, or use on_blowup='reset'")

    # -- persistence ---------------------------------------------------------------------------
    def to_netcdf(self, path):
        """Save the model (matrices, kept states, feature space and — when it is a ScoreModel —
        the score) atomically. A plain-callable score is not saved: re-attach it after
        :func:`xlangevin.open_model` with :meth:`with_score`."""
        arrays = {"Phi_std": self.Phi_std, "Sigma_std": self.Sigma_std, "V_std": self.V_std,
                  "samples": self.samples}
        if self.cdot_std is not None:
            arrays["cdot_std"] = self.cdot_std
        groups = {"space": self.space.to_dataset(),
                  "model": io.arrays_to_dataset(arrays)}
        score_attrs = ""
        if isinstance(self.score, ScoreModel):
            sm = self.score
            config, sarrays = sm.field.to_arrays()
            groups["score_space"] = sm.space.to_dataset()
            groups["score_field"] = io.arrays_to_dataset(
                sarrays, {"field_type": type(sm.field).__name__,
                          "field_config": json.dumps(config)})
            if sm.cells is not None:
                groups["score_cells"] = sm.cells
            score_attrs = json.dumps({
                "model_attrs": json.dumps({k: v for k, v in sm.attrs.items()
                                           if k != "xlangevin_version"}, default=str),
                "method": sm.method, "sigma": sm.sigma})
        if self.current is not None:
            config, carrays = self.current.to_arrays()
            groups["current"] = io.arrays_to_dataset(carrays, {"config": json.dumps(config)})
        attrs = {k: v for k, v in self.attrs.items() if k != "xlangevin_version"}
        clip = {k: np.asarray(v).tolist() for k, v in self.clip.items()}
        return io.write_groups(path, "LangevinModel", groups, {
            "model_attrs": json.dumps(attrs, default=str), "clip": json.dumps(clip),
            "cdot_estimator": self.cdot_estimator, "score": score_attrs,
            "time_origin": json.dumps(_time_to_json(self.time_origin))})

    @classmethod
    def _from_groups(cls, attrs, groups):
        a = io.dataset_to_arrays(groups["model"])
        score = None
        if attrs.get("score"):
            sattrs = json.loads(attrs["score"])
            sgroups = {"space": groups["score_space"], "field": groups["score_field"]}
            if "score_cells" in groups:
                sgroups["cells"] = groups["score_cells"]
            score = ScoreModel._from_groups(sattrs, sgroups)
        current = None
        if "current" in groups:
            current = CurrentField.from_arrays(json.loads(groups["current"].attrs["config"]),
                                               io.dataset_to_arrays(groups["current"]))
        return cls(a["Phi_std"], a["Sigma_std"], a["V_std"], score,
                   FeatureSpace.from_dataset(groups["space"]), a["samples"],
                   cdot=a.get("cdot_std"), cdot_estimator=attrs.get("cdot_estimator", ""),
                   clip=json.loads(attrs.get("clip", "{}")),
                   attrs=json.loads(attrs["model_attrs"]),
                   time_origin=_time_from_json(json.loads(attrs.get("time_origin", "null"))),
                   current=current)

    def __repr__(self):
        ev = np.linalg.eigvalsh(self.Phi_S_std)
        kind = self._adapter.kind if self._adapter else None
        antisym = f"current={self.current!r}" if self.current is not None else \
            f"|Phi_A~|={np.linalg.norm(self.Phi_A_std):.3g}"
        return (f"<LangevinModel d={self.dim} variables={self.space.variables} "
                f"cdot={self.cdot_estimator!r} score={kind}"
                f" eig(Phi_S~)=[{ev.min():.3g}, {ev.max():.3g}] {antisym} "
                f"|V~+I|={np.linalg.norm(self.V_std + np.eye(self.dim)):.3g}>")


def _bad_init(init, m, d):
    raise DataError(f"init must have shape ({m}, {d}) or ({d},) in physical units, or be xarray "
                    f"shaped like the data; got shape {np.shape(init)}")


def _square(M, d, name):
    M = np.array(M, dtype=np.float64)
    if M.shape != (d, d) or not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be a finite ({d}, {d}) matrix, got shape {M.shape}")
    M.setflags(write=False)
    return M


def _time_to_json(value):
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return {"datetime64": str(value)}
    if isinstance(value, numbers.Number) or isinstance(value, np.generic):
        return {"number": float(value)}
    if hasattr(value, "calendar"):
        return {"cftime": value.isoformat(), "calendar": value.calendar}
    return {"string": str(value)}


def _time_from_json(obj):
    if obj is None:
        return None
    if "datetime64" in obj:
        return np.datetime64(obj["datetime64"])
    if "number" in obj:
        return obj["number"]
    if "cftime" in obj:
        import cftime

        return cftime.datetime.strptime(obj["cftime"][:19], "%Y-%m-%dT%H:%M:%S",
                                        calendar=obj["calendar"])
    return obj["string"]


# =============================================================================================
# output: in memory or streamed to NetCDF
# =============================================================================================
class _Writer:
    """Turns chunks of saved standardized states (n, m, d) into xarray like the fitted data."""

    def __init__(self, model, m, path, attrs, origin, dt, burn_in, save_every):
        self.model = model
        self.space = model.space
        self.m = m
        self.path = None if path is None else os.fspath(path)
        self.attrs = attrs
        self.origin = origin
        self.dt, self.burn_in, self.save_every = dt, burn_in, save_every
        self.count = 0
        self._chunks = []
        self._tmp = None
        self._nc = None
        if self.path is not None and os.path.isdir(self.path):
            raise ValueError(f"path {self.path!r} is a directory; give a file name ending in .nc")

    def _times(self, start, n):
        k = np.arange(start + 1, start + n + 1, dtype=np.float64)
        elapsed = (self.burn_in + k * self.save_every) * self.dt
        return _time_values(self.space, self.origin, elapsed)

    def _piece(self, states, start):
        sp = self.space
        X = np.moveaxis(np.asarray(states, dtype=np.float64), 0, 1)       # (m, n, d)
        out = sp.inverse_transform(X, dims=("member", sp.sample_dim),
                                   coords={sp.sample_dim: self._times(start, X.shape[1]),
                                           "member": np.arange(self.m)}, attrs={})
        return out

    def append(self, states):
        if self.path is None:
            self._chunks.append(np.array(states, copy=True))
        else:
            piece = self._piece(states, self.count)
            ds = piece.to_dataset() if isinstance(piece, xr.DataArray) else piece
            self._write(ds)
        self.count += states.shape[0]

    def _write(self, ds):
        import netCDF4

        dim = self.space.sample_dim
        if self._nc is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            import tempfile

            fd, self._tmp = tempfile.mkstemp(prefix=".langevin.", suffix=".nc.part",
                                             dir=directory)
            os.close(fd)
            enc = {}
            if np.issubdtype(ds[dim].dtype, np.datetime64) or ds[dim].dtype == object:
                enc[dim] = {"dtype": "float64"}
            ds.to_netcdf(self._tmp, mode="w", format="NETCDF4", unlimited_dims=[dim],
                         encoding=enc)
            self._nc = netCDF4.Dataset(self._tmp, "a")
            self._n_written = ds.sizes[dim]
            return
        nc = self._nc
        start, n = self._n_written, ds.sizes[dim]
        tvar = nc.variables[dim]
        units = getattr(tvar, "units", "")
        if " since " in units:
            from xarray.coding.times import encode_cf_datetime

            num, _, _ = encode_cf_datetime(ds[dim].values, units,
                                           getattr(tvar, "calendar", "standard"))
            tvar[start:start + n] = np.asarray(num, dtype=np.float64)
        else:
            tvar[start:start + n] = ds[dim].values
        for name, var in ds.data_vars.items():
            axis = var.dims.index(dim)
            index = [slice(None)] * var.ndim
            index[axis] = slice(start, start + n)
            nc.variables[name][tuple(index)] = var.values
        self._n_written += n

    def abort(self):
        if self._nc is not None:
            self._nc.close()
            self._nc = None
        if self._tmp is not None and os.path.exists(self._tmp):
            os.remove(self._tmp)

    def close(self, attrs):
        sp = self.space
        attrs = {k: v for k, v in attrs.items()}
        if self.path is None:
            d = sp.n_features
            states = np.concatenate(self._chunks, axis=0) if self._chunks else \
                np.empty((0, self.m, d))
            out = self._piece(states, 0)
            if isinstance(out, xr.DataArray):
                out.attrs.update(attrs)
            else:
                out.attrs = attrs
            return out
        if self._nc is None:          # nothing saved: write an empty result
            self._write(self._piece(np.empty((0, self.m, sp.n_features)), 0).pipe(
                lambda o: o.to_dataset() if isinstance(o, xr.DataArray) else o))
        self._nc.setncatts({k: _nc_attr(v) for k, v in attrs.items()})
        self._nc.close()
        self._nc = None
        os.replace(self._tmp, self.path)
        ds = xr.open_dataset(self.path, chunks={})
        if sp.kind == "DataArray":
            da = ds[sp.dataarray_name]
            da.attrs.update(ds.attrs)
            return da
        return ds


def _nc_attr(value):
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, np.ndarray) and value.dtype == np.int64:
        return value.astype(np.int64)
    return value


def _time_values(space, origin, elapsed):
    """Sample-coordinate values ``origin + elapsed`` (elapsed in data time units)."""
    kind = space.time.get("kind")
    if kind in ("index", "numeric"):
        base = 0.0 if origin is None else origin
        if kind == "index":
            pos = np.asarray(base, dtype=np.float64) + elapsed
            whole = np.rint(pos)
            return whole.astype(np.int64) if np.allclose(pos, whole, atol=1e-9) else pos
        return float(base) + elapsed
    # datetime / cftime: positions in data steps
    pos = elapsed / space.dt
    whole = np.rint(pos)
    if origin is not None and pos.size and np.allclose(pos, whole, atol=1e-6):
        q = whole.astype(np.int64)
        grid = space.sample_coordinate(int(q.max()) + 1, start=origin)
        return np.asarray(grid)[q]
    if kind == "datetime" and not space.time.get("freq") and origin is not None:
        return np.datetime64(origin, "ns") + (elapsed * 86400e9).astype("timedelta64[ns]")
    warnings.warn("the simulation's sample spacing is not a whole number of the data's calendar "
                  "steps; the time coordinate is the elapsed time in data steps", stacklevel=3)
    return pos
