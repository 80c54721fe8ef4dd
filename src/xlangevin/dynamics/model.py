r"""Effective Langevin models: fit ``Phi`` from data and a score, generate ensembles.

The model (METHODS.md §0, §4, §5) is the Ito SDE

    dx = Phi s(x) dt + sqrt(2) Sigma dW,      Sigma Sigma^T = Phi_S,  Sigma lower triangular,

with ``s = grad log p`` the score of the data's stationary density. the estimator (:mod:`xlangevin.dynamics.langevin`)
estimates, in the standardized units ``x~ = S^{-1}(x - m)`` of the data's
:class:`~xlangevin.data.FeatureSpace`,

* ``Cdot~(0)`` from the data by one of the estimators of :mod:`xlangevin.dynamics.cdot` (default the
  lagged finite difference extrapolated over lags 1-3, see docs/cdot_estimators.md);
* the Stein matrix ``V~ = <s~(x~) x~^T>`` over ``sigma``-perturbed samples ``x~ = y~ + sigma z``
  (``sigma`` = the score's smoothing scale; 0 for exact scores);
* ``Phi~ = Cdot~ V~^{-1}``, its parts and ``Sigma~ = chol(Phi_S~)`` with the PSD clipping of
  :func:`xlangevin.dynamics.mobility.mobility_from_cdot`;
* optionally (``current_velocity=True``) a state-dependent current velocity ``v~(x~)``
  (:mod:`xlangevin.dynamics.current`) replacing ``Phi_A s``: the drift is then ``Phi_S s(x) + v(x)``.

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
* ``"numba"`` — :func:`xlangevin.backends.euler_maruyama.em_blocks` on threads over blocks of
  members, many steps per call, with the score evaluated inside the kernel: the KGMM MLP (weights
  taken from the network, unit maps folded in) or a user's numba-jitted ``f(x_row, out_row)``.
* ``"auto"`` (default) — numba when the score allows it, else numpy.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import xarray as xr

from .. import io
from ..backends import kernel
from ..backends.euler_maruyama import n_threads
from ..base import Flag, Interval, Model, OneOf, Seed, provenance, validate_params
from ..data import DataError, FeatureSpace
from ..data.timeaxis import time_from_json, time_to_json, time_units
from .current import CurrentField
from .stationary_current import PolynomialCurrentField
from .drift import DriftField, as_score, central_jacobian
from .integrate import BlowUpError, EnsembleWriter, Noise, run_ensemble

__all__ = ["LangevinModel", "BlowUpError"]

BACKENDS = ("auto", "numba", "numpy")
DEFAULT_BOUND = 10.0
#: ``generate`` stops when blow-up resets exceed this share of all member-steps
DEFAULT_MAX_RESET_FRACTION = 1e-3
#: the current-velocity fields by the ``kind`` stored in a model file
CURRENT_FIELDS = {"mlp": CurrentField, "polynomial": PolynomialCurrentField}


class LangevinModel(Model):
    """A fitted effective Langevin model ``dx = Phi s(x) dt + sqrt(2) Sigma dW``.

    Made by :meth:`EffectiveLangevin.fit` (or ``ds.langevin.fit``). Holds the standardized
    ``Phi_std``, ``Sigma_std`` (lower Cholesky factor of ``Phi_S_std``), ``V_std`` and
    ``cdot_std``, the ``score`` (ScoreModel or callable), the data's FeatureSpace ``space``, a
    sample of standardized data states ``samples`` (initial states and resets), the Cdot
    estimator's name and diagnostics, the clip report and provenance ``attrs``. Properties
    ``Phi``, ``Phi_S``, ``Phi_A``, ``Sigma``, ``V`` are xr.DataArrays over
    ``("feature_i", "feature_j")`` in physical units.

    With a current velocity ``current`` (:class:`~xlangevin.dynamics.current.CurrentField`, fitted with
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
        if current is not None and not isinstance(current, tuple(CURRENT_FIELDS.values())):
            raise TypeError(f"current must be a CurrentField or a PolynomialCurrentField, got "
                            f"{type(current).__name__}")
        if current is not None and np.any(self.Phi_std != self.Phi_std.T):
            raise ValueError("with a current velocity v(x) the drift is Phi_S s(x) + v(x): "
                             "Phi_std must be symmetric")
        self.current = current
        self.score = score
        self._adapter = None if score is None else as_score(score, space)

    # -- score ---------------------------------------------------------------------------------
    def with_score(self, score) -> "LangevinModel":
        """A copy using ``score`` (e.g. a callable again after loading from a file)."""
        return self._replace(score=score,
                             _adapter=None if score is None else as_score(score, self.space))

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
        t = time_units(self.space)
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
        return self._vector_field(x, lambda X: self.current(X, self._need_score().std(X)),
                                  "current velocity v(x) = j(x) / p(x)")

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
        s = self._need_score().std(X)
        f = s @ self.Phi_std.T
        if self.current is not None:
            f += self.current(X, s)
        return f

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
        "progress": Flag(),
        "chunk_steps": Interval(1, None, integer=True, optional=True),
        "max_reset_fraction": Interval(0, 1, optional=True),
        "seed": Seed(),
    }

    def generate(self, n_steps, dt, save_every=1, n_members=1, burn_in=0, init=None, seed=None,
                 on_blowup="reset", bound=DEFAULT_BOUND, backend="auto", dtype="float64",
                 progress=True, path=None, time_origin="data", chunk_steps=None,
                 max_reset_fraction=DEFAULT_MAX_RESET_FRACTION, overwrite=False,
                 max_memory=None):
        """Integrate the model by Euler–Maruyama and return the ensemble as xarray.

        ``x~ <- x~ + dt Phi~ s~(x~) + sqrt(2 dt) Sigma~ eta`` in standardized units, all members
        at once (one score evaluation per step for the ensemble).

        Parameters
        ----------
        n_steps : steps after the burn-in; ``n_steps // save_every`` states are returned.
        dt : the step: a number in the time units of the data's sample coordinate
            (``xlangevin.data.timeaxis.time_units(model.space)``: the coordinate's units, days
            for datetime/cftime time without a calendar frequency, steps of the frequency for
            monthly (quarterly, yearly) records, else samples), or a time delta in those units
            (``np.timedelta64``, ``datetime.timedelta``, ``pd.Timedelta``, a pandas offset, a
            string such as ``"6h"``; calendar months (``"1MS"``) for monthly data only).
            ``save_every * dt == model.space.dt`` reproduces the data's sampling (e.g.
            ``dt="6h", save_every=4`` on daily data); the attrs record ``dt`` as a number.
        save_every : keep every ``save_every``-th state.
        n_members : ensemble size.
        burn_in : number of STEPS integrated first and discarded (a time ``T`` is
            ``round(T / dt)`` steps).
        init : None (default: states drawn at random from the data sample kept in the model),
            an array (n_members, d) or (d,) in physical units, or xarray shaped like the data
            (one state per member along ``member``, or a single state; with the sample dim the
            last sample is used).
        seed : of all random draws (noise, initial states, resets): None, an integer >= 0 or a
            Generator (an integer is drawn); its entropy is in the attrs (repeatable).
        on_blowup : a member that leaves ``bound`` or becomes non-finite is reset to a random
            data state (``"reset"``, counted in the attrs) or stops the run with
            :class:`BlowUpError` (``"raise"``).
        bound : bound on ``|x~_i|`` in STANDARDIZED units (standard deviations from the data
            mean), default 10 (METHODS.md §5); None checks finiteness only.
        backend : ``"auto"``, ``"numba"`` (MLP ScoreModels and numba-jitted scores) or
            ``"numpy"`` (reference loop); all consume the same noise.
        dtype : float64 (default) or float32 state, noise and arithmetic.
        progress : progress bar.
        path : stream the result to this NetCDF file (atomic; an existing file is replaced only
            with ``overwrite=True``) and return it opened lazily; for runs larger than memory.
            Without ``path`` a result larger than ``max_memory`` bytes (default 80 % of the
            available memory) raises ``MemoryError`` before anything is allocated.
        time_origin : ``"data"`` (default): the time coordinate continues from the last time of
            the fitted data; or a value of the coordinate's type (e.g. 0.0). Sample ``k``
            (1-based) is at ``origin + (burn_in + k save_every) dt``.
        chunk_steps : steps per kernel call (default: as many as keep the noise buffer near
            16 MB).
        max_reset_fraction : resets beyond this share of member-steps (default 1e-3; None: no
            limit) stop the run with :class:`BlowUpError` naming a stable ``dt``; a ``dt``
            above the bound :meth:`stable_dt` gets a warning first.

        Returns
        -------
        xr.DataArray or xr.Dataset
            Like the fitted data, with dims ``(member, <sample dim>, ...)``; the sample
            coordinate is in the data's calendar (datetime64 for datetime data, cftime dates of
            the same calendar for cftime data; monthly records stay on month starts or ends),
            continuing from ``time_origin``. A model fitted on delay-embedded data
            (:func:`xlangevin.delay_embed`) returns the ``lag`` dim too: ``sim.sel(lag=0)`` is
            the observed component. attrs record dt, save_every, n_steps, burn_in, seed,
            n_members, backend, dtype, bound, on_blowup, resets (total and per member), the
            Cdot estimator and the model's Phi/Sigma.
        """
        from ..data.timeaxis import duration_in_units

        dt = duration_in_units(self.space.time, self.space.dt, dt, "dt")
        validate_params(dict(n_steps=n_steps, dt=dt, save_every=save_every,
                             n_members=n_members, burn_in=burn_in, on_blowup=on_blowup,
                             bound=bound, backend=backend, dtype=dtype, progress=progress,
                             chunk_steps=chunk_steps, max_reset_fraction=max_reset_fraction,
                             seed=seed), self._gen_table)
        seed = int(seed.integers(2**63)) if isinstance(seed, np.random.Generator) else seed
        adapter = self._need_score()
        n_steps, save_every, m, burn_in = int(n_steps), int(save_every), int(n_members), \
            int(burn_in)
        dt, dtype = float(dt), np.dtype(dtype)
        stepper = self._stepper(adapter, backend, dtype)
        advice = self._dt_advice(dt)
        max_resets = None if max_reset_fraction is None or on_blowup == "raise" else int(
            np.ceil(float(max_reset_fraction) * m * (n_steps + burn_in)))
        ss = np.random.SeedSequence(seed)
        noise_ss, init_ss, reset_ss = ss.spawn(3)
        x = np.ascontiguousarray(self._initial_states(init, m, np.random.default_rng(init_ss)),
                                 dtype=dtype)
        if chunk_steps is None:
            chunk_steps = int(np.clip((1 << 21) // (m * self.dim), 1, 1 << 16))
        attrs = self._gen_attrs(n_steps, dt, save_every, m, burn_in, seed, ss, on_blowup, bound,
                                stepper.name, dtype)
        writer = EnsembleWriter(self.space, m, path, self._origin(time_origin), dt, burn_in,
                                save_every, n_steps, overwrite, max_memory)
        resets = run_ensemble(
            stepper, x, np.ascontiguousarray(self.samples, dtype=dtype), Noise(
                noise_ss, dtype, n_threads()),
            np.random.default_rng(reset_ss), writer, n_steps=n_steps, burn_in=burn_in, dt=dt,
            save_every=save_every, chunk_steps=chunk_steps, bound=bound,
            raise_on_blowup=on_blowup == "raise", progress=progress, max_resets=max_resets,
            advice=advice)
        return writer.close(_with_resets(attrs, resets, bound))

    def stable_dt(self, n_states: int | None = None, seed: int = 0) -> float:
        """Largest stable Euler-Maruyama step of the drift, ``min -2 Re(lambda) / |lambda|^2``
        over the eigenvalues ``lambda`` with ``Re(lambda) < 0`` of the drift's Jacobian
        (standardized units, central differences) at up to ``n_states`` kept data states (an
        explicit step is stable for a linear drift ``J x`` iff ``|1 + dt lambda| < 1`` for every
        eigenvalue); ``inf`` when no direction contracts. Steps of half of it are safe.
        ``n_states`` defaults to ``2000 / d`` between 8 and 200 (2 d drift evaluations each)."""
        if n_states is None:
            n_states = int(np.clip(2000 // self.dim, 8, 200))
        rng = np.random.default_rng(seed)
        X = self.samples[rng.choice(len(self.samples), min(n_states, len(self.samples)),
                                    replace=False)]
        J = central_jacobian(self._drift_std, X, 1e-4)              # (n, i, j) = d f_i / d x_j
        J = J[np.all(np.isfinite(J), axis=(1, 2))]
        lam = np.linalg.eigvals(J).ravel() if len(J) else np.empty(0)
        lam = lam[np.isfinite(lam) & (lam.real < 0)]
        return float(np.min(-2 * lam.real / np.abs(lam) ** 2)) if lam.size else float("inf")

    def _dt_advice(self, dt) -> str:
        """Warn when ``dt`` exceeds the stability bound; the advice for a blow-up message."""
        bound = self.stable_dt()
        if dt > bound:
            warnings.warn(f"dt = {dt:g} exceeds the Euler-Maruyama stability bound {bound:.3g} "
                          f"of this model's drift (model.stable_dt()); use dt <= {bound / 2:.3g}",
                          stacklevel=3)
        return (f"Use a smaller dt (stable up to {bound:.3g}; {bound / 2:.3g} is safe), a "
                f"different score, or max_reset_fraction=None to accept the resets.")

    def _stepper(self, adapter, backend, dtype):
        """The Euler-Maruyama stepper of ``backend`` for this drift (``"auto"``: numba when
        the score has a numba strategy)."""
        drift = DriftField(adapter, self.Phi_std, self.current, dtype)
        Sig = np.ascontiguousarray(self.Sigma_std, dtype=dtype)
        if drift.strategy is None and backend == "numba":
            with_current = " (with a current velocity: an MLP ScoreModel of the same depth " \
                "as the current's network)" if self.current is not None else ""
            raise ValueError(f"backend='numba' needs a score the kernel can evaluate: an MLP "
                             f"ScoreModel (KGMM) or a numba-jitted f(x_row, out_row)"
                             f"{with_current}; this score is a {adapter.kind}. Use "
                             f"backend='numpy' or 'auto'")
        name = "numba" if backend in ("auto", "numba") and drift.strategy is not None \
            else "numpy"
        return kernel("euler_maruyama", name)(drift, Sig)

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
            "time_units": time_units(self.space), **provenance(),
            "history": io.cf_history(
                f"LangevinModel.generate(n_steps={n_steps}, dt={dt:g}, save_every={save_every}, "
                f"n_members={m}, seed={seed})", self.space.data_attrs.get("history", "")),
        }

    # -- persistence ---------------------------------------------------------------------------
    def to_groups(self) -> dict:
        """Matrices, kept states, feature space, the current velocity and — when it is a
        ScoreModel — the score, nested under ``score``. A plain-callable score is not saved:
        re-attach it after :func:`xlangevin.open_model` with :meth:`with_score`."""
        arrays = {"Phi_std": self.Phi_std, "Sigma_std": self.Sigma_std, "V_std": self.V_std,
                  "samples": self.samples}
        if self.cdot_std is not None:
            arrays["cdot_std"] = self.cdot_std
        clip = {k: np.asarray(v).tolist() for k, v in self.clip.items()}
        root = xr.Dataset(attrs={"model_attrs": io.attrs_json(self.attrs),
                                 "clip": json.dumps(clip),
                                 "cdot_estimator": self.cdot_estimator,
                                 "time_origin": json.dumps(time_to_json(self.time_origin))})
        groups = {"": root, "space": self.space.to_dataset(),
                  "model": io.arrays_to_dataset(arrays)}
        if isinstance(self.score, Model):
            groups.update(io.nest("score", self.score.to_tree()))
        if self.current is not None:
            config, carrays = self.current.to_arrays()
            groups["current"] = io.arrays_to_dataset(carrays, {"config": json.dumps(config)})
        return groups

    @classmethod
    def from_groups(cls, groups):
        attrs = groups[""].attrs
        a = io.dataset_to_arrays(groups["model"])
        bad = [k for k, v in a.items() if not np.all(np.isfinite(v))]
        if bad:
            raise io.ModelFileError(f"the stored {', '.join(bad)} hold non-finite values")
        score = io.model_from_groups(io.subtree(groups, "score")) if "score" in groups else None
        current = None
        if "current" in groups:
            config = json.loads(groups["current"].attrs["config"])
            current = CURRENT_FIELDS[config.get("kind", "mlp")].from_arrays(
                config, io.dataset_to_arrays(groups["current"]))
        return cls(a["Phi_std"], a["Sigma_std"], a["V_std"], score,
                   FeatureSpace.from_dataset(groups["space"]), a["samples"],
                   cdot=a.get("cdot_std"), cdot_estimator=attrs.get("cdot_estimator", ""),
                   clip=json.loads(attrs.get("clip", "{}")),
                   attrs={**json.loads(attrs["model_attrs"]),
                          "xlangevin_version": attrs["xlangevin_version"]},
                   time_origin=time_from_json(json.loads(attrs.get("time_origin", "null"))),
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



def _with_resets(attrs, resets, bound) -> dict:
    """``attrs`` with the resets (total and per member), warned about when there are any."""
    attrs["resets"] = int(resets.sum())
    attrs["resets_per_member"] = resets
    if attrs["resets"]:
        warnings.warn(f"{attrs['resets']} blow-up reset(s) in {int(np.count_nonzero(resets))} "
                      f"of {len(resets)} member(s) (|x~| > {bound} standard deviations or "
                      "non-finite): reduce dt or check the model", stacklevel=3)
    return attrs


def _bad_init(init, m, d):
    raise DataError(f"init must have shape ({m}, {d}) or ({d},) in physical units, or be xarray "
                    f"shaped like the data; got shape {np.shape(init)}")


def _square(M, d, name):
    M = np.array(M, dtype=np.float64)
    if M.shape != (d, d) or not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be a finite ({d}, {d}) matrix, got shape {M.shape}")
    M.setflags(write=False)
    return M
