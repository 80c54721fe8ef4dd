"""Shared integration machinery for the benchmark-system simulators.

Every stochastic system supplies two numba-compiled functions acting on one state vector:

* ``drift(x, p, out)``: writes f(x) into ``out`` (``p`` is a float64 parameter vector);
* ``noise(x, p, xi, out)``: writes g(x) xi into ``out`` for a vector ``xi`` of independent
  standard normals (length ``n_noise``), i.e. the diffusion matrix applied to xi.

The SDE is ``dx = f(x) dt + g(x) dW`` (Ito). Two schemes are offered:

* ``"euler"`` (Euler–Maruyama): ``x += f(x) dt + g(x) xi sqrt(dt)``; strong order 1/2, the Ito
  scheme needed for multiplicative noise;
* ``"heun"`` (stochastic Heun, for additive noise only): predictor ``x* = x + f(x) dt + g xi
  sqrt(dt)``, corrector ``x += (f(x) + f(x*)) dt / 2 + g xi sqrt(dt)``; strong order 1 for additive
  noise and second order in the drift, which matters for the stiff chaotic systems.

The driver integrates an ensemble (members advanced in parallel with ``prange``) chunk by chunk,
draws the normals from a seeded ``numpy.random.Generator`` (one stream, so results depend only on
``seed``), keeps every ``save_every``-th state, shows a progress bar, and hands the saved states to
a :class:`TrajectoryWriter` that either keeps them in memory or appends them to a NetCDF file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
import xarray as xr

from .. import io
from .._version import __version__
from ..progress import bar as progress_bar

SCHEMES = ("euler", "heun")


@numba.njit(parallel=True, fastmath=False)
def _sde_chunk(drift, noise, heun, x, p, dt, xi, out):
    """Advance every member (row of x) through the normals ``xi`` (n_save, save_every, m, k),
    keeping the state after each ``save_every`` steps in ``out`` (n_save, m, d). Euler–Maruyama,
    or stochastic Heun (predictor-corrector on the drift) when ``heun``."""
    n_save, save_every, m, _ = xi.shape
    d = x.shape[1]
    sdt = math.sqrt(dt)
    for r in numba.prange(m):
        f = np.empty(d)
        f2 = np.empty(d)
        g = np.empty(d)
        xp = np.empty(d)
        xr_ = x[r]
        for i in range(n_save):
            for j in range(save_every):
                drift(xr_, p, f)
                noise(xr_, p, xi[i, j, r], g)
                if heun:
                    for c in range(d):
                        xp[c] = xr_[c] + f[c] * dt + g[c] * sdt
                    drift(xp, p, f2)
                    for c in range(d):
                        f[c] = 0.5 * (f[c] + f2[c])
                for c in range(d):
                    xr_[c] += f[c] * dt + g[c] * sdt
            for c in range(d):
                out[i, r, c] = xr_[c]


@dataclass
class SDESystem:
    """A stochastic system ``dx = f(x) dt + g(x) dW`` given by numba drift/noise functions.

    For the tangent dynamics (:func:`xlangevin.lyapunov`): ``tangent(x, p, V, out)`` writes
    ``Df(x) V`` for a (d, k) matrix ``V``; ``noise_tangent(x, p, xi, V, out)`` writes
    ``D(g(x) xi) V`` (None: additive noise); ``x0`` is a default initial state (d,).
    """

    name: str
    drift: Callable
    noise: Callable
    params: np.ndarray
    n_noise: int
    scheme: str = "euler"
    tangent: Callable | None = None
    noise_tangent: Callable | None = None
    x0: np.ndarray | None = None

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        self.params = np.ascontiguousarray(self.params, dtype=np.float64)

    def step_chunk(self, x: np.ndarray, dt: float, xi: np.ndarray) -> np.ndarray:
        """Advance ``x`` (members, d) in place through ``xi``; return the saved states."""
        n_save, _, m, _ = xi.shape
        out = np.empty((n_save, m, x.shape[1]))
        _sde_chunk(self.drift, self.noise, self.scheme == "heun", x, self.params, dt, xi, out)
        return out


def check_run_args(n_samples, dt, save_every, burn_in, n_members):
    """Validate the common run arguments; return ``n_members`` as an int (1 if None)."""
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    if int(save_every) < 1:
        raise ValueError(f"save_every must be a positive integer, got {save_every}")
    if burn_in < 0:
        raise ValueError(f"burn_in must be >= 0 (model time units), got {burn_in}")
    m = 1 if n_members is None else int(n_members)
    if m < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    return m


class TrajectoryWriter:
    """Collects saved states chunk by chunk, in memory or appended to a NetCDF file.

    ``variables`` maps a variable name to ``(dims, slice)``: the non-sample dims of the variable
    and the slice of the state vector that holds it (reshaped to the dims' sizes). On ``close`` an
    ``xr.Dataset`` with dims ``(member?, time, ...)`` is returned; with ``path`` the file is
    written to a temporary name beside ``path`` and published when complete (atomic; an existing
    file is replaced only with ``overwrite``), then opened lazily with dask chunks.
    """

    def __init__(self, variables, coords, n_members, keep_member_dim, n_samples, sample_interval,
                 t0, attrs, path=None, var_attrs=None, coord_attrs=None,
                 overwrite=False):
        self.variables = variables
        self.coords = coords
        self.n_members = n_members
        self.keep_member_dim = keep_member_dim
        self.n_samples = n_samples
        self.sample_interval = float(sample_interval)
        self.t0 = float(t0)
        self.attrs = attrs
        self.var_attrs = var_attrs or {}
        self.coord_attrs = coord_attrs or {}
        self.count = 0
        self._chunks = []
        self._stream = None if path is None else io.NetCDFStream(path, "time",
                                                                 self._encoding(), overwrite)

    # -- shapes -------------------------------------------------------------------------------
    def _shape(self, dims):
        return tuple(len(self.coords[d]) for d in dims)

    def _dims(self, dims):
        lead = ("member", "time") if self.keep_member_dim else ("time",)
        return lead + tuple(dims)

    def _split(self, states):
        """states (n, m, d) -> {name: array with dims (member?, time, ...)}."""
        n, m, _ = states.shape
        out = {}
        for name, (dims, sl) in self.variables.items():
            a = states[:, :, sl].reshape((n, m) + self._shape(dims))
            a = np.moveaxis(a, 1, 0)  # (m, n, ...)
            out[name] = a if self.keep_member_dim else a[0]
        return out

    def _encoding(self):
        """File chunks: one member, up to 4096 samples, the whole field."""
        lead = (1,) if self.keep_member_dim else ()
        return {name: {"chunksizes": lead + (min(self.n_samples, 4096),) + self._shape(dims),
                       "zlib": False} for name, (dims, _) in self.variables.items()}

    def _dataset(self, states, start):
        """Saved states (n, m, d) as a Dataset whose samples start at saved sample ``start``."""
        data_vars = {name: (self._dims(self.variables[name][0]), a, self.var_attrs.get(name, {}))
                     for name, a in self._split(states).items()}
        coords = {"time": ("time", self._times(start, states.shape[0]),
                           {"long_name": "time", "units": "model time units"})}
        coords.update({d: (d, np.asarray(v), self.coord_attrs.get(d, {}))
                       for d, v in self.coords.items()})
        if self.keep_member_dim:
            coords["member"] = ("member", np.arange(self.n_members))
        return xr.Dataset(data_vars, coords=coords, attrs=self.attrs)

    # -- recording ----------------------------------------------------------------------------
    def append(self, states: np.ndarray):
        """Add saved states of shape (n, members, d)."""
        if not np.all(np.isfinite(states)):
            bad = np.argwhere(~np.isfinite(states))[0]
            raise FloatingPointError(
                f"integration produced a non-finite state at saved sample {self.count + bad[0]}, "
                f"member {bad[1]}: reduce dt or check the parameters")
        if self._stream is None:
            self._chunks.append(states)
        else:
            self._stream.append(self._dataset(states, self.count))
        self.count += states.shape[0]

    def _times(self, start, n):
        return self.t0 + self.sample_interval * np.arange(start, start + n)

    def close(self) -> xr.Dataset:
        if self._stream is not None:
            self._stream.close(self.attrs)
            return self._stream.open(chunks={})
        return self._dataset(np.concatenate(self._chunks, axis=0), 0)

    def abort(self):
        if self._stream is not None:
            self._stream.abort()


def provenance(system: str, equation: str, params: dict, dt: float, save_every: int, scheme: str,
               seed, burn_in: float, extra: dict | None = None) -> dict:
    """The attrs every simulated Dataset carries."""
    attrs = {
        "title": f"{system} simulated by xlangevin",
        "system": system,
        "equation": equation,
        "integrator": scheme,
        "dt": float(dt),
        "save_every": int(save_every),
        "sample_interval": float(dt) * int(save_every),
        "burn_in": float(burn_in),
        "seed": "None" if seed is None else str(seed),
        "xlangevin_version": __version__,
    }
    attrs.update({f"param_{k}": io.nc_attr(v) for k, v in params.items()})
    if extra:
        attrs.update(extra)
    return attrs


def record_chunks(writer: TrajectoryWriter, advance, n_samples: int, chunk_samples: int,
                  desc: str, progress: bool = True, steps_per_sample: int = 1,
                  burn=None, burn_steps: int = 0, burn_chunk: int = 1) -> xr.Dataset:
    """The one recording loop of every simulator.

    ``burn(n)`` advances ``n`` steps without saving (called in pieces of ``burn_chunk`` for
    ``burn_steps`` in all); ``advance(n)`` advances and returns ``n`` saved states (n, m, d),
    which go to ``writer`` chunk by chunk. One progress bar counts steps; on any error the
    writer is aborted (no partial file is left).
    """
    try:
        with progress_bar(total=burn_steps + n_samples * steps_per_sample, progress=progress,
                  desc=desc, unit="step", unit_scale=True, leave=False) as bar:
            left = burn_steps
            while left > 0:
                n = min(left, burn_chunk)
                burn(n)
                left -= n
                bar.update(n)
            done = 0
            while done < n_samples:
                n = min(chunk_samples, n_samples - done)
                writer.append(advance(n))
                done += n
                bar.update(n * steps_per_sample)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def run_sde(system: SDESystem, x0: np.ndarray, n_samples: int, dt: float, save_every: int,
            burn_in: float, seed, writer_kwargs: dict, chunk_samples: int | None = None,
            progress: bool = True, path=None, overwrite: bool = False) -> xr.Dataset:
    """Integrate ``system`` from ``x0`` (members, d) and return the saved trajectory
    (streamed to ``path`` when given; an existing file is replaced only with ``overwrite``).

    ``burn_in`` (model time units) is integrated first and discarded. Saved samples are spaced
    ``dt * save_every``; the first saved sample is one interval after the burn-in.
    """
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float64, order="C")
    m, d = x.shape
    k = system.n_noise
    if chunk_samples is None:  # bound the noise buffer to ~32 MB
        chunk_samples = max(1, min(n_samples, (4 << 20) // max(1, save_every * m * k)))
    n_burn = int(round(burn_in / dt))
    interval = dt * save_every
    writer = TrajectoryWriter(n_samples=n_samples, sample_interval=interval,
                              t0=n_burn * dt + interval, path=path, n_members=m,
                              overwrite=overwrite, **writer_kwargs)
    return record_chunks(
        writer, lambda n: system.step_chunk(x, dt, rng.standard_normal((n, save_every, m, k))),
        n_samples, chunk_samples, system.name, progress, steps_per_sample=save_every,
        burn=lambda n: system.step_chunk(x, dt, rng.standard_normal((1, n, m, k))),
        burn_steps=n_burn, burn_chunk=chunk_samples * save_every)
