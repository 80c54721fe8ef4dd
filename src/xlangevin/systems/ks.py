"""Kuramoto–Sivashinsky equation ``u_t = -u u_x - u_xx - u_xxxx`` on a periodic domain (METHODS.md §6).

Deterministic, spatio-temporally chaotic benchmark. The field is written on ``N`` equispaced grid
points ``x_i = L i / N`` of the periodic domain ``[0, L)`` (defaults ``L = 34``, ``N = 64``; the
other classic choice is ``L = 22``) and advanced pseudo-spectrally in Fourier space with the
fourth-order exponential time-differencing Runge–Kutta scheme ETDRK4 of Cox & Matthews (2002) in
the form of Kassam & Trefethen (2005):

* linear part (diagonal in Fourier space) ``L_k = k^2 - k^4``, ``k = 2 pi n / L``;
* nonlinear part ``N(u) = -u u_x = -(u^2)_x / 2``, evaluated in conservative form as
  ``-(i k / 2) FFT(u^2)`` with the 2/3 rule (modes ``|n| >= N/3`` of the nonlinear term zeroed),
  so that the ``k = 0`` mode (the spatial mean) is conserved exactly;
* the phi-function coefficients of ETDRK4 are computed by the contour-integral trick: means over
  ``M = 32`` points on the unit circle centred at each ``h L_k`` (this removes the cancellation
  error of the explicit formulas for small ``|h L_k|``).

Implementation note: the FFTs are numpy's ``rfft``/``irfft`` vectorized over ensemble members
(arrays of shape ``(members, N)``, transforms along the last axis). numba is not used: it cannot
compile ``numpy.fft``, and at ``N = 64`` the cost of one step is the ~8 FFT calls plus a few
element-wise array operations (call overhead dominates: roughly 0.1 ms per step, and 8 members
cost only ~1.6x one member), so a default dataset (``10^4`` samples one time unit apart after a
``1000``-unit burn-in, 110 000 steps at ``dt = 0.1``) takes about 10 seconds on one core.

Accuracy: ETDRK4 is 4th order asymptotically (observed 3.7–3.9 for dt 0.04 .. 0.005 on
Kassam–Trefethen's test); for dt ~0.1–0.2 it is in its pre-asymptotic stiff regime (observed
orders 2.5–3.1) but still accurate to ~1e-6. Statistics at ``L = 34`` (std of u = 1.42) agree for
dt 0.1 / 0.25 and N 64 / 128.

Besides :func:`simulate`, the module exposes :func:`rhs` (the exact right-hand side in physical
space), the :class:`ETDRK4` stepper and :func:`step_etdrk4`, :func:`resolve` (the paper's
32-point resolved state) and :func:`lyapunov_exponent` (leading Lyapunov exponent by the tangent
linear model or by two-trajectory renormalization).
"""

from __future__ import annotations

import math

import numpy as np

from ._sde import TrajectoryWriter, check_run_args, provenance, record_chunks

EQUATION = "u_t = -u u_x - u_xx - u_xxxx (periodic, x in [0, L))"
INTEGRATOR = "ETDRK4 (Kassam-Trefethen 2005, M=32 contour points, 2/3 dealiasing)"
N_CONTOUR = 32

__all__ = ["EQUATION", "INTEGRATOR", "ETDRK4", "rhs", "step_etdrk4", "grid", "wavenumbers",
           "random_initial_condition", "simulate", "resolve", "lyapunov_exponent", "jacobian"]


# ----------------------------------------------------------------------------------------------
# Validation and grids
# ----------------------------------------------------------------------------------------------
def _check_domain(L, N):
    if not (np.isfinite(L) and L > 0):
        raise ValueError(f"L (domain length) must be a positive finite number, got {L}")
    if int(N) != N or N < 8 or N % 2:
        raise ValueError(f"N (grid points) must be an even integer >= 8, got {N}")
    return float(L), int(N)


def grid(L: float = 34.0, N: int = 64) -> np.ndarray:
    """Grid positions ``x_i = L i / N``, ``i = 0..N-1``."""
    L, N = _check_domain(L, N)
    return L * np.arange(N) / N


