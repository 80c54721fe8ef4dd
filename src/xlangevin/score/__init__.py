"""Score functions ``s(x) = grad log p(x)``: the fitted model and its estimators.

* :mod:`.model` — :class:`ScoreModel` (callable on arrays, tensors and xarray; saved as groups);
* :mod:`.kgmm` — KGMM (:mod:`.cells`: per-cell noise averages; :mod:`.interpolate`: the MLP
  interpolator);
* :mod:`.gmm` — the plain Gaussian-mixture baseline; :mod:`.gaussian` — the Gaussian (linear)
  score of the LIM/AR(1) baselines;
* :mod:`.dsm` — denoising score matching;
* :mod:`.nets` — the networks (MLP, periodic 1-D U-Net);
* :mod:`.polynomial` — a polynomial log-density by implicit score matching (closed form);
* :mod:`.subspace` — nonlinear along the leading principal directions, Gaussian across the rest;
* :mod:`.spectral` — spectral score matching of a time-dependent score (:mod:`.spectral_basis`:
  the generator eigenfunctions; :mod:`.time_model`: :class:`TimeScoreModel` and its reverse-time
  sampler); :mod:`.ism` — the same by a network trained by implicit score matching;
* :mod:`.select` — ``"auto"``: the estimator chosen on a held-out block of the record.
"""

from .dsm import DSM
from .gaussian import Gaussian
from .gmm import GMM
from .ism import ISM, ISMStationary
from .kgmm import KGMM
from .model import NoiseToScore, ScoreModel, register_field
from .nets import MLP, UNet1d
from .polynomial import Polynomial
from .select import AutoScore
from .spectral import SpectralScore, SpectralStationary
from .subspace import LeadingSubspace
from .time_model import TimeScoreModel

__all__ = ["ScoreModel", "NoiseToScore", "register_field", "KGMM", "GMM", "DSM", "Gaussian",
           "Polynomial", "AutoScore", "LeadingSubspace", "MLP", "UNet1d", "SCORE_METHODS",
           "score_estimator", "SpectralScore", "SpectralStationary", "TimeScoreModel", "ISM",
           "ISMStationary"]

#: the score estimators by name (``ds.score.fit(method=...)``, ``EffectiveLangevin(score=...)``)
SCORE_ESTIMATORS = {"auto": AutoScore, "kgmm": KGMM, "gmm": GMM, "dsm": DSM,
                    "gaussian": Gaussian, "polynomial": Polynomial,
                    "spectral": SpectralStationary, "ism": ISMStationary}
SCORE_METHODS = tuple(SCORE_ESTIMATORS)


def score_estimator(method: str, **params):
    """The score estimator named ``method`` built with ``params``: ``None`` values leave its
    defaults, and a ``seed`` is dropped for an estimator without random draws (the Gaussian)."""
    if method not in SCORE_ESTIMATORS:
        raise ValueError(f"unknown score method {method!r}; choose one of {SCORE_METHODS}")
    cls = SCORE_ESTIMATORS[method]
    names = set(cls._param_names())
    unknown = sorted(k for k, v in params.items()
                     if k not in names and not (v is None or k == "seed"))
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(names)}")
    return cls(**{k: v for k, v in params.items() if k in names and v is not None})
