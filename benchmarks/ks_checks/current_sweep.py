"""Current-velocity settings of the KS ensemble model on a saved score (issue #5).

    python current_sweep.py SCORE.nc --simulate 100000 --cache ks_1e5.nc \
        --config 4400:2 --config 12000:2 --config 4400:1 --seeds 1,2 --out sweep.jsonl

Each ``--config CLUSTERS:LAG[:ORDER[:HIDDEN1,HIDDEN2]]`` fits
``EffectiveLangevin(cdot="lagged", lags=(LAG,), order=0, current_velocity=True)`` with ``CLUSTERS`` cells, the current velocity's
extrapolation ``ORDER`` (default 0) and hidden widths on the whole record, generates one ensemble per seed with the settings
of ``docs/ks_experiment.py`` (``--members`` x ``--member-time``, dt 0.01, float32) and appends
the averaged PDF KL, ACF RMSE, bivariate KLs and std (the script's own statistics) as one JSON
line per (config, seed) to ``--out``. The simulated record is cached (``--cache``) so that
every run sees the same data as ``ks_experiment.py --simulate N`` with the same seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs"))
import ks_experiment as ks  # noqa: E402


def load_data(cfg, cache):
    import xarray as xr

    if cache and Path(cache).exists():
        with xr.open_dataset(cache) as ds:
            return ds.u.load()
    u, _ = ks._load(cfg)
    if cache:
        tmp = Path(str(cache) + ".part")
        u.to_dataset(name="u").to_netcdf(tmp)
        tmp.replace(cache)
    return u


def parse_config(text):
    parts = text.split(":")
    order = int(parts[2]) if len(parts) > 2 else 0
    hidden = tuple(int(h) for h in parts[3].split(",")) if len(parts) > 3 else (128, 64)
    return {"clusters": int(parts[0]), "lag": int(parts[1]), "order": order, "hidden": hidden}


def main(argv=None):
    import xlangevin
    from xlangevin.backends import torch_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("score")
    p.add_argument("--simulate", type=int, default=100_000)
    p.add_argument("--cache")
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--seeds", default="1")
    p.add_argument("--members", type=int, default=32)
    p.add_argument("--member-time", type=float, default=200.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="sweep.jsonl")
    args = p.parse_args(argv)

    cfg = ks.build_config(["--medium", "--simulate", str(args.simulate), "--score", args.score,
                           "--members", str(args.members), "--member-time",
                           str(args.member_time)])
    u = load_data(cfg, args.cache)
    with torch_threads(args.threads):
        score = ks.fit_score(None, cfg, "cpu")
    dt_data = float(u.time[1] - u.time[0])
    save_every = int(round(dt_data / cfg["dt"]))
    gen = dict(n_steps=int(round(cfg["member_time"] / dt_data)) * save_every, dt=cfg["dt"],
               save_every=save_every, n_members=int(cfg["members"]),
               burn_in=int(round(cfg["burn_in_time"] / cfg["dt"])), bound=cfg["bound"],
               dtype="float32", progress=False, time_origin=0.0)
    for text in args.config:
        c = parse_config(text)
        t0 = time.perf_counter()
        with torch_threads(args.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = xlangevin.EffectiveLangevin(
                cdot="lagged", lags=(c["lag"],), order=0, current_velocity=True,
                current_options={"shift_augmentation": True, "n_clusters": c["clusters"],
                                 "order": c["order"], "hidden": c["hidden"], "progress": False},
                seed=0, progress=False).fit(u, score)
        fit_s = time.perf_counter() - t0
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            with torch_threads(args.threads), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sim = model.generate(seed=seed, **gen).load()
            stats, _ = ks.ensemble_statistics(u, sim, cfg)
            row = {"clusters": c["clusters"], "lag": c["lag"], "order": c["order"],
                   "hidden": list(c["hidden"]),
                   "seed": seed, "r2": model.current.diagnostics["r2"],
                   "n_cells": model.current.diagnostics.get("n_cells"),
                   "pdf_kl": stats["pdf_kl_averaged"], "acf_rmse": stats["acf_rmse_averaged"],
                   "kl_2d": stats["kl_2d_averaged"], "std_data": stats["std_data"],
                   "std_model": stats["std_model"], "resets": stats["resets"],
                   "acf_model_every_2": stats["acf_model"][::2],
                   "fit_s": fit_s, "generate_s": time.perf_counter() - t0}
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
