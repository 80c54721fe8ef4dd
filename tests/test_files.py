"""What a write may replace, the modes it gives, what a crafted file may cost to open, and how
big a request may be (docs/reliability.md: "Files" and "Memory")."""

import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

import xlangevin
from xlangevin import cli
from xlangevin.io import ModelFileError, NetCDFStream


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = np.zeros((3000, 2))
    for t in range(1, len(x)):
        x[t] = 0.9 * x[t - 1] + rng.normal(size=2)
    da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(3000.0)})
    return da.langevin.fit(score="gaussian", seed=0, progress=False)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_never_replaced_without_overwrite(tmp_path, model):
    path = model.to_netcdf(tmp_path / "m.nc")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.to_netcdf(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.generate(10, 0.1, path=path, progress=False)
    assert path.read_bytes() == before
    model.to_netcdf(path, overwrite=True)          # replaced on request
    xlangevin.open_model(path)
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match="read-only"):
        model.to_netcdf(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nc"]


def test_a_file_that_appears_during_a_streamed_run_is_kept(tmp_path):
    path = tmp_path / "sim.nc"
    stream = NetCDFStream(path, "time")
    stream.append(xr.Dataset({"x": ("time", np.arange(3.0))}, coords={"time": np.arange(3.0)}))
    path.write_text("the user's file")
    with pytest.raises(FileExistsError, match="it is kept"):
        stream.close()
    assert path.read_text() == "the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.nc"]   # no temporary left


def test_modes_follow_the_umask_in_threads(tmp_path, model, umask_027):
    """Models and streamed runs get 0666 less the umask, also with four threads saving at
    once, and the process umask is never changed meanwhile."""
    seen = []

    def save(i):
        model.to_netcdf(tmp_path / f"m{i}.nc")
        model.generate(20, 0.1, n_members=2, path=tmp_path / f"s{i}.nc", progress=False,
                       seed=i)
        seen.append(os.umask(0o027))                # read it (and set it back at once)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [0o027] * 4
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert len(modes) == 8 and set(modes.values()) == {umask_027}, modes


