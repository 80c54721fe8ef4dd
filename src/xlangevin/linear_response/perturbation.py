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

import inspect

import numpy as np
import xarray as xr

from ..base import provenance
from ..data.timeaxis import duration_in_units, time_units
from ..dynamics import LangevinModel
from .fdt import evaluate_observables, forcing_directions, response_dataset
from .observables import observable_functions

__all__ = ["perturbation_response"]


def perturbation_response(target, n_lags: int, dt, save_every: int = 1, forcing=None,
                          observables=("x",), eps: float = 0.1, n_members: int = 1000,
                          seed=None, backend="auto", variable: str = "x",
                          **system_params) -> xr.Dataset:
    """Impulse response of ``target`` to constant forcing directions (module docstring).

    Parameters
    ----------
    target : a fitted :class:`~xlangevin.LangevinModel` (members start from its kept data
        states), or a simulator of :mod:`xlangevin.systems` (``double_well``, ``triad``,
        ``potential``, ``ou``, ``lorenz96``, ...): members start from its states after its
        default burn-in, ``system_params`` go to its ``simulate``, and only its variable
        ``variable`` is kicked and observed (the two-scale Lorenz-96's fast ``y`` are carried
        along unkicked).
    n_lags, dt, save_every : ``n_lags`` responses every ``save_every`` steps of ``dt`` (as in
        ``model.generate`` / ``simulate``), after the kick at lag 0.
    forcing : None (a unit direction per feature) or direction(s) (d,) / (m, d), physical units.
    observables : as for :func:`~xlangevin.linear_response.response` (powers about the mean of
        the unperturbed initial states).
    eps : kick size along ``u`` in standard deviations of the initial states along ``u``
        (default 0.1).
    n_members : member pairs.
    seed, backend : of the ensembles (the same noise for both members of a pair); ``backend``
        for a LangevinModel only.

    Returns
    -------
    xr.Dataset
        The Dataset of :func:`~xlangevin.linear_response.response` with ``response_stderr``.
    """
    rng = np.random.default_rng(seed)
    runner = (_ModelRunner(target, dt, save_every, n_lags, backend)
              if isinstance(target, LangevinModel)
              else _SystemRunner(target, dt, save_every, n_lags, variable, system_params))
    full = runner.initial_states(int(n_members), rng)
    X0 = runner.observe(full)
    U, u, _ = forcing_directions(forcing, X0.shape[1])
    if u is not None:
        raise ValueError("perturbation_response takes constant forcing directions (a kick "
                         "x -> x + eps u); give an array")
    functions = observable_functions(observables, X0.mean(0))
    noise_seed = int(rng.integers(2**31))
    scale = X0.std(0)
    out, err = [], []
    for direction in U:
        # the kick eps_u u moves the state by eps standard deviations along u
        eps_u = eps / max(np.linalg.norm(direction / scale), 1e-300)
        paths = []
        for sign in (1.0, -1.0):
            start = full + sign * runner.embed(eps_u * direction)
            states = np.concatenate([runner.observe(start)[:, None],
                                     runner.run(start, noise_seed)], axis=1)
            paths.append(np.stack([evaluate_observables(functions, step, runner.labels)[0]
                                   for step in states.transpose(1, 0, 2)], axis=1))
        diff = (paths[0] - paths[1]) / (2 * eps_u)                 # (member, lag, observable)
        out.append(diff.mean(0))
        err.append(diff.std(0, ddof=1) / np.sqrt(diff.shape[0]))
    names, components = evaluate_observables(functions, X0[:2], runner.labels)[1:]
    attrs = provenance(None, score_method="perturbation", eps=float(eps),
                       n_members=int(n_members), method="paired kicked ensembles")
    ds = response_dataset(np.stack(out, axis=-1), np.arange(int(n_lags) + 1) * runner.lag_step,
                          runner.units, runner.labels, names, components, forcing, attrs)
    ds["response_stderr"] = (("lag", "observable", "forcing"), np.stack(err, axis=-1))
    return ds