def wavenumbers(L: float = 34.0, N: int = 64) -> np.ndarray:
    """Wavenumbers ``k_n = 2 pi n / L`` of the ``rfft`` modes ``n = 0..N/2``."""
    L, N = _check_domain(L, N)
    return 2.0 * np.pi * np.arange(N // 2 + 1) / L


def _dealias_mask(N: int) -> np.ndarray:
    """2/3 rule on the rfft modes: keep ``n < N/3`` (``n <= 21`` for ``N = 64``), zero the rest.

    Products of two modes ``<= K`` alias onto modes ``>= N - 2K``, which are all discarded iff
    ``N - 2K > K``.
    """
    return (3 * np.arange(N // 2 + 1) < N).astype(float)


# ----------------------------------------------------------------------------------------------
# Exact right-hand side (physical space)
# ----------------------------------------------------------------------------------------------
def rhs(u, L: float = 34.0, dealias: bool = False) -> np.ndarray:
    """Right-hand side ``-u u_x - u_xx - u_xxxx`` of ``u`` sampled on the grid, shape (..., N).

    Derivatives are spectral (exact for band-limited ``u``); the nonlinear term is computed in
    conservative form ``-(u^2)_x / 2``. With ``dealias=True`` the 2/3 rule is applied to the
    nonlinear term exactly as in the time stepper, so ``rhs(u, L, True)`` is the vector field
    that :class:`ETDRK4` integrates. The Nyquist mode is dropped from the odd (first) derivative.
    """
    u = np.asarray(u, dtype=float)
    N = u.shape[-1]
    L, N = _check_domain(L, N)
    k = wavenumbers(L, N)
    kodd = k.copy()
    kodd[-1] = 0.0  # the Nyquist mode has no well-defined odd derivative
    v = np.fft.rfft(u, axis=-1)
    nl = -0.5j * kodd * np.fft.rfft(u * u, axis=-1)
    if dealias:
        nl = nl * _dealias_mask(N)
    lin = (k**2 - k**4) * v
    return np.fft.irfft(lin + nl, n=N, axis=-1)


def jacobian(u, L: float = 34.0, dealias: bool = False) -> np.ndarray:
    """Jacobian of :func:`rhs` on the grid, shape (..., N, N): column ``l`` is the tangent
    ``-(u v)_x - v_xx - v_xxxx`` at ``v = e_l`` (spectral derivatives, as in :func:`rhs`)."""
    u = np.asarray(u, dtype=float)
    N = u.shape[-1]
    L, N = _check_domain(L, N)
    k = wavenumbers(L, N)
    kodd = k.copy()
    kodd[-1] = 0.0
    E = np.eye(N)
    nl = -1j * kodd[:, None] * np.fft.rfft(u[..., :, None] * E, axis=-2)
    if dealias:
        nl = nl * _dealias_mask(N)[:, None]
    lin = (k**2 - k**4)[:, None] * np.fft.rfft(E, axis=-2)
    return np.fft.irfft(lin + nl, n=N, axis=-2)


# ----------------------------------------------------------------------------------------------
# ETDRK4 stepper
# ----------------------------------------------------------------------------------------------
class ETDRK4:
    """ETDRK4 stepper of Kassam & Trefethen (2005) for KS on ``[0, L)`` with ``N`` points.

    Works in Fourier space on arrays ``v`` of ``rfft`` coefficients with shape (..., N/2 + 1)
    (any leading batch dims, e.g. members). ``step_hat`` advances ``v`` by one step ``dt``;
    ``step`` / ``advance`` do the same in physical space. ``step_hat_tangent`` also advances
    tangent vectors with the exact derivative of the one-step map (the ETDRK4 scheme applied to
    the linearized equation ``w_t = -(u w)_x - w_xx - w_xxxx`` alongside ``u``).

    Coefficients (``h = dt``, ``Lk = k^2 - k^4``, ``r_j = exp(2 pi i (j - 1/2) / M)``, ``z = h Lk
    + r_j``, means over the ``M`` contour points, real part)::

        E  = exp(h Lk),  E2 = exp(h Lk / 2)
        Q  = h mean[(exp(z/2) - 1) / z]
        f1 = h mean[(-4 - z + exp(z) (4 - 3 z + z^2)) / z^3]
        f2 = h mean[(2 + z + exp(z) (z - 2)) / z^3]
        f3 = h mean[(-4 - 3 z - z^2 + exp(z) (4 - z)) / z^3]

    (``M = 32`` points on the full circle are equivalent to Kassam–Trefethen's 16 points on the
    upper half circle with the real part taken, since the functions are real on the real axis.)
    """

    def __init__(self, L: float = 34.0, N: int = 64, dt: float = 0.1, n_contour: int = N_CONTOUR,
                 dealias: bool = True):
        self.L, self.N = _check_domain(L, N)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive finite number, got {dt}")
        if int(n_contour) < 4:
            raise ValueError(f"n_contour must be >= 4, got {n_contour}")
        self.dt = h = float(dt)
        self.n_contour = M = int(n_contour)
        self.dealias = bool(dealias)
        k = wavenumbers(self.L, self.N)
        self.k = k
        Lk = k**2 - k**4
        self.Lk = Lk
        self.E = np.exp(h * Lk)
        self.E2 = np.exp(h * Lk / 2)
        r = np.exp(2j * np.pi * (np.arange(1, M + 1) - 0.5) / M)
        z = h * Lk[:, None] + r[None, :]
        ez = np.exp(z)
        self.Q = h * np.real(np.mean((np.exp(z / 2) - 1) / z, axis=1))
        self.f1 = h * np.real(np.mean((-4 - z + ez * (4 - 3 * z + z**2)) / z**3, axis=1))
        self.f2 = h * np.real(np.mean((2 + z + ez * (z - 2)) / z**3, axis=1))
        self.f3 = h * np.real(np.mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z**3, axis=1))
        kodd = k.copy()
        kodd[-1] = 0.0
        g = -0.5j * kodd
        if self.dealias:
            g = g * _dealias_mask(self.N)
        self.g = g
        # complex copies and pre-multiplied coefficients (fewer / cheaper array ops per step)
        self._Ec = self.E.astype(complex)
        self._E2c = self.E2.astype(complex)
        self._Qg = self.Q * g
        self._f1g = self.f1 * g
        self._f2g = 2.0 * self.f2 * g
        self._f3g = self.f3 * g

    # -- transforms -----------------------------------------------------------------------------
    def to_hat(self, u) -> np.ndarray:
        return np.fft.rfft(np.asarray(u, dtype=float), axis=-1)

    def to_phys(self, v) -> np.ndarray:
        return np.fft.irfft(v, n=self.N, axis=-1)

    def _sq_hat(self, v):
        """FFT(u^2) for u = irfft(v) (the nonlinear term before the factor g)."""
        u = np.fft.irfft(v, self.N)  # (last axis)
        return np.fft.rfft(u * u)

    # -- steps ----------------------------------------------------------------------------------
    def _etdrk4(self, v, nl):
        """One ETDRK4 step of ``v`` with ``nl(v) = FFT(u^2)``-like term (the factor g is applied
        here through the pre-multiplied coefficients)."""
        E2, Qg = self._E2c, self._Qg
        Nv = nl(v)
        E2v = E2 * v
        a = E2v + Qg * Nv
        Na = nl(a)
        b = E2v + Qg * Na
        Nb = nl(b)
        c = E2 * a + Qg * (2.0 * Nb - Nv)
        Nc = nl(c)
        return self._Ec * v + self._f1g * Nv + self._f2g * (Na + Nb) + self._f3g * Nc

    def step_hat(self, v: np.ndarray) -> np.ndarray:
        """One ETDRK4 step of the Fourier coefficients ``v`` (returns a new array)."""
        return self._etdrk4(v, self._sq_hat)

    def _sq_hat_tangent(self, z):
        """For ``z = [v, w]`` stacked on axis 0: ``[FFT(u^2), FFT(2 u u_w)]`` (the derivative)."""
        uu = np.fft.irfft(z, self.N)
        p = uu * uu[0]
        p[1] *= 2.0
        return np.fft.rfft(p)

    def step_hat_tangent(self, v: np.ndarray, w: np.ndarray):
        """One step of ``v`` and of tangent vectors ``w`` (same shape) by the linearized map.

        The linearized scheme uses the same (linear) ETDRK4 combinations as the state, so the
        pair is advanced as one stacked array; ``w`` is mapped by the exact Jacobian of
        :meth:`step_hat` at ``v``.
        """
        z = self._etdrk4(np.stack([v, w]), self._sq_hat_tangent)
        return z[0], z[1]

    def step_hat_tangent_stacked(self, z: np.ndarray) -> np.ndarray:
        """:meth:`step_hat_tangent` on the stacked array ``z = [v, w]`` (no copies)."""
        return self._etdrk4(z, self._sq_hat_tangent)

    def advance_hat(self, v: np.ndarray, n_steps: int) -> np.ndarray:
        for _ in range(int(n_steps)):
            v = self.step_hat(v)
        return v

    def step(self, u) -> np.ndarray:
        """One step in physical space: ``u`` of shape (..., N)."""
        return self.to_phys(self.step_hat(self.to_hat(u)))

    def advance(self, u, n_steps: int) -> np.ndarray:
        """``n_steps`` steps in physical space."""
        return self.to_phys(self.advance_hat(self.to_hat(u), n_steps))


def step_etdrk4(u, L: float = 34.0, dt: float = 0.1, n_steps: int = 1, dealias: bool = True):
    """Advance grid values ``u`` (..., N) by ``n_steps`` ETDRK4 steps of size ``dt``.

    Convenience wrapper building an :class:`ETDRK4` stepper (reuse the stepper for many calls).
    """
    u = np.asarray(u, dtype=float)
    return ETDRK4(L, u.shape[-1], dt, dealias=dealias).advance(u, n_steps)


# ----------------------------------------------------------------------------------------------
# Initial conditions
# ----------------------------------------------------------------------------------------------
def random_initial_condition(rng, n_members: int = 1, L: float = 34.0, N: int = 64,
                             n_modes: int = 4, amplitude: float = 0.1) -> np.ndarray:
    """Smooth zero-mean random fields, shape (n_members, N).

    Fourier modes ``n = 1 .. n_modes`` get independent complex Gaussian amplitudes such that the
    grid standard deviation of ``u`` is about ``amplitude``; all other modes (and the mean) are 0.
    """
    L, N = _check_domain(L, N)
    rng = np.random.default_rng(rng)
    n_modes = int(min(n_modes, N // 2 - 1))
    v = np.zeros((int(n_members), N // 2 + 1), dtype=complex)
    c = rng.standard_normal((int(n_members), n_modes, 2))
    # irfft: u = (2 / N) sum_n Re(v_n e^{i k_n x}); mode n adds 2 |v_n|^2 / N^2 to mean_x u^2 and
    # E|v_n|^2 = scale^2, so E[mean_x u^2] = 2 n_modes scale^2 / N^2 = amplitude^2
    scale = amplitude * N / math.sqrt(2.0 * n_modes)
    v[:, 1:n_modes + 1] = scale * (c[..., 0] + 1j * c[..., 1]) / math.sqrt(2.0)
    return np.fft.irfft(v, n=N, axis=-1)


# ----------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------
def _resolved_step(N: int, resolved) -> int:
    if resolved is False or resolved is None:
        return 1
    n_points = 32 if resolved is True else int(resolved)
    if n_points < 1 or N % n_points:
        raise ValueError(f"resolved state of {n_points} points needs N divisible by it (N = {N})")
    return N // n_points


def _save_every(dt, sample_interval) -> int:
    """Steps per saved sample; ``sample_interval`` must be a whole multiple of ``dt``."""
    if not (np.isfinite(sample_interval) and sample_interval > 0):
        raise ValueError(f"sample_interval must be a positive finite number, got {sample_interval}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    save_every = int(round(sample_interval / dt))
    if save_every < 1 or abs(save_every * dt - sample_interval) > 1e-9 * sample_interval:
        raise ValueError(f"sample_interval ({sample_interval}) must be a positive integer multiple "
                         f"of dt ({dt})")
    return save_every


def _initial_fields(u0, rng, m, L, N):
    """``(u (m, N), description)``: ``u0`` checked and broadcast, or random low modes."""
    if u0 is None:
        return (random_initial_condition(rng, m, L, N),
                "random low Fourier modes n=1..4, std ~0.1, zero mean (numpy default_rng(seed))")
    u0 = np.asarray(u0, dtype=float)
    if u0.ndim not in (1, 2) or u0.shape[-1] != N or (u0.ndim == 2 and u0.shape[0] not in (1, m)):
        raise ValueError(f"u0 must have shape ({N},) or ({m}, {N}), got {u0.shape}")
    if not np.all(np.isfinite(u0)):
        raise ValueError("u0 must be finite")
    return np.array(np.broadcast_to(u0.reshape(-1, N), (m, N))), "user-supplied u0"


def simulate(n_samples: int = 10_000, L: float = 34.0, N: int = 64, dt: float = 0.1,
             sample_interval: float = 1.0, burn_in: float = 5000.0, n_members: int | None = None,
             u0=None, seed=None, progress: bool = True, path=None,
             overwrite: bool = False, resolved=False,
             chunk_samples: int = 1000):
    """Simulate Kuramoto–Sivashinsky and return an ``xr.Dataset`` with ``u(time, x)``.

    Parameters
    ----------
    n_samples : number of saved samples per member.
    L, N : domain length and number of grid points (``N`` even, ``>= 8``).
    dt : ETDRK4 step (0.1 default; 0.25 is also accurate for ``L = 22``–``34``, ``N = 64``).
    sample_interval : time between saved samples; must be a multiple of ``dt``
        (``save_every = round(sample_interval / dt)``).
    burn_in : model time integrated and discarded before the first saved sample (the first
        saved sample is one ``sample_interval`` after it). Default 5000 (METHODS.md §6);
        ``~1000`` is already far past the transient from the small random initial condition.
    n_members : ensemble size, integrated as one batch; ``None`` gives no ``member`` dim.
    u0 : initial field(s), shape (N,) or (n_members, N); default: smooth zero-mean random low
        Fourier modes (``n = 1..4``, std ~0.1) drawn from ``numpy.random.default_rng(seed)``,
        one independent draw per member. The spatial mean of ``u0`` is conserved.
    seed : seed of the initial-condition generator (the dynamics are deterministic).
    path : if given, stream the trajectory to this NetCDF file (written atomically) and return
        the Dataset opened lazily from it.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    resolved : ``False`` (full grid), ``True`` (keep the 32-point resolved state, every
        ``N/32``-th point, see :func:`resolve`) or an integer number of points to keep.
    chunk_samples : samples held in memory before being handed to the writer.
    """
    L, N = _check_domain(L, N)
    save_every = _save_every(dt, sample_interval)
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    n_samples = int(n_samples)
    if int(chunk_samples) < 1:
        raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
    step = _resolved_step(N, resolved)
    u, ic = _initial_fields(u0, np.random.default_rng(seed), m, L, N)
    stepper = ETDRK4(L, N, dt)
    x = grid(L, N)
    x_attrs = {"long_name": "position", "units": "model length units (periodic, period L)"}
    extra = {"initial_condition": ic, "x_grid": "x_i = L i / N, i = 0..N-1"}
    if step > 1:
        extra["resolved_state"] = f"every {step}-th grid point ({N // step} of {N})"
    attrs = provenance("kuramoto_sivashinsky", EQUATION, {"L": L, "N": N}, dt, save_every,
                       INTEGRATOR, seed, burn_in, extra=extra)
    n_burn = int(round(burn_in / dt))
    interval = dt * save_every
    writer = TrajectoryWriter(
        variables={"u": (("x",), slice(0, N, step))}, coords={"x": x[::step]}, n_members=m,
        keep_member_dim=n_members is not None, n_samples=n_samples, sample_interval=interval,
        t0=n_burn * dt + interval, attrs=attrs, path=path, overwrite=overwrite,
        var_attrs={"u": {"long_name": "Kuramoto-Sivashinsky field u(x, t)"}},
        coord_attrs={"x": x_attrs})
    state = {"v": stepper.to_hat(u)}

    def burn(n):
        state["v"] = stepper.advance_hat(state["v"], n)

    def advance(n):
        if not np.all(np.isfinite(state["v"])):
            raise FloatingPointError("integration blew up: reduce dt")
        out = np.empty((n, m, N))
        for i in range(n):
            for _ in range(save_every):
                state["v"] = stepper.step_hat(state["v"])
            out[i] = np.fft.irfft(state["v"], N)
        return out

    return record_chunks(writer, advance, n_samples, int(chunk_samples), "kuramoto_sivashinsky",
                         progress, steps_per_sample=save_every, burn=burn, burn_steps=n_burn,
                         burn_chunk=1000)


def resolve(ds, n_points: int = 32):
    """The resolved state: ``ds`` (Dataset or DataArray with dim ``x``) on every ``N/n_points``-th
    grid point (``n_points = 32`` of ``N = 64``: every second point, the paper's resolved state).
    """
    N = ds.sizes["x"]
    if int(n_points) < 1 or N % int(n_points):
        raise ValueError(f"n_points ({n_points}) must divide the number of grid points ({N})")
    step = N // int(n_points)
    out = ds.isel(x=slice(None, None, step))
    out.attrs = dict(ds.attrs)
    out.attrs["resolved_state"] = f"every {step}-th grid point ({int(n_points)} of {N})"
    return out


# ----------------------------------------------------------------------------------------------
# Lyapunov exponent
# ----------------------------------------------------------------------------------------------
def lyapunov_exponent(L: float = 22.0, N: int = 64, dt: float = 0.25, t_total: float = 5000.0,
                      seed=None, n_members: int = 1, burn_in: float = 1000.0,
                      renorm_interval: float = 1.0, spinup: float = 100.0,
                      method: str = "tangent", eps: float = 1e-7, u0=None,
                      return_members: bool = False):
    """Leading Lyapunov exponent of KS (of the ETDRK4 map, which converges to the flow's).

    ``n_members`` independent trajectories (random initial conditions from ``seed``) are
    integrated as a batch for ``burn_in``; then one perturbation per member is advanced for
    ``spinup`` (to align it with the leading direction) and ``t_total`` time units, renormalized
    every ``renorm_interval``; the exponent is ``sum log(growth) / t_total`` (averaged over the
    members unless ``return_members``).

    method : ``"tangent"`` (tangent linear model: the exact derivative of the ETDRK4 step) or
        ``"benettin"`` (two trajectories ``eps`` apart in the Euclidean grid norm, renormalized).
    """
    L, N = _check_domain(L, N)
    if method not in ("tangent", "benettin"):
        raise ValueError(f"method must be 'tangent' or 'benettin', got {method!r}")
    for name, val in (("t_total", t_total), ("renorm_interval", renorm_interval)):
        if not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be positive, got {val}")
    if burn_in < 0 or spinup < 0:
        raise ValueError("burn_in and spinup must be >= 0")
    m = check_run_args(1, dt, 1, burn_in, n_members)
    rng = np.random.default_rng(seed)
    stepper = ETDRK4(L, N, dt)
    u = random_initial_condition(rng, m, L, N) if u0 is None else \
        np.array(np.broadcast_to(np.asarray(u0, float).reshape(-1, N), (m, N)))
    v = stepper.advance_hat(stepper.to_hat(u), int(round(burn_in / dt)))
    w = stepper.to_hat(rng.standard_normal((m, N)))
    w *= _dealias_mask(N)  # the perturbation lives in the resolved modes
    w /= _norm(w, N)[:, None]
    k_steps = max(1, int(round(renorm_interval / dt)))
    tau = k_steps * dt
    n_spin = int(round(spinup / tau))
    n_renorm = max(1, int(round(t_total / tau)))
    if method == "benettin":
        w *= eps
    total = np.zeros(m)
    z = np.stack([v, w])
    for j in range(n_spin + n_renorm):
        if method == "tangent":
            for _ in range(k_steps):
                z = stepper.step_hat_tangent_stacked(z)
            d = _norm(z[1], N)
            z[1] /= d[:, None]
        else:
            both = stepper.advance_hat(np.concatenate([v, v + w]), k_steps)
            v, v2 = both[:m], both[m:]
            dw = v2 - v
            d = _norm(dw, N) / eps
            w = dw / d[:, None]
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise FloatingPointError("non-finite tangent growth: reduce dt")
        if j >= n_spin:
            total += np.log(d)
    lam = total / (n_renorm * tau)
    return lam if return_members else float(lam.mean())


def _norm(v, N):
    """Euclidean grid norm ``||u||_2`` of the field with rfft coefficients ``v`` (Parseval)."""
    a = np.abs(v) ** 2
    s = 2.0 * a.sum(axis=-1) - a[..., 0] - a[..., -1]
    return np.sqrt(s / N)
