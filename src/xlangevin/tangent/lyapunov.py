r"""Lyapunov spectra by the QR (Benettin) method: :func:`lyapunov`.

The exponents of a trajectory ``x_n`` with one-step tangent maps ``M_n = D Phi(x_n)`` are

    lambda_j = lim (1 / (n tau)) sum_r log R_jj^(r),     M_{..} Q_r = Q_{r+1} R^(r+1),

with ``tau`` the model time between two QR factorizations (Benettin et al. 1980; for random
dynamical systems the maps follow the same noise path as the trajectory, Arnold 1998). Their
sum is the time average of ``log |det M_n| / dt``, i.e. of the divergence of the drift (Ito SDEs
with multiplicative noise add ``-|Dg|^2 / 2``): ``-N`` for Lorenz-96 (nu = 1), ``-(sigma + 1 +
beta)`` for Lorenz-63.

The standard error comes from batch means (the run is cut into ``n_batches`` consecutive
batches, ``se = std(batch exponents) / sqrt(n_batches)``); the Kaplan–Yorke dimension is
``D = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|`` with ``j`` the largest index whose
partial sum is >= 0 (Kaplan & Yorke 1979).
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import xarray as xr

from ..systems._sde import SDESystem
from . import engine
from .maps import check_jacobians, model_drift_jacobian, model_maps, ode_maps

__all__ = ["lyapunov", "kaplan_yorke"]

#: default model time between two QR factorizations
QR_INTERVAL = 0.1
#: the fused kernel runs this many QR intervals per call (bounds the noise buffer)
_BLOCK_QR = 2048


def kaplan_yorke(exponents) -> float:
    """Kaplan–Yorke dimension of a spectrum (sorted descending here); ``k`` when every
    partial sum of the ``k`` exponents is >= 0 (a lower bound), 0 when ``lambda_1 < 0``."""
    lam = np.sort(np.asarray(exponents, dtype=float))[::-1]
    cs = np.cumsum(lam)
    if cs[0] < 0:
        return 0.0
    j = int(np.nonzero(cs >= 0)[0][-1]) + 1
    return float(j) if j == lam.size else float(j + cs[j - 1] / abs(lam[j]))


def _system_spec(system, params, seed):
    """``SDESystem`` of a systems module (``tangent_system(**params)``) or an SDESystem."""
    if isinstance(system, SDESystem):
        if params:
            raise TypeError(f"parameters {sorted(params)} cannot be applied to an SDESystem")
        spec = system
    else:
        build = system.tangent_system
        if "seed" in inspect.signature(build).parameters:
            params = {"seed": seed, **params}
        spec = build(**params)
    if spec.tangent is None:
        raise ValueError(f"system {spec.name!r} has no tangent function: give its SDESystem a "
                         f"numba tangent(x, p, V, out) writing Df(x) V")
    return spec


def _initial(x0, default):
    x0 = np.array(default if x0 is None else x0, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be finite, got {x0}")
    return x0


def _run_system(spec, x0, k, dt, qr_every, n_qr, n_burn, mode, seed, vectors):
    """QR logs (n_qr, k), states, divergences and vectors of a numba system."""
    d = x0.size
    rng = np.random.default_rng(seed)
    x = np.array(x0)
    V = np.ascontiguousarray(np.linalg.qr(rng.standard_normal((d, k)))[0])
    nt = spec.noise_tangent or engine.zero_noise_tangent
    mult = spec.noise_tangent is not None and mode == "euler"
    n_noise = 0 if mode == "rk4" else spec.n_noise
    out = dict(logs=np.empty((n_qr, k)), states=np.empty((n_qr, d)), div=np.empty(n_qr),
               vecs=np.empty((n_qr if vectors else 0, d, k)))
    done = -n_burn
    while done < n_qr:
        m = min(_BLOCK_QR, n_qr - done if done >= 0 else -done)
        xi = rng.standard_normal((m * qr_every, n_noise))
        sl = slice(max(done, 0), max(done, 0) + m)
        block = {key: (a[sl] if done >= 0 else np.empty((m,) + a.shape[1:]))
                 for key, a in out.items()}
        if not vectors:
            block["vecs"] = out["vecs"]
        rec = (block["logs"], block["states"], block["div"], block["vecs"])
        if mode == "rk4":
            got = engine.rk4_block(spec.drift, spec.tangent, x, V, spec.params, dt, qr_every,
                                   *rec)
        else:
            got = engine.sde_block(spec.drift, spec.noise, spec.tangent, nt, mode == "heun",
                                   mult, x, V, spec.params, dt, xi, qr_every, *rec)
        if got < m:
            _blowup((done + n_burn + got) * qr_every * dt, "reduce dt or qr_interval")
        done += m
    return out


def _blowup(t, advice):
    when = "" if t is None else f" at model time {t:.6g} (burn-in included)"
    raise FloatingPointError(f"the tangent integration blew up{when} (non-finite state or "
                             f"collapsed tangent vectors): {advice}")


def _run_maps(blocks, x0, k, qr_every, n_qr, n_burn, seed, vectors):
    """QR logs of precomputed tangent maps; ``blocks(x, n_steps)`` yields ``(M, states)``."""
    d = x0.size
    rng = np.random.default_rng(seed)
    V = np.ascontiguousarray(np.linalg.qr(rng.standard_normal((d, k)))[0])
    logs, states = np.empty((n_qr, k)), np.empty((n_qr, d))
    vecs = np.empty((n_qr if vectors else 0, d, k))
    done, x = -n_burn, np.array(x0)
    while done < n_qr:
        m = min(_BLOCK_QR, n_qr - done if done >= 0 else -done)
        M, traj = blocks(x, m * qr_every)
        x = traj[-1]
        lg = np.empty((m, k))
        vb = vecs[done:done + m] if (vectors and done >= 0) else np.empty((0, d, k))
        got = engine.map_block(M, V, qr_every, lg, vb)
        if got < m:
            _blowup(None, "the tangent vectors overflowed: use a smaller qr_interval")
        if done >= 0:
            logs[done:done + m] = lg
            states[done:done + m] = traj[qr_every - 1::qr_every]
        done += m
    return dict(logs=logs, states=states, div=None, vecs=vecs)


def _batch_se(logs, tau, n_batches):
    n = logs.shape[0] // n_batches
    b = logs[:n * n_batches].reshape(n_batches, n, -1).sum(1) / (n * tau)
    return b.std(axis=0, ddof=1) / np.sqrt(n_batches)


def _dataset(run, tau, n_batches, attrs, n_history=500):
    """The result Dataset from the QR logs of a run (``tau`` model time per QR interval)."""
    logs = run["logs"]
    n_qr, k = logs.shape
    t = tau * np.arange(1, n_qr + 1)
    lam = logs.sum(0) / (n_qr * tau)
    idx = np.unique(np.linspace(0, n_qr - 1, min(n_history, n_qr)).astype(int))
    hist = np.cumsum(logs, axis=0)[idx] / t[idx, None]
    ex = np.arange(1, k + 1)
    tu = {"units": "1 / (model time unit)"}
    ds = xr.Dataset(
        {"exponents": ("exponent", lam, {"long_name": "Lyapunov exponents", **tu}),
         "standard_error": ("exponent", _batch_se(logs, tau, n_batches),
                            {"long_name": f"standard error (batch means, {n_batches} batches)",
                             **tu}),
         "history": (("qr_time", "exponent"), hist,
                     {"long_name": "running exponent estimates", **tu}),
         "kaplan_yorke_dimension": ((), kaplan_yorke(lam),
                                    {"long_name": "Kaplan-Yorke dimension"}),
         "exponent_sum": ((), float(lam.sum()), {"long_name": "sum of the exponents", **tu})},
        coords={"exponent": ("exponent", ex), "qr_time": ("qr_time", t[idx],
                                                          {"units": "model time unit"})},
        attrs=attrs)
    if run["div"] is not None:
        ds["mean_divergence"] = ((), float(np.mean(run["div"])),
                                 {"long_name": "time average of div f along the trajectory", **tu})
    if run["vecs"].shape[0]:
        ds["vectors"] = (("time", "dim", "exponent"), run["vecs"],
                         {"long_name": "backward Lyapunov vectors (Gram-Schmidt)"})
        ds["states"] = (("time", "dim"), run["states"], {"long_name": "trajectory states"})
        ds = ds.assign_coords(time=("time", t, {"units": "model time unit"}))
    return ds


def _check_run(d, k, dt, t_total, burn_in, tau, n_batches):
    if k < 1 or k > d:
        raise ValueError(f"n_exponents must be between 1 and the dimension {d}, got {k}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    if not (np.isfinite(t_total) and t_total > 0) or burn_in < 0:
        raise ValueError(f"t_total must be > 0 and burn_in >= 0, got {t_total}, {burn_in}")
    n_qr = int(round(t_total / tau))
    if n_qr < 2 * n_batches or n_qr * tau / dt < 10 * k:
        raise ValueError(
            f"the run is too short for {k} exponents: t_total = {t_total} gives {n_qr} QR "
            f"intervals of {tau:.4g} ({n_qr * tau / dt:.0f} steps); need at least "
            f"{2 * n_batches} intervals (2 per batch, n_batches = {n_batches}) and 10 steps per "
            f"exponent: increase t_total (or lower n_batches / qr_interval)")
    return n_qr, int(round(burn_in / tau))


def lyapunov(system, n_exponents: int | None = None, *, dt: float | None = None,
             t_total: float = 1000.0, burn_in: float = 10.0, qr_interval: float | None = None,
             x0=None, stochastic: bool | None = None, seed=None, jacobian=None,
             vectors: bool = False, n_batches: int = 20, **params) -> xr.Dataset:
    """Lyapunov spectrum of a simulator, a fitted Langevin model, a map or an ODE callable.

    ``system`` is one of

    * a module of :mod:`xlangevin.systems` (``lorenz63``, ``lorenz96`` with ``J=0`` for the
      one-scale model, ``triad``, ...) with ``**params`` its parameters, or an ``SDESystem``:
      RK4 of the drift (``stochastic=False``, default) or the module's SDE scheme along one
      seeded noise path (``stochastic=True``: a random dynamical system);
    * a :class:`~xlangevin.LangevinModel`: Euler–Maruyama of ``Phi s(x) [+ v(x)]`` in physical
      units along one noise path (``stochastic=False``: the drift alone); the drift's Jacobian
      ``Phi Ds`` comes from torch autodiff of the score (central differences for a callable
      score and for the current velocity);
    * a map with ``orbit(x0, n_steps) -> (n_steps, d)``, ``step_jacobian(X) -> (n, d, d)``
      and ``default_state()`` (e.g. a :class:`~xlangevin.tangent.FlowMapModel`): ``dt`` is
      its time step (its attribute ``dt``);
    * a callable drift ``f(x)`` on (d,) states with ``jacobian(x)`` (d, d): RK4 in numpy.

    Parameters
    ----------
    n_exponents : how many exponents (default all, the dimension d).
    dt : integration step (model time units); a map's own step by default.
    t_total : model time averaged over after ``burn_in`` (which also aligns the vectors).
    qr_interval : model time between QR factorizations (default 0.1, at least one step).
    x0 : initial state (d,) (default: the system's own; a model's first kept sample).
    seed : seeds the initial tangent vectors and the noise path.
    vectors : also return the backward Lyapunov vectors and the states at every QR time.
    n_batches : batches of the standard error.

    Returns
    -------
    xr.Dataset
        ``exponents``, ``standard_error``, ``history`` (running estimates over ``qr_time``),
        ``kaplan_yorke_dimension``, ``exponent_sum``, ``mean_divergence`` (simulators and
        Langevin models: time average of ``tr Df`` at the QR times) and optionally ``vectors``
        (time, dim, exponent) with the ``states``.
    """
    if isinstance(system, SDESystem) or hasattr(system, "tangent_system"):
        spec = _system_spec(system, params, seed)
        x0 = _initial(x0, spec.x0)
        stochastic = bool(stochastic)
        mode = spec.scheme if stochastic else "rk4"
        dt = 0.01 if dt is None else float(dt)
        k = x0.size if n_exponents is None else int(n_exponents)
        tau, qr_every = _interval(qr_interval, dt)
        n_qr, n_burn = _check_run(x0.size, k, dt, t_total, burn_in, tau, n_batches)
        run = _run_system(spec, x0, k, dt, qr_every, n_qr, n_burn, mode, seed, vectors)
        name, integ = spec.name, mode
    else:
        if params:
            raise TypeError(f"unexpected parameters {sorted(params)} for a "
                            f"{type(system).__name__}")
        blocks, x0, dt, name, integ = _maps_of(system, x0, dt, stochastic, seed, jacobian)
        k = x0.size if n_exponents is None else int(n_exponents)
        tau, qr_every = _interval(qr_interval, dt)
        n_qr, n_burn = _check_run(x0.size, k, dt, t_total, burn_in, tau, n_batches)
        run = _run_maps(blocks, x0, k, qr_every, n_qr, n_burn, seed, vectors)
        if integ.startswith("euler"):      # a LangevinModel: tr Db at the QR-time states
            run["div"] = np.trace(model_drift_jacobian(system, run["states"]), axis1=1, axis2=2)
    attrs = dict(system=name, method="QR (Benettin)", integrator=integ, dt=dt,
                 qr_interval=tau, t_total=n_qr * tau, burn_in=float(burn_in),
                 seed="None" if seed is None else str(seed), n_batches=int(n_batches))
    ds = _dataset(run, tau, n_batches, attrs)
    _warn_unconverged(ds)
    return ds


def _interval(qr_interval, dt):
    tau = QR_INTERVAL if qr_interval is None else float(qr_interval)
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"qr_interval must be a positive model time, got {qr_interval}")
    qr_every = max(1, int(round(tau / dt)))
    return qr_every * dt, qr_every


def _maps_of(system, x0, dt, stochastic, seed, jacobian):
    """``(blocks, x0, dt, name, integrator)`` for a model, a map or a drift callable."""
    if hasattr(system, "orbit") and hasattr(system, "step_jacobian"):
        dt = float(getattr(system, "dt", 1.0) if dt is None else dt)
        x0 = _initial(x0, system.default_state())
        return _map_blocks(system), x0, dt, type(system).__name__, "map"
    if hasattr(system, "Phi_std") and hasattr(system, "drift"):
        dt = float(system.stable_dt() / 4 if dt is None else dt)
        stochastic = True if stochastic is None else bool(stochastic)
        x0 = _initial(x0, system.space.mean + system.space.scale * system.samples[0])
        blocks = model_maps(system, dt, stochastic, seed)
        return blocks, x0, dt, "LangevinModel", "euler" if stochastic else "euler (no noise)"
    if callable(system):
        if jacobian is None:
            raise ValueError("a drift callable needs its jacobian=callable (d, d) as well")
        if dt is None:
            raise ValueError("give the step dt for a drift callable")
        if x0 is None:
            raise ValueError("give the initial state x0 for a drift callable")
        x0 = _initial(x0, None)
        return ode_maps(system, jacobian, float(dt), x0.size), x0, float(dt), \
            getattr(system, "__name__", "callable"), "rk4"
    raise TypeError(f"cannot take the Lyapunov spectrum of a {type(system).__name__}: give a "
                    f"systems module, an SDESystem, a LangevinModel, a map with orbit/"
                    f"step_jacobian, or a drift callable with jacobian=")


def _map_blocks(system):
    """Blocks of a map: its orbit (``system.orbit``), then the Jacobians in one batch."""
    def blocks(x, n):
        traj = np.asarray(system.orbit(x, n), dtype=np.float64)
        before = np.vstack([x[None], traj[:-1]])
        return check_jacobians(system.step_jacobian(before), x.size, "of the orbit"), traj
    return blocks


def _warn_unconverged(ds):
    lam, se = ds["exponents"].values, ds["standard_error"].values
    if np.any(~np.isfinite(lam)):
        raise FloatingPointError("non-finite exponents: the tangent vectors collapsed")
    if lam[0] > 0 and se[0] > 0.1 * abs(lam[0]):
        warnings.warn(f"the leading exponent {lam[0]:.4g} has a standard error of {se[0]:.2g} "
                      f"(> 10 %): increase t_total", RuntimeWarning, stacklevel=3)
