"""Saving and loading models: exact round trips, atomic writes, clear errors, no pickle."""

import numpy as np
import pytest
import xarray as xr

import xlangevin
from xlangevin.io import ModelFileError


@pytest.fixture(scope="module")
def kgmm_model():
    ds = xlangevin.datasets.open_dataset("potential").isel(time=slice(0, 20_000))
    return ds.x.score.fit(method="kgmm", sigma=0.1, p_min=0.02, epochs=30, seed=0, progress=False), ds


def test_kgmm_round_trip_exact(tmp_path, kgmm_model):
    model, ds = kgmm_model
    path = model.to_netcdf(tmp_path / "score.nc")
    loaded = xlangevin.open_model(path)
    assert isinstance(loaded, xlangevin.ScoreModel)
    x = ds.x.isel(time=slice(0, 50))
    xr.testing.assert_identical(loaded(x), model(x))
    np.testing.assert_array_equal(loaded.divergence(x.values), model.divergence(x.values))
    xr.testing.assert_identical(loaded.cells, model.cells)
    assert loaded.sigma == model.sigma and loaded.method == "kgmm"
    assert loaded.attrs["n_cells"] == model.attrs["n_cells"]
    assert not list(tmp_path.glob("*.part"))


def test_gmm_round_trip(tmp_path):
    y = np.random.default_rng(0).normal(size=(300, 2))
    model = xlangevin.GMM(sigma=0.3).fit(y)
    loaded = xlangevin.open_model(model.to_netcdf(tmp_path / "gmm.nc"))
    np.testing.assert_array_equal(loaded(y[:5]), model(y[:5]))


def test_truncated_foreign_and_missing_files(tmp_path, kgmm_model):
    model, _ = kgmm_model
    path = model.to_netcdf(tmp_path / "score.nc")
    data = path.read_bytes()
    bad = tmp_path / "truncated.nc"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        xlangevin.open_model(bad)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(foreign)
    with pytest.raises(ModelFileError, match="not an xlangevin model"):
        xlangevin.open_model(foreign)
    with pytest.raises(FileNotFoundError):
        xlangevin.open_model(tmp_path / "absent.nc")


def test_version_mismatch_warns(tmp_path, kgmm_model, monkeypatch):
    model, _ = kgmm_model
    monkeypatch.setattr(xlangevin.io, "__version__", "0.0.1")
    path = model.to_netcdf(tmp_path / "old.nc")
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="written by xlangevin 0.0.1"):
        xlangevin.open_model(path)


def test_callable_field_cannot_be_saved(tmp_path):
    import torch

    from xlangevin.data import FeatureSpace
    from xlangevin.score import ScoreModel

    da = xr.DataArray(np.random.default_rng(0).normal(size=(50, 2)), dims=("time", "k"))
    model = ScoreModel(torch.nn.Identity(), FeatureSpace.fit(da), 0.0, "exact")
    with pytest.raises(TypeError, match="cannot be saved"):
        model.to_netcdf(tmp_path / "x.nc")
    assert not list(tmp_path.iterdir())
