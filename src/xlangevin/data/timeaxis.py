"""The sample (time) axis: its kind, regular grid and gaps, and new coordinates in its calendar.

A sample coordinate is ``"index"`` (none given: positions 0..n-1), ``"numeric"`` (time in the
units of its ``units`` attr), ``"datetime"`` (datetime64) or ``"cftime"`` (any CF calendar).
Calendar steps found by ``xr.infer_freq`` (months, years) count as regular with ``dt = 1`` step;
so does a record whose times are all month starts (or all month ends) at midnight, one sample
every ``k`` months with some months missing (``freq = "MS"``, ``"3MS"``, ... : the missing months
are gaps, see :func:`grid_positions`). Datetime steps without a calendar frequency are measured
in days. :func:`duration_in_units` turns a time delta (``np.timedelta64``, ``datetime.timedelta``,
``pd.Timedelta``, an offset or a string such as ``"1D"`` or ``"1MS"``) into those units.
"""

from __future__ import annotations

import datetime
import numbers
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .checks import DataError

__all__ = ["time_info", "grid_positions", "sample_coordinate", "time_values", "time_units",
           "duration_in_units", "irregular_steps_error", "last_time", "time_to_json",
           "time_from_json"]

_TICK_SUFFIXES = ("D", "h", "min", "s", "ms", "us", "ns")


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
        if freq is not None and not freq.endswith(_TICK_SUFFIXES):
            return np.arange(n), 1.0, freq, None
        if freq is None:
            months = _month_grid(coord.values, info["kind"])
            if months is not None:
                return months
        if info["kind"] == "cftime":
            t = np.asarray([(v - coord.values[0]).total_seconds() for v in coord.values]) / 86400.0
            diffs = np.diff(t)
        else:   # whole nanoseconds first: days since the start would round each step
            diffs = np.diff(coord.values.astype("datetime64[ns]").astype(np.int64)) / 86400e9
    else:
        diffs = np.diff(np.asarray(coord.values, dtype=np.float64))
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


def _month_grid(values, kind):
    """``(positions, 1.0, freq, None)`` of times that are all month starts (or all month ends)
    at midnight, strictly increasing by whole multiples of ``k`` months (``freq`` ``"MS"`` /
    ``"ME"``, or ``"<k>MS"``), the positions in steps of ``k`` months; None for other times."""
    if len(values) > 2 and _month_grid(values[:2], kind) is None:
        return None                                   # cheap rejection of most other axes
    if kind == "datetime":
        idx = pd.DatetimeIndex(values)
        year, month, day = np.asarray(idx.year), np.asarray(idx.month), np.asarray(idx.day)
        last = np.asarray(idx.days_in_month)
        midnight = np.all(np.asarray(idx.normalize() == idx))
    else:
        year = np.array([v.year for v in values])
        month = np.array([v.month for v in values])
        day = np.array([v.day for v in values])
        last = np.array([v.daysinmonth for v in values])
        midnight = all(v.hour == v.minute == v.second == v.microsecond == 0 for v in values)
    if not midnight:
        return None
    anchor = "MS" if np.all(day == 1) else "ME" if np.all(day == last) else None
    months = year.astype(np.int64) * 12 + month - 1
    steps = np.diff(months)
    if anchor is None or np.any(steps <= 0):
        return None
    k = int(steps.min())
    if np.any(steps % k):
        return None
    return (months - months[0]) // k, 1.0, anchor if k == 1 else f"{k}{anchor}", None


def irregular_steps_error(dim: str, found, time: dict) -> DataError:
    """The error for a sample coordinate that is not a regular grid with gaps."""
    unit = "days" if time.get("kind") in ("datetime", "cftime") else \
        time.get("units") or "coordinate units"
    steps = ", ".join(f"{v:.6g}" for v in np.asarray(found)[:8])
    more = " ..." if np.size(found) > 8 else ""
    monthly = ""
    if time.get("kind") in ("datetime", "cftime") and np.all((np.asarray(found) >= 28)
                                                             & (np.asarray(found) <= 31)):
        monthly = (" A monthly record must be stamped on month starts (or month ends); "
                   "relabel mid-month times, e.g. data.assign_coords("
                   f"{dim}=[t.replace(day=1, hour=0) for t in data.{dim}.to_index()]).")
    return DataError(
        f"irregular steps in '{dim}': the steps ({steps}{more} {unit}) are not whole multiples "
        "of one regular step. A regular grid with missing samples is fine (the record is split "
        "into sequences at the gaps), but uneven (jittered) sampling is never interpolated "
        f"silently: resample onto a uniform grid first (e.g. data.resample({dim}=...).mean() "
        f"or data.interp({dim}=...)).{monthly}")


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
    freq = time["freq"] or pd.to_timedelta(round(dt * 86400e9), unit="ns")
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
        return np.datetime64(origin, "ns") + np.rint(elapsed * 86400e9).astype("timedelta64[ns]")
    warnings.warn("the simulation's sample spacing is not a whole number of the data's calendar "
                  "steps; the time coordinate is the elapsed time in data steps", stacklevel=3)
    return pos


def time_units(space) -> str:
    """The unit of ``dt`` and of rates (``Phi`` is per this unit) of a FeatureSpace's axis (or
    of its ``time`` dict)."""
    time = space if isinstance(space, dict) else space.time
    kind = time.get("kind")
    if kind == "index":
        return "samples"
    if kind == "numeric":
        return time.get("units") or "time units of the data coordinate"
    if time.get("freq"):
        return f"steps of frequency {time['freq']}"
    return "days"


_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0, "minute": 60.0,
            "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
            "d": 86400.0, "day": 86400.0, "days": 86400.0}