def _huge_variable_file(path):
    """A small file that declares a (1e9, 2) float64 array (HDF5 stores no unwritten chunk)."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts({"xlangevin_object": "ScoreModel", "format_version": 1,
                      "xlangevin_version": xlangevin.__version__,
                      "xlangevin_groups": "[]"})
        nc.createDimension("a", 10**9)
        nc.createDimension("b", 2)
        nc.createVariable("samples", "f8", ("a", "b"), chunksizes=(1024, 2))


def _rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_crafted_files_cost_nothing_to_refuse(tmp_path, model):
    crafted = tmp_path / "huge.nc"
    _huge_variable_file(crafted)
    assert crafted.stat().st_size < 100_000
    start, rss = time.perf_counter(), _rss()
    with pytest.raises(ModelFileError, match="declares arrays of 16000000000 bytes"):
        xlangevin.open_model(crafted)
    assert time.perf_counter() - start < 1.0 and _rss() - rss < 200 * 2**20
    # a network config asking for far more than its stored weights
    score = xlangevin.DSM(sigma=0.2, epochs=2, seed=0, progress=False).fit(
        np.random.default_rng(0).normal(size=(500, 2)))
    groups = score.to_tree()
    field = groups["field"].copy()
    config = json.loads(field.attrs["field_config"])
    config["net"]["hidden"] = [40000, 40000]
    field.attrs["field_config"] = json.dumps(config)
    bad = xlangevin.io.write_tree(tmp_path / "net.nc", {**groups, "field": field})
    start, rss = time.perf_counter(), _rss()
    with pytest.raises(ModelFileError, match="do not match"):
        xlangevin.open_model(bad)
    assert time.perf_counter() - start < 1.0 and _rss() - rss < 200 * 2**20


def test_a_request_larger_than_memory_is_refused_before_allocating(model, tmp_path):
    start = time.perf_counter()
    with pytest.raises(MemoryError, match=r"10\^6|1000000 members x 1000000 saved.*path="):
        model.generate(n_steps=10**6, dt=0.1, n_members=10**6, progress=False)
    assert time.perf_counter() - start < 5
    with pytest.raises(MemoryError, match="GiB|MiB"):
        model.generate(n_steps=1000, dt=0.1, n_members=100, max_memory=10**5, progress=False)
    with pytest.raises(ValueError, match="save_every .* exceeds n_steps"):
        model.generate(n_steps=5, dt=0.1, save_every=10, progress=False)


@pytest.mark.parametrize("args, status, message", [
    (["fit", "{tmp}/absent.nc", "-o", "{tmp}/m.nc"], 4, "no input file"),
    (["generate", "{tmp}/junk.nc", "--n-steps", "5", "--dt", "0.1", "-o", "{tmp}/s.nc"], 4,
     "not a readable NetCDF file"),
    (["fit", "{tmp}/nan.nc", "-o", "{tmp}/m.nc", "--quiet"], 3, "NaN"),
    (["generate", "{tmp}/model.nc", "--n-steps", "5", "--dt", "0.1", "--save-every", "9",
      "-o", "{tmp}/s.nc", "--quiet"], 2, "save_every"),
    (["generate", "{tmp}/model.nc", "--n-steps", "5", "--dt", "0.1", "-o", "{tmp}/model.nc"],
     4, "exists; pass overwrite"),
])
def test_cli_errors_are_one_line_with_a_status(tmp_path, model, capsys, args, status, message):
    (tmp_path / "junk.nc").write_bytes(b"not netcdf")
    nan = np.random.default_rng(0).normal(size=(400, 2))
    nan[7, 1] = np.nan
    xr.Dataset({"x": (("time", "k"), nan)}).to_netcdf(tmp_path / "nan.nc")
    model.to_netcdf(tmp_path / "model.nc")
    assert cli.main([a.format(tmp=tmp_path) for a in args]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlangevin: error:") and message in err[0], err


def test_cli_keeps_a_file_created_during_the_run(tmp_path, model, monkeypatch, capsys):
    model.to_netcdf(tmp_path / "model.nc")
    out = tmp_path / "sim.nc"
    real_open = cli.open_model

    class Meanwhile:
        def __init__(self, inner):
            self.inner = inner

        def generate(self, **kw):
            out.write_text("written by someone else meanwhile")
            return self.inner.generate(**kw)

    monkeypatch.setattr(cli, "open_model", lambda p: Meanwhile(real_open(p)))
    status = cli.main(["generate", str(tmp_path / "model.nc"), "--n-steps", "20", "--dt", "0.1",
                       "-o", str(out), "--quiet"])
    assert status == 4 and "exists" in capsys.readouterr().err
    assert out.read_text() == "written by someone else meanwhile"


def test_sigterm_leaves_no_partial_file(tmp_path, model):
    model.to_netcdf(tmp_path / "model.nc")
    proc = subprocess.Popen([sys.executable, "-m", "xlangevin", "generate",
                             str(tmp_path / "model.nc"), "--n-steps", "100000000", "--dt", "0.01",
                             "--members", "4", "--save-every", "10", "-o",
                             str(tmp_path / "sim.nc"), "--quiet"], stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".sim.nc.*")) and time.monotonic() < deadline:
        time.sleep(0.2)                             # until the stream has started
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nc"]


# ----------------------------------------------------------------------------------------------
# damaged files: always ModelFileError, or (a byte nobody reads) the same model
# ----------------------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sealed_file(model, tmp_path_factory):
    path = model.to_netcdf(tmp_path_factory.mktemp("sealed") / "model.nc")
    reference = model.generate(20, 0.1, n_members=2, seed=1, progress=False).values
    return path.read_bytes(), reference


def _damaged_file_is_refused_or_identical(data, reference, tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(data)
    try:
        loaded = xlangevin.open_model(bad)
    except ModelFileError:
        return
    sim = loaded.generate(20, 0.1, n_members=2, seed=1, progress=False).values
    assert np.array_equal(sim, reference), "a damaged file opened as a different model"


def _mutations():
    flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                     min_size=1, max_size=4)
    return st.one_of(st.tuples(st.just("flip"), flips),
                     st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)))


def _apply(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return data[: int(arg * len(data))]
    out = bytearray(data)
    for where, mask in arg:
        out[int(where * len(out))] ^= mask
    return bytes(out)


@settings(max_examples=25, **_SETTINGS)
@given(mutation=_mutations())
def test_damaged_model_files(sealed_file, tmp_path, mutation):
    data, reference = sealed_file
    _damaged_file_is_refused_or_identical(_apply(data, mutation), reference, tmp_path)


@pytest.mark.slow
@settings(max_examples=2000, **_SETTINGS)
@given(mutation=_mutations())
def test_damaged_model_files_deep(sealed_file, tmp_path, mutation):
    data, reference = sealed_file
    _damaged_file_is_refused_or_identical(_apply(data, mutation), reference, tmp_path)


_STREAM_SCRIPT = """
import resource, sys
import numpy as np, xarray as xr, xlangevin
rng = np.random.default_rng(0)
x = np.zeros((3000, 2))
for t in range(1, 3000):
    x[t] = 0.9 * x[t - 1] + rng.normal(size=2)
