"""Ground truth by perturbation: the response of a model to a kick, from paired ensembles.

Every member starts from a state of the unperturbed stationary law (the data states kept in the
model), is kicked by ``+eps u`` and by ``-eps u`` and integrated twice with the same noise
(the same ``seed``), so most of the noise cancels in the difference; the response of an
observable is the central difference

    R_A(t) = (<A(x_+(t))> - <A(x_-(t))>) / (2 eps),

the impulse response that :func:`~xlangevin.linear_response.response` estimates from the score, with
its Monte-Carlo standard error over the member pairs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..base import provenance
from ..data.timeaxis import duration_in_units, time_units
from ..dynamics import LangevinModel
from .fdt import evaluate_observables, forcing_directions, response_dataset
from .observables import observable_functions

__all__ = ["perturbation_response"]


def perturbation_response(model: LangevinModel, n_lags: int, dt, save_every: int = 1,
                          forcing=None, observables=("x",), eps: float = 0.1,
                          n_members: int = 1000, seed=None, backend="auto") -> xr.Dataset:
    """Impulse response of ``model`` to constant forcing directions (module docstring).

    Parameters
    ----------
    model : a fitted :class:`~xlangevin.LangevinModel`.
    n_lags, dt, save_every : ``n_lags`` responses every ``save_every`` steps of ``dt`` (as in
        ``model.generate``), after the kick at lag 0.
    forcing : None (a unit direction per feature) or direction(s) (d,) / (m, d), physical units.
    observables : as for :func:`~xlangevin.linear_response.response` (powers about the mean of the
        model's kept data states).
    eps : kick size along ``u`` in standard deviations of the data along ``u`` (default 0.1).
    n_members : member pairs.
    seed, backend : of the ensembles (the same seed for both members of a pair).

    Returns the Dataset of :func:`~xlangevin.linear_response.response` with ``response_stderr``.
    """
    U, u, _ = forcing_directions(forcing, model.dim)
    if u is not None:
        raise ValueError("perturbation_response takes constant forcing directions (a kick "
                         "x -> x + eps u); give an array")
    rng = np.random.default_rng(seed)
    space = model.space
    X0 = space.to_physical(model.samples[rng.integers(len(model.samples), size=int(n_members))])
    functions = observable_functions(observables, space.to_physical(model.samples).mean(0))
    labels = [str(v) for v in space.feature_labels()]
    run = dict(n_steps=int(n_lags) * int(save_every), dt=dt, save_every=save_every,
               n_members=int(n_members), seed=int(rng.integers(2**31)), progress=False,
               backend=backend, time_origin=0.0)
    out, err = [], []
    for direction in U:
        # the kick eps_u u moves the state by eps standard deviations along u
        eps_u = eps / max(np.linalg.norm(direction / space.scale), 1e-300)
        paths = []
        for sign in (1.0, -1.0):
            start = X0 + sign * eps_u * direction
            states = np.concatenate([start[:, None], _states(model.generate(init=start, **run),
                                                             space)], axis=1)
            paths.append(np.stack([evaluate_observables(functions, step, labels)[0]
                                   for step in states.transpose(1, 0, 2)], axis=1))
        diff = (paths[0] - paths[1]) / (2 * eps_u)                 # (member, lag, observable)
        out.append(diff.mean(0))
        err.append(diff.std(0, ddof=1) / np.sqrt(diff.shape[0]))
    names, components = evaluate_observables(functions, X0[:2], labels)[1:]
    lags = np.arange(int(n_lags) + 1) * sim_dt(model, dt) * int(save_every)
    attrs = provenance(None, score_method="perturbation", eps=float(eps),
                       n_members=int(n_members), method="paired kicked ensembles")
    ds = response_dataset(np.stack(out, axis=-1), lags, time_units(space), labels, names,
                          components, forcing, attrs)
    ds["response_stderr"] = (("lag", "observable", "forcing"), np.stack(err, axis=-1))
    return ds


def sim_dt(model, dt) -> float:
    """``dt`` as a number in the model's time units (a time delta converted)."""
    return float(duration_in_units(model.space.time, model.space.dt, dt, "dt"))


def _states(sim, space) -> np.ndarray:
    """Physical states (member, time, d) of a simulation shaped like the fitted data."""
    return np.stack([np.asarray(space.transform(sim.isel(member=i), standardize=False))
                     for i in range(sim.sizes["member"])])
