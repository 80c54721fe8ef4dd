"""Command-line interface: the fit -> generate -> compare chain on a small archive, refusal to
overwrite, the demo's argument checks and its two helpers (shift copies, wave speed)."""

import numpy as np
import pytest
import xarray as xr

from xlangevin import cli, demo


def test_fit_generate_compare_chain(tmp_path, capsys):
    data, model, sim = tmp_path / "pot.nc", tmp_path / "model.nc", tmp_path / "sim.nc"
    assert cli.main(["simulate", "potential", "-o", str(data), "--n-samples", "4000",
                     "--quiet"]) == 0
    assert cli.main(["fit", str(data), "-o", str(model), "--method", "gmm", "--sigma", "0.2",
                     "--quiet"]) == 0
    assert cli.main(["generate", str(model), "--n-steps", "2000", "--dt", "0.01",
                     "--save-every", "5", "--members", "2", "-o", str(sim), "--quiet"]) == 0
    with xr.open_dataset(sim) as ds:
        assert ds.sizes["member"] == 2 and ds.sizes["time"] == 400
        assert np.all(np.isfinite(ds.x.values))
    capsys.readouterr()
    assert cli.main(["compare", str(data), str(sim)]) == 0
    assert "ACF RMSE" in capsys.readouterr().out
    # an existing output is never overwritten without --overwrite
    before = model.read_bytes()
    assert cli.main(["fit", str(data), "-o", str(model), "--method", "gmm", "--quiet"]) == 4
    assert model.read_bytes() == before


def test_fit_with_current_velocity(tmp_path):
    """``--current-velocity`` (with options) gives a model whose drift is Phi_S s + v."""
    import xlangevin

    data, model = tmp_path / "pot.nc", tmp_path / "model.nc"
    assert cli.main(["simulate", "potential", "-o", str(data), "--n-samples", "4000",
                     "--quiet"]) == 0
    assert cli.main(["fit", str(data), "-o", str(model), "--method", "gmm", "--sigma", "0.2",
                     "--current-velocity", "--current-options", '{"n_clusters": 20}',
                     "--quiet"]) == 0
    m = xlangevin.open_model(model)
    assert m.current is not None and m.current.diagnostics["n_cells"] <= 30
    assert m.attrs["drift"] == "Phi_S s(x) + v(x)"
    np.testing.assert_array_equal(m.Phi_std, m.Phi_std.T)


def test_simulate_offers_only_systems_with_defaults(capsys):
    assert "ou" not in cli._simulable_systems() and "potential" in cli._simulable_systems()
    with pytest.raises(SystemExit):
        cli.main(["simulate", "ou", "-o", "never_written.nc"])
    assert "invalid choice" in capsys.readouterr().err


def test_demo_rejects_a_score_the_dataset_does_not_offer(capsys):
    assert cli.main(["demo", "--dataset", "potential", "--score", "dsm"]) == 2
    assert "offers --score kgmm" in capsys.readouterr().err


def test_shift_copies_are_the_circular_shifts():
    x = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("time", "k"),
                     coords={"time": [0.0, 0.5, 1.0]}, name="x")
    out = demo._shift_copies(x, "k")
    assert out.sizes == {"time": 12, "k": 4} and "time" not in out.coords
    for i in range(4):
        np.testing.assert_array_equal(out.values[3 * i:3 * i + 3], np.roll(x.values, i, axis=1))


def test_wave_speed_of_a_travelling_wave():
    """x_k(t) = cos(2 pi k / K - omega t): Fourier mode 1 turns at omega rad per time unit."""
    t = np.arange(400) * 0.05
    k = np.arange(4)
    omega = 1.9
    x = xr.DataArray(np.cos(2 * np.pi * k[None, :] / 4 - omega * t[:, None]),
                     dims=("time", "k"), coords={"time": t})
    assert abs(demo._wave_speed(x)) == pytest.approx(omega, rel=1e-9)
    assert demo._wave_speed(x.isel(k=[0, 3, 2, 1])) == pytest.approx(-demo._wave_speed(x))
