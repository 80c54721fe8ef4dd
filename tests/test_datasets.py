"""The shipped sample archives open, match their registry and regenerate identically."""

import numpy as np
import pytest
import xarray as xr

from xlangevin import datasets


@pytest.mark.parametrize("name", sorted(datasets.REGISTRY))
def test_archive_opens_with_provenance(name):
    with datasets.open_dataset(name) as ds:
        assert ds.attrs["dataset"] == name
        assert "equation" in ds.attrs and "seed" in ds.attrs
        assert "time" in ds.coords and ds.sizes["time"] >= 10_000
        assert np.all(np.diff(ds.time.values) > 0)
        for v in ds.data_vars:
            assert np.isfinite(ds[v].values).all()


def test_regeneration_is_deterministic(tmp_path):
    path = datasets.make_dataset("ou", tmp_path / "ou.nc", progress=False)
    with xr.open_dataset(path) as fresh, datasets.open_dataset("ou") as shipped:
        xr.testing.assert_identical(fresh.load(), shipped.load())


def test_unknown_and_missing(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.open_dataset("nope")
    monkeypatch.setenv("XLANGEVIN_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make_dataset"):
        datasets.open_dataset("ks")
