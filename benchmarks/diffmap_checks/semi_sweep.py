"""Hyper-semisphere eps sweep, several seeds, exact W2^2 (ot.emd2) against fresh samples.
Both outputs (mean m_eps(x') and noisy x') from the same chains; paired beta comparison.
usage: semi_sweep.py d n_steps n_seeds data_variant [eps list]"""
import sys, time, numpy as np, ot
from xlangevin import samplers as dm
from xlangevin.systems import manifolds

d, nsteps, nseeds, variant = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
eps_grid = [float(e) for e in sys.argv[5].split(",")] if len(sys.argv) > 5 else \
    [0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05]
M = 1000

def data(n, seed):
    rng = np.random.default_rng(seed)
    if variant == "scaled":      # ours: last coordinate x alpha = 5
        return manifolds.hyper_semisphere(n, d, seed=seed)
    if variant == "unit":        # alpha not applied
        return manifolds.hyper_semisphere(n, d, alpha=1.0, seed=seed)
    if variant == "vmf":         # density ~ exp(alpha w_d) on the upper hemisphere, alpha = 5
        out = []
        while sum(len(o) for o in out) < n:
            w = rng.standard_normal((4 * n, d)); w /= np.linalg.norm(w, axis=1, keepdims=True)
            w[:, -1] = np.abs(w[:, -1])
            keep = rng.random(4 * n) < np.exp(5.0 * (w[:, -1] - 1.0))
            out.append(w[keep])
        w = np.concatenate(out)[:n]
        return w * (1.0 + 0.01 * rng.random(n))[:, None]
    raise ValueError(variant)

def w2(A, B):
    return float(ot.emd2([], [], ot.dist(A, B), numItermax=10**7))

print(f"d={d} variant={variant} steps={nsteps} seeds={nseeds} M={M}; exact W2^2 vs 1000 fresh")
base = [w2(data(M, s), data(M, s + 100)) for s in range(nseeds)]
print(f"training set vs fresh: {np.mean(base):.4f} +- {np.std(base, ddof=1)/np.sqrt(nseeds):.4f}", flush=True)
R = {}
for eps in eps_grid:
    for beta in (0.0, -0.2):
        vals = {"mean": [], "noisy": []}
        t0 = time.perf_counter()
        for s in range(nseeds):
            X, ref = data(M, s), data(M, s + 100)
            model = dm.DiffusionMap(eps=eps, beta=beta, standardize=False, seed=s).fit(X)
            rng = np.random.default_rng(s + 1)
            Z = X[rng.integers(0, M, 1000)].copy()
            smp = model.with_options(output="noisy")
            assert np.allclose(smp._kernel.X, X)
            for _ in range(nsteps):
                Z, Zp = smp.step(Z, rng)
            vals["mean"].append(w2(Z, ref)); vals["noisy"].append(w2(Zp, ref))
        R[eps, beta] = {k: np.array(v) for k, v in vals.items()}
        line = f"eps {eps:6.3f} beta {beta:4.1f}: "
        for k in ("mean", "noisy"):
            v = R[eps, beta][k]
            line += f"{k} {v.mean():.4f}+-{v.std(ddof=1)/np.sqrt(nseeds):.4f}  "
            if beta != 0:
                dv = v - R[eps, 0.0][k]
                line += f"(d {dv.mean():+.4f}+-{dv.std(ddof=1)/np.sqrt(nseeds):.4f})  "
        print(line + f"[{time.perf_counter()-t0:.0f}s]", flush=True)
np.savez(f"semi_d{d}_{variant}_{nsteps}.npz", eps=np.array(eps_grid), base=np.array(base),
         **{f"{k}_{b}": np.array([R[e, b][k] for e in eps_grid]) for k in ("mean", "noisy") for b in (0.0, -0.2)})
for k in ("mean", "noisy"):
    for beta in (0.0, -0.2):
        row = [R[e, beta][k].mean() for e in eps_grid]
        print(f"best {k} beta={beta}: eps {eps_grid[int(np.argmin(row))]} ({min(row):.4f})")
