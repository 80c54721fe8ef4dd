"""``.score`` and ``.langevin`` accessors on xarray Datasets and DataArrays.

Accessors hold only the wrapped object (xarray caches accessor instances, so no fitted state is
kept here); they convert and delegate to :class:`xlangevin.KGMM` / :class:`xlangevin.GMM`
(``score``) and :class:`xlangevin.EffectiveLangevin` (``langevin``).
"""

from __future__ import annotations

import xarray as xr

from .data import FeatureSpace
from .dynamics import EffectiveLangevin
from .linear_response import response
from .samplers import DiffusionMap
from .score import score_estimator


class _Accessor:

    def __init__(self, obj):
        self._obj = obj

    def feature_space(self, dim: str = "time", variables=None, **kwargs) -> FeatureSpace:
        """The :class:`~xlangevin.data.FeatureSpace` this object would be fitted in."""
        return FeatureSpace.fit(self._obj, dim=dim, variables=variables, **kwargs)


@xr.register_dataset_accessor("score")
@xr.register_dataarray_accessor("score")
class ScoreAccessor(_Accessor):
    """``ds.score.fit(method=..., sigma=..., ...)`` -> ScoreModel."""

    def fit(self, method: str = "auto", sigma: float | None = None, dim: str = "time",
            variables=None, seed=None, progress: bool = True, reduce=None,
            member_dim="member", **options):
        """Fit a score model of the data's stationary density (``reduce``: an
        :class:`xlangevin.EOF` reduction of a gridded field, docs/fields.md; ``member_dim``: the
        dim of independent ensemble members, e.g. ``"realization"``).

        ``method="auto"`` (default: the estimator chosen on a held-out block of the record,
        :class:`xlangevin.score.AutoScore`; options ``holdout``, ``candidates``), ``"kgmm"``
        (options ``p_min`` or ``n_clusters``, ``tol``,
        ``max_passes``, interpolator settings, see :class:`xlangevin.KGMM`), ``"dsm"``
        (denoising score matching, ``network="mlp" | "unet1d"``, :class:`xlangevin.DSM`),
        ``"gmm"`` (plain Gaussian-mixture baseline, :class:`xlangevin.GMM`), ``"polynomial"``
        (a polynomial log-density by implicit score matching, closed form,
        :class:`xlangevin.score.Polynomial`) or ``"gaussian"`` (the linear score of the fitted
        Gaussian, :class:`xlangevin.score.Gaussian`).
        ``sigma`` is in standardized units; None keeps the estimator's default.
        Returns a :class:`xlangevin.ScoreModel` callable on data shaped like this object.
        """
        estimator = score_estimator(method, sigma=sigma, dim=dim, variables=variables,
                                    seed=seed, progress=progress, **options)
        return estimator.fit(self._obj, reduce=reduce, member_dim=member_dim)


@xr.register_dataset_accessor("langevin")
@xr.register_dataarray_accessor("langevin")
class LangevinAccessor(_Accessor):
    """``ds.langevin.fit(score=..., ...)`` -> LangevinModel; ``ds.langevin.diffmap(eps=...)`` ->
    DiffusionMapSampler; ``ds.langevin.response(score=...)`` -> response functions."""

    def fit(self, score="auto", dim: str = "time", variables=None, cdot: str = "auto",
            seed=None, progress: bool = True, reduce=None, member_dim="member", **options):
        """Fit an effective Langevin model ``dx = Phi s(x) dt + sqrt(2) Sigma dW`` (``reduce``:
        an :class:`xlangevin.EOF` reduction of a gridded field, docs/fields.md; ``member_dim``:
        the dim of independent ensemble members, e.g. ``"realization"``).

        ``score``: a :class:`xlangevin.ScoreModel`, a callable on (n, d) physical arrays (exact
        score), a numba-jitted ``f(x_row, out_row)``, or a method name fitted first (pass its
        options as ``score_options={...}``): ``"auto"`` (default, chosen on held-out data),
        ``"kgmm"``, ``"gmm"``, ``"dsm"``, ``"polynomial"`` or ``"gaussian"`` (with
        ``cdot="logm"``: the LIM, see
        :func:`xlangevin.lim`). ``cdot``: ``"auto"`` (default), ``"lagged"``, ``"logm"`` or
        ``"finite_volume"``. Other options (``lags``, ``lag``,
        ``n_clusters``, ``p_min``, ``correction``, ``stein_samples``, ``eps``, ``n_keep``, ...)
        go to :class:`xlangevin.EffectiveLangevin`. Returns a :class:`xlangevin.LangevinModel`.
        """
        estimator = EffectiveLangevin(cdot=cdot, dim=dim, variables=variables, seed=seed,
                                      progress=progress, **options)
        return estimator.fit(self._obj, score=score, reduce=reduce, member_dim=member_dim)

    def diffmap(self, eps: float = 0.01, beta: float = 0.0, noise: str = "data-aware",
                scheme: str = "split-step", dim: str = "time", variables=None, seed=None,
                **options):
        """Fit a diffusion-map Langevin sampler (Gottwald, Li, Marzouk & Reich).

        ``eps`` (kernel bandwidth = sampler step, standardized units), ``beta`` (variable
        bandwidth exponent in (-1, 0]), ``noise`` ("data-aware" | "constant"), ``scheme``
        ("split-step" | "langevin"); other options (``k_neighbors``, ``kde_eps``,
        ``standardize``, ``max_samples``, ``tol``, ``dt``) go to :class:`xlangevin.DiffusionMap`.
        Returns a :class:`xlangevin.DiffusionMapSampler` with ``.sample(n)`` and
        ``.generate(n_steps, ...)`` returning xarray shaped like this object.
        """
        return DiffusionMap(eps=eps, beta=beta, noise=noise, scheme=scheme, dim=dim,
                            variables=variables, seed=seed, **options).fit(self._obj)

    def response(self, score="gaussian", forcing=None, observables=("x",), max_lag=None,
                 dim: str = "time", **options):
        """Linear response functions ``R(lag, observable, forcing)`` of this record from a score
        (fluctuation-dissipation; ``score="gaussian"``: quasi-Gaussian): see
        :func:`xlangevin.linear_response.response`."""
        return response(self._obj, score=score, forcing=forcing, observables=observables,
                        max_lag=max_lag, dim=dim, **options)