def _months_of(offset):
    """Calendar months of a month/quarter/year offset (``pd.DateOffset(months=..)`` too), or
    None for any other offset."""
    o = pd.offsets
    if isinstance(offset, (o.MonthBegin, o.MonthEnd)):
        return offset.n
    if isinstance(offset, (o.QuarterBegin, o.QuarterEnd)):
        return 3 * offset.n
    if isinstance(offset, (o.YearBegin, o.YearEnd)):
        return 12 * offset.n
    if type(offset) is o.DateOffset and offset.kwds and set(offset.kwds) <= {"months", "years"}:
        return offset.n * (offset.kwds.get("months", 0) + 12 * offset.kwds.get("years", 0))
    return None


def _as_duration(value):
    """A time delta -> ``("fixed", pd.Timedelta)`` or ``("months", number)``; None when
    ``value`` is not a time delta."""
    from pandas.tseries.frequencies import to_offset

    if isinstance(value, np.timedelta64):
        unit, count = np.datetime_data(value.dtype)
        if unit in ("M", "Y"):
            return "months", float(value.astype(np.int64)) * count * (12 if unit == "Y" else 1)
        return "fixed", pd.Timedelta(value)
    if isinstance(value, (datetime.timedelta, pd.Timedelta)):
        return "fixed", pd.Timedelta(value)
    if isinstance(value, str):   # an offset first: "1MS" is a month start, not a millisecond
        try:
            value = to_offset(value)
        except ValueError as err:
            try:
                return "fixed", pd.Timedelta(value)
            except ValueError:
                raise DataError(f"cannot read {value!r} as a time delta ({err}); use e.g. '1D', "
                                "'6h', '1MS' or np.timedelta64(1, 'D')") from None
    if isinstance(value, pd.offsets.BaseOffset):
        months = _months_of(value)
        if months is not None:
            return "months", float(months)
        if isinstance(value, pd.offsets.Week):
            return "fixed", pd.Timedelta(days=7 * value.n)
        try:
            return "fixed", pd.Timedelta(value)
        except (TypeError, ValueError):
            raise DataError(f"the offset {value!r} is not a fixed duration nor a whole number "
                            "of months; use e.g. '1D', '1MS' or np.timedelta64(1, 'D')") from None
    return None


def duration_in_units(time: dict, dt: float, value, what: str = "dt") -> float:
    """``value`` as a number in the time units of an axis (:func:`time_units`).

    ``time`` is a FeatureSpace's ``time`` dict (:func:`time_info` + ``freq``) and ``dt`` its
    step. A plain number is taken as already in those units. A time delta (``np.timedelta64``,
    ``datetime.timedelta``, ``pd.Timedelta``, a pandas offset or a string such as ``"1D"``,
    ``"6h"``, ``"1MS"``) is converted: to days for datetime/cftime axes without a calendar
    frequency, to steps of the frequency for monthly (quarterly, yearly) axes (then only whole
    months are accepted: ``"1MS"``, ``np.timedelta64(1, "M")``, ``pd.DateOffset(months=1)``),
    and for numeric axes whose ``units`` name a time unit (``"days"``, ``"hours"``,
    ``"seconds"``, optionally ``"... since <date>"``) to those units. ``what`` names the
    value in errors.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DataError(f"{what} must be a number or a time delta, got {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, np.timedelta64):
        return float(value)
    found = _as_duration(value)
    if found is None:
        raise DataError(f"{what} must be a number (in {time_units(time)}) or a time delta "
                        f"(np.timedelta64, datetime.timedelta, pd.Timedelta, a pandas offset or "
                        f"a string such as '1D'), got {type(value).__name__} {value!r}")
    form, amount = found
    kind, freq = time.get("kind"), time.get("freq") or ""
    if kind in ("datetime", "cftime"):
        return _calendar_duration(form, amount, freq, dt, what, value)
    unit = str(time.get("units", "")).split(" since ")[0].strip().lower()
    if kind == "numeric" and form == "fixed" and unit in _SECONDS:
        return amount.total_seconds() / _SECONDS[unit]
    where = "has no time coordinate (positions count samples)" if kind == "index" else \
        f"has a numeric time coordinate in units {time.get('units') or '(none given)'!r}"
    raise DataError(f"{what} = {value!r} is a time delta but the data {where}; give {what} as "
                    f"a number in {time_units(time)}")


def _calendar_duration(form, amount, freq, dt, what, value):
    from pandas.tseries.frequencies import to_offset

    if not freq:
        if form == "fixed":
            return amount / pd.Timedelta(days=1)
        raise DataError(f"{what} = {value!r} is in calendar months, but the data's time axis is "
                        "measured in days (no monthly frequency); give a fixed duration such as "
                        "'30D' or a number of days")
    try:
        step = to_offset(freq)
    except ValueError:
        raise DataError(f"{what} = {value!r}: the data's frequency {freq!r} is not a pandas "
                        f"offset; give {what} as a number of steps") from None
    step_months = _months_of(step)
    if step_months is not None:
        if form == "months":
            return amount / step_months * dt
        raise DataError(f"{what} = {value!r} is a fixed duration, but one step of the data "
                        f"(frequency {freq!r}) is {step_months} calendar month(s), not a fixed "
                        f"number of days; give {what} in months ('1MS', np.timedelta64(1, 'M'), "
                        f"pd.DateOffset(months=1)) or as a number of steps of {freq!r}")
    try:
        step = _as_duration(step)
    except DataError:
        step = None                                   # e.g. business days: no fixed length
    if form == "fixed" and step is not None and step[0] == "fixed":
        return amount / step[1] * dt
    raise DataError(f"{what} = {value!r} cannot be expressed in steps of the data's frequency "
                    f"{freq!r}; give {what} as a number of steps")


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
