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
# # Real climate indices with the defaults: Nino-3 and the SOI
#
# The notebook form of `docs/climate_indices.md` (which has the full table and the discussion).
# Two monthly records that install with Python packages: the ERSSTv4 Nino-3 anomaly
# (PyWavelets) and the Darwin Southern Oscillation Index (iris-sample-data). Each model is
# fitted with `ds.langevin.fit(seed=0)`: the score is chosen on a held-out block of the record
# (`score="auto"`), `Cdot(0)` likewise (`cdot="auto"`). The baselines are the AR(1) model and
# the linear inverse model (LIM) on the same state, `xlangevin.lim`.
#
# Set the environment variable `XLANGEVIN_NOTEBOOK_QUICK=1` for the test size (8 members
# instead of 64; the fits are the same).

# %%
import os
import sys
import warnings

import numpy as np
import scipy.stats as st

import xlangevin as xl
from xlangevin.analysis import format_report

sys.path.insert(0, os.path.join(os.pardir, "docs"))
from climate_indices import figure  # noqa: E402  (the doc's figure, docs/climate_indices.py)

QUICK = os.environ.get("XLANGEVIN_NOTEBOOK_QUICK") == "1"
MEMBERS = 8 if QUICK else 64
STEPS_PER_MONTH = 10                   # dt = 0.1 month
ORIGIN = np.datetime64("1700-01-01")   # simulated months stay inside datetime64[ns]
warnings.simplefilter("ignore", UserWarning)


def simulate(model, n_months, seed=1):
    """``MEMBERS`` members of twice the record's length, saved monthly."""
    return model.generate(2 * n_months * STEPS_PER_MONTH, 1 / STEPS_PER_MONTH,
                          save_every=STEPS_PER_MONTH, n_members=MEMBERS, seed=seed,
                          progress=False, time_origin=ORIGIN)


def observed(obj):
    """The lag-0 component of a delay-embedded object."""
    return obj.sel(lag=0, drop=True) if "lag" in obj.dims else obj


nino = xl.datasets.nino("3").sst.rename("nino3")
soi = xl.datasets.soi_darwin().soi
print(nino.sizes, soi.sizes, f"skewness: Nino-3 {st.skew(nino):.2f}, SOI {st.skew(soi):.2f}")

# %% [markdown]
# ## One variable: the default model against AR(1)
#
# The model's `repr` says which score the held-out criterion chose; the report puts the
# baseline's distances beside the model's, on the same bins.

# %%
cases, sims = {"Nino-3": nino, "SOI": soi}, {}
for name, series in cases.items():
    model = series.langevin.fit(seed=0, progress=False)
    print(name, model.score)
    sims[name] = {"default": simulate(model, series.sizes["time"]),
                  "AR(1)": simulate(xl.lim(series), series.sizes["time"])}
    report = xl.compare(series, sims[name]["default"], max_lag=24,
                        baseline={"AR(1)": sims[name]["AR(1)"]})
    print(format_report(report), "\n")

# %% [markdown]
# ## Delay embedding: the oscillation
#
# No one-variable Markov model turns its ACF negative near 10 months, the ENSO quasi-period.
# The delay-embedded state `(x(t), x(t - 3 mo), x(t - 6 mo))` can rotate. With a skewed score a
# constant `Phi_A` rotates too unevenly to keep the phase; the density-preserving polynomial
# current `v = A(x) s(x) + div A(x)` (`current_velocity="polynomial"`) keeps both the skewed
# marginal and the oscillation.

# %%
emb = xl.delay_embed(nino, [3, 6])
model = emb.langevin.fit(seed=0, progress=False, current_velocity="polynomial")
print(model)
n = emb.sizes["time"]
cases["Nino-3 embedded"] = observed(emb)
runs = sims["Nino-3 embedded"] = {"polynomial current": observed(simulate(model, n)),
                                  "LIM": observed(simulate(xl.lim(emb), n))}
report = xl.compare(observed(emb), runs["polynomial current"], max_lag=24,
                    baseline={"LIM": runs["LIM"]})
print(format_report(report))
for name, sim in runs.items():
    print(f"{name}: skewness {st.skew(sim.values.ravel()):.2f} "
          f"(data {st.skew(observed(emb).values):.2f})")

# %% [markdown]
# ## PDFs and ACFs of the observed index

# %%
fig = figure(cases, sims)   # shown by the inline backend
