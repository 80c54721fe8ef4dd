"""``.score`` and ``.langevin`` accessors on xarray Datasets and DataArrays.

Accessors hold only the wrapped object (xarray caches accessor instances, so no fitted state is
kept here); they convert and delegate. The estimators land with the KGMM issue (score) and the
generator/mobility issue (langevin); until then ``fit`` says so.
"""

from __future__ import annotations

import xarray as xr

from .data import FeatureSpace


class _Accessor:
    _what = ""
    _issue = ""

    def __init__(self, obj):
        self._obj = obj

    def feature_space(self, dim: str = "time", variables=None, **kwargs) -> FeatureSpace:
        """The :class:`~xlangevin.data.FeatureSpace` this object would be fitted in."""
        return FeatureSpace.fit(self._obj, dim=dim, variables=variables, **kwargs)

    def fit(self, *args, **kwargs):
        raise NotImplementedError(f"{self._what} fitting is not implemented yet in this version "
                                  f"of xlangevin ({self._issue})")


@xr.register_dataset_accessor("score")
@xr.register_dataarray_accessor("score")
class ScoreAccessor(_Accessor):
    """``ds.score.fit(method=..., sigma=..., ...)`` -> ScoreModel."""

    _what = "score"
    _issue = "the KGMM estimator is the next milestone"


@xr.register_dataset_accessor("langevin")
@xr.register_dataarray_accessor("langevin")
class LangevinAccessor(_Accessor):
    """``ds.langevin.fit(score=..., ...)`` -> LangevinModel."""

    _what = "Langevin-model"
    _issue = "the generator/mobility estimator follows the score estimators"
