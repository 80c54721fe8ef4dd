"""``ScoreModel``: a fitted score ``s(x) = grad log p(x)``, callable on arrays, tensors and xarray.

The model holds a torch module ``field`` that maps STANDARDIZED states ``x~`` (n, d) to the
standardized score ``s~(x~)`` and the :class:`~xlangevin.data.FeatureSpace` of the fitted data.
Users see physical units: ``s(x) = S^{-1} s~(S^{-1}(x - m))`` (METHODS.md §0); the divergence and
Jacobian come from automatic differentiation of the field:
``ds_i/dx_j = (ds~_i/dx~_j) / (S_i S_j)`` and ``div s = sum_i (ds~_i/dx~_i) / S_i^2``.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
import xarray as xr
from torch import nn

from .. import io
from ..base import Model, provenance
from ..data import DataError, FeatureSpace, check_states
from .nets import network_from_arrays, network_to_arrays

__all__ = ["ScoreModel", "NoiseToScore", "register_field", "field_dtype",
           "field_to_arrays", "field_from_arrays"]

_FIELDS = {}


def register_field(cls):
    """Make a score-field class savable: it needs ``to_arrays() -> (config, arrays)`` and
    ``from_arrays(config, arrays)`` (classmethod)."""
    _FIELDS[cls.__name__] = cls
    return cls


def field_dtype(field: nn.Module) -> torch.dtype:
    """The dtype a field computes in: that of its first parameter (or buffer), else float32."""
    for t in list(field.parameters()) + list(field.buffers()):
        return t.dtype
    return torch.float32


def field_to_arrays(field: nn.Module):
    """``(kind, config, arrays)`` of a registered score field (no pickle)."""
    kind = type(field).__name__
    if kind not in _FIELDS or not hasattr(field, "to_arrays"):
        raise TypeError(f"a score field of type {kind} cannot be saved; only fields made by "
                        "xlangevin estimators can (wrap plain callables again after loading)")
    config, arrays = field.to_arrays()
    return kind, config, arrays


def field_from_arrays(kind: str, config, arrays) -> nn.Module:
    """Inverse of :func:`field_to_arrays` (fields nest: a field may hold another)."""
    if kind not in _FIELDS:
        raise io.ModelFileError(f"unknown score field type {kind!r} in the file")
    return _FIELDS[kind].from_arrays(config, arrays)


@register_field
class NoiseToScore(nn.Module):
    """Score field from a noise predictor ``eps(x~) ~= E[z | x~]``: ``s~ = -eps(x~) / sigma``."""

    def __init__(self, net: nn.Module, sigma: float):
        super().__init__()
        self.net = net
        self.sigma = float(sigma)

    def forward(self, x):
        return -self.net(x) / self.sigma

    @property
    def floats_per_row(self) -> int:
        return int(getattr(self.net, "floats_per_row", 0) or 0)

    def to_arrays(self):
        config, arrays = network_to_arrays(self.net)
        return {"sigma": self.sigma, "net": config}, arrays

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(network_from_arrays(config["net"], arrays), config["sigma"])


def _is_xarray(x) -> bool:
    return isinstance(x, (xr.DataArray, xr.Dataset))


class ScoreModel(Model):
    """A fitted score function (see module docstring).

    Parameters
    ----------
    field : torch module, standardized state -> standardized score.
    space : the FeatureSpace of the fitted data (owns the mean/scale maps).
    sigma : the smoothing scale in standardized units the score was estimated at (the model is
        the score of ``p_sigma = p * N(0, sigma^2 I)``); 0 for an exact score.
    method : name of the estimator ("kgmm", "gmm", "dsm", ...).
    cells : optional xr.Dataset of the per-cell estimates (KGMM).
    attrs : provenance (parameters, package version, data summary).
    batch_size : number of states evaluated at once; default: as many as keep the network's
        activations near ``EVAL_MEMORY`` bytes (a symmetrized U-Net needs ~0.2 MB a state, so
        a fixed 65536 would take >10 GB), at most 65536.
    history : training history of the estimator (per-pass / per-epoch arrays; not saved).

    Notes
    -----
    The model is immutable; :meth:`to` returns a copy on another device.
    """

    #: activation memory of one evaluation batch (bytes) when ``batch_size`` is not given
    EVAL_MEMORY = 1 << 29

    def __init__(self, field: nn.Module, space: FeatureSpace, sigma: float, method: str,
                 cells: xr.Dataset | None = None, attrs: dict | None = None,
                 batch_size: int | None = None, history: dict | None = None):
        self.field = field.eval()
        self.space = space
        self.sigma = float(sigma)
        self.method = method
        self.cells = cells
        self.attrs = {"method": method, "sigma": self.sigma, **provenance(), **(attrs or {})}
        self._batch_size = None if batch_size is None else int(batch_size)
        self.history = history
        for p in self.field.parameters():
            p.requires_grad_(False)

    # ---------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """States per evaluation batch (sized from the network as it is now, so switching a
        U-Net's ``symmetrize`` on after fitting shrinks the batches)."""
        if self._batch_size is not None:
            return self._batch_size
        per_row = 4 * int(getattr(self.field, "floats_per_row", 0) or 0)
        return 65536 if per_row == 0 else int(np.clip(self.EVAL_MEMORY // per_row, 256, 65536))

    @property
    def dim(self) -> int:
        return self.space.n_features

    @property
    def device(self) -> torch.device:
        for p in self.field.parameters():
            return p.device
        for b in self.field.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return field_dtype(self.field)

    def to(self, device) -> "ScoreModel":
        """A copy of the model with its field on ``device`` (e.g. "cuda", "cpu")."""
        return self._replace(field=copy.deepcopy(self.field).to(device))

    def _consts(self, device, dtype):
        mean = torch.tensor(self.space.mean, device=device, dtype=dtype)
        scale = torch.tensor(self.space.scale, device=device, dtype=dtype)
        return mean, scale

    # ---------------------------------------------------------------------------------------
    def standardized(self, x_std: torch.Tensor) -> torch.Tensor:
        """The standardized score ``s~(x~)`` on a tensor (no unit maps, keeps autograd)."""
        return self.field(x_std)

    def _physical_tensor(self, x: torch.Tensor) -> torch.Tensor:
        mean, scale = self._consts(x.device, x.dtype)
        xs = ((x - mean) / scale).to(self.dtype)
        return self.field(xs).to(x.dtype) / scale

    def _evaluate(self, X: np.ndarray, fn) -> np.ndarray:
        """Apply ``fn`` (standardized tensor batch -> tensor) to physical ``X`` in batches."""
        out = []
        Xs = self.space.to_standard(X)
        batch = self.batch_size
        for start in range(0, Xs.shape[0], batch):
            xb = torch.as_tensor(Xs[start:start + batch], dtype=self.dtype,
                                 device=self.device)
            out.append(fn(xb).detach().cpu().numpy().astype(np.float64))
        if not out:
            return np.empty((0,))
        return np.concatenate(out, axis=0)

    def _apply(self, x, fn, post, out_kind):
        """Shared plumbing: input type -> physical array -> fn -> output of the input's type."""
        if isinstance(x, torch.Tensor):
            values = self._apply(x.detach().cpu().numpy(), fn, post, out_kind)
            return torch.as_tensor(values, dtype=x.dtype, device=x.device)
        if _is_xarray(x):
            X = self.space.transform(x, standardize=False)
            X = np.asarray(X)
            if not np.all(np.isfinite(X)):
                raise DataError("non-finite values in the input")
            values = post(self._evaluate(X, fn))
            return self._to_xarray(x, values, out_kind)
        X, single = check_states(x, self.dim)
        values = post(self._evaluate(X, fn))
        return values[0] if single else values

    def _to_xarray(self, like, values, kind):
        lead, shape, coords = self.space.lead_layout(like)
        if kind == "state":
            out = self.space.states_like(values, like)
            name = "score"
            if isinstance(out, xr.DataArray):
                out = out.rename(f"score_{like.name}" if like.name else name)
                out.attrs = {"long_name": f"score of {like.name}", "units": _inverse_units(like)}
            else:
                for v in out.data_vars:
                    out[v].attrs = {"long_name": f"score component of {v}",
                                    "units": _inverse_units(like[v])}
            out.attrs = {"description": "score grad log p in physical units",
                         "sigma": self.sigma, "method": self.method}
            return self.space.match_input(out, like)
        if kind == "scalar":
            return xr.DataArray(values.reshape(shape), dims=lead, coords=coords,
                                name="divergence",
                                attrs={"long_name": "divergence of the score"})
        coords.update(self.space.feature_coords("feature_i"))
        coords.update(self.space.feature_coords("feature_j"))
        return xr.DataArray(values.reshape(shape + (self.dim, self.dim)),
                            dims=lead + ["feature_i", "feature_j"], coords=coords,
                            name="jacobian",
                            attrs={"long_name": "Jacobian d s_i / d x_j of the score"})

    # ---------------------------------------------------------------------------------------
    def __call__(self, x):
        """Score at ``x``: ndarray (n, d) or (d,), torch tensor (n, d), or xarray shaped like
        the fitted data (any length along the sample dim); physical units, same type back."""
        if isinstance(x, torch.Tensor):
            return self._physical_tensor(x)
        return self._apply(x, self.field, self.space.score_to_physical, "state")

    def _std_jacobian(self, xb):
        return torch.func.vmap(torch.func.jacrev(lambda v: self.field(v[None])[0]))(xb)

    def jacobian(self, x):
        """``J[n, i, j] = ds_i/dx_j`` at ``x`` (physical units), by autodiff."""
        return self._apply(x, self._std_jacobian, self.space.jacobian_to_physical, "matrix")

    def divergence(self, x, n_probes: int | None = None, seed=None):
        """``div s(x)`` (physical units). Exact trace of the autodiff Jacobian by default; with
        ``n_probes`` a Hutchinson estimate ``E[v^T J v]`` with Rademacher probes (for large d)."""
        w = torch.tensor(1.0 / self.space.scale**2, dtype=self.dtype, device=self.device)
        if n_probes is None:
            fn = lambda xb: (torch.diagonal(self._std_jacobian(xb), dim1=1, dim2=2) * w).sum(1)  # noqa: E731
        else:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(0 if seed is None else int(seed))

            def fn(xb):
                total = torch.zeros(xb.shape[0], dtype=xb.dtype, device=xb.device)
                for _ in range(int(n_probes)):
                    v = torch.randint(0, 2, xb.shape, generator=gen, device=xb.device)
                    v = (2 * v - 1).to(xb.dtype)
                    _, jvp = torch.func.jvp(self.field, (xb,), (v,))
                    total += (v * w * jvp).sum(1)
                return total / int(n_probes)
        return self._apply(x, fn, lambda a: a, "scalar")

    # ---------------------------------------------------------------------------------------
    def to_groups(self) -> dict:
        """The feature space, the field's weights (arrays, never pickle) and the cells."""
        kind, config, arrays = field_to_arrays(self.field)
        root = xr.Dataset(attrs={"model_attrs": io.attrs_json(self.attrs),
                                 "method": self.method, "sigma": self.sigma})
        groups = {"": root, "space": self.space.to_dataset(),
                  "field": io.arrays_to_dataset(arrays, {"field_type": kind,
                                                         "field_config": json.dumps(config)})}
        if self.cells is not None:
            groups["cells"] = self.cells
        return groups

    @classmethod
    def from_groups(cls, groups):
        attrs = groups[""].attrs
        field_ds = groups["field"]
        field = field_from_arrays(field_ds.attrs["field_type"],
                                  json.loads(field_ds.attrs["field_config"]),
                                  io.dataset_to_arrays(field_ds))
        return cls(field, FeatureSpace.from_dataset(groups["space"]), float(attrs["sigma"]),
                   attrs["method"], cells=groups.get("cells"),
                   attrs={**json.loads(attrs["model_attrs"]),
                          "xlangevin_version": attrs["xlangevin_version"]})

    def __repr__(self):
        cells = "" if self.cells is None else f" cells={self.cells.sizes.get('cell', 0)}"
        chosen = f" (chosen by auto: {self.attrs['selection']})" if "selection" in self.attrs \
            else ""
        return (f"<ScoreModel method={self.method!r}{chosen} sigma={self.sigma:g} (standardized "
                f"units) d={self.dim} variables={self.space.variables}{cells}>")


def _inverse_units(da) -> str:
    units = da.attrs.get("units", "") if hasattr(da, "attrs") else ""
    return f"1/({units})" if units else ""
