"""Delay embedding: a partially observed record -> states ``(x(t), x(t - tau_1), ...)``.

An oscillator seen through one coordinate has a one-dimensional record whose autocorrelation
turns negative, which no one-dimensional reversible Langevin model can reproduce (its
autocorrelation is a sum of decaying exponentials). Takens-style delay coordinates restore a
state in which the oscillation is a rotation, so the fitted ``Phi_A`` can carry it.
:func:`delay_embed` builds those states as a labeled ``lag`` dim that the rest of the pipeline
(``FeatureSpace``, ``ds.langevin.fit``, ``generate``) treats as one more feature dim.
"""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

from .checks import DataError
from .timeaxis import (duration_in_units, grid_positions, irregular_steps_error, time_info,
                       time_units)

__all__ = ["delay_embed"]

_TMP_NAME = "__xlangevin_delay_embed__"


def delay_embed(data, lags, dim: str = "time", lag_dim: str = "lag"):
    """Delay-embed ``data`` along ``dim``: each variable ``x`` becomes the state
    ``(x(t), x(t - tau_1), ..., x(t - tau_k))`` along a new dim ``lag_dim``.

    Parameters
    ----------
    data : xr.DataArray or xr.Dataset, numpy- or dask-backed (dask stays lazy). Every data
        variable that has ``dim`` is embedded with the same lags, keeping its own dims, units
        and attrs (an SST index and a pressure index embed together); variables without
        ``dim`` are kept as they are.
    lags : the positive delays ``tau_1, ...`` (one value or a sequence; lag 0, the record
        itself, is always included and must not be given). An ``int`` counts samples; any other
        value is a time in the units of the sample coordinate: a number (e.g. a float for a
        numeric time axis, days for a datetime axis without a calendar frequency) or a time
        delta (``np.timedelta64``, ``datetime.timedelta``, ``pd.Timedelta``, a pandas offset or
        a string such as ``"90D"`` or ``"3MS"``, see
        :func:`xlangevin.data.timeaxis.duration_in_units`); it must be a whole number of
        samples.
    dim : the sample (time) dim.
    lag_dim : name of the new dim.

    Returns
    -------
    The same kind of object with ``lag_dim`` added as the last dim of each embedded variable.
    Its coordinate holds the lags in samples (``0, tau_1, ...``, ascending); its attrs give them
    in time units of the sample coordinate (``lag_time``, ``lag_time_units``).
    ``out.sel(lag=0)`` is the observed record and ``out.sel(lag=k)`` at time ``t`` equals
    ``x(t - k samples)`` exactly.

    Sequences
    ---------
    No state mixes samples across a join, and nothing is filled with NaN:

    * the first ``max(lags)`` samples are dropped (their past is not in the record);
    * a regular time axis with missing samples (e.g. a missing month) is a set of sequences
      (as :meth:`FeatureSpace.sequence_bounds` sees them); each is embedded separately and the
      first ``max(lags)`` samples after every gap are dropped too, so the result has a (wider)
      gap there and a fit on it again treats the pieces as separate sequences;
    * ensemble members (any other dim, e.g. ``member``) are shifted only along ``dim``, so each
      member is embedded separately.

    An irregular (jittered) time axis raises :class:`DataError`.

    The embedded object goes through the pipeline like any other::

        emb = xlangevin.delay_embed(ds.x, lags=[3, 6])
        model = emb.langevin.fit(score="gmm", seed=0)
        sim = model.generate(n_steps, dt)        # dims (member, time, lag)
        observed = sim.sel(lag=0)                # the simulated x(t)
    """
    ds, name = _as_dataset(data)
    if dim not in ds.dims:
        raise DataError(f"sample dim {dim!r} not found; the data has dims {tuple(ds.dims)}. "
                        "Pass dim=... to name the sample (time) dim")
    if lag_dim in ds.dims or lag_dim in ds.coords or lag_dim in ds.data_vars:
        raise DataError(f"the data already has {lag_dim!r}; pass lag_dim=... to name the new "
                        "dim otherwise")
    names = [v for v in ds.data_vars if dim in ds[v].dims]
    if not names:
        raise DataError(f"no data variable has the sample dim {dim!r}")
    coord = ds[dim] if dim in ds.coords else None
    time = time_info(coord, dim)
    positions, dt, freq, found = grid_positions(coord, time)
    time["freq"] = freq
    if found is not None:
        raise irregular_steps_error(dim, found, time)
    steps = _lag_steps(lags, time, dt)
    keep = _kept_states(positions, steps[-1], dim)
    out = ds.drop_vars(names).isel({dim: keep})      # coords at the present times
    for v in names:
        out[v] = _embed_variable(ds[v].variable, dim, lag_dim, keep, steps)
    out = out[list(ds.data_vars)]                      # the variables' order is the features'
    lag_attrs = {"long_name": "delay", "units": "samples",
                 "lag_time": np.asarray(steps, dtype=np.float64) * dt,
                 "lag_time_units": time_units(time),
                 "description": f"component x({dim} - lag samples); lag 0 is the record itself"}
    out = out.assign_coords({lag_dim: (lag_dim, np.asarray(steps, dtype=np.int64), lag_attrs)})
    if name is None:
        return out
    return out[name].rename(None if name == _TMP_NAME else name)


