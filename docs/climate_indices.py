"""Case study: effective Langevin models of two real monthly climate indices (docs/climate_indices.md).

Records (METHODS.md section 10, both installable offline): the ERSSTv4 Nino-3 SST anomaly
(PyWavelets, 800 months 1950-2016, linear trend removed; positively skewed) and the Darwin
Southern Oscillation Index (iris-sample-data, 1764 months 1866-2012). Models, all with the
defaults of ``ds.langevin.fit`` (``score="auto"``, ``cdot="auto"``):

* the 1-D model of each index, against its AR(1) (``xlangevin.lim`` of the index);
* Nino-3 delay-embedded on lags (0, 3, 6) months, against the LIM on the same embedded state;
* the joint Nino-3 + SOI model over their common months (1950-2012), each delay-embedded on
  (0, 3, 6) months, against the LIM on the same state;
* for the embedded and joint states also the default with ``current_velocity="polynomial"``
  (the density-preserving current ``v = A(x) s + div A`` in place of the constant ``Phi_A s``).

Each model is run as an ensemble of ``MEMBERS`` members of twice the record's length and
compared on the observed component (lag 0), all models of a case on the same histogram bins:
marginal KL(data || model), W1 / std, skewness, excess kurtosis and the RMSE of the ACF over
lags 0-24 months. Run ``python
docs/climate_indices.py [--out DIR]`` (about 6 minutes on 2 cores); ``run()`` returns the table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st
import xarray as xr

import xlangevin as xl

MEMBERS = 64
MAX_LAG = 24            # months: the ENSO quasi-period lies inside
EMBED_LAGS = [3, 6]     # months
ORIGIN = np.datetime64("1700-01-01")   # simulated months stay inside datetime64[ns]
STEPS_PER_MONTH = 10


def records():
    """The two indices as DataArrays on monthly datetime axes, and their common months."""
    nino = xl.datasets.nino("3").sst.rename("nino3")
    soi = xl.datasets.soi_darwin().soi
    joint = xr.merge([nino, soi], join="inner")
    return nino, soi, joint


def _observed(obj):
    """The lag-0 component of an embedded object (the object itself otherwise)."""
    return obj.sel(lag=0, drop=True) if "lag" in obj.dims else obj


def _simulate(model, n_months, seed):
    """``MEMBERS`` members of ``2 n_months`` months, stepped at a tenth of a month (a month is
    not short against the fastest relaxation of the embedded or joint states)."""
    return model.generate(2 * n_months * STEPS_PER_MONTH, 1 / STEPS_PER_MONTH,
                          save_every=STEPS_PER_MONTH, n_members=MEMBERS, seed=seed,
                          progress=False, time_origin=ORIGIN)


def _rows(case, name, data, sim, report):
    """One table row per variable of ``data``: distances from ``report`` and moments."""
    data, sim = _observed(data), _observed(sim)
    rows = []
    for var in (data.data_vars if isinstance(data, xr.Dataset) else [data.name]):
        d = (data[var] if isinstance(data, xr.Dataset) else data).values.ravel()
        s = (sim[var] if isinstance(sim, xr.Dataset) else sim).values.ravel()
        i = list(report["variable"].values).index(var)
        rows.append({"case": case, "variable": var, "model": name,
                     "KL": float(report.kl[i]), "W1/std": float(report.wasserstein_std[i]),
                     "skew": st.skew(s), "skew data": st.skew(d),
                     "kurtosis": st.kurtosis(s), "kurtosis data": st.kurtosis(d),
                     "ACF RMSE": float(report.acf_rmse[i])})
    return rows


def _fit(data, seed, **options):
    """``data.langevin.fit`` with the defaults and ``options``, timed, warnings silenced."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = data.langevin.fit(seed=seed, progress=False, **options)
    return model, time.perf_counter() - t0


