r"""A stochastically forced, nonlinear 2-D field on a masked lat-lon grid (a toy "SST").

The benchmark of the gridded-field workflow (docs/fields.md): a long record (``10^4`` daily
samples by default) with a land mask, a datetime coordinate and skewed gridpoint PDFs. At the
ocean points of a ``(lat, lon)`` grid the anomaly ``u`` obeys a stochastic Ginzburg-Landau-type
advection-diffusion equation

    du = [ D lap u - U d_x u - lambda u + b u^2 - c u^3 ] dt + sigma(lat) dW_corr,

* ``lap`` is the 5-point Laplacian on the index grid (unit spacing; periodic in longitude,
  no flux across the northern and southern edges, ``u = 0`` on land: a Dirichlet coast);
* ``d_x`` the centred difference in longitude (eastward advection with speed ``U`` grid
  points per day);
* the local drift ``-lambda u + b u^2 - c u^3`` is the force of the single-well potential
  ``lambda u^2 / 2 - b u^3 / 3 + c u^4 / 4`` (single-welled for ``b^2 < 4 lambda c``); its cubic
  asymmetry makes the PDFs skewed (positive skewness for ``b > 0``), the quartic keeps ``u``
  bounded;
* the noise is spatially correlated and large-scale: ``dW_corr = P_lat Z P_lon dt^{1/2}``
  with ``Z`` a (``n_lat_modes``, ``2 n_lon_waves + 1``) array of independent standard normals,
  ``P_lat`` the first sine modes of the latitude band, ``P_lon`` the Fourier modes of
  zonal wavenumbers ``0..n_lon_waves``, normalized so that the mean noise variance per point
  is 1; ``sigma`` grows linearly from ``sigma_south`` to ``sigma_north``.

Integration: Euler-Maruyama with step ``dt`` (days), all members at once, every ``save_every``
step kept, after a ``burn_in`` (days). The parameters follow the classical use of stochastic
advection-diffusion models as null models of SST anomalies (Hasselmann, "Stochastic climate
models", Tellus 1976; Frankignoul & Hasselmann 1977) with the nonlinearity of a Ginzburg-Landau
equation to break Gaussianity.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import xarray as xr

from ._sde import check_run_args, provenance

__all__ = ["EQUATION", "land_mask", "simulate", "drift"]

EQUATION = ("du = [D lap u - U d_x u - lambda u + b u^2 - c u^3] dt + sigma(lat) dW_corr "
            "(ocean points; u = 0 on land)")
DEFAULTS = dict(D=1.0, U=0.4, lam=0.25, b=0.35, c=0.15, sigma_south=0.35, sigma_north=0.7,
                n_lat_modes=2, n_lon_waves=3)
#: Euler-Maruyama steps per noise draw
CHUNK_STEPS = 2000


def grid(n_lat: int = 20, n_lon: int = 40):
    """Latitudes (15..70 N) and longitudes (0..360 E, periodic) of the benchmark grid."""
    return np.linspace(15.0, 70.0, n_lat), np.arange(n_lon) * 360.0 / n_lon


def land_mask(n_lat: int = 20, n_lon: int = 40) -> np.ndarray:
    """True on land: two continents (a western one along 80-120 E, an eastern one narrowing
    towards the south along 250-290 E) and a polar cap north of 66 N in the western half."""
    lat, lon = grid(n_lat, n_lon)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    west = (lo >= 80) & (lo <= 120) & (la >= 25)
    east = (lo >= 250) & (lo <= 290 - 30 * (60 - np.clip(la, 30, 60)) / 30) & (la >= 20)
    cap = (la >= 66) & (lo <= 180)
    return west | east | cap


def _laplacian(u, land):
    """5-point Laplacian: periodic in lon, no flux at the lat edges, u = 0 on land."""
    north = np.concatenate([u[..., 1:, :], u[..., -1:, :]], axis=-2)
    south = np.concatenate([u[..., :1, :], u[..., :-1, :]], axis=-2)
    lap = north + south + np.roll(u, 1, axis=-1) + np.roll(u, -1, axis=-1) - 4 * u
    return np.where(land, 0.0, lap)


def drift(u, land, D=DEFAULTS["D"], U=DEFAULTS["U"], lam=DEFAULTS["lam"], b=DEFAULTS["b"],
          c=DEFAULTS["c"]):
    """The deterministic tendency at fields ``u`` (..., n_lat, n_lon) (zero on land)."""
    adv = 0.5 * (np.roll(u, -1, axis=-1) - np.roll(u, 1, axis=-1))
    f = D * _laplacian(u, land) - U * adv - lam * u + b * u**2 - c * u**3
    return np.where(land, 0.0, f)


@numba.njit(cache=True)
def _em_steps(u, land, noise, coefs):  # pragma: no cover (numba)
    """Euler-Maruyama steps of :func:`drift` in place on ``u`` (m, n_lat, n_lon) with the
    scaled noise increments ``noise`` (n_steps, m, n_lat, n_lon)."""
    dt, D, U, lam, b, c = coefs
    m, ny, nx = u.shape
    f = np.empty((ny, nx))
    for t in range(noise.shape[0]):
        for k in range(m):
            for i in range(ny):
                for j in range(nx):
                    if land[i, j]:
                        f[i, j] = 0.0
                        continue
                    x = u[k, i, j]
                    n = u[k, min(i + 1, ny - 1), j]
                    s = u[k, max(i - 1, 0), j]
                    e = u[k, i, (j + 1) % nx]
                    w = u[k, i, (j - 1) % nx]
                    f[i, j] = (D * (n + s + e + w - 4 * x) - 0.5 * U * (e - w)
                               - lam * x + b * x * x - c * x * x * x)
            for i in range(ny):
                for j in range(nx):
                    u[k, i, j] += dt * f[i, j] + noise[t, k, i, j]


def _noise_basis(n_lat, n_lon, n_lat_modes, n_lon_waves):
    """``(P_lat (n_lat, a), P_lon (2 w + 1, n_lon))`` with unit mean noise variance."""
    y = (np.arange(n_lat) + 0.5) / n_lat
    P_lat = np.stack([np.sin(np.pi * (j + 1) * y) for j in range(n_lat_modes)], axis=1)
    x = 2 * np.pi * np.arange(n_lon) / n_lon
    waves = [np.ones(n_lon)] + [f(k * x) for k in range(1, n_lon_waves + 1)
                                 for f in (np.cos, np.sin)]
    P_lon = np.stack(waves)
    var = np.mean((P_lat**2).sum(1)[:, None] * (P_lon**2).sum(0)[None, :])
    return P_lat / np.sqrt(var), P_lon


def simulate(n_samples: int = 10_000, n_lat: int = 20, n_lon: int = 40, dt: float = 0.1,
             save_every: int = 10, burn_in: float = 500.0, n_members: int | None = None,
             seed: int | None = 0, start: str = "1980-01-01", **params) -> xr.Dataset:
    """Simulate the field (module docstring); returns ``xr.Dataset`` with ``T`` (K) over
    ``(time, lat, lon)`` (``(member, time, lat, lon)`` with ``n_members``), NaN on land, a daily
    datetime coordinate from ``start`` (one sample every ``dt * save_every`` days) and the
    ``land`` mask. ``params`` override :data:`DEFAULTS` (``D``, ``U``, ``lam``, ``b``, ``c``,
    ``sigma_south``, ``sigma_north``, ``n_lat_modes``, ``n_lon_waves``)."""
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    if p["b"] ** 2 >= 4 * p["lam"] * p["c"]:
        raise ValueError("b^2 must be < 4 lam c (a single-well local potential)")
    lat, lon = grid(n_lat, n_lon)
    land = land_mask(n_lat, n_lon)
    P_lat, P_lon = _noise_basis(n_lat, n_lon, p["n_lat_modes"], p["n_lon_waves"])
    sigma = np.linspace(p["sigma_south"], p["sigma_north"], n_lat)[:, None]
    amp = np.where(land, 0.0, sigma * np.sqrt(dt))
    rng = np.random.default_rng(seed)
    u = np.zeros((m, n_lat, n_lon))
    coefs = np.array([dt, p["D"], p["U"], p["lam"], p["b"], p["c"]])

    def advance(u, n_steps):
        """``n_steps`` Euler-Maruyama steps (noise drawn here, the stencil loop in numba)."""
        z = rng.standard_normal((n_steps, m, P_lat.shape[1], P_lon.shape[0]))
        _em_steps(u, land, amp * (P_lat @ z @ P_lon), coefs)
        return u

    burn = int(round(burn_in / dt))
    for start in range(0, burn, CHUNK_STEPS):
        u = advance(u, min(CHUNK_STEPS, burn - start))
    out = np.empty((m, int(n_samples), n_lat, n_lon), dtype=np.float32)
    per_chunk = max(1, CHUNK_STEPS // int(save_every))
    for i in range(0, int(n_samples), per_chunk):
        for j in range(i, min(i + per_chunk, int(n_samples))):
            u = advance(u, int(save_every))
            out[:, j] = u
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the simulation blew up: lower dt")
    out[:, :, land] = np.nan
    interval = dt * save_every
    time = pd.date_range(start, periods=int(n_samples),
                         freq=pd.Timedelta(days=interval))
    dims = ("member", "time", "lat", "lon")
    data = out if n_members is not None else out[0]
    ds = xr.Dataset(
        {"T": (dims[-data.ndim:], data, {"units": "K", "long_name": "temperature anomaly"}),
         "land": (("lat", "lon"), land, {"long_name": "land mask (True on land)"})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})
    ds.attrs = provenance("gridded", EQUATION, p, dt, save_every,
                          "Euler-Maruyama (numpy, vectorized over members)", seed, burn_in,
                          {"time_units": "days"})
    return ds
