"""Every estimator keeps the same conventions (scikit-learn's and deeptime's habits).

Data-level estimators (KGMM, GMM, DSM, Gaussian, Polynomial, AutoScore, LeadingSubspace,
SpectralScore, SpectralStationary, EffectiveLangevin, DiffusionMap) on every input kind
(ndarray, DataArray, Dataset, dask DataArray); array-level ones (BisectingPartition,
CurrentVelocity) on arrays:

* the constructor stores its arguments unchanged and validates nothing; bad values raise in
  ``fit`` with a message naming the parameter;
* ``fit`` leaves the input unmodified; the data layer runs once, so every input kind of the same
  numbers gives the same model (to rounding);
* the same seed gives an identical model, another seed a different one (an estimator without
  random draws has no seed and always gives the same model);
* the model is frozen (setting an attribute raises), carries provenance attrs, and survives
  ``to_netcdf`` / ``open_model`` identically;
* ``repr`` shows the class and the parameters that differ from the defaults;
* dask input is computed at most the number of times stated in ``COMPUTES``.
"""

import functools

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

import xlangevin
from xlangevin import (DSM, GMM, KGMM, BisectingPartition, DiffusionMap, EffectiveLangevin,
                       open_model)
from xlangevin.dynamics.current import CurrentVelocity
from xlangevin.score import AutoScore, Gaussian, LeadingSubspace, Polynomial
from xlangevin.score.spectral import SpectralScore, SpectralStationary

N, D = 2000, 2


def _series(seed=0):
    """A rotating 2-D OU series (the Langevin fit needs time correlations)."""
    rng = np.random.default_rng(seed)
    A = np.array([[-1.0, -2.0], [2.0, -1.0]])
    x, out, dt = np.zeros(D), np.empty((N, D)), 0.05
    for t in range(N):
        x = x + dt * A @ x + np.sqrt(2 * dt) * rng.normal(size=D)
        out[t] = x
    return out * [1.0, 3.0] + [0.5, -2.0]


X = _series()
EVAL = np.array([[0.3, -1.0], [1.0, 0.0], [-0.5, -4.0]])


def _inputs(kind):
    time = np.arange(N, dtype=np.float64)  # the spacing of a plain array: one sample
    if kind == "ndarray":
        return X.copy()
    if kind == "DataArray":
        return xr.DataArray(X.copy(), dims=("time", "feature"), coords={"time": time},
                            name="x", attrs={"units": "m"})
    if kind == "Dataset":
        return xr.Dataset({"a": ("time", X[:, 0].copy()), "b": ("time", X[:, 1].copy())},
                          coords={"time": time})
    if kind == "dask":
        return xr.DataArray(da.from_array(X.copy(), chunks=(500, D)), dims=("time", "feature"),
                            coords={"time": time}, name="x")
    raise ValueError(kind)


KINDS = ("ndarray", "DataArray", "Dataset", "dask")


def _score_output(model):
    return model(EVAL)


def _langevin_output(model):
    sim = model.generate(20, 0.01, n_members=3, seed=1, progress=False, backend="numpy")
    if isinstance(sim, xr.Dataset):
        sim = sim.to_dataarray("feature").transpose(..., "feature")
    return np.concatenate([model.Phi_std.ravel(), np.asarray(sim).ravel()])


def _time_score_output(model):
    return np.concatenate([np.ravel(model(0.0, EVAL)), np.ravel(model(1.0, EVAL)),
                           np.ravel(model.sample(5, n_steps=20, seed=0, progress=False,
                                                 as_array=True))])


def _sampler_output(model):
    return model.sample(5, n_steps=3, as_array=True)


