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
# # Quick start: simulate, score, Langevin model, ensemble, compare
#
# The whole route of the package on the 2-D rotational double-well potential
# (`xlangevin.systems.potential` with `C = 0.8`), whose true answers are known:
# the score is `-grad U`, and the Langevin form `dx = Phi s(x) dt + sqrt(2) Sigma dW` has
# `Phi = [[1, -0.8], [0.8, 1]]` and `Sigma = I`.
#
# 1. simulate a record (an `xr.Dataset`, labeled, with units);
# 2. fit the score with KGMM (`ds.x.score.fit`) and check it against the exact score;
# 3. fit the effective Langevin model (`ds.x.langevin.fit`) and compare `Phi` with the truth;
# 4. generate an ensemble and compare its statistics with the data (`xlangevin.compare`).
#
# Set `XLANGEVIN_NOTEBOOK_QUICK=1` for the test size (a shorter record and ensemble).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import xlangevin
from xlangevin import systems
from xlangevin.analysis import format_report

QUICK = os.environ.get("XLANGEVIN_NOTEBOOK_QUICK") == "1"
N_SAMPLES = 20_000 if QUICK else 100_000
MEMBERS = 8 if QUICK else 32

# %% [markdown]
# ## 1. Simulate
# The simulator returns labeled data: `x(time, k)` with the parameters and the seed in the
# attrs. Every simulation is reproducible from `seed`.

# %%
ds = systems.potential.simulate(n_samples=N_SAMPLES, C=0.8, seed=0)
ds

# %% [markdown]
# ## 2. The score
# KGMM (Giorgini, Bischoff & Souza) smooths the data at a scale `sigma` (standardized units),
# averages the noise in the cells of a partition and interpolates with a small network. The
# result is a `ScoreModel`: it takes xarray and returns the score in physical units with the
# input's labels.

# %%
score = ds.x.score.fit(method="kgmm", sigma=0.05, p_min=0.005, seed=0)
score

# %%
states = ds.x.isel(time=slice(0, 2000))
estimated = score(states)
exact = systems.potential.score(states.values)
rel_error = np.linalg.norm(estimated.values - exact) / np.linalg.norm(exact)
print(f"relative L2 error of the KGMM score on 2000 data states: {rel_error:.3f}")

# %% [markdown]
# ## 3. The effective Langevin model
# `Phi = -Cdot(0) <s x^T>^-1` from the data's correlation derivative at lag 0 and the score;
# its symmetric part gives the noise `Sigma`. The true `Phi` of this system is
# `[[1, -0.8], [0.8, 1]]`.

# %%
model = ds.x.langevin.fit(score=score, seed=0)
model

# %%
print("Phi (physical units):\n", np.round(model.Phi.values, 2))
print("true Phi:\n", systems.potential.true_phi(0.8))
fig = xlangevin.plot.matrices({"Phi": model.Phi, "Phi_S": model.Phi_S, "Phi_A": model.Phi_A,
                               "Sigma": model.Sigma})
plt.show()

# %% [markdown]
# ## 4. Ensemble and comparison
# `generate` integrates the model with Euler–Maruyama (`dt` in the data's time units) and
# returns xarray with the data's coordinates and a `member` dim; `compare` gives the PDFs,
# ACFs and the distances (KL divergence, Hellinger, W1 over the data's std, ACF RMSE).

# %%
sim = model.generate(n_steps=50_000 if QUICK else 100_000, dt=0.002, save_every=5,
                     n_members=MEMBERS, burn_in=1000, seed=1)
report = xlangevin.compare(ds.x, sim)
print(format_report(report))

# %%
fig = xlangevin.plot.comparison(report, data=ds.x, sim=sim)
plt.show()

# %% [markdown]
# The model saves to NetCDF (a tree of groups, no pickle) and reads back identical:

# %%
import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    path = model.to_netcdf(os.path.join(tmp, "model.nc"))
    again = xlangevin.open_model(path)
print(again)
assert np.allclose(again.Phi.values, model.Phi.values)
