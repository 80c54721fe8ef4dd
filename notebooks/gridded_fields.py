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
# # Gridded fields: land mask, EOF reduction, a Langevin model of the PCs, maps
#
# The notebook form of `docs/fields.md`. A long `(time, lat, lon)` record with a land mask, the
# gridded benchmark `xlangevin.systems.gridded` (a stochastic Ginzburg-Landau-type
# advection-diffusion field with skewed PDFs), is reduced to its leading EOFs
# (`reduce=xlangevin.EOF(...)`), an effective Langevin model with a polynomial score is fitted
# on the PCs and compared with a LIM on the same PCs by `xlangevin.compare_fields`; the
# generated fields come back on the original grid, land NaN. Then the A1B temperature field of
# `iris-sample-data` (annual, 360_day calendar) and the OSTIA SST field (land masked).
#
# Set `XLANGEVIN_NOTEBOOK_QUICK=1` for the test size (2000 days and 6 EOFs instead of 10^4
# days and 20 EOFs).

# %%
import os
import time
import warnings

import matplotlib.pyplot as plt  # noqa: F401  (figures go through pyplot: shown inline)
import numpy as np
import xarray as xr

import xlangevin as xl
from xlangevin import EOF, EffectiveLangevin
from xlangevin.systems import gridded

QUICK = os.environ.get("XLANGEVIN_NOTEBOOK_QUICK") == "1"
N_DAYS, N_MODES = (2000, 6) if QUICK else (10_000, 20)
DT = 0.5 if QUICK else 0.1   # days: Euler-Maruyama inflates a mode's variance by ~lambda DT / 2
warnings.simplefilter("ignore", UserWarning)

ds = gridded.simulate(n_samples=N_DAYS, seed=0)
field = ds["T"]
print(field.sizes, "land points:", int(ds.land.sum()), "of", ds.land.size)

# %% [markdown]
# ## Fit on the leading EOFs: polynomial score vs LIM
#
# The same `EOF` stage (area weights `sqrt(cos lat)`, anomalies about the time mean) feeds both
# models, so they share the PCs. The land points are dropped before the EOFs are computed.

# %%
eof = EOF(n_modes=N_MODES)
t0 = time.perf_counter()
model = EffectiveLangevin(cdot="logm", seed=0, progress=False).fit(
    field, score="polynomial", reduce=eof)
lim = EffectiveLangevin(cdot="logm", seed=0, progress=False).fit(
    field, score="gaussian", reduce=eof)
print(f"fits: {time.perf_counter() - t0:.0f} s;", model.space.reduction)


def simulate(m, seed=1):
    """One member as long as the record, saved daily like the data."""
    return m.generate(int(N_DAYS / DT), DT, save_every=int(round(1 / DT)), seed=seed,
                      burn_in=int(200 / DT), progress=False)


sim, sim_lim = simulate(model), simulate(lim)
land = sim.isel(member=0).isnull()
print(sim.dims, sim.attrs["units"], "NaN exactly on land:",
      bool((land.all("time").values == ds.land.values).all()
           and not land.values[:, ~ds.land.values].any()))

# %% [markdown]
# ## Spatial diagnostics

# %%
report = xl.compare_fields(field, sim, baselines={"LIM": sim_lim}, space=model.space)
lead = report.sel(mode=slice(1, 5))
rows = {
    "variance pattern correlation": report.variance_pattern_correlation,
    "variance RMSE (relative)": report.variance_rmse,
    "lag-1 ACF pattern correlation": report.acf1_pattern_correlation,
    "skewness pattern correlation": report.skewness_pattern_correlation,
    "skewness RMSE": report.skewness_rmse,
    "max KL, PCs 1-5": lead.pc_kl.max("mode"),
    "max |skewness error|, PCs 1-5": abs(lead.pc_skewness - lead.pc_skewness.sel(
        source="data")).max("mode"),
}
print(f"{'':32s}{'model':>10s}{'LIM':>10s}")
for name, v in rows.items():
    print(f"{name:32s}{float(v.sel(source='model')):10.3f}{float(v.sel(source='LIM')):10.3f}")
