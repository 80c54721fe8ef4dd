"""The data layer: xarray <-> (n_samples, n_features) arrays (see :mod:`.space`; masks
:mod:`.mask`, EOF reduction :mod:`.eof`), the sample axis and its calendar (:mod:`.timeaxis`),
input checks (:mod:`.checks`) and what estimators receive (:mod:`.features`), delay embedding
(:mod:`.embed`)."""

from .checks import DataError, check_periodic_field, check_states, is_dask
from .embed import delay_embed
from .eof import EOF, EOFReduction
from .features import FeatureData, feature_data
from .space import FeatureSpace, VariableLayout

__all__ = ["EOF", "EOFReduction", "DataError", "FeatureData", "FeatureSpace", "VariableLayout",
           "check_periodic_field", "check_states", "delay_embed", "feature_data", "is_dask"]
