"""Short records and small scales (reliability): a record too short for an estimator gets a
DataError that names the samples needed, never an internal error (the automatic p_min of KGMM
once asked for p_min = 2.0 on 10 samples); a feature with a tiny standard deviation (a field in
SI units) is a scale, not a constant, and fits like the same data in units of order one."""

import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import xlangevin as xl
from xlangevin.data import DataError, FeatureSpace
from xlangevin.dynamics.langevin import MIN_LAG_PAIRS
from xlangevin.score import AutoScore, Gaussian, Polynomial
from xlangevin.score.kgmm import MIN_SAMPLES

pytestmark = pytest.mark.filterwarnings("ignore")


def ou_series(n=2000, seed=0, scale=(1.0, 3.0)):
    """A 2-D rotating OU record (consecutive samples), in units of order one (each component
    has unit stationary variance before ``scale``)."""
    rng = np.random.default_rng(seed)
    A = np.array([[-1.0, -2.0], [2.0, -1.0]])
    x, out, dt = np.zeros(2), np.empty((n, 2)), 0.05
    for t in range(n):
        x = x + dt * A @ x + np.sqrt(2 * dt) * rng.normal(size=2)
        out[t] = x
    return out * np.asarray(scale) + [0.5, -2.0]


def needed_in(err, needed, given):
    msg = str(err.value)
    assert f"at least {needed} samples" in msg and f"got {given}" in msg, msg
    assert "p_min must be" not in msg


# ---------------------------------------------------------------------------------------------
# (A) too-short records
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 30])
def test_kgmm_short_record_names_the_minimum(n):
    X = np.random.default_rng(0).normal(size=(n, 1))
    with pytest.raises(DataError) as err:
        xl.KGMM(seed=0, progress=False).fit(X)
    needed_in(err, MIN_SAMPLES, n)
    assert "cells" in str(err.value)
    with pytest.raises(DataError) as err:
        xl.KGMM.auto_p_min(n, 1)
    needed_in(err, MIN_SAMPLES, n)


def test_automatic_p_min_is_always_valid():
    assert MIN_SAMPLES == 200
    for n in (MIN_SAMPLES, MIN_SAMPLES + 1, 2000, 10**6):
        assert 0 < xl.KGMM.auto_p_min(n, 2) <= 0.5
    with pytest.raises(DataError):
        xl.KGMM.auto_p_min(MIN_SAMPLES - 1, 2)
    # a given p_min on a record too short for any partition
    with pytest.raises(DataError) as err:
        xl.KGMM(p_min=0.5, progress=False).fit(np.random.default_rng(0).normal(size=(15, 1)))
    needed_in(err, 20, 15)


def test_kgmm_fits_at_its_minimum():
    X = np.random.default_rng(1).normal(size=(MIN_SAMPLES, 1))
    model = xl.KGMM(seed=0, progress=False).fit(X)
    assert model.attrs["n_cells"] >= 5 and np.all(np.isfinite(model(X[:5])))


@pytest.mark.parametrize("n", [10, 30])
@pytest.mark.parametrize("score, needed", [("kgmm", 200), ("auto", 250), (None, 250)])
def test_langevin_short_record_names_the_minimum(n, score, needed):
    X = ou_series(n)
    estimator = xl.EffectiveLangevin(seed=0, progress=False)
    with pytest.raises(DataError) as err:
        estimator.fit(X) if score is None else estimator.fit(X, score=score)
    needed_in(err, needed, n)
    # the accessor of labeled data gives the same error
    da = xr.DataArray(X, dims=("time", "feature"), coords={"time": np.arange(n) * 0.05})
    with pytest.raises(DataError) as err:
        if score is None:
            da.langevin.fit(seed=0, progress=False)
        else:
            da.langevin.fit(score=score, seed=0, progress=False)
    needed_in(err, needed, n)


def test_langevin_lag_pairs_minimum():
    """With an exact score, the lags set the minimum: MIN_LAG_PAIRS pairs at lag 3."""
    X = ou_series(MIN_LAG_PAIRS + 3)
    score = lambda x: -x  # noqa: E731  (a score; its accuracy does not matter here)
    with pytest.raises(DataError) as err:
        xl.EffectiveLangevin(seed=0, progress=False).fit(X[:-1], score=score)
    needed_in(err, MIN_LAG_PAIRS + 3, MIN_LAG_PAIRS + 2)
    model = xl.EffectiveLangevin(seed=0, progress=False).fit(X, score=score)
    assert np.all(np.isfinite(model.Phi_std))