print("PC skewness (data, model, LIM):")
print(lead.pc_skewness.round(3).values)

# %% [markdown]
# Maps of the variance and of the skewness (the benchmark's land is not the Earth's, so no
# coastlines: the mask is outlined).

# %%
fig = xl.field_maps(report, "variance", coastlines=False)
if not QUICK:
    xl.plot.save_figure(fig, os.path.join(os.pardir, "docs", "fields_variance.png"))

# %%
fig = xl.field_maps(report, "skewness", coastlines=False)

# %% [markdown]
# ## The A1B temperature field (iris-sample-data, 360_day calendar)
#
# 240 annual means of 1.5 m temperature on 37 x 49 points: more points than samples, so the
# field is fitted on the EOFs that explain 90 % of the variance, after removing a linear trend
# (the scenario's warming) at every point. The 360_day calendar is kept by the generated dates.

# %%
import iris_sample_data  # noqa: E402

DATA = os.path.join(os.path.dirname(iris_sample_data.__file__), "sample_data")
coder = xr.coders.CFDatetimeCoder(use_cftime=True)
a1b = xr.open_dataset(os.path.join(DATA, "A1B_north_america.nc"),
                      decode_times=coder)["air_temperature"]
n = a1b.sizes["time"]
t = np.arange(n, dtype=float)
X = a1b.values.reshape(n, -1).astype(float)
slope, icpt = np.polyfit(t, X, 1)
a1b_anom = a1b.copy(data=(X - np.outer(t, slope) - icpt).reshape(a1b.shape))
a1b_model = a1b_anom.langevin.fit(score="polynomial", cdot="logm",
                                  reduce=EOF(variance=0.9), seed=0, progress=False)
a1b_lim = a1b_anom.langevin.fit(score="gaussian", cdot="logm", reduce=EOF(variance=0.9),
                                seed=0, progress=False)
a1b_sims = {k: m.generate(4 * n, 0.25, save_every=4, burn_in=100, seed=1, progress=False)
            for k, m in (("model", a1b_model), ("LIM", a1b_lim))}
print(a1b_model.space.reduction, a1b_sims["model"].time.values[:2])
a1b_report = xl.compare_fields(a1b_anom, a1b_sims["model"], baselines={"LIM": a1b_sims["LIM"]},
                               space=a1b_model.space)
print(a1b_report[["variance_pattern_correlation", "variance_rmse", "acf1_pattern_correlation",
                  "skewness_rmse"]].to_dataframe().round(3))

# %%
fig = xl.field_maps(a1b_report, "variance")      # coastlines from offline data, if installed
if not QUICK:
    xl.plot.save_figure(fig, os.path.join(os.pardir, "docs", "fields_a1b.png"))

# %% [markdown]
# ## The OSTIA SST field: a land mask
#
# 54 monthly means on 18 x 432 points, 2055 of them land (NaN at every time): the mask is
# recognized and the ocean reduced to its EOFs. The record is stamped mid-month, which the data
# layer refuses as irregular; relabel to month starts. 54 samples are too few for the Langevin
# fit (its Cdot(0) needs 100 lag pairs): the score model of the PCs is fitted instead.

# %%
ost = xr.open_dataset(os.path.join(DATA, "ostia_monthly.nc"))["surface_temperature"]
ost = ost.assign_coords(time=[t.replace(day=1, hour=0) for t in ost.time.to_index()])
score = ost.score.fit(method="gaussian", reduce=EOF(variance=0.9), progress=False)
print(score.space)
try:
    ost.langevin.fit(score="gaussian", cdot="logm", reduce=EOF(variance=0.9), progress=False)
except xl.DataError as err:
    print("Langevin fit:", str(err)[:120], "...")