da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(3000.0)})
model = da.langevin.fit(score="gaussian", seed=0, progress=False)
model.generate(10, 0.1, n_members=2, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sim = model.generate(40_000, 0.1, n_members=500, path=sys.argv[1], progress=False, seed=0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(sim.sizes["member"] * sim.sizes["time"] * 2 * 8 // 2**20, (after - before) // 1024)
"""


def test_a_streamed_run_holds_one_chunk(tmp_path):
    """500 members x 40000 saved 2-D states are 305 MiB (three times that while assembled in
    memory); streamed to a file, the peak RSS grows by a chunk's buffers only (about 120 MiB:
    noise, saved states and their physical-unit copy for ~2000 steps, the netCDF buffers)."""
    out = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(tmp_path / "s.nc")],
                         capture_output=True, text=True, check=True)
    size_mib, growth_mib = map(int, out.stdout.split()[-2:])
    assert size_mib == 305 and growth_mib < size_mib / 2, out.stdout


def test_loaded_values_are_validated(tmp_path, model):
    """A file that is intact (its checksum matches) but holds a NaN or negative scale, or
    NaN states, is refused instead of giving all-NaN output."""
    groups = model.to_tree()
    space = groups["space"].copy()
    name = next(v for v in space.data_vars if v.startswith("scale__"))
    space[name] = -space[name]
    bad = xlangevin.io.write_tree(tmp_path / "scale.nc", {**groups, "space": space})
    with pytest.raises(ModelFileError, match="scales finite and positive"):
        xlangevin.open_model(bad)
    arrays = groups["model"].copy()
    name = next(v for v in arrays.data_vars if v == "samples")
    arrays[name] = arrays[name].where(arrays[name] > 1e9)          # all NaN
    bad = xlangevin.io.write_tree(tmp_path / "samples.nc", {**groups, "model": arrays})
    with pytest.raises(ModelFileError, match="samples hold non-finite"):
        xlangevin.open_model(bad)


def test_an_interrupted_stream_keeps_the_earlier_file(tmp_path, model, monkeypatch):
    """SIGINT (KeyboardInterrupt) or an exception mid-stream, over an existing file with
    ``overwrite=True``: the earlier file is intact and no temporary file is left."""
    from xlangevin.dynamics.integrate import EnsembleWriter

    model.generate(20, 0.1, path=tmp_path / "sim.nc", progress=False, seed=0).close()
    before = (tmp_path / "sim.nc").read_bytes()
    real_append = EnsembleWriter.append
    for error in (KeyboardInterrupt, RuntimeError):
        calls = []

        def failing_append(self, states, error=error):
            calls.append(1)
            if len(calls) == 2:
                raise error("interrupted")
            return real_append(self, states)

        monkeypatch.setattr(EnsembleWriter, "append", failing_append)
        with pytest.raises(error):
            model.generate(4000, 0.1, path=tmp_path / "sim.nc", overwrite=True, progress=False,
                           chunk_steps=100)
        assert (tmp_path / "sim.nc").read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.nc"]


_SAVE_SCRIPT = """
import sys, numpy as np, xarray as xr, xlangevin
x = np.random.default_rng(int(sys.argv[2])).normal(size=(400, 2)).cumsum(0) * 0.1
da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(400.0)})
model = da.langevin.fit(score="gaussian", seed=0, progress=False)
for _ in range(5):
    model.to_netcdf(sys.argv[1], overwrite=True)