class _ModelRunner:
    """Paired members of a LangevinModel: physical states (member, time, d)."""

    def __init__(self, model, dt, save_every, n_lags, backend):
        self.model, self.space = model, model.space
        dt = float(duration_in_units(self.space.time, self.space.dt, dt, "dt"))
        self.run_args = dict(n_steps=int(n_lags) * int(save_every), dt=dt,
                             save_every=int(save_every), progress=False, backend=backend,
                             time_origin=0.0)
        self.lag_step = dt * int(save_every)
        self.units = time_units(self.space)
        self.labels = [str(v) for v in self.space.feature_labels()]

    def initial_states(self, n, rng):
        samples = self.model.samples
        return self.space.to_physical(samples[rng.integers(len(samples), size=n)])

    def observe(self, states):
        return states

    def embed(self, kick):
        return kick

    def run(self, init, seed):
        sim = self.model.generate(init=init, n_members=len(init), seed=seed, **self.run_args)
        return np.stack([np.asarray(self.space.transform(sim.isel(member=i), standardize=False))
                         for i in range(sim.sizes["member"])])


class _SystemRunner:
    """Paired members of a simulator of :mod:`xlangevin.systems`. Its state (its ``x0``) is
    the concatenation of its output variables, flattened in order (e.g. the two-scale
    Lorenz-96's slow ``x`` then fast ``y``); ``variable`` is the observed, kicked part."""

    def __init__(self, system, dt, save_every, n_lags, variable, params):
        if not callable(getattr(system, "simulate", None)):
            raise TypeError(f"target must be a LangevinModel or a simulator of "
                            f"xlangevin.systems, got {type(system).__name__}")
        self.system, self.variable, self.params = system, variable, dict(params)
        accepts = inspect.signature(system.simulate).parameters
        if "save_every" not in accepts and int(save_every) != 1:
            raise ValueError(f"{system.__name__}.simulate samples every dt exactly (no "
                             "save_every): give save_every=1")
        self.run_args = {k: v for k, v in dict(n_samples=int(n_lags), dt=float(dt),
                                                 save_every=int(save_every), burn_in=0.0,
                                                 progress=False).items() if k in accepts}
        self.lag_step = float(dt) * int(save_every)
        self.units = "time units of the system"
        self.labels = self.span = self.size = None

    def _full(self, ds):
        """(member, time, D) states: the time-dependent variables flattened and joined."""
        if self.variable not in ds:
            raise ValueError(f"the simulator has no variable {self.variable!r}; its "
                             f"variables are {list(ds.data_vars)}")
        parts, start = [], 0
        for name, da in ds.data_vars.items():
            if "time" not in da.dims:
                continue
            da = da.transpose("member", "time", ...)
            part = np.asarray(da).reshape(da.sizes["member"], da.sizes["time"], -1)
            if name == self.variable and self.span is None:
                self.span = slice(start, start + part.shape[2])
                self.labels = _labels(da)
            parts.append(part)
            start += part.shape[2]
        return np.concatenate(parts, axis=2)

    def observe(self, states):
        return states[..., self.span]

    def embed(self, kick):
        full = np.zeros(self.size)
        full[self.span] = kick
        return full

    def initial_states(self, n, rng):
        ds = self.system.simulate(n_samples=1, n_members=n, seed=int(rng.integers(2**31)),
                                  progress=False, **self.params)
        full = self._full(ds)[:, -1]
        self.size = full.shape[1]
        return full

    def run(self, init, seed):
        x0 = init[:, 0] if init.shape[1] == 1 else init
        ds = self.system.simulate(n_members=len(init), x0=x0, seed=seed, **self.run_args,
                                  **self.params)
        return self.observe(self._full(ds))


def _labels(da) -> list:
    """Feature labels of a (member, time, ...) variable in the data layer's style, ``x[k=2]``
    (:meth:`~xlangevin.data.FeatureSpace.feature_labels`), so that the labels of a simulator's
    response match those of its data."""
    dims = list(da.dims[2:])
    if not dims:
        return [str(da.name)]
    coords = [da[d].values if d in da.coords else np.arange(da.sizes[d]) for d in dims]
    return [f"{da.name}[" + ", ".join(f"{d}={c[i]}" for d, c, i in zip(dims, coords, idx)) + "]"
            for idx in np.ndindex(*[da.sizes[d] for d in dims])]
