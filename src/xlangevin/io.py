"""Models to and from NetCDF: plain arrays and attributes in groups, never pickle.

A model file has root attrs ``xlangevin_object`` (the model class), ``xlangevin_version`` and
``xlangevin_groups`` (the groups that follow), and one NetCDF group per part (the feature space,
the network weights, the cell estimates, ...), each an ``xr.Dataset``. Files are written to a
temporary name beside the target and renamed when complete, so an interrupted write never leaves
a half file under the target name. Loading reads arrays only: nothing in a file is executed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._version import __version__

__all__ = ["write_groups", "read_groups", "open_model", "arrays_to_dataset",
           "dataset_to_arrays", "atomic_target", "ModelFileError"]

_LOADERS = {}


class ModelFileError(ValueError):
    """A file that is not a readable xlangevin model."""


def register_model(name):
    """Class decorator: ``open_model`` rebuilds files of ``name`` with ``cls._from_groups``."""

    def decorate(cls):
        _LOADERS[name] = cls
        return cls

    return decorate


@contextlib.contextmanager
def atomic_target(path, suffix: str = ".part"):
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed onto
    ``path`` (with the usual umask permissions), otherwise removed. A half-written file never
    appears under ``path``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_groups(path, kind: str, groups: dict, attrs: dict | None = None) -> Path:
    """Write ``groups`` ({name: xr.Dataset}) atomically to ``path`` as one NetCDF4 file."""
    root = xr.Dataset(attrs={"xlangevin_object": kind, "xlangevin_version": __version__,
                             "xlangevin_groups": json.dumps(list(groups)), **(attrs or {})})
    with atomic_target(path) as tmp:
        root.to_netcdf(tmp, mode="w", format="NETCDF4")
        for name, ds in groups.items():
            ds.to_netcdf(tmp, mode="a", group=name, format="NETCDF4")
    return Path(path)


def read_groups(path) -> tuple[dict, dict]:
    """(root attrs, {group: loaded xr.Dataset}) of a model file, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with xr.open_dataset(path) as root:
            attrs = dict(root.attrs)
    except Exception as err:  # truncated or not NetCDF at all
        raise ModelFileError(f"{path} is not a readable NetCDF file ({err}); it may be "
                             "truncated or corrupt: write it again") from err
    if "xlangevin_object" not in attrs:
        raise ModelFileError(f"{path} is a NetCDF file but not an xlangevin model (no "
                             "'xlangevin_object' attribute)")
    if attrs.get("xlangevin_version") != __version__:
        warnings.warn(f"{path} was written by xlangevin {attrs.get('xlangevin_version')}; this "
                      f"is {__version__}", stacklevel=3)
    groups = {}
    try:
        for name in json.loads(attrs["xlangevin_groups"]):
            with xr.open_dataset(path, group=name) as ds:
                groups[name] = ds.load()
    except Exception as err:
        raise ModelFileError(f"{path}: cannot read the model's groups ({err}); the file may be "
                             "truncated or corrupt") from err
    return attrs, groups


def open_model(path):
    """Load a model saved with ``model.to_netcdf(path)`` (ScoreModel, LangevinModel, ...)."""
    attrs, groups = read_groups(path)
    kind = attrs["xlangevin_object"]
    if kind not in _LOADERS:
        _import_model_modules()
    if kind not in _LOADERS:
        raise ModelFileError(f"{path} holds an unknown model type {kind!r}")
    return _LOADERS[kind]._from_groups(attrs, groups)


def _import_model_modules():
    from . import score  # noqa: F401

    try:
        from . import langevin  # noqa: F401
    except ImportError:  # pragma: no cover
        pass


def arrays_to_dataset(arrays: dict, attrs: dict | None = None) -> xr.Dataset:
    """{name: array} -> xr.Dataset with one private dim per axis (names are kept verbatim)."""
    data = {}
    for name, a in arrays.items():
        a = np.asarray(a)
        data[name] = ([f"{name}__{i}" for i in range(a.ndim)], a)
    return xr.Dataset(data, attrs=attrs or {})


def dataset_to_arrays(ds: xr.Dataset) -> dict:
    """Inverse of :func:`arrays_to_dataset`."""
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}
