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
# # The Lorenz-96 demo
#
# What `make demo` does, step by step: an effective Langevin model of the four slow variables
# `x_k` of the two-scale stochastic Lorenz-96 system, learned from the shipped archive. The
# slow variables carry a travelling wave around the ring `k = 0..3`; a constant antisymmetric
# `Phi_A` cannot carry it, the state-dependent current velocity `v(x)` can (see the pages
# "The Lorenz-96 demo" and "Current velocity" of the user guide).
#
# The steps use the demo's own configuration (`xlangevin.demo.DEMOS["lorenz96"]`): a score by
# denoising score matching with circular-shift augmentation, `Cdot(0)` from the increments at
# the coarse-graining lag 0.1, the current velocity, and an ensemble compared with the data.
# Set `XLANGEVIN_NOTEBOOK_QUICK=1` for the test size (the first fifth of the record, 30 DSM
# epochs and a shorter ensemble; the distances are then larger than the demo's).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import xlangevin
from xlangevin.analysis import format_report
from xlangevin.demo import DEMOS

QUICK = os.environ.get("XLANGEVIN_NOTEBOOK_QUICK") == "1"
config = DEMOS["lorenz96"]
data = xlangevin.datasets.open_dataset("lorenz96").x.load()
if QUICK:
    data = data.isel(time=slice(0, data.sizes["time"] // 5))
data_dt = float(data.time[1] - data.time[0])
print(config["title"], dict(data.sizes), f"sampled every {data_dt:g}")


def wave_speed(da):
    """Mean phase velocity (radians per time unit) of the Fourier mode 1 of ``da`` over ``k``."""
    z = np.fft.fft(da.transpose(..., "time", "k").values, axis=-1)[..., 1]
    return float(np.angle(z[..., 1:] * np.conj(z[..., :-1])).mean() / data_dt)


# %% [markdown]
# ## Score: denoising score matching with shift augmentation
# The system is invariant under circular shifts of `k`; the augmentation trains on randomly
# shifted copies of each sample.

# %%
options = dict(config["score"]["dsm"])
if QUICK:
    options["epochs"] = 30
score = data.score.fit(method="dsm", seed=0, **options)
score

# %% [markdown]
# ## Langevin model with the current velocity

# %%
lag = int(round(config["langevin"]["coarse_lag"] / data_dt))
model = data.langevin.fit(score=score, seed=0, cdot="lagged", lags=(lag,), order=0,
                          current_velocity=True,
                          current_options=config["langevin"]["current_options"])
model

# %%
fig = xlangevin.plot.matrices({"Phi": model.Phi, "Phi_S": model.Phi_S, "Phi_A": model.Phi_A,
                               "Sigma": model.Sigma})
plt.show()

# %% [markdown]
# ## Ensemble and comparison

# %%
dt = config["dt"]
length = 100.0 if QUICK else config["length"]
sim = model.generate(n_steps=int(round(length / dt)), dt=dt, save_every=int(round(data_dt / dt)),
                     n_members=8 if QUICK else 32, burn_in=int(round(config["burn_in"] / dt)),
                     seed=1)
report = xlangevin.compare(data, sim)
print(format_report(report))
print(f"travelling wave: mean phase velocity {wave_speed(data):.2f} rad per time unit in the "
      f"data, {wave_speed(sim):.2f} in the model")

# %%
fig = xlangevin.plot.comparison(report, data=data, sim=sim)
plt.show()
