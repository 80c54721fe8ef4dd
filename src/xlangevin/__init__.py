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


def _numba_cache_dir(package_dir: str, home: str, tmp: str) -> str | None:
    """Where numba should cache compiled kernels when neither of its own places is writable
    (beside the package, or under ``~/.cache``: a read-only install on a node without a
    writable HOME, where ``cache=True`` would fail the import): a private folder in ``tmp``;
    None when numba can manage (or the user chose ``NUMBA_CACHE_DIR``)."""
    cache = _os.path.join(home, ".cache")
    writable = (_os.access(cache, _os.W_OK) if _os.path.isdir(cache)
                else _os.access(home, _os.W_OK))
    if "NUMBA_CACHE_DIR" in _os.environ or _os.access(package_dir, _os.W_OK) or writable:
        return None
    return _os.path.join(tmp, f"xlangevin-numba-{_os.getuid()}")


def _set_numba_cache_dir():
    import tempfile

    folder = _numba_cache_dir(_os.path.dirname(__file__), _os.path.expanduser("~"),
                              tempfile.gettempdir())
    if folder is not None:
        _os.environ["NUMBA_CACHE_DIR"] = folder


_set_numba_cache_dir()

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
