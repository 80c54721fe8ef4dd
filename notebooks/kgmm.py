# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # KGMM on the paper's 1-D and 2-D examples
#
# The K-means Gaussian-mixture score estimator of Giorgini, Bischoff & Souza ("KGMM: A K-means
# clustering approach to Gaussian mixture modeling for score function estimation") on two of
# the paper's examples, whose scores are known exactly:
#
# * 1-D: the reduced triad model with correlated additive–multiplicative noise (the paper's
#   Figure 2), and the plain Gaussian-mixture score at the same small `sigma` (the paper's
#   Figure 1 point: the plain mixture becomes noisy as `sigma` shrinks, the cell averages do not);
# * 2-D: the asymmetric double-well potential (the paper's Figure 3): the score field and the
#   PDFs of a Langevin model driven by the estimated score.
#
# The method and its accuracy tables are in the KGMM page of the user guide. Set
# `XLANGEVIN_NOTEBOOK_QUICK=1` for the test size (shorter records and ensembles).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import xlangevin
from xlangevin import systems

QUICK = os.environ.get("XLANGEVIN_NOTEBOOK_QUICK") == "1"
N_SAMPLES = 20_000 if QUICK else 100_000
MEMBERS = 8 if QUICK else 32

# %% [markdown]
# ## 1-D: the reduced triad model
# Simulated with Euler–Maruyama (Ito), sampled every 0.01 time units. The score is fitted at
# `sigma = 0.05` (standardized units) and compared with the exact score where the data are.

# %%
triad = systems.triad.simulate(n_samples=N_SAMPLES, seed=0, progress=False)
score = triad.x.score.fit(method="kgmm", sigma=0.05, seed=0, progress=False)
gmm = triad.x.score.fit(method="gmm", sigma=0.05, seed=0)

lo, hi = np.quantile(triad.x.values, [0.025, 0.975])        # 95 % of the probability
grid = np.linspace(lo, hi, 200)[:, None]
exact = systems.triad.score(grid)[:, 0]
kgmm_s = score(grid)[:, 0]
gmm_s = gmm(grid)[:, 0]
weight = systems.triad.density(grid)


def rel_error(s):
    """Density-weighted relative L2 error against the exact score on the grid."""
    return np.sqrt(np.sum(weight * (s - exact) ** 2) / np.sum(weight * exact**2))


print(f"triad, sigma = 0.05: relative L2 error KGMM {rel_error(kgmm_s):.3f}, "
      f"plain GMM {rel_error(gmm_s):.3f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].plot(grid, exact, "k", lw=2, label="exact")
ax[0].plot(grid, gmm_s, color="tab:orange", lw=0.8, label="plain GMM")
ax[0].plot(grid, kgmm_s, color="tab:blue", lw=1.5, label="KGMM")
ax[0].set(xlabel="x", ylabel="score s(x)", title="triad: score at sigma = 0.05")
ax[0].legend()
ax[1].hist(triad.x.values, bins=80, density=True, color="0.8", label="data")
ax[1].plot(grid, weight, "k", label="exact density")
ax[1].set(xlabel="x", ylabel="p(x)", title="triad: stationary density")
ax[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2-D: the asymmetric double-well potential
# `dx = -grad U(x) dt + sqrt(2) dW` (the reversible case, `C = 0`), so the score is `-grad U`.
# The estimated score drives a Langevin model fitted to the same record (`Phi` and `Sigma`
# from the data); its ensemble is compared with the data.

# %%
pot = systems.potential.simulate(n_samples=N_SAMPLES, seed=1, progress=False)
score2 = pot.x.score.fit(method="kgmm", sigma=0.05, p_min=0.005, seed=0, progress=False)
states = pot.x.values[:: max(1, N_SAMPLES // 4000)]
err2 = np.linalg.norm(score2(states) - systems.potential.score(states)) / \
    np.linalg.norm(systems.potential.score(states))
print(f"potential, sigma = 0.05: relative L2 error of the KGMM score on data states {err2:.3f}")

# %%
xs, ys = np.meshgrid(np.linspace(-1.8, 1.8, 17), np.linspace(-2.0, 2.0, 17))
points = np.column_stack([xs.ravel(), ys.ravel()])
fig, ax = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
for a, field, title in [(ax[0], systems.potential.score(points), "exact score -grad U"),
                        (ax[1], score2(points), "KGMM score")]:
    a.hist2d(pot.x.values[:, 0], pot.x.values[:, 1], bins=60, cmap="Greys")
    a.quiver(points[:, 0], points[:, 1], field[:, 0], field[:, 1], color="tab:blue",
             angles="xy", scale_units="xy", scale=25)
    a.set(title=title, xlabel="x_0")
ax[0].set_ylabel("x_1")
fig.tight_layout()
plt.show()

# %%
model = pot.x.langevin.fit(score=score2, seed=0, progress=False)
sim = model.generate(n_steps=50_000 if QUICK else 100_000, dt=0.002, save_every=5,
                     n_members=MEMBERS, burn_in=1000, seed=2, progress=False)
report = xlangevin.compare(pot.x, sim)
print(xlangevin.analysis.format_report(report))
fig = xlangevin.plot.comparison(report, data=pot.x, sim=sim)
plt.show()
