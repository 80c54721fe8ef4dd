r"""Automatic choice of the score estimator from a held-out block of the record.

Each candidate (the Gaussian, the polynomial log-density, GMM at a few widths, KGMM and DSM at
their defaults, their average, DSM along the leading principal direction) is fitted on
the first part of the record and scored on the last block (``holdout`` of the samples, one
contiguous block so that the time correlation of a record does not leak into the criterion) by
the implicit score-matching loss of Hyvärinen ("Estimation of non-normalized statistical models
by score matching", JMLR 6, 2005), in standardized units,

    J(s) = E_held-out[ |s(x)|^2 / 2 + div s(x) ]  = (1/2) E|s - grad log p|^2 + const,

which every score of the data's density minimizes, whatever its smoothing. A rough score (a GMM
of narrow width) has a loss of large variance on a few hundred held-out samples, so the choice
follows the one-standard-error rule: the first candidate, in the order of :data:`CANDIDATES`
(smooth and robust first), whose mean loss exceeds the lowest by less than the standard error
of their paired per-sample difference. It is refitted on the whole record; the losses, the
choice and the rule are stored in the model's ``attrs`` (``selection``, ``selection_losses``,
``selection_rule``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Flag, Interval, Seed, provenance
from .dsm import DSM
from .gaussian import Gaussian
from .gmm import GMM
from ..data.checks import require_samples
from .kgmm import KGMM, MIN_SAMPLES
from .polynomial import Polynomial
from .model import (ScoreModel, field_dtype, field_from_arrays, field_to_arrays,
                    register_field)
from .subspace import LeadingSubspace

__all__ = ["AutoScore", "AveragedField", "average_scores", "score_matching_loss"]

#: the candidates of ``score="auto"``, in the order of preference among equals (smooth and
#: robust first): (name, estimator class, fixed options)
CANDIDATES = (
    ("gaussian", Gaussian, {}),
    ("polynomial", Polynomial, {}),
    ("gmm(sigma=0.4)", GMM, {"sigma": 0.4, "max_samples": 20_000}),
    ("kgmm", KGMM, {}),
    ("dsm", DSM, {"device": "cpu"}),
    ("dsm on 1 PC + gaussian", LeadingSubspace,
     {"n_components": 1, "method": "dsm", "options": {"device": "cpu"}}),
    ("gmm(sigma=0.2)", GMM, {"sigma": 0.2, "max_samples": 20_000}),
    ("gmm(sigma=0.1)", GMM, {"sigma": 0.1, "max_samples": 20_000}),
)
#: the average tried when both of its members are candidates, before the first of them
AVERAGE = ("kgmm+dsm", ("kgmm", "dsm"))
#: below this many samples the record is short: every score is rough; say what to expect
SHORT_RECORD = 1000


def score_matching_loss(model: ScoreModel, X_std, max_samples: int = 5000) -> np.ndarray:
    """Per-sample ``|s~|^2 / 2 + div s~`` of ``model`` at the standardized states ``X_std``
    (at most ``max_samples`` of them, evenly spaced), by autodiff of the score field."""
    X = np.asarray(X_std, dtype=np.float64)
    X = X[np.linspace(0, len(X) - 1, min(len(X), max_samples)).astype(int)]
    field = model.field
    dtype = model.dtype
    out = []
    jac = torch.func.vmap(torch.func.jacrev(lambda v: field(v[None])[0]))
    # small batches: the Jacobian of a GMM over 10^4 centres holds batch x d x centres numbers
    for start in range(0, len(X), 64):
        x = torch.as_tensor(X[start:start + 64], dtype=dtype, device=model.device)
        with torch.no_grad():
            s = field(x)
        div = torch.diagonal(jac(x), dim1=1, dim2=2).sum(1)
        out.append((0.5 * (s.double() ** 2).sum(1) + div.double()).detach().cpu().numpy())
    return np.concatenate(out)


@register_field
class AveragedField(nn.Module):
    """The mean of several standardized score fields, ``s~ = (1/m) sum_j s~_j``."""

    def __init__(self, fields):
        super().__init__()
        self.members = nn.ModuleList(fields)

    def forward(self, x):
        return torch.stack([f(x.to(field_dtype(f))).to(x.dtype) for f in self.members]).mean(0)

    def to_arrays(self):
        parts = [field_to_arrays(f) for f in self.members]
        arrays = {f"{j}.{k}": v for j, (_, _, a) in enumerate(parts) for k, v in a.items()}
        return {"members": [[kind, config] for kind, config, _ in parts]}, arrays

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls([field_from_arrays(kind, cfg, {k.split(".", 1)[1]: v for k, v in
                                                   arrays.items() if k.split(".", 1)[0] == str(j)})
                    for j, (kind, cfg) in enumerate(config["members"])])


def average_scores(models, name: str) -> ScoreModel:
    """The score model whose field is the mean of ``models``' fields (same FeatureSpace);
    its ``sigma`` is the mean of theirs (the smoothing scales are of one size)."""
    sigma = float(np.mean([m.sigma for m in models]))
    attrs = {"members": json.dumps([m.method for m in models]),
             "member_sigmas": json.dumps([m.sigma for m in models])}
    return ScoreModel(AveragedField([m.field for m in models]), models[0].space, sigma, name,
                      attrs=attrs)


def one_standard_error_choice(losses: dict) -> str:
    """The first name (in the dict's order) whose mean loss is within one standard error of
    the paired difference from the lowest mean loss (per-sample ``losses``)."""
    means = {k: float(np.mean(v)) if np.all(np.isfinite(v)) else np.inf
             for k, v in losses.items()}
    best = min(means, key=means.get)
    for name, loss in losses.items():
        diff = np.asarray(loss) - np.asarray(losses[best])
        if np.all(np.isfinite(diff)) and diff.mean() <= diff.std() / np.sqrt(len(diff)):
            return name
    return best


class AutoScore(Estimator):
    """``score="auto"``: the score estimator chosen on held-out data (module docstring).

    Parameters
    ----------
    holdout : share of the record (its last block) held out for the criterion.
    candidates : names of :data:`CANDIDATES` to try (default all).
    dim, variables : data-layer options for xarray input.
    seed : seeds every candidate's fit; same seed -> same choice and model.
    progress : progress bars of the fits.
    """

    holdout: float = 0.2
    candidates: tuple | None = None
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = True

    _constraints = {"holdout": Interval(0.05, 0.5), "seed": Seed(), "progress": Flag()}

    def _check(self) -> None:
        known = [name for name, _, _ in CANDIDATES]
        unknown = sorted(set(self.candidates or ()) - set(known))
        if unknown or (self.candidates is not None and not self.candidates):
            raise ValueError(f"candidates must be a non-empty selection of {known}, got "
                             f"{self.candidates!r}")

    def sample_requirement(self) -> tuple:
        """``(fewest samples, why)``: with KGMM among the candidates, KGMM's minimum
        (:data:`~xlangevin.score.kgmm.MIN_SAMPLES`) on the training part of the record."""
        if self.candidates is None or "kgmm" in self.candidates:
            share = 1.0 - self.holdout
            return (math.ceil(MIN_SAMPLES / share - 1e-9),
                    f"score='auto' fits its candidates, KGMM among them, on the first "
                    f"{share:.0%} of the record, and KGMM needs {MIN_SAMPLES} samples (about 7 "
                    "cells of ~20); or choose candidates without 'kgmm'")
        return 20, "the candidates are compared on a held-out block of the record"

    def _fit(self, features) -> ScoreModel:
        features = features.in_memory()
        n = features.n_samples
        needed, why = self.sample_requirement()
        require_samples(n, needed, "AutoScore", why)
        if n < SHORT_RECORD:
            warnings.warn(f"a short record ({n} samples): the held-out choice of the score is "
                          "noisy and the score's tails are guesses; expect the model's "
                          "marginal to be right near the mode only", stacklevel=4)
        split = int(round(n * (1.0 - self.holdout)))
        train = replace(features, X=features.X[:split])
        held_out = features.X[split:]
        candidates = dict(self._candidates(features.n_features))
        trained = {}
        for name, make in candidates.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trained[name] = make().fit_features(train)
        trained = _with_average(trained)
        losses = {name: score_matching_loss(m, held_out) for name, m in trained.items()}
        # the average stands for its members (their held-out losses are reported, not chosen:
        # on a few hundred held-out samples the criterion cannot tell them apart reliably)
        members = AVERAGE[1] if AVERAGE[0] in losses else ()
        best = one_standard_error_choice({k: v for k, v in losses.items() if k not in members})
        if best == AVERAGE[0]:
            model = average_scores([candidates[m]().fit_features(features) for m in AVERAGE[1]],
                                   best)
        else:
            model = candidates[best]().fit_features(features)
        rule = (f"held-out implicit score-matching loss mean(|s|^2/2 + div s) (standardized "
                f"units) on the last {self.holdout:.0%} of the record ({n - split} samples), "
                f"candidates fitted on the first {split}; the first candidate within one "
                "standard error of the lowest")
        summary = {k: round(float(np.mean(v)), 6) for k, v in losses.items()}
        attrs = {**model.attrs, **provenance(self), "selection": best,
                 "selection_rule": rule, "selection_losses": json.dumps(summary)}
        return model._replace(attrs=attrs)

    def _candidates(self, d):
        """``[(name, factory of the estimator)]`` in the order of :data:`CANDIDATES` (the
        subspace candidate only for ``d > 1``: in one dimension it is DSM)."""
        chosen = self.candidates or [name for name, _, _ in CANDIDATES]
        out = []
        for name, cls, options in CANDIDATES:
            if name not in chosen or (cls is LeadingSubspace and d == 1):
                continue
            params = dict(options, progress=self.progress)
            if "seed" in cls._param_names():
                params["seed"] = self.seed
            out.append((name, lambda cls=cls, params=params: cls(**params)))
        return out


def _with_average(trained: dict) -> dict:
    """``trained`` with the average of :data:`AVERAGE`'s members inserted before the first of
    them, when both are there (the members stay, for the record of their losses)."""
    name, members = AVERAGE
    if not all(m in trained for m in members):
        return trained
    out = {}
    for key, model in trained.items():
        if key == members[0]:
            out[name] = average_scores([trained[m] for m in members], name)
        out[key] = model
    return out