def _as_dataset(data):
    """``(Dataset, name)``: the DataArray's name (``_TMP_NAME`` for an unnamed one) or None for
    a Dataset."""
    if isinstance(data, xr.DataArray):
        name = _TMP_NAME if data.name is None else data.name
        return data.to_dataset(name=name), name
    if isinstance(data, xr.Dataset):
        return data, None
    raise DataError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}")


def _lag_steps(lags, time: dict, dt: float) -> list:
    """The lags in samples, ``[0, tau_1, ...]`` ascending, with clear errors."""
    values = [lags] if isinstance(lags, str) or np.ndim(lags) == 0 else list(lags)
    if not values:
        raise DataError("lags is empty; give at least one positive lag, e.g. lags=[3, 6]")
    steps = []
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            raise DataError(f"lag {value!r} is a bool; give ints (samples) or time deltas")
        if isinstance(value, numbers.Integral) and not isinstance(value, np.timedelta64):
            k = int(value)
        else:
            t = duration_in_units(time, dt, value, "lag")
            k = int(np.rint(t / dt))
            if not np.isfinite(t) or abs(t / dt - k) > 1e-6 * max(1.0, abs(k)):
                raise DataError(f"lag {value!r} is {t:g} {time_units(time)}, not a whole number "
                                f"of samples (the step is {dt:g} {time_units(time)})")
        if k <= 0:
            raise DataError(f"lags must be positive (got {value!r}, {k} samples); lag 0, the "
                            "record itself, is always included")
        if k in steps:
            raise DataError(f"lag {value!r} ({k} samples) is given twice")
        steps.append(k)
    return [0] + sorted(steps)


def _kept_states(positions, max_lag: int, dim: str) -> np.ndarray:
    """Indices ``i`` whose window ``i - max_lag .. i`` is gap-free (``max_lag + 1`` consecutive
    grid positions)."""
    n = positions.size
    if max_lag >= n:
        raise DataError(f"the largest lag ({max_lag} samples) is not shorter than the record "
                        f"({n} samples along {dim!r}); use smaller lags or a longer record")
    i = np.arange(max_lag, n)
    keep = i[positions[i] - positions[i - max_lag] == max_lag]
    if keep.size == 0:
        runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(positions) != 1) + 1, [n]]))
        raise DataError(f"no embedded state left: every gap-free sequence along {dim!r} (the "
                        f"longest has {int(runs.max())} samples) is shorter than the largest lag "
                        f"+ 1 = {max_lag + 1} samples; use smaller lags")
    return keep


def _embed_variable(var: xr.Variable, dim: str, lag_dim: str, keep, steps) -> xr.Variable:
    """``var`` at ``keep - lag`` for each lag, stacked along a last dim ``lag_dim``."""
    contiguous = keep.size == keep[-1] - keep[0] + 1
    pieces = []
    for k in steps:
        where = slice(keep[0] - k, keep[-1] + 1 - k) if contiguous else keep - k
        pieces.append(var.isel({dim: where}))
    out = xr.Variable.concat(pieces, dim=lag_dim).transpose(*var.dims, lag_dim)
    out.attrs = dict(var.attrs)
    out.encoding = {}
    return out
