"""DSM training time per epoch: the KS U-Net (d = 32) and the MLP, on the CPU or a GPU.

The data are the shipped Kuramoto-Sivashinsky samples (``datasets/ks.nc``, 10^4 x 32) tiled
with circular shifts to ``--n`` samples (default 10^5; timing does not depend on the values).
One epoch = ``n * (1 - validation_fraction)`` samples in batches of ``--batch-size`` (512),
antithetic noise pairs (so each step runs 2 x batch rows), Adam + schedule + EMA update, plus the
validation pass on the held-out 5 % (timed apart and added once per epoch). Reported: the median time of the epochs after the first
(warm-up, cuDNN autotuning), the time per optimizer step, and samples per second.

On the CPU a U-Net epoch of 10^5 samples takes minutes; ``--steps N`` times N optimizer steps
per epoch (``samples_per_epoch = N * batch``) and extrapolates to the full epoch.

Usage::

    python benchmarks/bench_dsm.py                         # CPU, U-Net (30 steps) and MLP
    python benchmarks/bench_dsm.py --device cuda           # the same on a GPU, full epochs
    python benchmarks/bench_dsm.py --networks unet1d --epochs 3 --threads 1
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from xlangevin.score import DSM  # noqa: E402


def ks_samples(n, d=32):
    """KS snapshots u(time, x) tiled with circular shifts to n samples (synthetic if the file
    cannot be read, e.g. without a NetCDF4 engine)."""
    u = None
    try:
        import xlangevin

        u = np.asarray(xlangevin.datasets.open_dataset("ks").u.values, np.float32)
    except Exception:  # noqa: BLE001
        try:
            import h5py

            with h5py.File(ROOT / "datasets" / "ks.nc", "r") as f:
                u = np.asarray(f["u"][...], np.float32)
        except Exception:  # noqa: BLE001
            pass
    if u is None or u.shape[1] != d:
        print(f"(KS file not readable here: synthetic N(0, 1) data, d = {d})")
        return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    reps = -(-n // len(u))
    tiles = [np.roll(u, k, axis=1) for k in range(reps)]
    return np.concatenate(tiles)[:n]


def time_network(Y, network, args, steps):
    n = len(Y)
    n_train = n - int(round(0.05 * n))
    full_steps = -(-n_train // args.batch_size)
    per_epoch = None if steps is None else min(steps * args.batch_size, n_train)
    est = DSM(sigma=0.1, network=network, epochs=args.epochs, batch_size=args.batch_size,
              samples_per_epoch=per_epoch, antithetic=not args.plain, device=args.device,
              seed=0, progress=False)
    t0 = time.perf_counter()
    model = est.fit(Y)
    wall = time.perf_counter() - t0
    times = np.asarray(model.history["epoch_time"])
    val = np.asarray(model.history["validation_time"])
    train = (times - val)[1:] if len(times) > 1 else times - val
    epoch_steps = model.attrs["steps"] // model.attrs["epochs"]
    per_step = float(np.median(train)) / epoch_steps
    return {"network": network, "params": model.attrs["n_parameters"],
            "first_epoch_s": float(times[0]),
            "epoch_s": per_step * full_steps + float(np.median(val)),
            "validation_s": float(np.median(val)),
            "step_ms": 1e3 * per_step, "samples_per_s": args.batch_size / per_step,
            "measured_steps": epoch_steps, "full_steps": full_steps, "wall_s": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (the first is warm-up)")
    ap.add_argument("--steps", type=int, default=None,
                    help="optimizer steps per timed epoch (default: 30 for the U-Net on the "
                         "CPU, else the full epoch)")
    ap.add_argument("--networks", default="unet1d,mlp")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--plain", action="store_true", help="no antithetic pairs (1x batch rows)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    Y = ks_samples(args.n)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} torch thread(s)"
    print(f"torch {torch.__version__}, {name}; KS data {Y.shape}, batch {args.batch_size}"
          f"{' (x2 antithetic rows)' if not args.plain else ''}")
    rows = []
    for network in args.networks.split(","):
        steps = args.steps
        if steps is None and network == "unet1d" and dev.type == "cpu":
            steps = 30
        rows.append(time_network(Y, network, args, steps))
        r = rows[-1]
        print(f"{r['network']:>7}  {r['params']:>8,d} params  epoch {r['epoch_s']:8.2f} s  "
              f"step {r['step_ms']:7.2f} ms  {r['samples_per_s']:10.0f} samples/s  (first epoch "
              f"{r['first_epoch_s']:.2f} s; validation {r['validation_s']:.2f} s; timed {r['measured_steps']} of {r['full_steps']} "
              "steps/epoch)", flush=True)


if __name__ == "__main__":
    main()
