r"""``TimeScoreModel``: a time-dependent score ``s(t, x) = grad log rho_t(x)`` and its sampler.

``rho_t`` is the law at time ``t`` of the forward process on coordinates ``y = a * x~ + c``
(``x~`` the standardized state; ``a = 1, c = 0`` except for a periodic box, where ``y`` is an
angle): ``dY = -grad V(Y) dt + sqrt(2) dW``, ``Y_0`` the data, stationary density ``exp(-V)``.
Its time reversal (Anderson, "Reverse-time diffusion equation models", Stoch. Proc. Appl. 12,
1982), in the reverse time ``tau = T - t``, is

    dY = [grad V(Y) + 2 s_y(t, Y)] dtau + sqrt(2) dW,

and the probability-flow ODE with the same marginals (Song et al., "Score-based generative
modeling through stochastic differential equations", ICLR 2021) is

    dY/dtau = grad V(Y) + s_y(t, Y):

the forward Fokker-Planck flux is ``-rho (grad V + grad log rho)``. Started from ``exp(-V)`` at
``t = T``, both end near ``rho_0``. (The slides of Khoo, Peng & Oster write ``dW`` without the
``sqrt 2`` and ``s`` without the 2; with the ``sqrt 2`` noise of the forward process the
factors above are the consistent ones.) In physical units, ``s(t, x) = S^{-1} a * s_y``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch
import xarray as xr
from torch import nn

from .. import io
from ..base import Model, provenance
from ..data import FeatureSpace
from ..progress import bar
from .model import ScoreModel, field_from_arrays, field_to_arrays, register_field
from .spectral_basis import family_from_arrays

__all__ = ["TimeScoreModel", "FixedTimeField"]


@register_field
class FixedTimeField(nn.Module):
    """The standardized score ``s~(x~) = a * s_y(t, a * x~ + c)`` of a time field at one ``t``."""

    def __init__(self, field: nn.Module, t: float, scale, shift):
        super().__init__()
        self.field = field
        self.t = float(t)
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float64)))
        self.register_buffer("shift", torch.as_tensor(np.asarray(shift, dtype=np.float64)))

    def forward(self, x):
        y = x.to(torch.float64) * self.scale + self.shift
        return (self.field(self.t, y).to(torch.float64) * self.scale).to(x.dtype)

    def to_arrays(self):
        kind, config, arrays = field_to_arrays(self.field)
        return ({"t": self.t, "kind": kind, "config": config},
                {**{f"inner_{k}": v for k, v in arrays.items()},
                 "scale": self.scale.cpu().numpy(), "shift": self.shift.cpu().numpy()})

    @classmethod
    def from_arrays(cls, config, arrays):
        inner = field_from_arrays(config["kind"], config["config"],
                                  {k[6:]: v for k, v in arrays.items() if k.startswith("inner_")})
        return cls(inner, config["t"], arrays["scale"], arrays["shift"])


class TimeScoreModel(Model):
    """A fitted time-dependent score (module docstring).

    Parameters
    ----------
    field : torch module ``(t, y) -> s_y(t, y)`` on the forward-process coordinates.
    process : the forward process (a family of :mod:`.spectral_basis`: ``grad_potential``,
        ``stationary``).
    scale, shift : ``y = scale * x~ + shift`` per feature.
    space : the FeatureSpace of the fitted data.
    times : the time grid of the fit (``times[-1]`` is the horizon ``T``).
    method : the estimator's name.
    periodic : whether ``y`` are angles (samples are wrapped into ``[0, 2 pi)``).
    attrs : provenance.
    """

    def __init__(self, field, process, scale, shift, space: FeatureSpace, times, method: str,
                 attrs: dict | None = None, periodic: bool = False):
        self.field = field.eval()
        self.process = process
        self.scale = np.asarray(scale, dtype=np.float64)
        self.shift = np.asarray(shift, dtype=np.float64)
        self.space = space
        self.times = np.asarray(times, dtype=np.float64)
        self.method = method
        self.periodic = bool(periodic)
        self.attrs = {"method": method, **provenance(), **(attrs or {})}
        for p in self.field.parameters():
            p.requires_grad_(False)

    @property
    def dim(self) -> int:
        return self.space.n_features

    @property
    def horizon(self) -> float:
        return float(self.times[-1])

    def at(self, t: float = 0.0) -> ScoreModel:
        """The score ``s(t, .)`` at one time as a :class:`ScoreModel` (``t = 0``: the score of
        the data, usable by ``EffectiveLangevin(score=...)``)."""
        if not 0.0 <= float(t) <= self.horizon:
            raise ValueError(f"t must be in [0, {self.horizon:g}] (the fitted time grid), "
                             f"got {t!r}")
        return ScoreModel(FixedTimeField(self.field, t, self.scale, self.shift), self.space,
                          0.0, self.method, attrs={**self.attrs, "time": float(t)})

    def __call__(self, t: float, x):
        """``s(t, x)``: ``x`` as for :meth:`ScoreModel.__call__` (xarray in, xarray out)."""
        return self.at(t)(x)

    # ---------------------------------------------------------------------------------------
    def _score(self, t, Y, batch):
        out = np.empty_like(Y)
        with torch.no_grad():
            for start in range(0, len(Y), batch):
                yb = torch.as_tensor(Y[start:start + batch])
                out[start:start + batch] = self.field(t, yb).cpu().numpy()
        return out

    def sample(self, n: int, n_steps: int = 500, method: str = "sde", seed=None,
               progress: bool = True, batch_size: int = 65536, as_array: bool = False):
        """``n`` samples of the data's law by the reverse-time SDE (``method="sde"``) or the
        probability-flow ODE (``"ode"``), both by Heun's scheme (weak order 2 for the additive
        noise: predictor and corrector share the Gaussian kick), from ``exp(-V)`` at ``T``
        down to ``t = 0`` on ``n_steps`` geometrically shrinking steps (module docstring).
        Returns xarray shaped like the data (sample dim of length ``n``), or the physical
        (n, d) array with ``as_array``."""
        if method not in ("sde", "ode"):
            raise ValueError(f"method must be 'sde' or 'ode', got {method!r}")
        if int(n) < 1 or int(n_steps) < 1:
            raise ValueError(f"n and n_steps must be positive integers, got {n!r}, {n_steps!r}")
        rng = np.random.default_rng(seed)
        T = self.horizon
        ts = np.concatenate([np.geomspace(T, T * 1e-3, int(n_steps)), [0.0]])
        Y = self.process.stationary(int(n), rng)
        noise = 1.0 if method == "sde" else 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for k in bar(range(int(n_steps)), progress=progress, desc=f"reverse {method}"):
                h = ts[k] - ts[k + 1]
                kick = noise * np.sqrt(2 * h) * rng.standard_normal(Y.shape)
                f = self._drift(ts[k], Y, 1.0 + noise, batch_size)
                pred = Y + h * f + kick
                Y = Y + 0.5 * h * (f + self._drift(ts[k + 1], pred, 1.0 + noise, batch_size))
                Y = np.where(np.abs(Y) < 1e6, Y + kick, np.nan)
        lost = int(np.count_nonzero(~np.isfinite(Y).all(1)))
        if lost:
            warnings.warn(f"{lost} of {int(n)} samples diverged (the score expansion grows "
                          "outward far from the data) and are NaN: lower the basis order or "
                          "interaction, or use method='ode'", stacklevel=2)
        if self.periodic:
            Y = np.mod(Y, 2 * np.pi)
        X = self.space.to_physical((Y - self.shift) / self.scale)
        if as_array:
            return X
        out = self.space.inverse_transform(X, standardized=False)
        out.attrs.update({"description": f"reverse-time {method} samples", "method":
                          self.method, "seed": "None" if seed is None else str(seed),
                          "history": io.cf_history(
                              f"TimeScoreModel.sample(method={method!r}, seed={seed})",
                              self.space.data_attrs.get("history", ""))})
        return out

    def _drift(self, t, Y, weight, batch):
        """``grad V(Y) + weight * s_y(t, Y)``: weight 2 for the SDE, 1 for the ODE."""
        return self.process.grad_potential(Y) + weight * self._score(t, Y, batch)

    # ---------------------------------------------------------------------------------------
    def to_groups(self) -> dict:
        kind, config, arrays = field_to_arrays(self.field)
        pconfig, parrays = self.process.to_arrays()
        root = xr.Dataset({"times": ("time_grid", self.times), "scale": ("feature", self.scale),
                           "shift": ("feature", self.shift)},
                          attrs={"model_attrs": io.attrs_json(self.attrs), "method": self.method,
                                 "periodic": int(self.periodic),
                                 "process_config": json.dumps(pconfig)})
        return {"": root, "space": self.space.to_dataset(),
                "field": io.arrays_to_dataset(arrays, {"field_type": kind,
                                                       "field_config": json.dumps(config)}),
                "process": io.arrays_to_dataset(parrays, {})}

    @classmethod
    def from_groups(cls, groups):
        root = groups[""]
        fds = groups["field"]
        field = field_from_arrays(fds.attrs["field_type"], json.loads(fds.attrs["field_config"]),
                                  io.dataset_to_arrays(fds))
        process = family_from_arrays(json.loads(root.attrs["process_config"]),
                                     io.dataset_to_arrays(groups["process"]))
        return cls(field, process, root["scale"].values, root["shift"].values,
                   FeatureSpace.from_dataset(groups["space"]), root["times"].values,
                   root.attrs["method"], periodic=bool(root.attrs["periodic"]),
                   attrs={**json.loads(root.attrs["model_attrs"]),
                          "xlangevin_version": root.attrs["xlangevin_version"]})

    def __repr__(self):
        return (f"<TimeScoreModel method={self.method!r} d={self.dim} horizon={self.horizon:g} "
                f"variables={self.space.variables}>")
