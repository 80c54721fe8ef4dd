"""xlangevin: score functions and effective Langevin models from stationary xarray time series."""

from ._version import __version__
from . import systems

__all__ = ["__version__", "systems"]
