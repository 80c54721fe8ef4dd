"""The sample (time) axis: its kind, regular grid and gaps, and new coordinates in its calendar.

A sample coordinate is ``"index"`` (none given: positions 0..n-1), ``"numeric"`` (time in the
units of its ``units`` attr), ``"datetime"`` (datetime64) or ``"cftime"`` (any CF calendar).
Calendar steps found by ``xr.infer_freq`` (months, years) count as regular with ``dt = 1`` step;
datetime steps without a calendar frequency are measured in days.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .checks import DataError

__all__ = ["time_info", "grid_positions", "sample_coordinate", "time_values", "time_units",
           "last_time", "time_to_json", "time_from_json"]


def time_info(coord: xr.DataArray | None, sample_dim: str):
    """Describe the sample coordinate: kind, numeric positions (in ``dt`` units) and steps."""
    if coord is None:
        return {"kind": "index", "units": "samples", "calendar": "", "freq": ""}
    values = coord.values
    if np.issubdtype(values.dtype, np.datetime64):
        kind = "datetime"
    elif values.dtype == object and len(values) and hasattr(values[0], "calendar"):
        kind = "cftime"
    elif np.issubdtype(values.dtype, np.number):
        kind = "numeric"
    else:
        raise DataError(f"the '{sample_dim}' coordinate has dtype {values.dtype}; it must be "
                        "numeric, datetime64 or cftime")
    info = {"kind": kind, "units": str(coord.attrs.get("units", "")),
            "calendar": getattr(values[0], "calendar", "standard") if kind == "cftime" else "",
            "freq": ""}
    return info


def grid_positions(coord: xr.DataArray | None, info: dict):
    """Positions of the samples on a uniform grid: (integer positions, dt, freq or '').

    A calendar frequency (e.g. monthly 'MS') found by ``xr.infer_freq`` counts as regular with
    ``dt = 1`` in units of that frequency. Otherwise the step is the smallest positive difference;
    every difference must then be a whole multiple of it (a multiple > 1 is a gap).
    Returns ``None`` for the positions when the steps are irregular, with the steps found.
    """
    n = 0 if coord is None else coord.size
    if coord is None or n < 2:
        return np.arange(n), 1.0, "", None
    if info["kind"] in ("datetime", "cftime"):
        freq = None
        try:
            freq = xr.infer_freq(coord) if n >= 3 else None
        except (ValueError, TypeError):
            freq = None
        if freq is not None and not freq.endswith(("D", "h", "min", "s", "ms", "us", "ns")):
            return np.arange(n), 1.0, freq, None
        if info["kind"] == "cftime":
            t = np.asarray([(v - coord.values[0]).total_seconds() for v in coord.values]) / 86400.0
        else:
            t = (coord.values - coord.values[0]) / np.timedelta64(1, "D")
    else:
        t = np.asarray(coord.values, dtype=np.float64)
    diffs = np.diff(t)
    if np.any(diffs <= 0):
        bad = int(np.argmax(diffs <= 0))
        raise DataError(f"the sample coordinate is not strictly increasing (step {bad} -> "
                        f"{bad + 1} is {diffs[bad]}); sort it with data.sortby(dim) and drop "
                        "duplicates")
    dt = float(diffs.min())
    ratio = diffs / dt
    whole = np.rint(ratio)
    if np.all(np.abs(ratio - whole) <= 1e-6 * np.maximum(whole, 1.0)):
        return np.concatenate([[0], np.cumsum(whole.astype(np.int64))]), dt, "", None
    found = np.unique(np.round(diffs, 12))
    return None, dt, "", found



def sample_coordinate(time: dict, dt: float, n: int, start=None):
    """``n`` values of a sample coordinate described by ``time`` (:func:`time_info`) with step
    ``dt``, from ``start``.

    Numeric time: ``start + dt * i`` (start default 0). Datetime/cftime with a calendar
    frequency: that frequency; with a fixed step: ``dt`` days. Index: ``0..n-1``.
    """
    kind = time["kind"]
    if kind == "index":
        return np.arange(n)
    if kind == "numeric":
        return (0.0 if start is None else float(start)) + dt * np.arange(n)
    freq = time["freq"] or pd.to_timedelta(dt, unit="D")
    start = start if start is not None else "2000-01-01"
    if kind == "cftime":
        return xr.date_range(start, periods=n, freq=freq, calendar=time["calendar"],
                             use_cftime=True)
    return pd.date_range(start, periods=n, freq=freq).values


def time_values(space, origin, elapsed):
    """Sample-coordinate values ``origin + elapsed`` of a FeatureSpace's axis (``elapsed`` in
    the data's time units, see :func:`time_units`)."""
    kind = space.time.get("kind")
    if kind in ("index", "numeric"):
        base = 0.0 if origin is None else origin
        if kind == "index":
            pos = np.asarray(base, dtype=np.float64) + elapsed
            whole = np.rint(pos)
            return whole.astype(np.int64) if np.allclose(pos, whole, atol=1e-9) else pos
        return float(base) + elapsed
    # datetime / cftime: positions in data steps
    pos = elapsed / space.dt
    whole = np.rint(pos)
    if origin is not None and pos.size and np.allclose(pos, whole, atol=1e-6):
        q = whole.astype(np.int64)
        grid = space.sample_coordinate(int(q.max()) + 1, start=origin)
        return np.asarray(grid)[q]
    if kind == "datetime" and not space.time.get("freq") and origin is not None:
        return np.datetime64(origin, "ns") + (elapsed * 86400e9).astype("timedelta64[ns]")
    warnings.warn("the simulation's sample spacing is not a whole number of the data's calendar "
                  "steps; the time coordinate is the elapsed time in data steps", stacklevel=3)
    return pos


def time_units(space) -> str:
    """The unit of ``dt`` and of rates (``Phi`` is per this unit) of a FeatureSpace's axis."""
    kind = space.time.get("kind")
    if kind == "index":
        return "samples"
    if kind == "numeric":
        return space.time.get("units") or "time units of the data coordinate"
    if space.time.get("freq"):
        return f"steps of frequency {space.time['freq']}"
    return "days"


def last_time(obj, dim: str):
    """The last value of the sample coordinate of ``obj`` (None without one)."""
    if dim not in obj.coords:
        return None
    return obj[dim].values[-1]


def time_to_json(value):
    """A coordinate value as a JSON-safe dict (for a model file's attrs)."""
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return {"datetime64": str(value)}
    if isinstance(value, numbers.Number) or isinstance(value, np.generic):
        return {"number": float(value)}
    if hasattr(value, "calendar"):
        return {"cftime": value.isoformat(), "calendar": value.calendar}
    return {"string": str(value)}


def time_from_json(obj):
    """Inverse of :func:`time_to_json`."""
    if obj is None:
        return None
    if "datetime64" in obj:
        return np.datetime64(obj["datetime64"])
    if "number" in obj:
        return obj["number"]
    if "cftime" in obj:
        import cftime

        return cftime.datetime.strptime(obj["cftime"][:19], "%Y-%m-%dT%H:%M:%S",
                                        calendar=obj["calendar"])
    return obj["string"]
