"""Observables of a response computation: names or callables, evaluated feature by feature.

``"x"`` is the state itself (the response of the mean); ``"x**k"`` (k = 2, 3, 4) the k-th power
of the deviation from the unperturbed data mean, ``(x - <x>)^k``, whose response is that of the
k-th moment about the fixed mean (for k = 2 the variance's, to first order, because the mean
term ``2 <x - <x>> delta<x>`` vanishes). A callable maps physical states (n, d) to (n, d) or
(n,) values; its name is its ``__name__``.
"""

from __future__ import annotations

import numpy as np

from ..data import DataError

__all__ = ["OBSERVABLE_NAMES", "observable_functions"]

#: the named observables
OBSERVABLE_NAMES = ("x", "x**2", "x**3", "x**4")


def observable_functions(observables, mean) -> dict:
    """``{name: f}`` with ``f`` physical states (n, d) -> values (n, p), for the names of
    :data:`OBSERVABLE_NAMES` (``mean``: the unperturbed data mean) and callables."""
    if isinstance(observables, (str, bytes)) or callable(observables):
        observables = [observables]
    out = {}
    for item in observables:
        if isinstance(item, str):
            if item not in OBSERVABLE_NAMES:
                raise ValueError(f"unknown observable {item!r}: give one of {OBSERVABLE_NAMES} "
                                 "or a callable of (n, d) physical states")
            power = 1 if item == "x" else int(item[3:])
            out[item] = (lambda X, k=power: X if k == 1 else _power(X - mean, k))
        elif callable(item):
            out[getattr(item, "__name__", f"observable{len(out)}")] = _checked(item)
        else:
            raise TypeError(f"an observable is a name {OBSERVABLE_NAMES} or a callable, got "
                            f"{type(item).__name__}")
    if not out:
        raise ValueError("give at least one observable")
    return out


def _power(d, k: int):
    """``d ** k`` by repeated products (numpy's ``**`` with a float base calls ``pow``)."""
    out = d.copy()
    for _ in range(k - 1):
        out *= d
    return out


def _checked(fn):
    """``fn`` with its output made (n, p) and checked to be finite, with a clear error."""
    name = getattr(fn, "__name__", "observable")

    def wrapped(X):
        try:
            values = np.asarray(fn(X), dtype=np.float64)
        except Exception as err:
            raise DataError(f"observable {name!r} failed on states of shape {X.shape}: "
                            f"{err}") from err
        values = values.reshape(len(X), -1) if values.ndim != 2 else values
        if values.shape[0] != len(X) or not np.all(np.isfinite(values)):
            raise DataError(f"observable {name!r} must give finite values, one row per state "
                            f"(got shape {values.shape} for {len(X)} states)")
        return values

    return wrapped