def _case(case, data, seed=0):
    """The default model (and, for several features, the default with the density-preserving
    polynomial current) and the linear baseline of ``data``: fitted, simulated, compared on
    common bins (every comparison's grid spans the data and all the simulations)."""
    n = data.sizes["time"]
    models = {"default": _fit(data, seed)}
    if "lag" in data.dims or isinstance(data, xr.Dataset):
        models["polynomial current"] = _fit(data, seed, current_velocity="polynomial")
    baseline = "LIM" if len(models) > 1 else "AR(1)"
    sims = {name: _simulate(model, n, seed + 1) for name, (model, _) in models.items()}
    sims[baseline] = _simulate(xl.lim(data, seed=seed), n, seed + 1)
    rows = []
    for name, sim in sims.items():
        others = {k: _observed(v) for k, v in sims.items() if k != name}
        report = xl.compare(_observed(data), _observed(sim), max_lag=MAX_LAG, baseline=others)
        rows += _rows(case, name, data, sim, report)
    chosen = {name: {"score": model.score.attrs.get("selection", model.score.method),
                     "losses": model.score.attrs.get("selection_losses", ""),
                     "cdot": model.cdot_estimator, "n_clipped": model.attrs["n_clipped"],
                     "fit_s": round(fit_s, 1),
                     "Phi_A/Phi_S": float(np.linalg.norm(model.Phi_A_std)
                                          / np.linalg.norm(model.Phi_S_std)),
                     "current": (model.attrs["current_velocity"] or "none")}
              for name, (model, fit_s) in models.items()}
    return rows, chosen, models, sims


def run(out=None, seed=0):
    """Fit, simulate and compare every case; returns ``(table DataFrame, choices, sims)``
    and, with ``out``, writes ``climate_indices.png`` and ``climate_indices_table.md`` there."""
    nino, soi, joint = records()
    cases = {"Nino-3 (1-D)": nino, "SOI (1-D)": soi,
             "Nino-3 embedded (0, 3, 6 mo)": xl.delay_embed(nino, EMBED_LAGS),
             "Nino-3 + SOI embedded": xl.delay_embed(joint, EMBED_LAGS)}
    rows, choices, sims = [], {}, {}
    for case, data in cases.items():
        r, choices[case], _, sims[case] = _case(case, data, seed)
        rows += r
    table = pd.DataFrame(rows)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "climate_indices_table.md").write_text(table_markdown(table, choices))
        figure(cases, sims, out / "climate_indices.png")
    return table, choices, sims


def table_markdown(table, choices) -> str:
    cols = ["case", "variable", "model", "KL", "W1/std", "skew", "skew data", "kurtosis",
            "kurtosis data", "ACF RMSE"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])
                                       for c in cols) + " |")
    lines.append("")
    lines += [f"- {case}, {name}: score {c['score']}, Cdot {c['cdot']}, |Phi_A|/|Phi_S| "
              f"{c['Phi_A/Phi_S']:.2f}, current {c['current']}, fit {c['fit_s']} s"
              for case, models in choices.items() for name, c in models.items()]
    return "\n".join(lines) + "\n"


def figure(cases, sims, path=None):
    """Marginal PDFs and ACFs (0-24 months) of the observed index in each case (Nino-3, or
    the SOI in its 1-D case): ``cases`` maps a case to its data, ``sims`` a case to
    ``{model name: simulation}``. Saved to ``path`` (and closed) when given; returns the
    figure (the notebook shows it)."""
    from xlangevin.analysis import acf
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cases), figsize=(4 * len(cases), 6.5))
    for j, (case, data) in enumerate(cases.items()):
        obs = _observed(data)
        x = obs["nino3"] if isinstance(obs, xr.Dataset) else obs
        bins = np.linspace(float(x.min()) - 0.5, float(x.max()) + 0.5, 40)
        axes[0, j].hist(x.values, bins, density=True, color="0.7", label="data")
        axes[1, j].plot(acf(x.values, MAX_LAG), "k", lw=2, label="data")
        for name, sim in sims[case].items():
            s = _observed(sim)
            s = s["nino3"] if isinstance(s, xr.Dataset) else s
            axes[0, j].hist(s.values.ravel(), bins, density=True, histtype="step", lw=1.5,
                            label=name)
            r = np.nanmean([acf(m, MAX_LAG) for m in s.values], axis=0)
            axes[1, j].plot(r, lw=1.5, label=name)
        axes[0, j].set_title(f"{case}: {x.name}", fontsize=9)
        axes[0, j].legend(fontsize=7)
        axes[1, j].axhline(0, color="0.5", lw=0.5)
        axes[1, j].set_xlabel("lag (months)")
    axes[0, 0].set_ylabel("PDF of the index")
    axes[1, 0].set_ylabel("ACF of the index")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="climate_indices_output")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    table, choices, _ = run(args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    for case, models in choices.items():
        for name, c in models.items():
            print(case, name, c)


if __name__ == "__main__":
    main()
