"""Peak memory of an EOF-reduced fit of a dask-backed gridded field (docs/fields.md).

A lazy ``(time, lat, lon)`` float32 field (default 10^4 x 100 x 200 = 0.8 GB, AR(1) in time
on a few large-scale patterns plus white noise, a land block NaN at every time) is generated
chunk by chunk by dask, never held whole; ``EffectiveLangevin(cdot="lagged").fit(field,
score="gaussian", reduce=EOF(n_modes=20))`` streams it (mask check, climatology, xeofs'
randomized dask SVD, PCs). The script prints the wall time and the process's peak RSS
(``ru_maxrss``); issue "Gridded climate fields" asks for under 1.5 GB.
Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fields_memory.py`` (``--quick``: 2000 x 50 x
100).
"""

from __future__ import annotations

import argparse
import resource
import time

import xlangevin  # noqa: F401  (first: passive OpenMP waiting before numba / torch load)
import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from xlangevin import EOF, EffectiveLangevin


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def lazy_field(n_time, n_lat, n_lon, chunk=500, k=8, seed=0):
    """A dask field: ``k`` AR(1) PCs (phi = 0.9) on fixed random smooth patterns + noise."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, n_lat), np.linspace(0, 1, n_lon), indexing="ij")
    patterns = np.stack([np.sin(np.pi * (j % 3 + 1) * y) * np.cos(2 * np.pi * (j // 3) * x
                                                                  + j) for j in range(k)])
    pcs = np.zeros((n_time, k))
    for t in range(1, n_time):
        pcs[t] = 0.9 * pcs[t - 1] + rng.normal(size=k)
    land = (y > 0.6) & (x < 0.3)

    def block(block_info=None):
        start, stop = block_info[None]["array-location"][0]
        noise = np.random.default_rng([seed, start]).normal(size=(stop - start, n_lat, n_lon))
        out = np.tensordot(pcs[start:stop], patterns, 1) + 0.3 * noise
        out[:, land] = np.nan
        return out.astype(np.float32)

    data = dsa.map_blocks(block, dtype=np.float32,
                          chunks=(tuple(min(chunk, n_time - s) for s in range(0, n_time, chunk)),
                                  (n_lat,), (n_lon,)))
    return xr.DataArray(data, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": pd.date_range("1990-01-01", periods=n_time, freq="D"),
                                "lat": np.linspace(-60, 60, n_lat),
                                "lon": np.linspace(0, 358, n_lon)}, attrs={"units": "K"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    shape = (2000, 50, 100) if args.quick else (10_000, 100, 200)
    field = lazy_field(*shape)
    print(f"field {shape} float32: {field.nbytes / 1e9:.2f} GB (dask, {field.data.npartitions} "
          f"chunks); peak RSS before {_peak_rss() / 1e9:.2f} GB")
    t0 = time.perf_counter()
    model = EffectiveLangevin(cdot="lagged", seed=0, progress=False).fit(
        field, score="gaussian", reduce=EOF(n_modes=20))
    print(f"fit {time.perf_counter() - t0:.0f} s: {model.space.reduction}")
    print(f"peak RSS {_peak_rss() / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
