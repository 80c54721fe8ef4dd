"""Backward compatibility: every committed model file (tests/data/models/, written by
tests/model_fixtures.py) opens and evaluates as it did when it was written; every model class
has one; a file of a newer format is refused."""

import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

import model_fixtures
import xlangevin
from xlangevin.io import FORMAT_VERSION, ModelFileError

FOLDER = model_fixtures.FOLDER
EXPECTED = sorted(FOLDER.glob("*.expected.nc"))


def _open(path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "was written by xlangevin", UserWarning)
        return xlangevin.open_model(path)


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_committed_model_file_evaluates_identically(expected):
    record = xr.open_dataarray(FOLDER / "record.nc").load()
    model = _open(FOLDER / expected.name.replace(".expected.nc", ".nc"))
    with xr.open_dataset(expected) as ref:
        got = model_fixtures.evaluate(model, ref.attrs["evaluate"], record)
        np.testing.assert_allclose(np.ravel(got), ref["expected"].values, rtol=1e-10,
                                   atol=1e-12)


def test_every_model_class_has_a_committed_file():
    kinds = set()
    for expected in EXPECTED:
        with xr.open_dataset(FOLDER / expected.name.replace(".expected.nc", ".nc")) as root:
            kinds.add(root.attrs["xlangevin_object"])
    assert kinds == set(xlangevin.io._MODELS), \
        "add a model of the missing classes to tests/model_fixtures.py and write its file"


def test_a_newer_format_is_refused(tmp_path):
    import netCDF4

    path = tmp_path / "future.nc"
    shutil.copy(FOLDER / "langevin_gaussian.nc", path)
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncattr("format_version", FORMAT_VERSION + 1)
    with pytest.raises(ModelFileError, match=f"format {FORMAT_VERSION + 1}, newer than .* "
                                             f"reads \\({FORMAT_VERSION}\\)"):
        xlangevin.open_model(path)