"""


def test_two_processes_saving_one_path_leave_one_valid_file(tmp_path):
    path = tmp_path / "model.nc"
    procs = [subprocess.Popen([sys.executable, "-c", _SAVE_SCRIPT, str(path), str(seed)])
             for seed in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nc"]
    assert isinstance(xlangevin.open_model(path), xlangevin.LangevinModel)


def test_cli_member_dim(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.zeros((3, 600, 2))
    for t in range(1, 600):
        x[:, t] = 0.9 * x[:, t - 1] + rng.normal(size=(3, 2))
    xr.Dataset({"x": (("realization", "time", "k"), x)},
               coords={"time": np.arange(600.0)}).to_netcdf(tmp_path / "ens.nc")
    args = ["fit", str(tmp_path / "ens.nc"), "-o", str(tmp_path / "m.nc"), "--method",
            "gaussian", "--quiet"]
    assert cli.main(args) == 3 and "member_dim='realization'" in capsys.readouterr().err
    assert cli.main(args + ["--member-dim", "realization"]) == 0
    assert xlangevin.open_model(tmp_path / "m.nc").attrs["n_sequences"] == 3


def test_a_full_disk_is_named(tmp_path, model, monkeypatch):
    """netCDF reports a full disk as "NetCDF: HDF error"; the error says what happened and no
    file or temporary is left."""
    import collections

    def failing(*args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing)
    monkeypatch.setattr(xlangevin.io.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 4096))
    with pytest.raises(OSError, match="no space left on the device"):
        model.to_netcdf(tmp_path / "m.nc")
    assert not list(tmp_path.iterdir())


def test_an_unbounded_diverging_run_warns(model):
    """``bound=None`` checks finiteness only; a run that grows by 2x a step ends near 1e60
    standard deviations (finite) and says so instead of returning it silently."""
    dt = 1.5 * model.stable_dt()
    with pytest.warns(UserWarning, match="without a bound the ensemble ended"):
        model.generate(200, dt, bound=None, progress=False, seed=0)


def test_numba_cache_falls_back_to_a_private_temporary_folder(tmp_path, monkeypatch):
    """Without a writable package folder or HOME (read-only install, batch node) numba's
    ``cache=True`` would fail the import: the cache moves to the temporary folder."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path).startswith(str(tmp_path)))
    folder = xlangevin._numba_cache_dir("/usr/lib/site-packages/xlangevin", "/nonexistent",
                                        str(tmp_path))
    assert folder == str(tmp_path / f"xlangevin-numba-{os.getuid()}")
    assert xlangevin._numba_cache_dir(str(tmp_path), "/nonexistent", "/tmp") is None
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/mine")
    assert xlangevin._numba_cache_dir("/ro", "/nonexistent", str(tmp_path)) is None


@settings(max_examples=12, **_SETTINGS)
@given(degree=st.sampled_from([2, 4, 6]), max_samples=st.sampled_from([None, 200]),
       sigma=st.floats(0.05, 1.0), cdot=st.sampled_from(["lagged", "logm", "auto"]),
       current=st.sampled_from([False, "polynomial"]), seed=st.integers(0, 1000))
def test_save_open_round_trip_with_random_parameters(tmp_path, degree, max_samples, sigma,
                                                     cdot, current, seed):
    """Random parameters of the closed-form estimators and of the Langevin model: the opened
    model evaluates and generates identically."""
    rng = np.random.default_rng(seed)
    x = np.zeros((1500, 2))
    for t in range(1, len(x)):
        x[t] = 0.9 * x[t - 1] + rng.normal(size=2) * 0.5
    x[:, 0] += 0.3 * x[:, 0] ** 2
    da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(1500.0)})
    scores = [xlangevin.score.Polynomial(degree=degree).fit(da),
              xlangevin.GMM(sigma=sigma, max_samples=max_samples, seed=seed).fit(da)]
    for i, score in enumerate(scores):
        loaded = xlangevin.open_model(score.to_netcdf(tmp_path / f"s{i}.nc", overwrite=True))
        xr.testing.assert_identical(loaded(da[:50]), score(da[:50]))
    model = da.langevin.fit(score=scores[0], cdot=cdot, current_velocity=current, seed=seed,
                            progress=False)
    loaded = xlangevin.open_model(model.to_netcdf(tmp_path / "m.nc", overwrite=True))
    kw = dict(n_steps=30, dt=0.5 * model.stable_dt(), n_members=2, seed=seed, progress=False,
              max_reset_fraction=None)
    np.testing.assert_array_equal(loaded.generate(**kw).values, model.generate(**kw).values)


def test_outputs_carry_a_cf_history(model):
    """Generated output appends one line to the data's CF ``history`` (no time stamp: the same
    seed gives identical attrs) and keeps its units."""
    sim = model.generate(10, 0.1, progress=False, seed=4)
    assert sim.attrs["history"] == (f"xlangevin {xlangevin.__version__}: LangevinModel.generate("
                                    "n_steps=10, dt=0.1, save_every=1, n_members=1, seed=4)")
    xr.testing.assert_identical(sim, model.generate(10, 0.1, progress=False, seed=4))
