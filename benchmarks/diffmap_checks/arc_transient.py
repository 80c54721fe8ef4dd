"""Arc: does beta = -0.2 fill the angular tails FASTER (transient, chains started at the mode)?"""
import numpy as np, time
from xlangevin import samplers as dm
from xlangevin.systems import manifolds
th0 = np.pi / 4
def theta(Z): return np.arctan2(Z[:, 1], Z[:, 0]) - th0
checkpoints = (10, 20, 40, 80, 160)
for noise, output in (("data-aware", "noisy"), ("constant", "mean")):
    res = {}
    for beta in (0.0, -0.2):
        t0 = time.perf_counter(); rows = []
        for seed in range(4):
            X = manifolds.noisy_arc(2000, seed=seed)
            s = dm.DiffusionMap(eps=0.009, beta=beta, standardize=False, seed=seed).fit(X)
            s = s.with_options(noise=noise, output=output)
            rng = np.random.default_rng(1000 + seed)
            Z = np.tile([np.cos(th0), np.sin(th0)], (2000, 1))
            row = []
            for i in range(1, max(checkpoints) + 1):
                Z, out = s.step(Z, rng)
                if i in checkpoints:
                    th = theta(out)
                    row.append([th.std(), np.mean(np.abs(th) > 1.2)])
            rows.append(row)
        res[beta] = np.array(rows)          # (seed, checkpoint, 2)
        A = res[beta].mean(0)
        print(f"{noise} {output} beta={beta}: " + "  ".join(
            f"n={c}: sd {a[0]:.3f} t2 {a[1]:.4f}" for c, a in zip(checkpoints, A)) +
            f" [{time.perf_counter()-t0:.0f}s]", flush=True)
    D = res[-0.2] - res[0.0]
    print("   paired d(beta=-0.2 - 0): " + "  ".join(
        f"n={c}: dsd {D[:, j, 0].mean():+.4f}+-{D[:, j, 0].std(ddof=1)/2:.4f} dt2 {D[:, j, 1].mean():+.4f}+-{D[:, j, 1].std(ddof=1)/2:.4f}"
        for j, c in enumerate(checkpoints)), flush=True)
print("truth sd 0.6, t2 0.0455")