#: name -> (estimator factory (seed -> estimator), model output, a bad parameter, message,
#:          a non-default parameter shown by repr)
ESTIMATORS = {
    "KGMM": (lambda seed: KGMM(sigma=0.1, p_min=0.05, epochs=20, seed=seed, progress=False),
             _score_output, {"sigma": -1.0}, "sigma must be", "p_min=0.05"),
    "GMM": (lambda seed: GMM(sigma=0.2, max_samples=500, seed=seed),
            _score_output, {"max_samples": 0}, "max_samples must be", "max_samples=500"),
    "DSM": (lambda seed: DSM(sigma=0.2, epochs=2, batch_size=256, device="cpu", seed=seed,
                             progress=False),
            _score_output, {"norm": "layer"}, "norm must be one of", "epochs=2"),
    "Gaussian": (lambda seed: Gaussian(shrinkage=0.01), _score_output, {"shrinkage": 2.0},
                 "shrinkage must be", "shrinkage=0.01"),
    "Polynomial": (lambda seed: Polynomial(ridge=1e-5), _score_output, {"degree": 3},
                   "degree must be even", "ridge=1e-05"),
    "AutoScore": (lambda seed: AutoScore(candidates=("gaussian", "gmm(sigma=0.4)"), seed=seed,
                                         progress=False),
                  _score_output, {"holdout": 0.0}, "holdout must be", "candidates="),
    "LeadingSubspace": (lambda seed: LeadingSubspace(method="gmm", seed=seed,
                                                     options={"sigma": 0.3, "max_samples": 500}),
                        _score_output, {"n_components": 0}, "n_components must be",
                        "method='gmm'"),
    "EffectiveLangevin": (
        lambda seed: EffectiveLangevin(score_options={"sigma": 0.2, "max_samples": 500},
                                       n_keep=50, stein_samples=1000, seed=seed,
                                       progress=False),
        _langevin_output, {"lags": (0, 1)}, "lags must be", "n_keep=50"),
    "SpectralScore": (lambda seed: SpectralScore(order=3, n_times=16), _time_score_output,
                      {"basis": "legendre"}, "basis must be one of", "order=3"),
    "SpectralStationary": (lambda seed: SpectralStationary(order=2, total_order=2),
                           _score_output, {"order": 0}, "order must be", "total_order=2"),
    "DiffusionMap": (lambda seed: DiffusionMap(eps=0.1, max_samples=600, seed=seed),
                     _sampler_output, {"eps": 0.0}, "eps must be", "max_samples=600"),
}
#: how often each estimator computes a dask input (one variable): the data layer's non-finite
#: check and moments (two passes), then the estimator's own reads — once (the data in memory),
#: or the tree sample and one read of the chunks per KGMM pass (streaming)
COMPUTES = {"KGMM": "passes", "GMM": 3, "DSM": 3, "Gaussian": 3, "Polynomial": 3,
            "AutoScore": 3,
            "LeadingSubspace": 3, "EffectiveLangevin": 3, "DiffusionMap": 3,
            "SpectralScore": 3, "SpectralStationary": 3}


def _fit(name, kind="ndarray", seed=0):
    make = ESTIMATORS[name][0]
    if name == "EffectiveLangevin":
        return make(seed).fit(_inputs(kind), score="gmm")
    return make(seed).fit(_inputs(kind))


@functools.lru_cache(maxsize=None)
def fitted(name, kind="ndarray", seed=0):
    return _fit(name, kind, seed)


def output(name, model):
    return np.asarray(ESTIMATORS[name][1](model), dtype=np.float64)


def seeded(name):
    return "seed" in ESTIMATORS[name][0](0).get_params()


#: seeded estimators whose configuration here draws no random numbers (AutoScore between the
#: Gaussian and a GMM over all samples): the seed is stored but changes nothing
DRAWS_NOTHING = {"AutoScore"}


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_constructor_stores_arguments_unchanged(name):
    est = ESTIMATORS[name][0](7)
    for key, value in est.get_params().items():
        assert getattr(est, key) is value
    bad = ESTIMATORS[name][2]
    est = type(est)(**{**est.get_params(), **bad})  # stored, not checked
    assert all(est.get_params()[k] is v for k, v in bad.items())
    clone = est.clone()
    assert clone is not est and repr(clone) == repr(est)
    first = next(iter(bad))
    assert est.set_params(**{first: clone.get_params()[first]}) is est
    if seeded(name):
        assert est.set_params(seed=3) is est and est.seed == 3
    with pytest.raises(ValueError, match="has no parameter"):
        est.set_params(no_such_parameter=1)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_value_raises_in_fit_naming_the_parameter(name):
    make, _, bad, message, _ = ESTIMATORS[name]
    est = make(0).set_params(**bad)
    with pytest.raises(ValueError, match=message):
        est.fit(X)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_repr_shows_class_and_changed_parameters(name):
    text = repr(ESTIMATORS[name][0](5))
    assert text.startswith(name + "(") and ESTIMATORS[name][4] in text
    assert ("seed=5" in text) == seeded(name)


