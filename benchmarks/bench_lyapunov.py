"""Lyapunov spectra by the QR method: xlangevin.lyapunov (numba, fused RK4 + tangent) against a
plain numpy reference (RK4 of the state and the tangent matrix, numpy QR), same dt and QR
interval.

Cases: Lorenz-63 (10, 28, 8/3), T = 20000; one-scale Lorenz-96 N = 40, F = 8, T = 5000 (the
acceptance runs of tests/validation/test_lyapunov_validation.py); RK4 dt = 0.01, QR every 0.1.
The numpy reference runs a shorter T (--ref-fraction, default 0.1) and its time is scaled up.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_lyapunov.py [--ref-fraction 0.1]
"""

import argparse
import time

import numpy as np

from xlangevin.systems import lorenz63, lorenz96
from xlangevin.tangent import kaplan_yorke, lyapunov


def numpy_reference(f, jac, x0, k, dt, qr_every, n_qr, n_burn, seed=0):
    """The textbook loop: RK4 for x and V (dV/dt = Df V), numpy QR every qr_every steps."""
    rng = np.random.default_rng(seed)
    x = np.array(x0, float)
    V = np.linalg.qr(rng.standard_normal((x.size, k)))[0]
    logs = np.zeros(k)
    for r in range(n_burn + n_qr):
        for _ in range(qr_every):
            k1, K1 = f(x), jac(x) @ V
            x2, V2 = x + 0.5 * dt * k1, V + 0.5 * dt * K1
            k2, K2 = f(x2), jac(x2) @ V2
            x3, V3 = x + 0.5 * dt * k2, V + 0.5 * dt * K2
            k3, K3 = f(x3), jac(x3) @ V3
            x4, V4 = x + dt * k3, V + dt * K3
            k4, K4 = f(x4), jac(x4) @ V4
            x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            V = V + dt / 6 * (K1 + 2 * K2 + 2 * K3 + K4)
        V, R = np.linalg.qr(V)
        if r >= n_burn:
            logs += np.log(np.abs(np.diag(R)))
    return logs / (n_qr * qr_every * dt)


def main(args):
    cases = [
        ("Lorenz-63", lorenz63, {}, 20_000.0,
         lambda x: lorenz63.drift(x[None])[0], lambda x: lorenz63.jacobian(x[None])[0]),
        ("Lorenz-96 N=40", lorenz96, dict(K=40, J=0, F=8.0), 5000.0,
         lambda x: lorenz96.drift(x[None], K=40, J=0, F=8.0)[0],
         lambda x: lorenz96.jacobian(x[None], K=40, J=0, F=8.0)[0]),
    ]
    print("times: wall (cpu) seconds; the first call includes the numba compilation")
    print(f"{'system':16s} {'T':>7s} {'first call s':>14s} {'warm s':>13s} "
          f"{'numpy s (scaled)':>17s}"
          f" {'lambda_1':>9s} {'n_pos':>5s} {'D_KY':>6s} {'sum':>10s}")
    for name, mod, kw, T, f, jac in cases:
        t0, c0 = time.perf_counter(), time.process_time()
        lyapunov(mod, t_total=T, burn_in=100.0, seed=0, **kw)
        first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ds = lyapunov(mod, t_total=T, burn_in=100.0, seed=0, **kw)
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        x0 = mod.tangent_system(**kw).x0
        n_qr = int(T * args.ref_fraction / 0.1)
        t0 = time.perf_counter()
        ref = numpy_reference(f, jac, x0, x0.size, 0.01, 10, n_qr, 1000)
        t_ref = (time.perf_counter() - t0) * (T / 0.1 + 1000) / (n_qr + 1000)
        lam = ds.exponents.values
        print(f"{name:16s} {T:7.0f} {first:6.1f} ({first_cpu:5.1f}) {warm:5.1f} ({warm_cpu:5.1f}) "
              f"{t_ref:17.1f} {lam[0]:9.4f} "
              f"{int(np.sum(lam > 0)):5d} {float(ds.kaplan_yorke_dimension):6.3f} "
              f"{float(ds.exponent_sum):10.5f}")
        print(f"{'':16s} numpy reference over T = {n_qr * 0.1:.0f}: lambda_1 {ref[0]:.4f}, "
              f"D_KY {kaplan_yorke(ref):.3f}, sum {ref.sum():.5f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref-fraction", type=float, default=0.1)
    main(p.parse_args())
