"""One-step tangent maps ``M_n`` along a trajectory, for models and callables without a numba
tangent: a fitted :class:`~xlangevin.LangevinModel` (Euler–Maruyama, ``M = I + dt Db(x)``) and a
drift callable with its Jacobian (RK4, ``M`` = the derivative of the RK4 step).

Each factory returns ``blocks(x, n) -> (M (n, d, d), states (n, d))``: ``n`` steps from ``x``,
``M[i]`` the derivative of step ``i`` and ``states[i]`` the state after it.
"""

from __future__ import annotations

import numpy as np

from ..dynamics.drift import central_jacobian
from ..score import ScoreModel


def check_jacobians(J, d: int, where) -> np.ndarray:
    """``J`` as a float array (n, d, d); a clear error if it is not square (d, d) or finite."""
    J = np.asarray(J, dtype=np.float64)
    if J.ndim == 2:
        J = J[None]
    if J.ndim != 3 or J.shape[1:] != (d, d):
        raise ValueError(f"the Jacobian must be a square (d, d) = ({d}, {d}) matrix per state, "
                         f"got shape {np.shape(J)} (at step {where})")
    if not np.all(np.isfinite(J)):
        raise ValueError(f"the Jacobian has non-finite entries at step {where}: the trajectory "
                         f"left the region where the drift is defined (reduce dt)")
    return J


def model_drift_jacobian(model, X) -> np.ndarray:
    """Jacobian of a LangevinModel's drift ``Phi s(x) [+ v(x)]`` at physical states (n, d):
    ``Phi Ds(x)`` with ``Ds`` by torch autodiff of a :class:`ScoreModel` (exact for its
    Gaussian, polynomial and network fields), plus the current velocity's Jacobian by central
    differences; a plain callable score is differenced as a whole."""
    h = 1e-5 * model.space.scale
    if not isinstance(model.score, ScoreModel):
        return central_jacobian(model.drift, X, h)
    Js = np.asarray(model.score.jacobian(X), dtype=np.float64)
    J = np.einsum("ik,nkj->nij", np.asarray(model.Phi.values, dtype=np.float64), Js)
    if model.current is not None:
        J += central_jacobian(model.current_velocity, X, h)
    return J


def model_maps(model, dt: float, stochastic: bool, seed):
    """Tangent maps of ``x <- x + dt b(x) + sqrt(2 dt) Sigma xi`` (physical units; the noise
    is additive, so ``M = I + dt Db(x)`` whatever the noise path)."""
    d = model.dim
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]
                                if not isinstance(seed, np.random.Generator) else seed)
    S = np.sqrt(2 * dt) * np.asarray(model.Sigma.values, dtype=np.float64)

    def blocks(x, n):
        traj = np.empty((n + 1, d))
        traj[0] = x
        kicks = rng.standard_normal((n, d)) @ S.T if stochastic else np.zeros((n, d))
        for i in range(n):
            traj[i + 1] = traj[i] + dt * model.drift(traj[i]) + kicks[i]
        if not np.all(np.isfinite(traj)):
            raise FloatingPointError("the model trajectory became non-finite: reduce dt "
                                     f"(model.stable_dt() = {model.stable_dt():.3g})")
        before, traj = traj[:-1], traj[1:]
        J = check_jacobians(model_drift_jacobian(model, before), d, "of the block")
        return np.eye(d) + dt * J, traj
    return blocks


def ode_maps(f, jacobian, dt: float, d: int):
    """Tangent maps of the RK4 step of ``dx/dt = f(x)`` (``f`` and ``jacobian`` on (d,)
    states): ``M = I + dt/6 (K1 + 2 K2 + 2 K3 + K4)`` with the stage derivatives
    ``K_s = Df(x_s) (I + c_s dt K_{s-1})``."""
    eye = np.eye(d)

    def jac(x, i):
        return check_jacobians(jacobian(x), d, i)[0]

    def blocks(x, n):
        traj, M = np.empty((n, d)), np.empty((n, d, d))
        for i in range(n):
            k1, K1 = np.asarray(f(x), float), jac(x, i)
            x2 = x + 0.5 * dt * k1
            k2, K2 = np.asarray(f(x2), float), jac(x2, i) @ (eye + 0.5 * dt * K1)
            x3 = x + 0.5 * dt * k2
            k3, K3 = np.asarray(f(x3), float), jac(x3, i) @ (eye + 0.5 * dt * K2)
            x4 = x + dt * k3
            k4, K4 = np.asarray(f(x4), float), jac(x4, i) @ (eye + dt * K3)
            x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            M[i] = eye + dt / 6 * (K1 + 2 * K2 + 2 * K3 + K4)
            traj[i] = x
        if not np.all(np.isfinite(traj)):
            raise FloatingPointError("the trajectory became non-finite: reduce dt")
        return M, traj
    return blocks
