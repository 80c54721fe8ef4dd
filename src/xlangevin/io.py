"""Files: models to and from NetCDF (a tree of groups, never pickle) and atomic writers.

A model file holds one model as a tree of NetCDF4 groups. The root group's attrs say what it is
(``xlangevin_object``: the model class, ``xlangevin_version``, ``format_version``,
``xlangevin_groups``: the paths of the other groups); each part (the feature space, network
weights, cell estimates, a nested score model, ...) is one group, an ``xr.Dataset`` of plain
arrays and attrs. A nested model is a subtree whose own root group carries its class, so
:func:`open_model` rebuilds any model, and any model inside another (xeofs saves its models the
same way). Loading reads arrays only: nothing in a file is executed.

Every file (models, figures, streamed simulations) is written under a temporary name beside the
target and renamed when complete, with the permissions the umask gives: an interrupted write
never leaves a half file under the target name.
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

__all__ = ["ModelFileError", "FORMAT_VERSION", "register_model", "open_model", "write_tree",
           "read_tree", "stamp", "nest", "subtree", "model_from_groups", "arrays_to_dataset",
           "dataset_to_arrays", "atomic_target", "NetCDFStream", "json_default", "attrs_json",
           "nc_attr"]

#: version of the file layout; a file of a newer format is refused with a clear error
FORMAT_VERSION = 1

_MODELS: dict = {}


class ModelFileError(ValueError):
    """A file that is not a readable xlangevin model."""


def register_model(cls):
    """Make ``cls`` (a :class:`xlangevin.base.Model`) readable by :func:`open_model` under its
    class name (done for every Model subclass when it is defined)."""
    _MODELS[cls.__name__] = cls
    return cls


# ----------------------------------------------------------------------------------------------
# attribute values
# ----------------------------------------------------------------------------------------------
def json_default(value):
    """``json.dumps`` fallback: arrays as lists, numpy scalars as Python numbers, else text."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def attrs_json(attrs: dict) -> str:
    """Provenance attrs as JSON text for one NetCDF attribute (the version is stored apart)."""
    return json.dumps({k: v for k, v in attrs.items() if k != "xlangevin_version"},
                      default=json_default)


