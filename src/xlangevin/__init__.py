"""xlangevin: score functions and effective Langevin models from stationary xarray time series.

``import xlangevin`` registers the ``.score`` and ``.langevin`` accessors on xarray objects.
"""

from ._version import __version__
from . import accessors as _accessors  # noqa: F401  (registers the accessors)
from . import datasets, systems
from .data import DataError, FeatureSpace
from .diagnostics import compare, entropic_ot_distance
from .diffmap import DiffusionMap, DiffusionMapSampler, fit_subgrid_closure
from .dsm import DSM
from .gmm import GMM
from .io import open_model
from .kgmm import KGMM
from .langevin import EffectiveLangevin, LangevinModel
from .partition import BisectingPartition, Partition
from .score import ScoreModel

__all__ = ["__version__", "BisectingPartition", "DSM", "DataError", "DiffusionMap",
           "DiffusionMapSampler", "EffectiveLangevin", "FeatureSpace", "GMM", "KGMM",
           "LangevinModel", "Partition", "ScoreModel", "compare", "datasets",
           "entropic_ot_distance", "fit_subgrid_closure", "open_model", "systems"]
