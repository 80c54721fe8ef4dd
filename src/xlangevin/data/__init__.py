"""The data layer: xarray <-> (n_samples, n_features) arrays (see :mod:`.space`), the sample
axis and its calendar (:mod:`.timeaxis`), input checks (:mod:`.checks`) and what estimators
receive (:mod:`.features`)."""

from .checks import DataError, check_periodic_field, check_states, is_dask
from .features import FeatureData, feature_data
from .space import FeatureSpace, VariableLayout

__all__ = ["DataError", "FeatureData", "FeatureSpace", "VariableLayout", "check_periodic_field",
           "check_states", "feature_data", "is_dask"]
