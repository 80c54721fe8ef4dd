"""Linear response: from the score (fluctuation-dissipation) and by perturbation ensembles.

* :mod:`.fdt` — :func:`response`: ``R(t) = -Cov(A(x(t)), div u + u . s(x(0)))`` from a record
  and a score (or the quasi-Gaussian approximation); :func:`forced_response`: the response of
  the means to a forcing history (step, periodic) by convolution with ``R``;
* :mod:`.perturbation` — :func:`perturbation_response`: the ground truth of a
  :class:`~xlangevin.LangevinModel` (or any model with its ``generate``) from paired kicked
  ensembles;
* :mod:`.observables` — the observables (``"x"``, ``"x**k"``, callables).
"""

from .fdt import forced_response, response
from .observables import OBSERVABLE_NAMES
from .perturbation import perturbation_response

__all__ = ["response", "forced_response", "perturbation_response", "OBSERVABLE_NAMES"]
