"""xlangevin: score functions and effective Langevin models from stationary xarray time series.

``import xlangevin`` registers the ``.score`` and ``.langevin`` accessors on xarray objects.
"""

import os as _os

# OpenMP thread pools (numba's "omp" threading layer, torch's intra-op pool) spin-wait after
# every parallel region by default; on a few cores the spinning pool of one starves the other
# (measured on 2 cores: torchsde 70x slower, the numba Euler-Maruyama kernel 1.6x slower).
# Passive waiting is read when the OpenMP runtime loads, so this only helps when xlangevin is
# imported before numba / torch start it; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from . import accessors as _accessors  # noqa: F401  (registers the accessors)
from . import datasets, systems
from .analysis import compare, compare_fields, entropic_ot_distance, field_maps, plot
from .data import EOF, DataError, FeatureSpace, delay_embed
from .dynamics import EffectiveLangevin, LangevinModel, lim, lim_operators
from .io import open_model
from .partition import BisectingPartition, Partition
from .linear_response import perturbation_response, response
from .samplers import DiffusionMap, DiffusionMapSampler, fit_subgrid_closure
from .score import DSM, GMM, KGMM, ScoreModel
from .score import ISM, SpectralScore, TimeScoreModel
from .tangent import (FlowMap, FlowMapModel, kaplan_yorke, lyapunov,
                      physical_measure_report)

__all__ = ["__version__", "BisectingPartition", "DSM", "DataError", "DiffusionMap",
           "DiffusionMapSampler", "EOF", "EffectiveLangevin", "FeatureSpace", "GMM", "KGMM",
           "LangevinModel", "Partition", "ScoreModel", "compare", "compare_fields", "datasets",
           "delay_embed", "entropic_ot_distance", "field_maps", "fit_subgrid_closure", "lim",
           "lim_operators", "open_model", "perturbation_response", "plot", "response", "systems",
           "kaplan_yorke", "lyapunov", "FlowMap", "FlowMapModel", "physical_measure_report",
           "SpectralScore", "TimeScoreModel", "ISM"]
