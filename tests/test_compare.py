"""xlangevin.compare and the distances: analytic values, sequences/members, bad inputs, plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import xlangevin  # noqa: E402
from xlangevin.analysis import plot  # noqa: E402
from xlangevin.data import DataError  # noqa: E402
from xlangevin.analysis import (  # noqa: E402
    acf_rmse, compare, hellinger, kl_divergence, wasserstein1)


def ar1(phi, n, d=1, seed=0, members=None):
    """Unit-variance AR(1) ``x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t``, shape (n, d) or
    (members, n, d); started in the stationary law."""
    rng = np.random.default_rng(seed)
    shape = (n, d) if members is None else (members, n, d)
    e = rng.normal(size=shape) * np.sqrt(1 - phi**2)
    ax = 0 if members is None else 1
    x = np.moveaxis(e, ax, 0).copy()
    x[0] = rng.normal(size=x.shape[1:])
    for t in range(1, x.shape[0]):
        x[t] += phi * x[t - 1]
    return np.moveaxis(x, 0, ax)


def as_data(x, dt=1.0, name="u"):
    n = x.shape[-2]
    dims = ("time", "x") if x.ndim == 2 else ("member", "time", "x")
    return xr.DataArray(x, dims=dims, name=name,
                        coords={"time": np.arange(n) * dt, "x": np.arange(x.shape[-1])})


# ---- the small distance functions -----------------------------------------------------------

def test_kl_discrete_exact_and_floor():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    exact = 0.5 * np.log(2.0) + 0.5 * np.log(0.5 / 0.75)
    assert kl_divergence(p, q) == pytest.approx(exact, rel=1e-12)
    assert kl_divergence(10 * p, 3 * q) == pytest.approx(exact, rel=1e-12)  # counts are fine
    assert kl_divergence(p, p) == 0.0
    # q empty where p has mass: finite, ~ p log(p / floor)
    k = kl_divergence([0.5, 0.5], [1.0, 0.0], floor=1e-10)
    assert np.isfinite(k) and k == pytest.approx(0.5 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-10),
                                                 rel=1e-6)
    # along an axis
    np.testing.assert_allclose(kl_divergence(np.stack([p, p]), np.stack([q, p]), axis=1),
                               [exact, 0.0], atol=1e-15)
    with pytest.raises(ValueError):
        kl_divergence([0.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError):
        kl_divergence([1.0, 0.0], [1.0, 0.0, 0.0])


def test_hellinger_exact():
    assert hellinger([1, 2, 3], [1, 2, 3]) == pytest.approx(0.0, abs=1e-7)
    assert hellinger([1, 0], [0, 1]) == 1.0
    # H^2 = 1 - sum sqrt(p q)
    p, q = np.array([0.2, 0.8]), np.array([0.6, 0.4])
    assert hellinger(p, q) == pytest.approx(np.sqrt(1 - np.sqrt(0.12) - np.sqrt(0.32)))


def test_wasserstein1_shifted_gaussians():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=100_000), rng.normal(0.7, 1.0, size=100_000)
    # W1(N(0,1), N(m,1)) = |m|; sampling error ~ 1/sqrt(n) ~ 0.005, so 0.02 is ~4 sigma
    assert wasserstein1(x, y) == pytest.approx(0.7, abs=0.02)
    assert wasserstein1(x, x + 2.0) == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(ValueError, match="NaN"):
        wasserstein1([0.0, np.nan], [0.0])


def test_acf_rmse():
    a = np.array([1.0, 0.5, 0.25])
    assert acf_rmse(a, a) == 0.0
    assert acf_rmse(a, a + 0.1) == pytest.approx(0.1)
    assert acf_rmse(a, [1.0, 0.5, np.nan]) == 0.0  # NaN lags skipped


# ---- compare: analytic values --------------------------------------------------------------

def test_gaussian_distances_match_analytic():
    m1, s1, m2, s2 = 0.0, 1.0, 0.5, 1.2
    kl_exact = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5      # 0.11635
    h_exact = np.sqrt(1 - np.sqrt(2 * s1 * s2 / (s1**2 + s2**2))
                      * np.exp(-(m1 - m2) ** 2 / (4 * (s1**2 + s2**2))))         # 0.18252
    rng = np.random.default_rng(0)
    data = as_data(rng.normal(m1, s1, (200_000, 1)))
    sim = as_data(rng.normal(m2, s2, (2, 100_000, 1)))
    r = compare(data, sim, n_lags=5)
    # Histogram estimates, 60 bins of width ~0.2 s: the binning bias is O(h^2) ~ 1e-3 and the
    # sampling bias ~ (bins - 1) / (2 n) ~ 3e-4; over 10 seeds the estimates scattered with
    # sd 0.0016 (KL) and 0.0012 (H) around 0.1166 and 0.1828. Tolerances are ~6 sd.
    assert float(r.kl[0]) == pytest.approx(kl_exact, abs=0.01)
    assert float(r.hellinger[0]) == pytest.approx(h_exact, abs=0.008)
    # W1 between N(0,1) and N(0.5,1.2) = int |F1 - F2| = 0.50080 (quadrature); sd ~0.004
    assert float(r.wasserstein[0]) == pytest.approx(0.5008, abs=0.02)
    # the PDFs are densities on the common grid
    w = r.bin_width.values[0]
    assert float(r.pdf_data[0].sum()) * w == pytest.approx(1.0)
    assert float(r.pdf_sim[0].sum()) * w == pytest.approx(1.0)
    edges_lo = r.bin_center.values[0, 0] - w / 2
    assert edges_lo == pytest.approx(min(data.min(), sim.min()))
    assert r.attrs["kl_mean"] == pytest.approx(float(r.kl.mean()))


def test_same_process_gives_small_distances():
    phi = 0.5
    data = as_data(ar1(phi, 40_000, d=2, seed=1))
    sim = as_data(ar1(phi, 20_000, d=2, seed=2, members=4))
    r = compare(data, sim)
    # independent runs of the same AR(1) (tau = 3): over 10 other seed pairs the largest values
    # were KL 0.0026, H 0.023, W1 0.027, ACF RMSE 0.010; the limits are 2-4x those
    assert r.kl.max() < 0.01
    assert r.hellinger.max() < 0.06
    assert r.wasserstein.max() < 0.05
    assert r.acf_rmse.max() < 0.03
    # data against itself as a one-member sim: exactly 0
    r0 = compare(data, data.expand_dims(member=1), n_lags=20)
    assert float(r0.kl.max()) == 0.0
    assert float(r0.wasserstein.max()) == 0.0
    assert float(r0.acf_rmse.max()) == 0.0
    assert float(r0.hellinger.max()) < 1e-7


def test_shifted_or_faster_sim_gives_large_distances():
    data = as_data(ar1(0.9, 40_000, d=2, seed=3))
    r = compare(data, data + 2.0, n_lags=30)  # same dynamics, mean off by 2 std
    assert np.all(r.kl > 1.0)
    assert np.all(r.hellinger > 0.5)
    np.testing.assert_allclose(r.wasserstein, 2.0, atol=1e-9)
    np.testing.assert_allclose(r.acf_rmse, 0.0, atol=1e-12)  # the ACF ignores the mean
    fast = as_data(ar1(0.3, 20_000, d=2, seed=4, members=2))
    r = compare(data, fast, n_lags=30)
    assert np.all(r.acf_rmse > 0.2)
    assert np.all(r.kl < 0.05)  # same N(0, 1) marginals


# ---- compare: ACFs within sequences ---------------------------------------------------------

def test_acf_per_member_then_averaged():
    phi, dt = 0.8, 0.25
    x = ar1(phi, 20_000, d=2, seed=5, members=4)
    x = x + 10.0 * np.arange(4)[:, None, None]  # members with very different means
    sim = as_data(x, dt=dt)
    data = as_data(ar1(phi, 50_000, d=2, seed=6), dt=dt)  # no member dim
    r = compare(data, sim, n_lags=10)
    np.testing.assert_allclose(r.lag, dt * np.arange(11))
    assert r.sizes["member"] == 4
    np.testing.assert_allclose(r.acf_sim, r.acf_sim_member.mean("member"))
    # per-member ACFs remove each member's mean; pooling the members as one series would give
    # rho ~ 1 at every lag. Standard error of rho(k) ~ sqrt(tau/n) ~ 0.02 per member; over 10
    # other seeds the largest deviations were 0.034 (a member), 0.013 (mean), 0.028 (data).
    expected = phi ** np.arange(11)
    for m in range(4):
        np.testing.assert_allclose(r.acf_sim_member.isel(member=m, feature=0), expected,
                                   atol=0.06)
    np.testing.assert_allclose(r.acf_sim.isel(feature=1), expected, atol=0.03)
    np.testing.assert_allclose(r.acf_data.isel(feature=0), expected, atol=0.05)


def test_acf_not_across_time_gaps():
    phi = 0.8
    a = ar1(phi, 20_000, seed=7)
    b = ar1(phi, 20_000, seed=8) + 50.0
    t = np.concatenate([np.arange(20_000), 30_000 + np.arange(20_000)]) * 0.1
    data = xr.DataArray(np.concatenate([a, b]), dims=("time", "x"), name="u",
                        coords={"time": t, "x": [0]})
    sim = as_data(ar1(phi, 20_000, seed=9, members=2), dt=0.1)
    r = compare(data, sim, n_lags=8)
    assert r.attrs["n_sequences_data"] == 2
    # across the gap the offset of 50 would push rho towards 1; within the two pieces the
    # largest deviation over 10 other seeds was 0.020
    np.testing.assert_allclose(r.acf_data.isel(feature=0), phi ** np.arange(9), atol=0.04)


def test_sim_with_coarser_step_compares_at_common_lags():
    phi = 0.9
    data = as_data(ar1(phi, 40_000, seed=10), dt=0.1)
    sim = as_data(ar1(phi**2, 20_000, seed=11, members=2), dt=0.2)  # same process, every 2nd
    r = compare(data, sim, n_lags=10)
    np.testing.assert_allclose(r.lag, 0.2 * np.arange(11))
    # over 10 other seeds: largest deviation 0.027, largest RMSE 0.022
    np.testing.assert_allclose(r.acf_data.isel(feature=0), phi ** (2 * np.arange(11)), atol=0.05)
    assert float(r.acf_rmse[0]) < 0.05


def test_default_lags_and_pairs_dataset_input():
    rng = np.random.default_rng(12)
    n = 5_000
    ds = xr.Dataset({"a": ("time", rng.normal(size=n)),
                     "b": (("time", "k"), rng.normal(size=(n, 3)))},
                    coords={"time": np.arange(n) * 2.0, "k": [10, 20, 30]})
    ds.time.attrs["units"] = "s"
    sim = xr.Dataset({"a": (("member", "time"), rng.normal(size=(2, n))),
                      "b": (("member", "time", "k"), rng.normal(size=(2, n, 3)))},
                     coords={"time": np.arange(n) * 2.0, "k": [10, 20, 30]})
    r = xlangevin.compare(ds, sim, pairs=None)
    assert list(r.label.values) == ["a", "b[k=10]", "b[k=20]", "b[k=30]"]
    assert r.sizes["lag"] == 11  # white noise: tau = 1 -> the minimum of 10 lag steps
    assert r.lag.attrs["units"] == "s" and float(r.lag[1]) == 2.0
    assert list(zip(r.feature_x.values, r.feature_y.values)) == [(0, 1), (1, 2), (2, 3)]
    assert r.pdf2_data.shape == (3, 15, 15)  # sqrt(5000 / 20) bins: ~20 samples per cell
    r2 = compare(ds, sim, pairs=[("a", "b[k=30]")], max_lag=8.0, bins=30, bins_2d=25)
    assert r2.sizes["pair"] == 1 and r2.sizes["lag"] == 5 and r2.sizes["bin"] == 30
    assert r2.pdf2_sim.shape == (1, 25, 25)
    assert float(r2.pdf2_sim.sum()) * float(r2.center_x[0, 1] - r2.center_x[0, 0]) * \
        float(r2.center_y[0, 1] - r2.center_y[0, 0]) == pytest.approx(1.0)
    assert compare(ds, sim, pairs=[]).sizes["pair"] == 0


# ---- bad inputs -----------------------------------------------------------------------------

def test_bad_inputs_raise_clearly():
    data = as_data(ar1(0.5, 2_000, d=2, seed=13))
    sim = as_data(ar1(0.5, 1_000, d=2, seed=14, members=2))
    with pytest.raises(DataError, match="feature"):
        compare(data, sim.isel(x=[0]))
    with pytest.raises(DataError, match="feature coordinates"):
        compare(data, sim.assign_coords(x=[5, 6]))
    bad = sim.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(DataError, match="sim: .*non-finite"):
        compare(data, bad)
    with pytest.raises(DataError, match="data: .*non-finite"):
        compare(data.where(data.time != 5.0), sim)
    with pytest.raises(DataError, match="sample dim"):
        compare(data, sim.rename(time="t"))
    with pytest.raises(DataError, match="whole"):
        compare(data, sim.assign_coords(time=sim.time * 1.5))
    with pytest.raises(DataError, match="lag steps"):
        compare(data, sim, n_lags=5_000)
    with pytest.raises(ValueError, match="bins"):
        compare(data, sim, bins=1)
    with pytest.raises(ValueError, match="feature index"):
        compare(data, sim, pairs=[(0, 7)])
    with pytest.raises(DataError, match="xarray"):
        compare(np.zeros((10, 2)), sim)
    ds = xr.Dataset({"u": data, "v": data * 2})
    with pytest.raises(DataError, match="not a variable"):
        compare(ds, sim.rename("w"))
    with pytest.raises(DataError, match="lacks the variable"):
        compare(ds, xr.Dataset({"u": sim}))


# ---- plots ----------------------------------------------------------------------------------

def test_comparison_plot_writes_png(tmp_path):
    data = as_data(ar1(0.9, 5_000, d=3, seed=15), dt=0.5)
    sim = as_data(ar1(0.8, 2_000, d=3, seed=16, members=3), dt=0.5)
    r = compare(data, sim)
    out = tmp_path / "figs" / "compare.png"
    fig = plot.comparison(r, data, sim, path=out, dpi=72)
    assert out.exists() and out.stat().st_size > 30_000
    assert [p.name for p in out.parent.iterdir()] == ["compare.png"]  # no temp file left
    assert len(fig.axes) >= 3 + 3 + 2 + 4  # trajectories, PDFs, ACFs, 2 pairs x 2
    # many features: time-feature maps instead of lines; no data: no trajectory row
    data8 = as_data(ar1(0.9, 3_000, d=8, seed=17))
    sim8 = as_data(ar1(0.9, 1_000, d=8, seed=18, members=2))
    r8 = compare(data8, sim8)
    plot.comparison(r8, data8, sim8, path=tmp_path / "c8.png", dpi=72)
    assert (tmp_path / "c8.png").stat().st_size > 30_000
    fig = plot.comparison(r8, features=["u[x=0]", 5])
    assert len(fig.axes) == 2 + 2 + 3 * 3  # PDFs, ACFs, 3 pairs x (data, model, colorbar)

    with pytest.raises(TypeError):
        plot.comparison(data)
    with pytest.raises(ValueError, match="both"):
        plot.comparison(r, data=data)


def test_matrices_plot_writes_png(tmp_path):
    rng = np.random.default_rng(19)
    a = rng.normal(size=(3, 3))
    labels = ["x", "y", "z"]
    phi = xr.DataArray(a @ a.T + a - a.T, dims=("feature", "feature_j"),
                       coords={"label": ("feature", labels),
                               "label_feature_j": ("feature_j", labels)})
    out = tmp_path / "mats.png"
    fig = plot.matrices({"Phi": phi, "Phi_S": a @ a.T, "Phi_A": a - a.T,
                         "Sigma": np.linalg.cholesky(a @ a.T + np.eye(3)),
                         "V": rng.normal(size=(30, 30))}, path=out, labels=labels)
    assert out.exists() and out.stat().st_size > 20_000
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == labels
    with pytest.raises(ValueError, match="2-D"):
        plot.matrices({"bad": np.zeros(3)})
