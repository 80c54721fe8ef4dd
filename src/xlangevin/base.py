"""Estimator and model bases: parameters, validation, provenance, immutability and saving.

:class:`Estimator` (scikit-learn's ``BaseEstimator``, deeptime's ``Estimator``): the
hyper-parameters are annotated class attributes with defaults; every subclass is made a
dataclass, so the constructor only stores its arguments, unchanged, and ``get_params``,
``set_params``, ``clone`` and ``repr`` read them from the signature. One declarative table
``_constraints`` (``{name: rule}``) is checked by :meth:`Estimator.validate` at the start of
``fit``; cross-parameter rules go in the ``_check`` hook.

:class:`Model` (deeptime's ``Model``, xeofs' serialization): a fitted result, frozen after its
constructor (setting an attribute raises; ``with_*`` methods return copies), stamped with
provenance (:func:`provenance`), and saved as a tree of NetCDF groups: a model provides
``to_groups()`` (``{path: xr.Dataset}``, ``""`` is its own group) and ``from_groups(groups)``;
nested models nest their groups (:func:`xlangevin.io.nest`), and :func:`xlangevin.open_model`
reads every model back.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import html
import numbers
from dataclasses import dataclass

import numpy as np

from . import io
from ._version import __version__
from .data import FeatureData, feature_data

try:
    from typing import dataclass_transform
except ImportError:  # Python 3.10: only a hint for type checkers
    def dataclass_transform(**_):
        return lambda cls: cls

__all__ = ["Estimator", "Model", "Interval", "OneOf", "Flag", "Sizes", "Options", "Seed",
           "validate_params", "provenance", "seed_attr"]


# ----------------------------------------------------------------------------------------------
# constraint rules
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A real (or integer) in ``(low, high)``; ``closed`` says which ends are included;
    ``text`` replaces the interval in the error message (``"an integer >= 2"``)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right", "neither"
    integer: bool = False
    optional: bool = False
    text: str | None = None

    def check(self, name, value):
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{name} is required")
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            need = self.text or ("an integer" if self.integer else "a number")
            raise ValueError(f"{name} must be {need}, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        lo_ok = self.low is None or (value >= self.low if self.closed in ("both", "left")
                                     else value > self.low)
        hi_ok = self.high is None or (value <= self.high if self.closed in ("both", "right")
                                      else value < self.high)
        if not (lo_ok and hi_ok):
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            need = self.text or f"in {left}{lo}, {hi}{right}"
            raise ValueError(f"{name} must be {need}, got {value!r}")


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""

    options: tuple
    optional: bool = False

    def check(self, name, value):
        if value is None and self.optional:
            return
        if value not in self.options:
            raise ValueError(f"{name} must be one of {self.options}, got {value!r}")


def Flag() -> OneOf:  # noqa: N802  (reads like the other rules in a table)
    """True or False."""
    return OneOf((True, False))


@dataclass(frozen=True)
class Sizes:
    """A non-empty sequence of positive integers (layer widths, channel multipliers)."""

    optional: bool = False

    def check(self, name, value):
        if value is None and self.optional:
            return
        try:
            sizes = [int(v) for v in np.atleast_1d(value)]
            whole = all(float(v) == s for v, s in zip(np.atleast_1d(value), sizes))
        except (TypeError, ValueError):
            sizes, whole = [], False
        if not sizes or not whole or min(sizes) < 1:
            raise ValueError(f"{name} must be a non-empty sequence of positive integers, got "
                             f"{value!r}")


@dataclass(frozen=True)
class Options:
    """A dict of keyword options, or None."""

    def check(self, name, value):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict, got {value!r}")


@dataclass(frozen=True)
class Seed:
    """None, a non-negative integer or a ``numpy.random.Generator``."""

    def check(self, name, value):
        if value is None or isinstance(value, np.random.Generator):
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer or a "
                             f"numpy.random.Generator; got {value!r}")


def validate_params(params: dict, table: dict) -> None:
    """Check each ``params[name]`` against ``table[name]`` (a rule above)."""
    for name, rule in table.items():
        rule.check(name, params.get(name))


# ----------------------------------------------------------------------------------------------
# provenance
# ----------------------------------------------------------------------------------------------
def seed_attr(seed) -> str:
    """A seed as stored in attrs: ``"None"`` or its decimal text."""
    return "None" if seed is None or isinstance(seed, np.random.Generator) else str(seed)


def provenance(estimator: "Estimator | None" = None, **facts) -> dict:
    """The attrs every fitted model carries: package version, estimator class, seed and the
    facts given (sample counts, diagnostics). Written in this one place."""
    attrs = {}
    if estimator is not None:
        attrs["estimator"] = type(estimator).__name__
        attrs["seed"] = seed_attr(getattr(estimator, "seed", None))
    attrs.update(facts)
    attrs["xlangevin_version"] = __version__
    return attrs


# ----------------------------------------------------------------------------------------------
# estimators
# ----------------------------------------------------------------------------------------------
@dataclass_transform()
class Estimator:
    """Base of the estimators (module docstring).

    Subclasses declare their parameters as annotated class attributes with defaults, in the
    order of the constructor's positional arguments; ``_constraints`` maps names to rules.
    """

    _constraints: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclass(cls, repr=False, eq=False)

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list:
        return [f.name for f in dataclasses.fields(cls)]

    def get_params(self) -> dict:
        """The constructor's parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Estimator":
        """Set parameters by name (validated in ``fit``); returns the estimator."""
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {unknown}; its "
                             f"parameters are {self._param_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self) -> "Estimator":
        """A new, unfitted estimator with (deep copies of) the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if not _same(getattr(self, f.name), f.default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data, reduce=None, member_dim="member", **kwargs):
        """Fit on ``data``: xarray (Dataset or DataArray, numpy- or dask-backed, sample dim
        ``dim``) or an (n, d) array in physical units. The data layer runs once; returns the
        fitted model. ``reduce``: None, or an :class:`xlangevin.EOF` reduction of a gridded
        field (the model is fitted on its leading PCs and returns fields, docs/fields.md).
        ``member_dim``: the dim of independent ensemble members (sequences), when present."""
        self.validate()
        return self._fit(self._feature_data(data, reduce, member_dim), **kwargs)

    def fit_features(self, features: FeatureData, **kwargs):
        """Fit on data that went through the data layer already (an estimator nested in
        another receives the arrays and the FeatureSpace, not the xarray object)."""
        self.validate()
        return self._fit(features, **kwargs)

    def _fit(self, features: FeatureData, **kwargs):
        raise NotImplementedError

    def _data_options(self) -> dict:
        """Options of :func:`xlangevin.data.feature_data` for this estimator (override)."""
        return {}

    def _feature_data(self, data, reduce=None, member_dim="member") -> FeatureData:
        return feature_data(data, dim=self.dim, variables=self.variables, reduce=reduce,
                            member_dim=member_dim, **self._data_options())

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every parameter against ``_constraints``, then the cross-parameter rules."""
        validate_params(self.get_params(), self._constraints)
        self._check()

    def _check(self) -> None:
        """Cross-parameter rules (override)."""


