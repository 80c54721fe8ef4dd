"""Simulators of the benchmark systems (METHODS.md §6), each returning a labeled ``xr.Dataset``.

Each system is a module with ``simulate(...)`` and its exact functions (``drift`` and, where
known, ``score`` and ``density``) acting on arrays of shape (n, d), for tests and as oracles;
:mod:`.manifolds` holds the static example data of the diffusion-map sampler paper.
"""

from . import double_well
from . import ginzburg_landau
from . import gridded
from . import ks
from . import lorenz63, lorenz96, manifolds, ou, potential, slowfast, triad

__all__ = ["double_well", "ginzburg_landau", "gridded", "ks", "lorenz63", "lorenz96", "manifolds",
           "ou", "potential", "slowfast", "triad"]
