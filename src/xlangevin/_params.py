"""Declarative parameter validation for estimators (one table per estimator, checked in fit)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "OneOf", "validate_params"]


@dataclass(frozen=True)
class Interval:
    """A real (or integer) in ``(low, high)``; ``closed`` says which ends are included."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right", "neither"
    integer: bool = False
    optional: bool = False

    def check(self, name, value):
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{name} is required")
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{name} must be {'an integer' if self.integer else 'a number'}, "
                             f"got {value!r}")
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
            raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")


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


def validate_params(params: dict, table: dict) -> None:
    """Check each ``params[name]`` against ``table[name]`` (an Interval or OneOf)."""
    for name, rule in table.items():
        rule.check(name, params.get(name))
