"""``.score`` and ``.langevin`` accessors on xarray Datasets and DataArrays.

Accessors hold only the wrapped object (xarray caches accessor instances, so no fitted state is
kept here); they convert and delegate. The estimators land with the KGMM issue (score) and the
generator/mobility issue (langevin); until then ``langevin.fit`` says so.
"""

from __future__ import annotations

import xarray as xr

from .data import FeatureSpace


class _Accessor:

    def __init__(self, obj):
        self._obj = obj

    def feature_space(self, dim: str = "time", variables=None, **kwargs) -> FeatureSpace:
        """The :class:`~xlangevin.data.FeatureSpace` this object would be fitted in."""
        return FeatureSpace.fit(self._obj, dim=dim, variables=variables, **kwargs)



SCORE_METHODS = ("kgmm", "gmm")


def score_estimator(method: str, **params):
    """The score estimator named ``method`` built with ``params``."""
    if method == "kgmm":
        from .kgmm import KGMM

        return KGMM(**params)
    if method == "gmm":
        from .gmm import GMM

        return GMM(**params)
    raise ValueError(f"unknown score method {method!r}; choose one of {SCORE_METHODS}")


@xr.register_dataset_accessor("score")
@xr.register_dataarray_accessor("score")
class ScoreAccessor(_Accessor):
    """``ds.score.fit(method=..., sigma=..., ...)`` -> ScoreModel."""

    def fit(self, method: str = "kgmm", sigma: float = 0.05, dim: str = "time", variables=None,
            seed=None, progress: bool = True, **options):
        """Fit a score model of the data's stationary density.

        ``method="kgmm"`` (default; options ``p_min`` or ``n_clusters``, ``tol``,
        ``max_passes``, interpolator settings, see :class:`xlangevin.KGMM`) or ``"gmm"`` (plain
        Gaussian-mixture baseline, :class:`xlangevin.GMM`). ``sigma`` is in standardized units.
        Returns a :class:`xlangevin.ScoreModel` callable on data shaped like this object.
        """
        estimator = score_estimator(method, sigma=sigma, dim=dim, variables=variables,
                                    seed=seed, progress=progress, **options)
        return estimator.fit(self._obj)


@xr.register_dataset_accessor("langevin")
@xr.register_dataarray_accessor("langevin")
class LangevinAccessor(_Accessor):
    """``ds.langevin.fit(score=..., ...)`` -> LangevinModel."""

    def fit(self, *args, **kwargs):
        raise NotImplementedError("Langevin-model fitting (generator, mobility, generation) is "
                                  "not implemented yet in this version of xlangevin")
