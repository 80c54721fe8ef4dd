"""Peak memory of a streamed ensemble: ``generate(path=...)`` holds one chunk, not the run.

A 4-D linear (Gaussian-score) Langevin model generates ``--members`` members x ``--steps``
steps (every ``--save-every``-th state saved) into a NetCDF file; the script reports the wall
time, the file size, what the ensemble would take in memory, and the process's peak RSS before
and after (``ru_maxrss``). Issue "Reliability" asks for 10^4 members x 10^5 steps under 1 GB.
Run: ``python benchmarks/bench_stream_memory.py`` (defaults: that case, save_every=100; a few
minutes on 2 cores; ``--quick`` for 10^3 members x 10^4 steps).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import xlangevin  # noqa: F401  (first: passive OpenMP waiting before numba / torch load)
import numpy as np
import xarray as xr


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _model(d: int = 4):
    rng = np.random.default_rng(0)
    x = np.zeros((20_000, d))
    for t in range(1, len(x)):
        x[t] = 0.95 * x[t - 1] + rng.normal(size=d)
    da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(len(x), dtype=float)})
    return da.langevin.fit(score="gaussian", seed=0, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.members, args.steps = 1_000, 10_000
    model = _model()
    dt = 0.5 * model.stable_dt()
    model.generate(10, dt, n_members=2, progress=False)           # compile the kernel
    before = _peak_rss()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ensemble.nc"
        t0 = time.perf_counter()
        sim = model.generate(args.steps, dt, n_members=args.members, save_every=args.save_every,
                             path=path, progress=False, seed=0)
        wall = time.perf_counter() - t0
        size = path.stat().st_size
        in_memory = 8 * sim.sizes["member"] * sim.sizes["time"] * model.dim
        sim.close()
    after = _peak_rss()
    print(f"{args.members} members x {args.steps} steps (d = {model.dim}, save_every = "
          f"{args.save_every}): {wall:.1f} s, file {size / 2**20:.0f} MiB, in memory it would "
          f"be {in_memory / 2**20:.0f} MiB (x3 while assembled)")
    print(f"peak RSS: {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after "
          f"(growth {(after - before) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
