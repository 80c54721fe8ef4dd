r"""Sensitivity of a generative sampler: :func:`sampler_lyapunov` and :func:`support_error`.

A sampler step ``x_{n+1} = Phi(x_n, xi_n)`` (here a :class:`~xlangevin.DiffusionMapSampler`
step on standardized states) is a random dynamical system. Its finite-time Lyapunov exponents
and backward vectors along each chain come from the QR method on the one-step Jacobians,
computed by central differences with common random numbers (the same ``xi_n`` for the
perturbed states: the step is re-run from the same generator state). The slides "Toward
physical generative models" (Chandramoorthy et al.) relate robustness of the support to the
alignment of the least stable vector with the tangent space of the data manifold: perturbing
the drift then moves samples along the support, not off it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["sampler_lyapunov", "support_error"]


def _step(sampler, X, seed, shift):
    Y = sampler.step(X, np.random.default_rng(seed))[0]
    return Y if shift is None else Y + shift


def sampler_lyapunov(sampler, n_chains: int = 200, n_steps: int = 50, seed=0, h: float = 1e-5,
                     tangent=None, drift_shift=None) -> xr.Dataset:
    """Finite-time Lyapunov exponents and vectors of ``n_chains`` chains over ``n_steps``.

    ``tangent(x) -> (n, d)``: unit tangent vectors of the data manifold at physical states; when
    given, the angle (degrees, in [0, 90]) between each chain's leading backward vector and
    the manifold's tangent at the chain's final state is returned. ``drift_shift`` (d,)
    (physical units per step) perturbs every step: ``x <- step(x) + shift``. ``h``: the
    central-difference step (standardized units). Returns an ``xr.Dataset`` over ``chain``:
    ``exponents`` (per step), ``vectors`` (chain, dim, exponent) in physical coordinates
    (normalized), ``states`` (physical) and ``angle`` with its ``median_angle``.
    """
    sp = sampler.space
    d = sampler.dim
    rng = np.random.default_rng(seed)
    X = np.asarray(sp.to_standard(sampler.sample(n_chains, n_steps=0, seed=seed,
                                                 as_array=True)), dtype=np.float64)
    shift = None if drift_shift is None else np.asarray(drift_shift, float) / sp.scale
    V = np.broadcast_to(np.eye(d), (n_chains, d, d)).copy()
    logs = np.zeros((n_chains, d))
    for _ in range(int(n_steps)):
        s = int(rng.integers(2**63))
        J = np.stack([(_step(sampler, X + h * e, s, shift) - _step(sampler, X - h * e, s, shift))
                      / (2 * h) for e in np.eye(d)], axis=2)
        X = _step(sampler, X, s, shift)
        Q, R = np.linalg.qr(J @ V)
        sign = np.sign(np.diagonal(R, axis1=1, axis2=2))
        sign[sign == 0] = 1.0
        V = Q * sign[:, None, :]
        logs += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)) + 1e-300)
    W = V * sp.scale[None, :, None]                   # tangent vectors in physical coordinates
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    phys = sp.to_physical(X)
    ds = xr.Dataset({"exponents": (("chain", "exponent"), logs / int(n_steps),
                                   {"long_name": "finite-time Lyapunov exponents per step"}),
                     "vectors": (("chain", "dim", "exponent"), W),
                     "states": (("chain", "dim"), phys)},
                    attrs={"n_steps": int(n_steps), "seed": str(seed), "h": h,
                           "scheme": sampler.scheme, "noise": sampler.noise})
    if tangent is not None:
        T = np.asarray(tangent(phys), dtype=np.float64)
        cos = np.abs(np.sum(W[:, :, 0] * T, axis=1)) / np.linalg.norm(T, axis=1)
        ds["angle"] = ("chain", np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))),
                       {"units": "degree", "long_name": "leading vector vs manifold tangent"})
        ds["median_angle"] = ((), float(np.median(ds["angle"])), {"units": "degree"})
    return ds


def support_error(sampler, distance, n_chains: int = 500, n_steps: int = 100, seed=0,
                  drift_shift=None) -> float:
    """Mean ``distance(x)`` of the final states (physical) of ``n_chains`` chains run with
    every step perturbed by ``drift_shift`` (physical units per step; None: unperturbed);
    ``distance(X) -> (n,)`` is the distance to the data's support (e.g. ``| |x| - 1 |`` for
    the arc)."""
    sp = sampler.space
    rng = np.random.default_rng(seed)
    X = np.asarray(sp.to_standard(sampler.sample(n_chains, n_steps=0, seed=seed,
                                                 as_array=True)), dtype=np.float64)
    shift = None if drift_shift is None else np.asarray(drift_shift, float) / sp.scale
    for _ in range(int(n_steps)):
        X = _step(sampler, X, int(rng.integers(2**63)), shift)
    return float(np.mean(distance(sp.to_physical(X))))
