"""Score functions ``s(x) = grad log p(x)``: the fitted model and its estimators.

* :mod:`.model` — :class:`ScoreModel` (callable on arrays, tensors and xarray; saved as groups);
* :mod:`.kgmm` — KGMM (:mod:`.cells`: per-cell noise averages; :mod:`.interpolate`: the MLP
  interpolator);
* :mod:`.gmm` — the plain Gaussian-mixture baseline;
* :mod:`.dsm` — denoising score matching;
* :mod:`.nets` — the networks (MLP, periodic 1-D U-Net).
"""

from .dsm import DSM
from .gmm import GMM
from .kgmm import KGMM
from .model import NoiseToScore, ScoreModel, register_field
from .nets import MLP, UNet1d

__all__ = ["ScoreModel", "NoiseToScore", "register_field", "KGMM", "GMM", "DSM", "MLP",
           "UNet1d", "SCORE_METHODS", "score_estimator"]

#: the score estimators by name (``ds.score.fit(method=...)``, ``EffectiveLangevin(score=...)``)
SCORE_ESTIMATORS = {"kgmm": KGMM, "gmm": GMM, "dsm": DSM}
SCORE_METHODS = tuple(SCORE_ESTIMATORS)


def score_estimator(method: str, **params):
    """The score estimator named ``method`` built with ``params``."""
    if method not in SCORE_ESTIMATORS:
        raise ValueError(f"unknown score method {method!r}; choose one of {SCORE_METHODS}")
    return SCORE_ESTIMATORS[method](**params)
