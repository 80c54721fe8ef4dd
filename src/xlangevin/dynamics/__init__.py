"""Dynamics: from data and a score to an effective Langevin model and its ensembles.

* :mod:`.transitions` — transition counts and the finite-volume rate matrix;
* :mod:`.cdot` — estimators of ``Cdot(0)`` (lagged, matrix log, finite volume);
* :mod:`.mobility` — ``Phi = Cdot V^{-1}``, its parts and ``Sigma``;
* :mod:`.current` — the state-dependent current velocity ``v(x)``;
* :mod:`.drift` — scores and drifts in the model's standardized units;
* :mod:`.integrate` — noise streams, the chunked Euler-Maruyama loop, the output writer;
* :mod:`.model` — :class:`LangevinModel`; :mod:`.langevin` — :class:`EffectiveLangevin`;
* :mod:`.baselines` — the linear inverse model (LIM) and AR(1): :func:`lim`, :func:`lim_operators`.
"""

from .baselines import lim, lim_operators
from .integrate import BlowUpError
from .langevin import CDOT_ESTIMATORS, EffectiveLangevin
from .model import LangevinModel

__all__ = ["EffectiveLangevin", "LangevinModel", "BlowUpError", "CDOT_ESTIMATORS", "lim",
           "lim_operators"]