# ----------------------------------------------------------------------------------------------
# fitting on every input kind
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_input_kind_gives_the_same_model_and_is_left_unmodified(name, kind):
    data = _inputs(kind)
    before = data.copy(deep=True) if kind != "ndarray" else data.copy()
    model = _fit(name, kind) if kind != "ndarray" else fitted(name)
    if kind == "ndarray":
        np.testing.assert_array_equal(data, before)
    else:
        xr.testing.assert_identical(data, before)
    # the moments of a Dataset's variables are reduced one by one, those of an array column-wise:
    # they agree to rounding, and so do the models
    np.testing.assert_allclose(output(name, model), output(name, fitted(name)), rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_seed_reproduces_and_another_seed_differs(name):
    a, b, c = fitted(name, seed=0), _fit(name, seed=0), fitted(name, seed=1)
    np.testing.assert_array_equal(output(name, a), output(name, b))
    assert np.array_equal(output(name, a), output(name, c)) != (seeded(name)
                                                                and name not in DRAWS_NOTHING)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_model_is_frozen_and_carries_provenance(name):
    model = fitted(name)
    with pytest.raises(AttributeError, match="immutable"):
        model.space = None
    with pytest.raises(AttributeError, match="immutable"):
        model.new_attribute = 1
    assert model.attrs["xlangevin_version"] == xlangevin.__version__
    assert model.attrs["estimator"] == name
    assert model.attrs["seed"] == ("0" if seeded(name) else "None")


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_save_open_round_trip_is_identical(name, tmp_path):
    model = fitted(name)
    path = model.to_netcdf(tmp_path / "model.nc")
    back = open_model(path)
    assert type(back) is type(model)
    np.testing.assert_array_equal(output(name, back), output(name, model))
    assert back.attrs == model.attrs


class _Computes(Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_dask_input_is_computed_a_stated_number_of_times(name):
    with dask.config.set(scheduler="synchronous"), _Computes() as computes:
        model = _fit(name, "dask")
    limit = COMPUTES[name]
    if limit == "passes":
        limit = 3 + int(model.attrs["passes"])
    assert 1 <= computes.count <= limit, f"{computes.count} computes, stated {limit}"


# ----------------------------------------------------------------------------------------------
# array-level estimators
# ----------------------------------------------------------------------------------------------
def test_partition_conventions(tmp_path):
    est = BisectingPartition(p_min=0.05, seed=2)
    assert est.get_params()["p_min"] == 0.05 and repr(est) == "BisectingPartition(p_min=0.05, seed=2)"
    with pytest.raises(ValueError, match="p_min must be"):
        BisectingPartition(p_min=0.9).fit(X)
    Xc = X.copy()
    a, b, c = est.fit(Xc), BisectingPartition(p_min=0.05, seed=2).fit(X), \
        BisectingPartition(p_min=0.05, seed=3).fit(X)
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.assign(X), c.assign(X))
    with pytest.raises(AttributeError, match="immutable"):
        a.attrs = {}
    back = open_model(a.to_netcdf(tmp_path / "partition.nc"))
    np.testing.assert_array_equal(back.assign(X), a.assign(X))
    assert back.attrs["seed"] == 2 and back.attrs["xlangevin_version"] == xlangevin.__version__


def test_current_velocity_conventions():
    est = CurrentVelocity(n_clusters=20, epochs=5, seed=1, progress=False)
    assert repr(est) == "CurrentVelocity(n_clusters=20, epochs=5, seed=1, progress=False)"
    with pytest.raises(ValueError, match="lag must be"):
        CurrentVelocity(lag=0).fit(X, np.array([0, N]), 0.05)
    Xc = X.copy()
    bounds = np.array([0, N])
    a = est.fit(Xc, bounds, 0.05)
    b = CurrentVelocity(n_clusters=20, epochs=5, seed=1, progress=False).fit(X, bounds, 0.05)
    c = CurrentVelocity(n_clusters=20, epochs=5, seed=2, progress=False).fit(X, bounds, 0.05)
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(a(EVAL), b(EVAL))
    assert not np.array_equal(a(EVAL), c(EVAL))
