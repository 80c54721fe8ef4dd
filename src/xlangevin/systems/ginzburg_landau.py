r"""Ginzburg-Landau chain: the high-dimensional test density of spectral score matching.

    rho(x) ∝ exp(-beta V(x)),
    V(x) = sum_{i=1}^{d} [ lam / 2 ((x_i - x_{i-1}) / h)^2 + (1 - x_i^2)^2 / (4 lam) ],

with the boundary ``x_0 = x_{d+1} = 0`` (both ends pinned; the term ``i = d + 1`` of the
coupling is included) and ``h = 1 / (d + 1)`` by default (Khoo, Peng & Oster, "Score based
learning in scientific computing", slides 2025, after the Ginzburg-Landau examples of tensor
density estimation). Small ``lam`` makes each site a deep double well (weak interaction
relative to the on-site term); large ``lam`` couples neighbours strongly.

Sampling: ``n_chains`` independent Metropolis-adjusted Langevin (MALA) chains driven by the
exact score ``s = -beta grad V`` (the Metropolis test makes the chain exact for ``rho``),
started from ``+-1`` states and thinned after a burn-in.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["potential", "score", "simulate", "REGIMES"]

#: the two regimes of docs/spectral_score.md (d = 8, h = 1/9)
REGIMES = {"strong": {"lam": 0.1, "beta": 0.5}, "weak": {"lam": 0.02, "beta": 0.5}}


def _padded(x):
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    zeros = np.zeros((x.shape[0], 1))
    return np.concatenate([zeros, x, zeros], 1)


def potential(x, lam: float = 0.1, h: float | None = None) -> np.ndarray:
    """``V(x)`` for states (n, d) (module docstring)."""
    x = np.atleast_2d(x)
    h = 1.0 / (x.shape[1] + 1) if h is None else h
    diff = np.diff(_padded(x), axis=1) / h
    return 0.5 * lam * (diff**2).sum(1) + ((1 - x**2) ** 2).sum(1) / (4 * lam)


def score(x, lam: float = 0.1, beta: float = 0.5, h: float | None = None) -> np.ndarray:
    """The exact score ``-beta grad V(x)``, (n, d)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    h = 1.0 / (x.shape[1] + 1) if h is None else h
    p = _padded(x)
    laplace = (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]) / h**2
    grad = -lam * laplace - x * (1 - x**2) / lam
    return -beta * grad


def simulate(n_samples: int = 100_000, d: int = 8, lam: float = 0.1, beta: float = 0.5,
             h: float | None = None, step: float | None = None, n_chains: int = 1000,
             burn: int = 2000, thin: int = 20, seed=None) -> xr.Dataset:
    """``n_samples`` states of the chain (module docstring) as ``x(time, site)``; ``time``
    counts samples (independent chains interleaved, not a time series). ``step``: MALA step
    (default ``0.1 / (beta * stiffness)`` with the largest curvature ``lam (2/h)^2 + 2/lam``).
    The attrs record the parameters and the acceptance rate."""
    if n_samples < 1 or d < 1 or n_chains < 1 or thin < 1 or burn < 0:
        raise ValueError("n_samples, d, n_chains, thin must be positive and burn >= 0")
    h = 1.0 / (d + 1) if h is None else float(h)
    stiff = lam * (2 / h) ** 2 + 2 / lam
    step = 0.1 / (beta * stiff) if step is None else float(step)
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(n_chains, d))
    logp = -beta * potential(x, lam, h)
    s = score(x, lam, beta, h)
    out, accepted, total = [], 0, 0
    n_rounds = burn + thin * int(np.ceil(n_samples / n_chains))
    for k in range(n_rounds):
        prop = x + step * s + np.sqrt(2 * step) * rng.normal(size=x.shape)
        lp, sp = -beta * potential(prop, lam, h), score(prop, lam, beta, h)
        fwd = -((prop - x - step * s) ** 2).sum(1) / (4 * step)
        back = -((x - prop - step * sp) ** 2).sum(1) / (4 * step)
        ok = np.log(rng.uniform(size=n_chains)) < lp - logp + back - fwd
        x[ok], logp[ok], s[ok] = prop[ok], lp[ok], sp[ok]
        if k >= burn:
            accepted, total = accepted + ok.sum(), total + n_chains
            if (k - burn + 1) % thin == 0:
                out.append(x.copy())
    X = np.concatenate(out)[:n_samples]
    return xr.Dataset(
        {"x": (("time", "site"), X, {"long_name": "Ginzburg-Landau field"})},
        coords={"time": np.arange(len(X)), "site": np.arange(1, d + 1)},
        attrs={"system": "ginzburg_landau", "d": d, "lam": lam, "beta": beta, "h": h,
               "boundary": "x_0 = x_{d+1} = 0", "sampler": "MALA", "step": step,
               "acceptance": float(accepted / max(total, 1)), "n_chains": n_chains,
               "burn": burn, "thin": thin, "seed": "None" if seed is None else str(seed)})
