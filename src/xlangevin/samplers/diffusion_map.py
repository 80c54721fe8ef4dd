r"""Diffusion-map Langevin sampler and conditional sampling (METHODS.md §7, paper 003).

Gottwald, Li, Marzouk & Reich, "Stable generative modeling using diffusion maps". Everything
acts on STANDARDIZED states (``FeatureSpace``; ``standardize=False`` keeps raw units, as the
paper's examples do). Data ``X = [x_1 .. x_M]`` (rows of an (M, d) array). The kernel
``t_ij = exp(-|x_i - x_j|^2 / (2 eps (rho_i + rho_j)))``, its bandwidths ``rho`` and the
out-of-sample maps ``p_eps``, ``m_eps``, ``C`` are in :mod:`.kernel`; the symmetric Sinkhorn
weights ``v`` (``P = D(v) T D(v)``, ``P 1 = 1/M``) in :mod:`.sinkhorn`.

The drift ``b(x) = (m_eps(x) - x) / eps`` is, to first order in eps, ``K grad log pi + div K``
(``= grad log pi`` for fixed bandwidth), ``K = rho I``: the drift of the Langevin dynamics with
mobility ``K`` that keeps ``pi`` invariant (derivation in docs/diffmap.md). With
``rho = (q/mean q)^beta``, ``div K = grad rho = beta rho grad log q``, so the score is
``grad log pi ~ b(x) / rho(x) - beta grad log q(x)`` (:meth:`DiffusionMapSampler.score`; the KDE
gradient is computed exactly).

Samplers (one step, all chains at once; ``xi ~ N(0, I)``):

* ``scheme="split-step", noise="constant"`` (paper Eq. 18):
  ``x' = x + sqrt(2 eps) K(x)^{1/2} xi;  x <- m_eps(x')``;
* ``scheme="split-step", noise="data-aware"`` (Eq. 19):
  ``x' = x + C(x)^{1/2} xi;  x <- m_eps(x')``. Both keep the chain in the convex hull of the
  data (``m_eps`` is a convex combination of data points). Each step has two halves:
  ``output="mean"`` (default) reports ``m_eps(x')`` (in the hull, but concentrated onto the
  data's manifold at the bandwidth scale: the arc example's radial std 0.013-0.028 for a
  true 0.06), ``output="noisy"`` reports ``x'``, which carries the local spread: with
  data-aware noise ``C`` holds the data's thickness and the radial law is reproduced, with
  constant noise ``sqrt(2 eps)`` blurs it (docs/diffmap.md);
* ``scheme="langevin", noise="constant"``: ``x <- x + dt b(x) + sqrt(2 dt) K(x)^{1/2} xi``;
  ``dt = eps`` (default) gives ``x <- m_eps(x) + sqrt(2 eps) K^{1/2} xi``;
* ``scheme="langevin", noise="data-aware"``: ``x <- x + dt b(x) + sqrt(dt / eps) C(x)^{1/2} xi``
  (``C ~ 2 eps K``).

Conditional sampling (paper §5): the components named in ``condition`` are reset to their given
values ``z*`` before every step and receive no noise; only the free components move (for the
data-aware noise the free-free block of C is used). Chains start from data points drawn with the
kernel weights of the conditioned components (``exp(-|z* - z_j|^2 / (4 eps))``), i.e. from a
kernel estimate of the conditional law.

Random numbers: the model stores no generator. The fit draws an integer ``sample_seed`` (kept
in ``attrs``) from the estimator's ``seed``; ``seed=None`` in :meth:`DiffusionMapSampler.sample`
and :meth:`~DiffusionMapSampler.generate` starts from that seed, so a call gives the same draws
every time, in two fits with the same ``seed`` and after ``to_netcdf``/``open``.

Stochastic subgrid closure (paper §6.3): :func:`xlangevin.samplers.fit_subgrid_closure`.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from .. import io
from ..base import Estimator, Flag, Interval, Model, OneOf, Seed, provenance
from ..data import DataError, FeatureData, FeatureSpace, check_states
from .kernel import DENSE_MAX, DiffusionKernel, _auto_k, fit_kernel

__all__ = ["DiffusionMap", "DiffusionMapSampler", "diffmap"]

_TRUNCATION_WARN = 1e-3   # warn when the kNN kernel is cut above this fraction of its peak
_NOISE = OneOf(("data-aware", "constant"))
_SCHEME = OneOf(("split-step", "langevin"))
_OUTPUT = OneOf(("mean", "noisy"))
_POSITIVE = Interval(0, None, closed="neither")


# ------------------------------------------------------------------------------------------
# estimator
# ------------------------------------------------------------------------------------------
class DiffusionMap(Estimator):
    """Diffusion-map Langevin sampler estimator (module docstring; METHODS.md §7).

    Parameters
    ----------
    eps : kernel bandwidth = sampler step (standardized units unless ``standardize=False``).
    beta : variable-bandwidth exponent in (-1, 0]; 0 = fixed bandwidth.
    noise : "data-aware" (covariance C(x)) or "constant" (``2 eps K``).
    scheme : "split-step" (Eqs. 18/19, samples stay in the data's convex hull) or "langevin".
    dt : Langevin step (``scheme="langevin"`` only); default ``eps``.
    output : which half of a split step is reported: "mean" (``m_eps(x')``, in the convex hull
        of the data and concentrated at the bandwidth scale) or "noisy" (``x'``, the sample
        with its noise: carries the data's local spread, e.g. the radial law of the arc
        example); the chain itself always continues from ``m_eps(x')``.
    k_neighbors : neighbours of the sparse kernel; None = dense up to ``DENSE_MAX`` samples,
        else chosen automatically; ``>= M`` = dense.
    kde_eps : bandwidth parameter of the KDE behind ``rho`` (default ``eps``).
    standardize : learn in standardized units (default True).
    max_samples : use at most this many samples (a random subset).
    tol, max_iter : Sinkhorn tolerance on ``max |M (P 1)_i - 1|`` and iteration cap.
    dim, variables : data-layer options for xarray input.
    seed : seeds the subset, the pilot of the automatic k and the model's ``sample_seed`` (the
        default random stream of its samplers).
    """

    eps: float = 0.01
    beta: float = 0.0
    noise: str = "data-aware"
    scheme: str = "split-step"
    dt: float | None = None
    output: str = "mean"
    k_neighbors: int | None = None
    kde_eps: float | None = None
    standardize: bool = True
    max_samples: int | None = None
    tol: float = 1e-12
    max_iter: int = 5000
    dim: str = "time"
    variables: object = None
    seed: object = None

    _constraints = {"eps": _POSITIVE,
                    "beta": Interval(-1, 0, closed="right"),
                    "noise": _NOISE,
                    "scheme": _SCHEME,
                    "output": _OUTPUT,
                    "dt": Interval(0, None, closed="neither", optional=True),
                    "k_neighbors": Interval(1, None, integer=True, optional=True),
                    "kde_eps": Interval(0, None, closed="neither", optional=True),
                    "standardize": Flag(),
                    "max_samples": Interval(2, None, integer=True, optional=True),
                    "tol": _POSITIVE,
                    "max_iter": Interval(1, None, integer=True),
                    "seed": Seed()}

    def _check(self) -> None:
        if self.dt is not None and self.scheme != "langevin":
            raise ValueError("dt is the step of scheme='langevin'; the split-step schemes "
                             "step with eps")

    def _data_options(self) -> dict:
        return {"standardize": self.standardize}

    def _neighbours(self, X, eps, rng):
        """``(k, k_mode, tree or None)``: dense, given or automatic k (:mod:`.kernel`)."""
        M = X.shape[0]
        if self.k_neighbors is not None:
            k = min(int(self.k_neighbors), M)
            return k, ("dense" if k >= M else "given"), None
        if M <= DENSE_MAX:
            return M, "dense", None
        tree = cKDTree(X)
        k = _auto_k(X, tree, eps, rng, -1)
        return k, ("dense" if k >= M else "auto"), tree

    def _fit(self, features: FeatureData) -> "DiffusionMapSampler":
        X = features.in_memory().X      # dask: computed, needed in memory
        rng = np.random.default_rng(self.seed)
        n_all = X.shape[0]
        if self.max_samples is not None and n_all > self.max_samples:
            X = X[np.sort(rng.choice(n_all, self.max_samples, replace=False))]
            X.setflags(write=False)
        M = X.shape[0]
        eps = float(self.eps)
        kde_eps = float(self.kde_eps) if self.kde_eps is not None else eps
        k, k_mode, tree = self._neighbours(X, eps, rng)
        kernel, info = fit_kernel(X, eps, float(self.beta), kde_eps, k, float(self.tol),
                                  int(self.max_iter), tree)
        if info["kernel_truncation"] > _TRUNCATION_WARN:
            warnings.warn(f"the k = {k} nearest-neighbour kernel is cut where it is still "
                          f"{info['kernel_truncation']:.2g} of its peak; raise k_neighbors "
                          f"(or lower eps) for an accurate drift", RuntimeWarning, stacklevel=3)
        attrs = provenance(self, eps=eps, beta=float(self.beta), kde_eps=kde_eps,
                           noise=self.noise, scheme=self.scheme, output=self.output,
                           dt=float(self.dt) if self.dt is not None else eps,
                           k_neighbors=int(k), k_mode=k_mode, n_data=int(M),
                           n_samples_given=int(n_all), standardize=bool(self.standardize),
                           sample_seed=int(rng.integers(2**63)), **info)
        return DiffusionMapSampler(kernel, features.space, attrs)


def diffmap(data, eps=0.01, **params) -> "DiffusionMapSampler":
    """Accessor entry point: ``DiffusionMap(eps=eps, **params).fit(data)`` (xarray or array)."""
    return DiffusionMap(eps=eps, **params).fit(data)


# ------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------
def _sqrtm_apply(C, xi):
    """``C^{1/2} xi`` per row for a stack of PSD matrices C (n, k, k), by eigendecomposition."""
    if C.shape[-1] == 1:
        return np.sqrt(np.clip(C[:, 0, 0], 0.0, None))[:, None] * xi
    w, U = np.linalg.eigh(C)
    y = np.einsum("nji,nj->ni", U, xi) * np.sqrt(np.clip(w, 0.0, None))
    return np.einsum("nij,nj->ni", U, y)


def _condition_values(key, value, n, width):
    """One condition's values as an (n, width) array (a scalar, (width,) or (n, width))."""
    v = np.asarray(value, dtype=np.float64)
    if v.ndim == 0:
        return np.full((n, width), float(v))
    if v.shape == (width,):
        return np.broadcast_to(v, (n, width))
    if v.shape == (n,) and width == 1:
        return v[:, None]
    if v.shape != (n, width):
        raise DataError(f"condition {key!r} has shape {v.shape}; give a scalar, "
                        f"({width},) or ({n}, {width}) values")
    return v


class DiffusionMapSampler(Model):
    """A fitted diffusion-map sampler (see the module docstring).

    Attributes: ``eps``, ``beta``, ``noise``, ``scheme``, ``dt``, ``space`` (FeatureSpace),
    ``data`` (the standardized samples, (M, d)), ``weights`` (Sinkhorn ``v``), ``rho``
    (bandwidths), ``sample_seed`` (the default seed of the samplers), ``attrs`` (parameters,
    Sinkhorn iterations and residual, kernel truncation, provenance). Physical units in and
    out; ``standardized=True`` on the evaluation methods skips the maps. Immutable.
    """

    def __init__(self, kernel: DiffusionKernel, space: FeatureSpace, attrs: dict):
        self._kernel = kernel
        self.space = space
        self.attrs = dict(attrs)

    # -- properties ---------------------------------------------------------------------------
    eps = property(lambda self: self._kernel.eps)
    beta = property(lambda self: self._kernel.beta)
    noise = property(lambda self: self.attrs["noise"])
    scheme = property(lambda self: self.attrs["scheme"])
    output = property(lambda self: self.attrs.get("output", "mean"))
    dt = property(lambda self: float(self.attrs["dt"]))
    dim = property(lambda self: self._kernel.d)
    n_data = property(lambda self: self._kernel.M)
    data = property(lambda self: self._kernel.X)
    weights = property(lambda self: np.exp(self._kernel.logv))
    rho = property(lambda self: self._kernel.rho)
    sample_seed = property(lambda self: self.attrs.get("sample_seed"))

    def with_options(self, noise=None, scheme=None, dt=None,
                     output=None) -> "DiffusionMapSampler":
        """The same fitted kernel (and ``sample_seed``) with another sampler (no refit)."""
        attrs = dict(self.attrs)
        for name, value, rule in (("output", output, _OUTPUT), ("noise", noise, _NOISE),
                                  ("scheme", scheme, _SCHEME)):
            if value is not None:
                rule.check(name, value)
                attrs[name] = value
        if dt is not None:
            _POSITIVE.check("dt", dt)
            attrs["dt"] = float(dt)
        elif scheme == "split-step":
            attrs["dt"] = self.eps
        return self._replace(attrs=attrs)

    # -- input handling -----------------------------------------------------------------------
    def _states(self, x, standardized):
        """-> (standardized (n, d) array, restore function)."""
        if isinstance(x, (xr.DataArray, xr.Dataset)):
            X = np.asarray(self.space.transform(x, standardize=not standardized), np.float64)
            return X, ("xarray", x)
        X, single = check_states(x, self.dim)
        if not standardized:
            X = self.space.to_standard(X)
        return X, ("single" if single else "array", None)

    def _restore(self, values, how, kind, name):
        tag, like = how
        if tag == "single":
            return values[0]
        if tag == "array":
            return values
        lead, shape, coords = self.space.lead_layout(like)
        if kind == "state":
            out = self.space.states_like(values, like, {"description": name})
            return self.space.match_input(out, like)
        coords.update(self.space.feature_coords("feature_i"))
        coords.update(self.space.feature_coords("feature_j"))
        return xr.DataArray(values.reshape(shape + (self.dim, self.dim)),
                            dims=lead + ["feature_i", "feature_j"], coords=coords, name=name)

    # -- evaluation ---------------------------------------------------------------------------
    def transition_probabilities(self, x, standardized=False):
        """``p_eps(x)`` for states x (n, d): scipy sparse CSR (n, M); rows sum to 1."""
        X, _ = self._states(x, standardized)
        return self._kernel.evaluate(X, probs=True)[3]

    def mean(self, x, standardized=False):
        """``m_eps(x) = X p_eps(x)`` (a convex combination of the data)."""
        X, how = self._states(x, standardized)
        m = self._kernel.evaluate(X)[0]
        return self._restore(m if standardized else self.space.to_physical(m), how, "state",
                             "diffusion-map mean m_eps(x)")

    def covariance(self, x, standardized=False):
        """``C(x) = (X - m 1^T) D(p) (X - m 1^T)^T``, (n, d, d)."""
        X, how = self._states(x, standardized)
        C = self._kernel.evaluate(X, cov=True)[1]
        if not standardized:
            C = self.space.matrix_to_physical(C)
        return self._restore(C, how, "matrix", "covariance")

    def bandwidth(self, x, standardized=False):
        """``rho(x)`` (1 for fixed bandwidth), shape (n,)."""
        X, _ = self._states(x, standardized)
        return self._kernel.kde_rho(X)

    def drift(self, x, standardized=False):
        """``b(x) = (m_eps(x) - x) / eps`` ~ ``K grad log pi + div K`` (per unit sampler time;
        physical: ``S b~``)."""
        X, how = self._states(x, standardized)
        b = (self._kernel.evaluate(X)[0] - X) / self.eps
        if not standardized:
            b = b * self.space.scale
        return self._restore(b, how, "state", "diffusion-map drift")

    def score(self, x, standardized=False):
        """Score estimate ``grad log pi ~ (b(x) - grad rho(x)) / rho(x)
        = b(x) / rho(x) - beta grad log q(x)`` (``b`` for fixed bandwidth); physical units
        ``S^{-1} s~``."""
        X, how = self._states(x, standardized)
        m, _, rz, _ = self._kernel.evaluate(X)
        s = (m - X) / (self.eps * rz[:, None])
        if self.beta != 0.0:
            s -= self.beta * self._kernel.kde_grad_log(X)
        if not standardized:
            s = self.space.score_to_physical(s)
        return self._restore(s, how, "state", "score grad log p")

    __call__ = score

    def bistochastic_matrix(self):
        """``P = D(v) T D(v)`` (scipy sparse CSR, (M, M)) rebuilt from the stored kernel."""
        return self._kernel.bistochastic()

    # -- sampling -----------------------------------------------------------------------------
    def _condition_indices(self, key):
        """Feature indices of one condition key: an index, a feature label or a variable."""
        labels = self.space.feature_labels()
        names = [lay.name for lay in self.space.layouts]
        if isinstance(key, (int, np.integer)):
            if not 0 <= int(key) < self.dim:
                raise DataError(f"condition index {key} out of range for d={self.dim}")
            return [int(key)]
        if key in labels:
            return [labels.index(key)]
        if key in names:
            layout = self.space.layouts[names.index(key)]
            return list(range(layout.slice.start, layout.slice.stop))
        raise DataError(f"unknown condition {key!r}: use a feature index, a label "
                        f"({labels[:6]}...) or a variable name ({names})")

    def _resolve_condition(self, condition, n):
        """-> (conditioned feature indices, standardized values (n, c)) or (None, None)."""
        if condition is None or len(condition) == 0:
            return None, None
        cidx, vals = [], []
        for key, value in dict(condition).items():
            idx = self._condition_indices(key)
            cidx.extend(idx)
            vals.append(_condition_values(key, value, n, len(idx)))
        cidx = np.asarray(cidx)
        if len(set(cidx.tolist())) != cidx.size:
            raise DataError("a feature is conditioned twice")
        if cidx.size >= self.dim:
            raise DataError("every feature is conditioned: nothing left to sample")
        vals = np.concatenate(vals, axis=1)
        vals = (vals - self.space.mean[cidx]) / self.space.scale[cidx]
        return cidx, vals

    def _noise(self, X, free, rng):
        """Noise of the free components: ``sqrt(2 eps K)`` or ``C_ff^{1/2}`` times xi."""
        K = self._kernel
        nf = self.dim if free is None else free.size
        xi = rng.standard_normal((X.shape[0], nf))
        if self.noise == "constant":
            r = K.kde_rho(X)
            return np.sqrt(2.0 * self.eps * r)[:, None] * xi, None
        m, C, r, _ = K.evaluate(X, cov=True)
        if free is not None:
            C = C[:, free[:, None], free[None, :]]
        return _sqrtm_apply(C, xi), m

    def step(self, X, rng, free=None, cidx=None, zc=None):
        """One sampler step of all chains X (n, d), standardized; returns ``(state, output)``:
        the new chain state and the sample it reports (the same array, except for the
        split-step schemes with ``output="noisy"``: the half-step ``x'`` before ``m_eps``).

        ``free``/``cidx``: index arrays of the free and conditioned components; ``zc`` the
        conditioned values (n, c), reset before the step."""
        X = np.array(X, dtype=np.float64)
        if cidx is not None:
            X[:, cidx] = zc
        fsel = slice(None) if free is None else free
        K = self._kernel
        if self.scheme == "split-step":
            noise, _ = self._noise(X, free, rng)
            Xp = X.copy()
            Xp[:, fsel] += noise
            m = K.evaluate(Xp)[0]
            X[:, fsel] = m[:, fsel]
            return X, (Xp if self.output == "noisy" else X)
        # Langevin, dt steps of the drift (m - x)/eps
        h = self.dt / self.eps
        if self.noise == "constant":
            m, _, r, _ = K.evaluate(X)
            xi = rng.standard_normal((X.shape[0], self.dim if free is None else free.size))
            noise = np.sqrt(2.0 * self.dt * r)[:, None] * xi
        else:
            m, C, _, _ = K.evaluate(X, cov=True)
            if free is not None:
                C = C[:, free[:, None], free[None, :]]
            xi = rng.standard_normal((X.shape[0], self.dim if free is None else free.size))
            noise = math.sqrt(h) * _sqrtm_apply(C, xi)
        X[:, fsel] += h * (m[:, fsel] - X[:, fsel]) + noise
        return X, X

    def _init(self, n, init, rng, cidx, zc, standardized):
        if init is not None:
            X0, _ = self._states(np.asarray(init, float).reshape(-1, self.dim)
                                 if not isinstance(init, (xr.DataArray, xr.Dataset)) else init,
                                 standardized)
            if X0.shape[0] == 1:
                X0 = np.repeat(X0, n, axis=0)
            if X0.shape[0] != n:
                raise DataError(f"init has {X0.shape[0]} states for {n} chains")
            return X0.copy()
        if cidx is not None:
            j = self._kernel.draw_conditional(cidx, zc, rng)
        else:
            j = rng.integers(0, self.n_data, n)
        return self._kernel.X[j].copy()

    def _rng_for(self, seed):
        """The generator of a sampling call: from ``seed``, or from ``sample_seed`` if None."""
        return np.random.default_rng(self.sample_seed if seed is None else seed)

    def run(self, X0, n_steps, rng, free=None, cidx=None, zc=None, save_every=0, burn_in=0):
        """Advance chains X0 (standardized) ``n_steps``; returns the final state, the final
        reported sample (see :meth:`step`) and, with ``save_every > 0``, the reported samples
        (n_saved, n, d) after ``burn_in`` steps."""
        X = out = X0
        saved = []
        for i in range(1, int(n_steps) + 1):
            X, out = self.step(X, rng, free, cidx, zc)
            if save_every and i > burn_in and (i - burn_in) % save_every == 0:
                saved.append(out.copy())
        return X, out, (np.stack(saved) if saved else np.empty((0,) + X.shape))

    def _free(self, cidx):
        if cidx is None:
            return None
        return np.setdiff1d(np.arange(self.dim), cidx)

    def sample(self, n: int, n_steps: int = 200, seed=None, condition=None, init=None,
               as_array: bool = False, standardized: bool = False):
        """``n`` samples: the final states of ``n`` independent chains after ``n_steps``.

        Chains start from random data points (or from ``init``, physical units). ``condition``:
        ``{feature index | label | variable: value(s)}`` in physical units (a scalar, or one
        value per chain). ``seed``: None uses the model's ``sample_seed`` (the same draws on
        every call, and after saving and opening). Returns xarray with a ``sample`` dim
        (``as_array=True``: ndarray (n, d), physical units unless ``standardized``).
        """
        n = int(n)
        if n < 1 or int(n_steps) < 0:
            raise ValueError("need n >= 1 and n_steps >= 0")
        rng = self._rng_for(seed)
        cidx, zc = self._resolve_condition(condition, n)
        X = self._init(n, init, rng, cidx, zc, standardized)
        if cidx is not None:
            X[:, cidx] = zc
        _, X, _ = self.run(X, n_steps, rng, self._free(cidx), cidx, zc)
        X = X.copy()
        if cidx is not None:
            X[:, cidx] = zc
        if as_array:
            return X if standardized else self.space.to_physical(X)
        out = self.space.inverse_transform(X, dims=("sample",),
                                           coords={"sample": np.arange(n)})
        out.attrs.update(self._provenance(n_steps, seed, condition))
        return out

    def generate(self, n_steps: int, n_members: int = 1, save_every: int = 1, burn_in: int = 0,
                 init=None, seed=None, condition=None, as_array: bool = False):
        """Sampler trajectories: ``(member, <sample dim>)`` xarray like the fitted data, the
        sample coordinate being the sampler's pseudo-time ``step * dt`` (dt = eps for the
        split-step schemes). ``seed=None`` uses ``sample_seed`` (as :meth:`sample`).
        ``as_array``: ndarray (n_members, n_saved, d), physical units."""
        if int(save_every) < 1 or int(burn_in) < 0 or int(n_steps) < 1:
            raise ValueError("need n_steps >= 1, save_every >= 1 and burn_in >= 0")
        n = int(n_members)
        rng = self._rng_for(seed)
        cidx, zc = self._resolve_condition(condition, n)
        X = self._init(n, init, rng, cidx, zc, False)
        _, _, saved = self.run(X, n_steps, rng, self._free(cidx), cidx, zc, int(save_every),
                               int(burn_in))
        traj = np.transpose(saved, (1, 0, 2))  # (member, time, d)
        if as_array:
            return self.space.to_physical(traj)
        steps = burn_in + save_every * np.arange(1, traj.shape[1] + 1)
        member = self.space.sequence_dim or "member"
        out = self.space.inverse_transform(
            traj, dims=(member, self.space.sample_dim),
            coords={member: np.arange(n), self.space.sample_dim: steps * self.dt})
        out[self.space.sample_dim].attrs = {"long_name": "sampler pseudo-time (steps * dt)",
                                            "dt": self.dt}
        out.attrs.update(self._provenance(n_steps, seed, condition))
        return out

    def _provenance(self, n_steps, seed, condition):
        return {"generated_by": "xlangevin.DiffusionMapSampler", "scheme": self.scheme,
                "history": io.cf_history(f"DiffusionMapSampler: {n_steps} steps, seed={seed}",
                                         self.space.data_attrs.get("history", "")),
                "output": self.output,
                "noise": self.noise, "eps": self.eps, "beta": self.beta, "n_steps": int(n_steps),
                "seed": "None" if seed is None else str(seed),
                "condition": json.dumps({str(k): np.asarray(v).tolist()
                                         for k, v in dict(condition or {}).items()})}

    # -- persistence --------------------------------------------------------------------------
    def to_groups(self) -> dict:
        """The data, Sinkhorn weights, bandwidths, feature space and attrs (as JSON)."""
        K = self._kernel
        arrays = {"data": K.X, "log_weights": K.logv, "rho": K.rho}
        return {"": xr.Dataset(attrs={"model_attrs": io.attrs_json(self.attrs)}),
                "space": self.space.to_dataset(),
                "kernel": io.arrays_to_dataset(arrays, {"qbar": K.qbar, "qmin": K.qmin})}

    @classmethod
    def from_groups(cls, groups) -> "DiffusionMapSampler":
        root = groups[""].attrs
        attrs = {**json.loads(root["model_attrs"]),
                 "xlangevin_version": root["xlangevin_version"]}
        a = io.dataset_to_arrays(groups["kernel"])
        kernel = DiffusionKernel(a["data"], attrs["eps"], attrs["beta"], attrs["kde_eps"],
                                 attrs["k_neighbors"], a["log_weights"], a["rho"],
                                 float(groups["kernel"].attrs["qbar"]),
                                 float(groups["kernel"].attrs["qmin"]))
        return cls(kernel, FeatureSpace.from_dataset(groups["space"]), attrs)

    def __repr__(self):
        return (f"<DiffusionMapSampler eps={self.eps:g} beta={self.beta:g} "
                f"scheme={self.scheme!r} noise={self.noise!r} M={self.n_data} d={self.dim} "
                f"k={self.attrs['k_neighbors']} ({self.attrs['k_mode']}) "
                f"variables={self.space.variables}>")