def test_auto_score_training_part():
    """AutoScore fits KGMM on its training part: too short a part is a DataError too."""
    with pytest.raises(DataError):
        AutoScore(seed=0, progress=False).fit(ou_series(30))


# ---------------------------------------------------------------------------------------------
# (B) small scales are not constants
# ---------------------------------------------------------------------------------------------
#: component scales of the records that are then multiplied by 1e-12 (an absolute threshold of
#: 1e-12 on the standard deviation called both components constant)
SUB_UNIT = (0.5, 0.8)


@pytest.mark.parametrize("estimator", [Gaussian, Polynomial])
def test_tiny_scale_fits_like_unit_scale(estimator):
    X = ou_series(2000, scale=SUB_UNIT)  # times 1e-12: standard deviations below 1e-12
    assert np.all(np.std(X * 1e-12, axis=0) < 1e-12)
    unit, tiny = estimator().fit(X), estimator().fit(X * 1e-12)
    np.testing.assert_allclose(tiny.space.scale, unit.space.scale * 1e-12, rtol=1e-12)
    Z = torch.as_tensor(np.random.default_rng(3).normal(size=(64, 2)), dtype=unit.dtype)
    with torch.no_grad():
        a = unit.field(Z).double().numpy()
        b = tiny.field(Z.to(tiny.dtype)).double().numpy()
    np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)
    # physical scores: s(x * 1e-12) = 1e12 s(x)
    np.testing.assert_allclose(tiny(X[:20] * 1e-12) * 1e-12, unit(X[:20]), rtol=1e-8)


def test_tiny_scale_around_a_large_mean():
    """std 1e-12 about a mean of 1e-3 (relative 1e-9) is still resolved variation."""
    X = 1e-3 + ou_series(500, scale=SUB_UNIT) * 1e-12
    space = FeatureSpace.fit(xr.DataArray(X, dims=("time", "feature")))
    assert np.all(space.scale > 0)


@pytest.mark.parametrize("value", [0.0, 0.1, 3.7e-12, -2.5e8])
def test_constant_data_still_raise(value):
    with pytest.raises(DataError, match="2 constant feature"):
        Gaussian().fit(np.full((1000, 2), value))
    X = ou_series(1000)
    X[:, 1] = value
    with pytest.raises(DataError, match=r"1 constant feature\(s\).*x\[feature=1\]"):
        Gaussian().fit(X)


def test_rounding_level_variation_is_constant():
    """A feature that varies only in the last bits of its values is constant."""
    X = ou_series(1000)
    X[:, 0] = 1.0 + np.random.default_rng(0).integers(-2, 3, size=1000) * np.finfo(float).eps
    with pytest.raises(DataError, match="1 constant feature"):
        Polynomial().fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FeatureSpace.fit(xr.DataArray(X, dims=("time", "feature")), standardize=False)


def test_dask_input_uses_the_same_rule():
    """The chunk-wise moments (dask) give the same constant test and tiny-scale fit."""
    import dask.array as dsa

    X = ou_series(2000, scale=SUB_UNIT)
    lazy = lambda a: xr.DataArray(dsa.from_array(a, chunks=(500, 2)),  # noqa: E731
                                  dims=("time", "feature"))
    unit = FeatureSpace.fit(lazy(X))
    tiny = FeatureSpace.fit(lazy(X * 1e-12))
    np.testing.assert_allclose(tiny.scale, unit.scale * 1e-12, rtol=1e-12)
    Y = X.copy()
    Y[:, 0] = 0.1
    with pytest.raises(DataError, match="1 constant feature"):
        FeatureSpace.fit(lazy(Y))


def test_auto_score_on_a_short_record_names_the_record_length():
    """AutoScore itself checks the record first: the message counts the samples given (30),
    not those of its training block; without KGMM among the candidates 30 samples do."""
    X = np.random.default_rng(0).normal(size=(30, 1))
    with pytest.raises(DataError, match=r"at least 250 samples, got 30"):
        AutoScore(progress=False).fit(X)
    model = AutoScore(candidates=("gaussian", "polynomial"), progress=False).fit(X)
    assert model.attrs["selection"] in ("gaussian", "polynomial")
