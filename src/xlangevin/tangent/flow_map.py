r"""Learned flow maps ``F_nn(x_n) ~ x_{n+1}``: :class:`FlowMap` -> :class:`FlowMapModel`.

The map of one data step is learned in the standardized units of the data's FeatureSpace,
``G(x~) = x~ + net(x~)`` with an MLP or a residual network (torch), from the consecutive pairs
of a trajectory, by

* ``loss="mse"``: ``E |G(x~_n) - x~_{n+1}|^2``, or
* ``loss="jacobian"``: ``E |G(x~_n) - x~_{n+1}|^2 + lambda E |DG(x~_n) - DG_true(x~_n)|_F^2``,
  where ``DG_true = S^-1 DF S`` is the true map's Jacobian (``S = diag(scale)``) from a user
  callable ``jacobian(X) -> (n, d, d)`` in physical units, e.g. :func:`simulator_flow_map`.

Park, Yang & Chandramoorthy, "When are dynamical systems learned from time series data
statistically accurate?" (NeurIPS 2024) show that a small one-step error does not make the
learned map's invariant measure or Lyapunov exponents right (the directions transverse to the
attractor are not seen by the MSE loss), while matching the Jacobian as well does.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import xarray as xr
from torch import nn

from .. import io
from ..base import Estimator, Interval, Model, OneOf, Seed, Sizes, provenance
from ..data import DataError, FeatureSpace
from ..score.nets import MLP, Swish, network_from_arrays, network_to_arrays, register_network
from ..systems._sde import SDESystem
from . import engine

__all__ = ["FlowMap", "FlowMapModel", "ResNet", "simulator_flow_map"]


@register_network
class ResNet(nn.Module):
    """``d -> width``, ``n_blocks`` residual blocks ``h + W2 swish(W1 h)``, ``width -> d``."""

    def __init__(self, dim: int, width: int = 128, n_blocks: int = 2):
        super().__init__()
        self.dim, self.width, self.n_blocks = int(dim), int(width), int(n_blocks)
        self.inp = nn.Linear(self.dim, self.width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(self.width, self.width), Swish(),
                          nn.Linear(self.width, self.width)) for _ in range(self.n_blocks))
        self.out = nn.Linear(self.width, self.dim)
        self.act = Swish()

    def forward(self, x):
        h = self.act(self.inp(x))
        for block in self.blocks:
            h = h + block(h)
        return self.out(self.act(h))

    @property
    def config(self) -> dict:
        return {"type": "ResNet", "dim": self.dim, "width": self.width,
                "n_blocks": self.n_blocks}


def simulator_flow_map(system, dt: float, n_sub: int = 10, **params):
    """``(F, DF)``: the flow map of a simulator's drift over ``dt`` (``n_sub`` RK4 steps) and
    its Jacobian, callables on physical states (n, d) -> (n, d) and (n, d, d). ``system`` is a
    module of :mod:`xlangevin.systems` (``**params`` its parameters) or an ``SDESystem``."""
    spec = system if isinstance(system, SDESystem) else system.tangent_system(**params)
    if int(n_sub) < 1 or not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"need dt > 0 and n_sub >= 1, got {dt}, {n_sub}")
    h = float(dt) / int(n_sub)

    def run(X):
        X = np.ascontiguousarray(np.atleast_2d(np.asarray(X, dtype=np.float64)))
        Y, M = np.empty_like(X), np.empty(X.shape + X.shape[-1:])
        engine.rk4_propagate(spec.drift, spec.tangent, X, spec.params, h, int(n_sub), Y, M)
        return Y, M
    return (lambda X: run(X)[0]), (lambda X: run(X)[1])


def _network(kind, d, hidden):
    if kind == "mlp":
        return MLP(d, hidden)
    return ResNet(d, width=hidden[0], n_blocks=len(hidden))


def _jacobians(net, x):
    """``DG`` (n, d, d) of ``G(x) = x + net(x)`` by torch autodiff (differentiable)."""
    J = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0]))(x)
    return J + torch.eye(x.shape[1], dtype=x.dtype)


class FlowMap(Estimator):
    """Estimator of the one-step flow map of a trajectory (module docstring).

    Parameters
    ----------
    network : ``"mlp"`` (swish MLP with ``hidden`` widths) or ``"resnet"`` (width
        ``hidden[0]``, ``len(hidden)`` residual blocks); the map is ``x~ + net(x~)``.
    hidden : layer widths.
    loss : ``"mse"`` or ``"jacobian"`` (needs ``fit(data, jacobian=callable)``).
    jacobian_weight : lambda of the Jacobian term.
    epochs, batch_size, learning_rate : Adam with a cosine learning-rate decay to 1 %.
    n_keep : standardized data states kept in the model (initial states of orbits).
    dim, variables : the sample dim and the variables of xarray input.
    seed : seeds the weights and the batches.
    """

    network: str = "mlp"
    hidden: tuple = (128, 128)
    loss: str = "mse"
    jacobian_weight: float = 1.0
    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-3
    n_keep: int = 1000
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = False

    _constraints = {
        "network": OneOf(("mlp", "resnet")),
        "hidden": Sizes(),
        "loss": OneOf(("mse", "jacobian")),
        "jacobian_weight": Interval(0, None),
        "epochs": Interval(1, None, integer=True),
        "batch_size": Interval(1, None, integer=True),
        "learning_rate": Interval(0, None, closed="neither"),
        "n_keep": Interval(1, None, integer=True),
        "seed": Seed(),
    }

    def _data_options(self) -> dict:
        return {"sequences": True}

    def fit(self, data, jacobian=None):
        """Fit on a trajectory (xarray with sample dim ``dim``, or an (n, d) array: one step
        per row). ``jacobian(X) -> (n, d, d)``: the true one-step map's Jacobian at physical
        states, required by ``loss="jacobian"``."""
        return super().fit(data, jacobian=jacobian)

    def _pairs(self, features, jacobian):
        X = np.asarray(features.in_memory().X, dtype=np.float64)
        b = np.asarray(features.bounds if features.bounds is not None else [0, len(X)])
        idx = np.concatenate([np.arange(lo, hi - 1) for lo, hi in zip(b[:-1], b[1:])])
        if idx.size < 2:
            raise DataError("need at least 3 consecutive samples to learn a flow map")
        x, y = X[idx], X[idx + 1]
        if self.loss == "mse":
            return x, y, None
        if jacobian is None:
            raise ValueError("loss='jacobian' needs fit(data, jacobian=callable) returning the "
                             "true map's Jacobians (n, d, d) at physical states")
        from .maps import check_jacobians
        sp = features.space
        DF = check_jacobians(jacobian(sp.to_physical(x)), x.shape[1], "of the data")
        if DF.shape[0] != x.shape[0]:
            raise ValueError(f"jacobian returned {DF.shape[0]} matrices for {x.shape[0]} states")
        return x, y, DF * sp.scale[None, None, :] / sp.scale[None, :, None]

    def _fit(self, features, jacobian=None):
        x, y, DG = self._pairs(features, jacobian)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(int(rng.integers(2**62)))
        d = x.shape[1]
        net = _network(self.network, d, tuple(self.hidden)).double()
        history = _train(net, x, y, DG, self, rng)
        keep = x[rng.choice(len(x), min(self.n_keep, len(x)), replace=False)]
        attrs = provenance(self, network=self.network, hidden=list(self.hidden), loss=self.loss,
                           jacobian_weight=self.jacobian_weight, epochs=self.epochs,
                           final_loss=history[-1], n_pairs=len(x))
        return FlowMapModel(net.eval(), features.space, keep, attrs=attrs)


def _train(net, x, y, DG, est, rng):
    """Adam on the MSE (+ Jacobian) loss; returns the mean loss per epoch."""
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    D = None if DG is None else torch.from_numpy(DG)
    opt = torch.optim.Adam(net.parameters(), lr=est.learning_rate)
    n_batches = max(1, -(-len(x) // est.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, est.epochs * n_batches,
                                                       eta_min=0.01 * est.learning_rate)
    history = []
    for _ in range(est.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for b in range(n_batches):
            i = order[b * est.batch_size:(b + 1) * est.batch_size]
            loss = ((X[i] + net(X[i]) - Y[i]) ** 2).sum(1).mean()
            if D is not None:
                loss = loss + est.jacobian_weight * ((_jacobians(net, X[i]) - D[i]) ** 2
                                                     ).sum((1, 2)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        history.append(total / n_batches)
    return history


class FlowMapModel(Model):
    """A learned one-step map ``x_{n+1} = F(x_n)`` (physical units; one data step ``dt``).

    ``net`` (torch, float64) gives ``G(x~) = x~ + net(x~)`` in the standardized units of
    ``space``; ``samples`` are kept standardized data states.
    """

    def __init__(self, net: nn.Module, space: FeatureSpace, samples, attrs=None):
        self.net = net.eval()
        self.space = space
        self.samples = np.ascontiguousarray(samples, dtype=np.float64)
        if self.samples.ndim != 2 or self.samples.shape[1] != space.n_features:
            raise ValueError(f"samples must have shape (n, {space.n_features})")
        self.dt = float(space.dt)
        self.attrs = dict(attrs or {})

    @property
    def dim(self) -> int:
        return self.space.n_features

    def _std(self, X):
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.dim:
            raise DataError(f"expected states of shape (n, {self.dim}), got {X.shape}")
        return torch.from_numpy(np.ascontiguousarray(self.space.to_standard(X)))

    def step(self, X):
        """``F(x)`` at physical states (n, d)."""
        with torch.no_grad():
            z = self._std(X)
            return self.space.to_physical((z + self.net(z)).numpy())

    def step_jacobian(self, X):
        """``DF(x) = S DG(x~) S^-1`` (n, d, d) at physical states, by autodiff."""
        with torch.no_grad():
            J = _jacobians(self.net, self._std(X)).numpy()
        s = self.space.scale
        return J * s[None, :, None] / s[None, None, :]

    def orbit(self, x0, n_steps: int):
        """The ``n_steps`` states after ``x0`` (d,) (physical), as an array (n_steps, d)."""
        out = np.empty((int(n_steps), self.dim))
        with torch.no_grad():
            z = self._std(x0)
            for i in range(int(n_steps)):
                z = z + self.net(z)
                out[i] = z[0].numpy()
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("the learned map's orbit became non-finite")
        return self.space.to_physical(out)

    def default_state(self):
        return self.space.to_physical(self.samples[:1])[0]

    def generate(self, n_steps: int, n_members: int = 1, init=None, seed=None):
        """Orbits of ``n_steps`` map steps from ``init`` (physical, (d,) or (n_members, d)) or
        from kept data states drawn with ``seed``; xarray like the fitted data with dims
        (member, sample dim)."""
        if init is None:
            rng = np.random.default_rng(seed)
            init = self.space.to_physical(
                self.samples[rng.integers(len(self.samples), size=int(n_members))])
        init = np.broadcast_to(np.atleast_2d(np.asarray(init, float)), (int(n_members), self.dim))
        X = np.stack([self.orbit(x, n_steps) for x in init])
        return self.space.inverse_transform(X, standardized=False, dims=("member",
                                            self.space.sample_dim), attrs={
            "title": "orbits of a learned flow map", "n_steps": int(n_steps),
            "seed": "None" if seed is None else str(seed),
            "history": io.cf_history(f"FlowMapModel.generate(n_steps={n_steps}, seed={seed})",
                                     self.space.data_attrs.get("history", ""))})

    def lyapunov(self, n_exponents=None, **kwargs) -> xr.Dataset:
        """The map's Lyapunov spectrum per model time unit (:func:`xlangevin.lyapunov`)."""
        from .lyapunov import lyapunov
        return lyapunov(self, n_exponents, **kwargs)

    def to_groups(self) -> dict:
        config, arrays = network_to_arrays(self.net)
        return {"": xr.Dataset(attrs={"model_attrs": io.attrs_json(self.attrs)}),
                "space": self.space.to_dataset(),
                "net": io.arrays_to_dataset(arrays, {"config": json.dumps(config)}),
                "samples": xr.Dataset({"samples": (("sample", "feature"), self.samples)})}

    @classmethod
    def from_groups(cls, groups):
        arrays = io.dataset_to_arrays(groups["net"])
        net = network_from_arrays(json.loads(groups["net"].attrs["config"]), arrays).double()
        net.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})  # float64
        return cls(net, FeatureSpace.from_dataset(groups["space"]),
                   groups["samples"]["samples"].values,
                   attrs=json.loads(groups[""].attrs["model_attrs"]))

    def __repr__(self):
        return (f"<FlowMapModel {type(self.net).__name__} d={self.dim} dt={self.dt:g} "
                f"loss={self.attrs.get('loss', '?')!r}>")
