"""Files: models to and from NetCDF (a tree of groups, never pickle) and atomic writers.

A model file holds one model as a tree of NetCDF4 groups. The root group's attrs say what it is
(``xlangevin_object``: the model class, ``xlangevin_version``, ``format_version``,
``xlangevin_groups``: the paths of the other groups); each part (the feature space, network
weights, cell estimates, a nested score model, ...) is one group, an ``xr.Dataset`` of plain
arrays and attrs. A nested model is a subtree whose own root group carries its class, so
:func:`open_model` rebuilds any model, and any model inside another (xeofs saves its models the
same way). Loading reads arrays only: nothing in a file is executed.

Every file (models, figures, streamed simulations) is written under a temporary name beside the
target and published when complete: an interrupted write never leaves a half file under the
target name. The temporary file is created with mode 0666 and the kernel applies the umask (the
process umask is never changed, so saves in other threads are unaffected). Without
``overwrite=True`` the target is created exclusively (a hard link of the finished file), so a
file that exists, or appears while the run writes, is never replaced (``FileExistsError``); with
it, a file without write permission is still refused (``PermissionError``), as xarray does.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._version import __version__

__all__ = ["ModelFileError", "FORMAT_VERSION", "register_model", "open_model", "write_tree",
           "read_tree", "stamp", "nest", "subtree", "model_from_groups", "arrays_to_dataset",
           "dataset_to_arrays", "atomic_target", "refuse_existing", "NetCDFStream",
           "Terminated", "terminate_safely", "json_default", "attrs_json", "nc_attr",
           "cf_history"]

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


def cf_history(what: str, previous: str = "") -> str:
    """The CF ``history`` attr of an output: ``previous`` (the input's history, if any) with one
    line appended, ``"xlangevin <version>: <what>"``. No time stamp: the same call with the
    same seed gives an identical output, attrs included."""
    line = f"xlangevin {__version__}: {what}"
    return f"{previous}\n{line}" if previous else line


def nc_attr(value):
    """NetCDF attributes are numbers, strings or 1-D arrays: booleans and None become text."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------------
#: every NetCDF read and write of this module runs under this lock: xarray holds the netCDF/HDF5
#: lock only while it opens a file, not while it defines and writes variables, and those
#: libraries are not thread-safe (four threads saving at once crashed the process)
_SERIAL = threading.RLock()


def _netcdf_lock():
    """xarray's lock of the netCDF-C/HDF5 libraries, which are not thread-safe: held around every
    direct ``netCDF4`` call so that saves in other threads (through xarray) never run at the
    same time (that crashes the process)."""
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    return NETCDF4_PYTHON_LOCK


class Terminated(BaseException):
    """SIGTERM arrived (raised by :func:`terminate_safely`, the CLI's handler); like
    ``KeyboardInterrupt`` it unwinds through the writers, which remove their temporary files."""


_WRITING = {"depth": 0, "pending": False}


@contextlib.contextmanager
def _uninterrupted():
    """A NetCDF write in the main thread: a SIGTERM that arrives meanwhile is raised when it
    ends, never inside xarray/HDF5 (which would leave their file lock held: a deadlock)."""
    main = threading.current_thread() is threading.main_thread()
    _WRITING["depth"] += main
    try:
        yield
    finally:
        _WRITING["depth"] -= main
        if main and not _WRITING["depth"] and _WRITING["pending"]:
            _WRITING["pending"] = False
            raise Terminated


def terminate_safely(signum, frame):
    """SIGTERM handler: raise :class:`Terminated` now, or when the NetCDF write under way ends."""
    if _WRITING["depth"]:
        _WRITING["pending"] = True
    else:
        raise Terminated


def _temporary_beside(path: Path, suffix: str) -> str:
    """Create an empty hidden file beside ``path`` (mode 0666 less the umask) and return it."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return str(tmp)
        except FileExistsError:
            continue


#: free bytes below which a failed write is reported as a full disk
LOW_DISK = 16 * 2**20


@contextlib.contextmanager
def _explained_write_errors(path: Path):
    """netCDF/HDF5 report a full disk as "NetCDF: HDF error": say what happened."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if isinstance(err, (FileExistsError, PermissionError)):
            raise
        free = shutil.disk_usage(path.parent).free
        if getattr(err, "errno", None) == errno.ENOSPC or free < LOW_DISK:
            raise OSError(errno.ENOSPC, f"no space left on the device of {path} ({free} bytes "
                          f"free) while writing it ({err}); nothing was published there: free "
                          "some space or write elsewhere") from err
        raise


@contextlib.contextmanager
def _netcdf_write(path: Path):
    """Every NetCDF write of this module: serialized across threads, a SIGTERM deferred to its
    end, a full disk named."""
    with _uninterrupted(), _SERIAL, _explained_write_errors(path):
        yield


def refuse_existing(path, overwrite: bool) -> None:
    """Raise before a long run when its output could not be published: ``path`` exists and
    ``overwrite`` is false (``FileExistsError``), or it exists without write permission
    (``PermissionError``, also with ``overwrite``)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if not path.exists():
        return
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    if path.is_file() and not os.stat(path).st_mode & writable:
        raise PermissionError(f"{path} is read-only; it is not replaced (make it writable or "
                              "choose another name)")
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to "
                              "replace it, or choose another name")


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """Put the finished file ``tmp`` at ``path``: renamed over it with ``overwrite``, otherwise
    created exclusively (hard link, then the temporary name is removed)."""
    if overwrite:
        refuse_existing(path, overwrite)
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} appeared while this run wrote it; it is kept. The "
                              f"result is not saved: pass overwrite=True or another name") from None
    except OSError:  # a file system without hard links: reserve the name, then rename
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.replace(tmp, path)
    else:
        os.remove(tmp)


@contextlib.contextmanager
def atomic_target(path, suffix: str = ".part", overwrite: bool = False):
    """Yield a temporary path beside ``path``; when the block succeeds the file is published at
    ``path`` (see the module's rules on ``overwrite``), otherwise removed. A half-written file
    never appears under ``path``."""
    path = Path(os.path.expanduser(os.fspath(path)))
    refuse_existing(path, overwrite)
    tmp = _temporary_beside(path, suffix + path.suffix)
    try:
        yield tmp
        _publish(tmp, path, overwrite)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class NetCDFStream:
    """Appends chunks of a Dataset along the unlimited dim ``dim`` to a NetCDF4 file that is
    written under a temporary name and renamed onto ``path`` by :meth:`close` (atomic, umask
    permissions); :meth:`abort` removes it. Datetime/cftime values along ``dim`` are encoded
    with the units of the first chunk. ``encoding`` applies to the first chunk's variables
    (e.g. ``chunksizes``); only one chunk is ever held in memory."""

    def __init__(self, path, dim: str, encoding: dict | None = None, overwrite: bool = False):
        self.path = Path(os.path.expanduser(os.fspath(path)))
        if self.path.is_dir():
            raise ValueError(f"path {os.fspath(path)!r} is a directory; give a file name ending "
                             "in .nc")
        refuse_existing(self.path, overwrite)
        self.overwrite = overwrite
        self.dim = dim
        self.encoding = dict(encoding or {})
        self._tmp = None
        self._nc = None
        self._n = 0

    def append(self, ds: xr.Dataset) -> None:
        with _netcdf_write(self.path):
            self._append(ds)

    def _append(self, ds: xr.Dataset) -> None:
        if self._nc is None:
            self._create(ds)
            return
        start, n = self._n, ds.sizes[self.dim]
        with _netcdf_lock():
            tvar = self._nc.variables[self.dim]
            units, calendar = getattr(tvar, "units", ""), getattr(tvar, "calendar", "standard")
        times = ds[self.dim].values
        if " since " in units:
            from xarray.coding.times import encode_cf_datetime

            times = np.asarray(encode_cf_datetime(times, units, calendar)[0], dtype=np.float64)
        with _netcdf_lock():
            tvar[start:start + n] = times
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
        with _netcdf_lock():
            self._nc = netCDF4.Dataset(self._tmp, "a")
        self._n = ds.sizes[self.dim]

    def close(self, attrs: dict | None = None) -> Path:
        """Write ``attrs`` (root attributes), close and rename onto the target."""
        if self._nc is None:
            raise ValueError("nothing was appended to the stream")
        with _netcdf_write(self.path), _netcdf_lock():
            self._nc.setncatts({k: nc_attr(v) for k, v in (attrs or {}).items()})
            self._nc.close()
            self._nc = None
        try:
            _publish(self._tmp, self.path, self.overwrite)
        finally:
            self.abort()             # the temporary name, if it is still there
        return self.path

    def open(self, **kwargs) -> xr.Dataset:
        """The published file, opened lazily (``xr.open_dataset(path, **kwargs)``)."""
        with _SERIAL:
            return xr.open_dataset(self.path, **kwargs)

    def abort(self) -> None:
        if self._nc is not None:
            with _SERIAL, _netcdf_lock():
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


def write_tree(path, groups: dict, overwrite: bool = False) -> Path:
    """Write ``groups`` ({path: xr.Dataset}, ``""`` = root) atomically as one NetCDF4 file
    (an existing file is replaced only with ``overwrite``)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    root = groups.get("", xr.Dataset()).copy()
    names = [k for k in groups if k]
    root.attrs["xlangevin_groups"] = json.dumps(names)
    with atomic_target(path, overwrite=overwrite) as tmp, _netcdf_write(path):
        root.to_netcdf(tmp, mode="w", format="NETCDF4")
        for name in names:
            groups[name].to_netcdf(tmp, mode="a", group=name, format="NETCDF4")
        _seal(tmp)
    return path


def _digest(groups: dict) -> str:
    """SHA-256 of a model tree as read back from a file: every group's name and attrs, and
    every variable's name, dims, dtype, shape, values and attrs (the root's ``checksum`` attr
    left out)."""
    h = hashlib.sha256()

    def attrs(a):
        a = {k: np.asarray(v).tolist() for k, v in a.items() if k != "checksum"}
        h.update(json.dumps(a, sort_keys=True, default=str).encode())

    for name in sorted(groups):
        ds = groups[name]
        h.update(f"\0group {name}".encode())
        attrs(ds.attrs)
        for var_name in sorted(map(str, ds.variables)):
            var = ds.variables[var_name]
            values = np.asarray(var.values)
            h.update(f"\0var {var_name} {var.dims} {values.dtype.str} {values.shape}".encode())
            h.update(str(values.tolist()).encode() if values.dtype.kind == "O"
                     else np.ascontiguousarray(values).tobytes())
            attrs(var.attrs)
    return h.hexdigest()


def _seal(path) -> None:
    """Store the digest of the file's contents, as :func:`read_tree` reads them, in the root
    attr ``checksum`` (checked on every open: a changed or damaged file is refused)."""
    import netCDF4

    digest = _digest(read_tree(path, check=False))
    with _netcdf_lock(), netCDF4.Dataset(path, "a") as nc:
        nc.setncattr("checksum", digest)


#: a model file's arrays may declare at most this many times the file's size in bytes (files
#: are written uncompressed; the factor leaves room for files recompressed with ``nccopy``)
MAX_EXPANSION = 16
#: ... and at least this much whatever the file size
MIN_LOAD_BYTES = 64 * 2**20


def _load_checked(ds: xr.Dataset, path: Path, budget: list) -> xr.Dataset:
    """Load ``ds`` after checking its declared size against the bytes left in ``budget``."""
    declared = sum(v.size * v.dtype.itemsize for v in ds.variables.values())
    if declared > budget[0]:
        raise ModelFileError(f"{path} declares arrays of {declared} bytes, more than a model "
                             f"file of {path.stat().st_size} bytes can hold "
                             f"(limit {MAX_EXPANSION}x its size or {MIN_LOAD_BYTES} bytes); it "
                             "is corrupt or crafted: pass max_bytes= to open_model if you trust "
                             "it")
    budget[0] -= declared
    return ds.load()


def read_tree(path, max_bytes: int | None = None, check: bool = True) -> dict:
    """``{group path: loaded xr.Dataset}`` of a model file, with clear errors. The sizes the
    file declares are checked before anything is loaded: at most ``max_bytes`` in all (default
    ``max(MAX_EXPANSION * file size, MIN_LOAD_BYTES)``); with ``check`` the contents must match
    the file's ``checksum`` attr (files written before it existed have none)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    budget = [max(MAX_EXPANSION * path.stat().st_size, MIN_LOAD_BYTES)
              if max_bytes is None else int(max_bytes)]
    with _SERIAL:
        groups = _read_groups(path, budget)
    if check and "checksum" in groups[""].attrs and \
            groups[""].attrs["checksum"] != _digest(groups):
        raise ModelFileError(f"{path}: the contents do not match the file's checksum; it was "
                             "damaged or edited after it was written")
    return groups


def _read_groups(path: Path, budget: list) -> dict:
    """The groups of ``path``, each loaded after its declared size is checked (under
    ``_SERIAL``)."""
    try:
        with xr.open_dataset(path) as root:
            root = _load_checked(root, path, budget)
    except ModelFileError:
        raise
    except Exception as err:  # truncated or not NetCDF at all
        raise ModelFileError(f"{path} is not a readable NetCDF file ({err}); it may be "
                             "truncated or corrupt: write it again") from err
    attrs = root.attrs
    if "xlangevin_object" not in attrs:
        raise ModelFileError(f"{path} is a NetCDF file but not an xlangevin model (no "
                             "'xlangevin_object' attribute)")
    try:
        version = int(attrs.get("format_version", 0))
    except (TypeError, ValueError):
        raise ModelFileError(f"{path}: format_version {attrs.get('format_version')!r} is not "
                             "an integer; the file is corrupt") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has file format {version}, newer than this xlangevin "
                             f"({__version__}) reads ({FORMAT_VERSION}); upgrade xlangevin")
    if version < 1:
        raise ModelFileError(f"{path} was written by a development version of xlangevin "
                             f"({attrs.get('xlangevin_version')}) before the model file format "
                             "was fixed; fit the model again and save it")
    if attrs.get("xlangevin_version") != __version__:
        warnings.warn(f"{path} was written by xlangevin {attrs.get('xlangevin_version')}; this "
                      f"is {__version__}", stacklevel=5)
    groups = {"": root}
    try:
        for name in json.loads(attrs["xlangevin_groups"]):
            with xr.open_dataset(path, group=name) as ds:
                groups[name] = _load_checked(ds, path, budget)
    except ModelFileError:
        raise
    except Exception as err:
        raise ModelFileError(f"{path}: cannot read the model's groups ({err}); the file may be "
                             "truncated or corrupt") from err
    return groups


def model_from_groups(groups: dict):
    """Rebuild the model whose tree is ``groups`` (its class from the root group)."""
    kind = groups[""].attrs.get("xlangevin_object")
    if not isinstance(kind, str) or kind not in _MODELS:
        raise ModelFileError(f"unknown model type {kind!r}; known: {sorted(_MODELS)}")
    try:
        return _MODELS[kind].from_groups(groups)
    except ModelFileError:
        raise
    except Exception as err:  # missing groups, wrong shapes, malformed JSON, ...
        raise ModelFileError(f"cannot rebuild the {kind} from the file ({err!r}); it may be "
                             "corrupt") from err


def open_model(path, max_bytes: int | None = None):
    """Load a model saved with ``model.to_netcdf(path)`` (ScoreModel, LangevinModel,
    DiffusionMapSampler, Partition, ...). Declared array sizes are checked before loading
    (``max_bytes``: see :func:`read_tree`); any malformed file raises :class:`ModelFileError`."""
    return model_from_groups(read_tree(path, max_bytes))


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