def nc_attr(value):
    """NetCDF attributes are numbers, strings or 1-D arrays: booleans and None become text."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------------
def _temporary_beside(path: Path, suffix: str) -> str:
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return tmp


def _publish(tmp: str, path: Path) -> None:
    """Give ``tmp`` the permissions of a newly created file (mkstemp makes 0600) and rename it
    onto ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_target(path, suffix: str = ".part"):
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed onto
    ``path`` (with the usual umask permissions), otherwise removed. A half-written file never
    appears under ``path``."""
    path = Path(path)
    tmp = _temporary_beside(path, suffix + path.suffix)
    try:
        yield tmp
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class NetCDFStream:
    """Appends chunks of a Dataset along the unlimited dim ``dim`` to a NetCDF4 file that is
    written under a temporary name and renamed onto ``path`` by :meth:`close` (atomic, umask
    permissions); :meth:`abort` removes it. Datetime/cftime values along ``dim`` are encoded
    with the units of the first chunk. ``encoding`` applies to the first chunk's variables
    (e.g. ``chunksizes``); only one chunk is ever held in memory."""

    def __init__(self, path, dim: str, encoding: dict | None = None):
        self.path = Path(os.fspath(path))
        if self.path.is_dir():
            raise ValueError(f"path {os.fspath(path)!r} is a directory; give a file name ending "
                             "in .nc")
        self.dim = dim
        self.encoding = dict(encoding or {})
        self._tmp = None
        self._nc = None
        self._n = 0

    def append(self, ds: xr.Dataset) -> None:
        if self._nc is None:
            self._create(ds)
            return
        start, n = self._n, ds.sizes[self.dim]
        tvar = self._nc.variables[self.dim]
        units = getattr(tvar, "units", "")
        if " since " in units:
            from xarray.coding.times import encode_cf_datetime

            num, _, _ = encode_cf_datetime(ds[self.dim].values, units,
                                           getattr(tvar, "calendar", "standard"))
            tvar[start:start + n] = np.asarray(num, dtype=np.float64)
        else:
            tvar[start:start + n] = ds[self.dim].values
        for name, var in ds.data_vars.items():
            index = [slice(None)] * var.ndim
            index[var.dims.index(self.dim)] = slice(start, start + n)
            self._nc.variables[name][tuple(index)] = var.values
        self._n += n

    def _create(self, ds):
        import netCDF4

        self._tmp = _temporary_beside(self.path, ".nc.part")
        enc = dict(self.encoding)
        coord = ds[self.dim]
        if np.issubdtype(coord.dtype, np.datetime64) or coord.dtype == object:
            enc[self.dim] = {"dtype": "float64", **enc.get(self.dim, {})}
        ds.to_netcdf(self._tmp, mode="w", format="NETCDF4", unlimited_dims=[self.dim],
                     encoding=enc)
        self._nc = netCDF4.Dataset(self._tmp, "a")
        self._n = ds.sizes[self.dim]

    def close(self, attrs: dict | None = None) -> Path:
        """Write ``attrs`` (root attributes), close and rename onto the target."""
        if self._nc is None:
            raise ValueError("nothing was appended to the stream")
        self._nc.setncatts({k: nc_attr(v) for k, v in (attrs or {}).items()})
        self._nc.close()
        self._nc = None
        _publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._nc is not None:
            self._nc.close()
            self._nc = None
        if self._tmp is not None and os.path.exists(self._tmp):
            os.remove(self._tmp)


# ----------------------------------------------------------------------------------------------
# model trees
# ----------------------------------------------------------------------------------------------
def stamp(cls, groups: dict) -> dict:
    """``groups`` with the root group marked as a model of class ``cls`` (class name, package
    version, format version)."""
    root = groups.get("", xr.Dataset()).copy()
    root.attrs.update({"xlangevin_object": cls.__name__, "xlangevin_version": __version__,
                       "format_version": FORMAT_VERSION})
    return {**groups, "": root}


def nest(prefix: str, groups: dict) -> dict:
    """The groups of a nested model under ``prefix`` (its root becomes the group ``prefix``)."""
    return {f"{prefix}/{k}" if k else prefix: v for k, v in groups.items()}


def subtree(groups: dict, prefix: str) -> dict:
    """Inverse of :func:`nest`: the groups under ``prefix``, re-rooted."""
    out = {}
    for k, v in groups.items():
        if k == prefix:
            out[""] = v
        elif k.startswith(prefix + "/"):
            out[k[len(prefix) + 1:]] = v
    return out


def write_tree(path, groups: dict) -> Path:
    """Write ``groups`` ({path: xr.Dataset}, ``""`` = root) atomically as one NetCDF4 file."""
    root = groups.get("", xr.Dataset()).copy()
    names = [k for k in groups if k]
    root.attrs["xlangevin_groups"] = json.dumps(names)
    with atomic_target(path) as tmp:
        root.to_netcdf(tmp, mode="w", format="NETCDF4")
        for name in names:
            groups[name].to_netcdf(tmp, mode="a", group=name, format="NETCDF4")
    return Path(path)


def read_tree(path) -> dict:
    """``{group path: loaded xr.Dataset}`` of a model file, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with xr.open_dataset(path) as root:
            root = root.load()
    except Exception as err:  # truncated or not NetCDF at all
        raise ModelFileError(f"{path} is not a readable NetCDF file ({err}); it may be "
                             "truncated or corrupt: write it again") from err
    attrs = root.attrs
    if "xlangevin_object" not in attrs:
        raise ModelFileError(f"{path} is a NetCDF file but not an xlangevin model (no "
                             "'xlangevin_object' attribute)")
    version = int(attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has file format {version}, newer than this xlangevin "
                             f"({__version__}) reads ({FORMAT_VERSION}); upgrade xlangevin")
    if version < 1:
        raise ModelFileError(f"{path} was written by a development version of xlangevin "
                             f"({attrs.get('xlangevin_version')}) before the model file format "
                             "was fixed; fit the model again and save it")
    if attrs.get("xlangevin_version") != __version__:
        warnings.warn(f"{path} was written by xlangevin {attrs.get('xlangevin_version')}; this "
                      f"is {__version__}", stacklevel=3)
    groups = {"": root}
    try:
        for name in json.loads(attrs["xlangevin_groups"]):
            with xr.open_dataset(path, group=name) as ds:
                groups[name] = ds.load()
    except Exception as err:
        raise ModelFileError(f"{path}: cannot read the model's groups ({err}); the file may be "
                             "truncated or corrupt") from err
    return groups


def model_from_groups(groups: dict):
    """Rebuild the model whose tree is ``groups`` (its class from the root group)."""
    kind = groups[""].attrs.get("xlangevin_object")
    if kind not in _MODELS:
        raise ModelFileError(f"unknown model type {kind!r}; known: {sorted(_MODELS)}")
    try:
        return _MODELS[kind].from_groups(groups)
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"cannot rebuild the {kind} from the file ({err!r}); it may be "
                             "corrupt") from err


def open_model(path):
    """Load a model saved with ``model.to_netcdf(path)`` (ScoreModel, LangevinModel,
    DiffusionMapSampler, Partition, ...)."""
    return model_from_groups(read_tree(path))


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
