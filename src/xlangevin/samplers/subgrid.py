r"""Stochastic subgrid-scale closure by conditional diffusion-map sampling (paper §6.3).

Gottwald, Li, Marzouk & Reich, "Stable generative modeling using diffusion maps". For a
resolved series ``z_n`` with a known resolved drift ``F``, the residual increments
``psi_n = z_{n+1} - z_n - F(z_n) dt`` are learned jointly with ``z_n`` and the ``lags`` previous
residuals by a :class:`~.diffmap.DiffusionMap`; the closure draws ``psi_n`` conditionally on
``(z_n, psi_{n-1..n-lags})`` and the surrogate steps ``z_{n+1} = z_n + F(z_n) dt + psi_n``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import DataError, FeatureSpace
from .diffusion_map import DiffusionMap, DiffusionMapSampler

__all__ = ["fit_subgrid_closure", "SubgridClosure"]


def _as_series(z, dim):
    """xarray as given; an array (T,) or (T, d) as ``DataArray(dims=(dim, "feature"))``."""
    if isinstance(z, (xr.DataArray, xr.Dataset)):
        return z
    arr = np.asarray(z, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise DataError(f"z must be (T,) or (T, d), got {np.shape(z)}")
    return xr.DataArray(arr, dims=(dim, "feature"), name="z")


def _joint_samples(Z, bounds, drift, dt, lags):
    """Rows ``(z_n, psi_{n-1}, ..., psi_{n-lags}, psi_n)`` of every contiguous sequence
    ``Z[s:e]`` (members and gaps are never joined; sequences shorter than lags + 2 skipped)."""
    L = lags
    rows = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e - s < L + 2:
            continue
        zs = Z[s:e]
        F = np.asarray(drift(zs[:-1]), dtype=np.float64).reshape(zs[:-1].shape)
        psi = zs[1:] - zs[:-1] - F * dt
        n = psi.shape[0]
        cols = [zs[L:n]] + [psi[L - l:n - l] for l in range(1, L + 1)] + [psi[L:n]]
        rows.append(np.concatenate(cols, axis=1))
    if not rows:
        raise DataError(f"no sequence is longer than lags + 2 = {L + 2} samples")
    return np.concatenate(rows, axis=0)


def fit_subgrid_closure(z, drift, dt=None, *, eps=0.05, lags=0, beta=0.0, noise="data-aware",
                        n_inner=3, init="data", k_neighbors=None, max_samples=None, dim="time",
                        variables=None, seed=None) -> "SubgridClosure":
    r"""Learn a stochastic closure ``psi`` for a resolved series ``z`` with known drift ``F``.

    Residual increments of each contiguous sequence (members and gaps are never joined):
    ``psi_n = z_{n+1} - z_n - F(z_n) dt``. A diffusion map is fitted to the joint samples
    ``(z_n, psi_{n-1}, ..., psi_{n-lags}, psi_n)``; the closure draws ``psi_n`` from it
    conditionally on ``(z_n, psi_{n-1..n-lags})`` (paper §5), and the surrogate runs
    ``z_{n+1} = z_n + F(z_n) dt + psi_n`` (:meth:`SubgridClosure.simulate`).

    Parameters
    ----------
    z : xarray (sample dim ``dim``, optional member dim, any feature dims) or array (T,) / (T, d).
    drift : callable, physical states (n, d) -> resolved drift (n, d).
    dt : time step of the series (default: the FeatureSpace's sample spacing; 1 for arrays).
    eps, beta, noise, k_neighbors, max_samples, seed : of the joint diffusion map
        (standardized joint units; the split-step scheme).
    lags : number of previous residuals conditioned on (memory of the closure).
    n_inner : conditional split-steps per time step (0 = kernel-weighted resampling only).
    init : "data" (each draw starts from a data point drawn with the kernel weights of the
        conditioning values, independent between steps) or "previous" (from the previous
        draw: a warm start that correlates successive draws unless n_inner is large).
    """
    if init not in ("data", "previous"):
        raise ValueError(f"init must be 'data' or 'previous', got {init!r}")
    if int(lags) < 0 or int(n_inner) < 0:
        raise ValueError("lags and n_inner must be >= 0")
    obj = _as_series(z, dim)
    space = FeatureSpace.fit(obj, dim=dim, variables=variables, standardize=False)
    Z = np.asarray(space.transform(obj, standardize=False), dtype=np.float64)
    if dt is None:
        dt = space.dt if isinstance(z, (xr.DataArray, xr.Dataset)) else 1.0
    dt = float(dt)
    J = _joint_samples(Z, space.sequence_bounds(obj), drift, dt, int(lags))
    sampler = DiffusionMap(eps=eps, beta=beta, noise=noise, scheme="split-step",
                           k_neighbors=k_neighbors, max_samples=max_samples,
                           seed=seed).fit(J)
    return SubgridClosure(sampler, drift, dt, Z.shape[1], int(lags), space, n_inner=n_inner,
                          init=init)


class SubgridClosure:
    """Conditional diffusion-map closure ``psi`` and the surrogate
    ``z_{n+1} = z_n + F(z_n) dt + psi_n`` (see :func:`fit_subgrid_closure`).

    ``sampler`` (a :class:`DiffusionMapSampler` on the joint samples) can be saved with
    ``to_netcdf``; rebuild the closure with ``SubgridClosure(open_model(path), drift, dt, dz,
    lags, space)``.
    """

    def __init__(self, sampler: DiffusionMapSampler, drift, dt, n_resolved, lags, space,
                 n_inner=3, init="data"):
        self.sampler = sampler
        self.drift = drift
        self.dt = float(dt)
        self.n_resolved = int(n_resolved)
        self.lags = int(lags)
        self.space = space
        self.n_inner = int(n_inner)
        self.init = init
        dzl = self.n_resolved * (1 + self.lags)
        self._cidx = np.arange(dzl)
        self._free = np.arange(dzl, dzl + self.n_resolved)

    def sample_increments(self, z, psi_prev=None, seed=None, rng=None, state=None):
        """Draw ``psi`` (n, d) given resolved states ``z`` (n, d) and, with lags, the previous
        residuals ``psi_prev`` (n, lags * d, most recent first); physical units. Returns
        ``(psi, chain state)`` (the state warm-starts the next draw with ``init="previous"``)."""
        rng = rng if rng is not None else np.random.default_rng(seed)
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        n = z.shape[0]
        cond = z if self.lags == 0 else np.concatenate(
            [z, np.asarray(psi_prev, np.float64).reshape(n, -1)], axis=1)
        sp = self.sampler.space
        zc = (cond - sp.mean[self._cidx]) / sp.scale[self._cidx]
        if self.init == "data" or state is None:
            kernel = self.sampler._kernel
            X = kernel.X[kernel.draw_conditional(self._cidx, zc, rng)].copy()
        else:
            X = np.array(state, dtype=np.float64)
        X[:, self._cidx] = zc
        X, _, _ = self.sampler.run(X, self.n_inner, rng, self._free, self._cidx, zc)
        psi = X[:, self._free] * sp.scale[self._free] + sp.mean[self._free]
        return psi, X

    def _initial(self, n, z0, rng):
        """Initial resolved states and residual history: of random joint samples, or ``z0``
        with a zero history."""
        d = self.n_resolved
        if z0 is None:
            j = rng.integers(0, self.sampler.n_data, n)
            z = self.sampler.space.to_physical(self.sampler.data[j])[:, :d]
            hist = self.sampler.space.to_physical(self.sampler.data[j])[:, d:d * (1 + self.lags)]
            return z, hist
        z = np.broadcast_to(np.asarray(z0, np.float64).reshape(-1, d), (n, d)).copy()
        return z, np.zeros((n, d * self.lags))

    def simulate(self, n_steps: int, n_members: int = 1, z0=None, seed=None,
                 burn_in: int = 0, as_array: bool = False):
        """Run the surrogate; returns xarray like the fitted ``z`` with a member dim (sample
        coordinate continuing the fitted spacing), or ndarray (n_members, n_steps, d)."""
        rng = np.random.default_rng(seed)
        n = int(n_members)
        d = self.n_resolved
        z, hist = self._initial(n, z0, rng)
        out = np.empty((n, int(n_steps), d))
        state = None
        for i in range(int(burn_in) + int(n_steps)):
            psi, state = self.sample_increments(z, hist if self.lags else None, rng=rng,
                                                state=state)
            F = np.asarray(self.drift(z), dtype=np.float64).reshape(n, d)
            z = z + F * self.dt + psi
            if self.lags:
                hist = np.concatenate([psi, hist[:, :-d]], axis=1) if self.lags > 1 else psi
            if not np.all(np.isfinite(z)):
                raise FloatingPointError(f"surrogate left the finite range at step {i}")
            if i >= burn_in:
                out[:, i - int(burn_in)] = z
        if as_array:
            return out
        member = self.space.sequence_dim or "member"
        sim = self.space.inverse_transform(
            out, standardized=False, dims=(member, self.space.sample_dim),
            coords={member: np.arange(n),
                    self.space.sample_dim: self.space.sample_coordinate(int(n_steps))})
        sim.attrs.update({"generated_by": "xlangevin.SubgridClosure", "dt": self.dt,
                          "lags": self.lags, "n_inner": self.n_inner, "init": self.init,
                          "eps": self.sampler.eps, "seed": "None" if seed is None else str(seed)})
        return sim

    def __repr__(self):
        return (f"<SubgridClosure d={self.n_resolved} lags={self.lags} dt={self.dt:g} "
                f"n_inner={self.n_inner} init={self.init!r} sampler={self.sampler!r}>")