def _same(value, default) -> bool:
    if default is dataclasses.MISSING:
        return False
    try:
        return bool(np.all(value == default)) and type(value) is type(default)
    except Exception:  # noqa: BLE001  (objects without a usable ==)
        return value is default


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
def _short(value, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _FrozenAfterInit(type):
    """Models are frozen once their constructor returns."""

    def __init__(cls, name, bases, namespace, **kwargs):
        super().__init__(name, bases, namespace, **kwargs)
        if bases:                       # every Model subclass can be read by open_model
            io.register_model(cls)
        # the constructor's signature, not this __call__'s (*args, **kwargs): help() and docs
        init = inspect.signature(cls.__init__)
        cls.__signature__ = init.replace(parameters=list(init.parameters.values())[1:])

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        object.__setattr__(obj, "_frozen", True)
        return obj


class Model(metaclass=_FrozenAfterInit):
    """Base of the fitted models (module docstring).

    Subclasses set their attributes in ``__init__``; afterwards the object is frozen.
    ``attrs`` (a dict) holds the provenance. Saving: ``to_groups()`` / ``from_groups()``.
    """

    _frozen = False

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable: {name!r} cannot be set "
                                 "after fitting (use the model's with_* methods for a copy)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__delattr__(self, name)

    def _replace(self, **changes) -> "Model":
        """A shallow copy with some attributes replaced (for ``with_*`` methods)."""
        new = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(new, name, value)
        return new

    # -- display ------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """The notebook view: the class, ``repr`` and the provenance ``attrs`` in a folded
        table (text escaped, each value cut to 120 characters)."""
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(_short(v))}</td></tr>"
            for k, v in getattr(self, "attrs", {}).items())
        return (f"<div class='xlangevin-model'><b>{html.escape(type(self).__name__)}</b>"
                f"<pre style='white-space:pre-wrap'>{html.escape(repr(self))}</pre>"
                f"<details><summary>attrs ({len(getattr(self, 'attrs', {}))})</summary>"
                f"<table>{rows}</table></details></div>")

    # -- saving -------------------------------------------------------------------------------
    def to_groups(self) -> dict:
        """``{group path: xr.Dataset}``; ``""`` is the model's own group (override)."""
        raise NotImplementedError

    @classmethod
    def from_groups(cls, groups: dict) -> "Model":
        """Inverse of :meth:`to_groups` (override)."""
        raise NotImplementedError

    def to_netcdf(self, path, overwrite: bool = False):
        """Save the model atomically as one NetCDF4 file of groups (no pickle); returns the
        path. An existing file is replaced only with ``overwrite=True`` (never a read-only
        one). Read it back with :func:`xlangevin.open_model` or ``type(model).open(path)``."""
        return io.write_tree(path, self.to_tree(), overwrite=overwrite)

    def to_tree(self) -> dict:
        """:meth:`to_groups` with the root marked as this class (what a file, or a model that
        nests this one, stores)."""
        return io.stamp(type(self), self.to_groups())

    @classmethod
    def open(cls, path) -> "Model":
        """Load a model of this class saved with :meth:`to_netcdf`."""
        model = io.open_model(path)
        if not isinstance(model, cls):
            raise io.ModelFileError(f"{path} holds a {type(model).__name__}, not a "
                                    f"{cls.__name__}")
        return model
