"""The Kuramoto-Sivashinsky reduced-model experiment (docs/ks_experiment.py, issue #5).

The slow test runs the script's ``--quick`` size end to end (~3 minutes on a shared 2-core CPU)
and checks the files it writes and its numbers. The quick size trains a small U-Net for 640
steps, far from the paper's ~2x10^4, so its numbers do NOT meet the issue's acceptance targets
(docs/ks.md has the measured values of every size; the ensemble's ACF target is met already at
this size by the current-velocity model); the tolerances below are about 1.5-2x the
measured quick values (seed 0, CPU, bitwise reproducible under the seed on one machine), so
that they catch a broken pipeline (blow-ups, wrong units, a score blind to a direction, an
ensemble off the attractor) rather than small numerical differences between machines.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "ks_experiment.py"


@pytest.fixture(scope="module")
def ks_experiment():
    spec = importlib.util.spec_from_file_location("ks_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# fast checks of the script's helpers
# --------------------------------------------------------------------------------------------
def test_config_sizes_and_overrides(ks_experiment):
    quick = ks_experiment.build_config(["--quick", "--out", "x", "--members", "3"])
    assert quick["size"] == "quick" and quick["out"] == "x" and quick["members"] == 3
    assert quick["base_channels"] == 8 and quick["norm"] == "none"
    full = ks_experiment.build_config([])
    assert full["size"] == "full" and full["base_channels"] == 16 and full["sigma"] == 0.1
    assert full["epochs"] * -(-full["samples_per_epoch"] // full["batch_size"]) > 19_000
    assert full["simulate"] == 100_000 and full["current_order"] == 1
    # the CPU run of docs/ks.md that meets every target: 20,000 steps on 10^5 samples
    long = ks_experiment.build_config(["--long"])
    assert long["simulate"] == 100_000 and long["base_channels"] == 8
    assert long["epochs"] * -(-long["samples_per_epoch"] // long["batch_size"]) == 20_000
    assert (long["current_clusters"], long["current_order"]) == (12_000, 1)
    assert not quick["simulate"] and quick["current_order"] == 0  # the shipped archive
    medium = ks_experiment.build_config(["--medium", "--channel-mults", "1,2",
                                         "--device", "cpu"])
    assert medium["channel_mults"] == [1, 2] and medium["device"] == "cpu"


def test_circulant_average_and_pooled_statistics(ks_experiment):
    rng = np.random.default_rng(0)
    d = 8
    c = rng.normal(size=d)
    C = np.array([[c[(j - i) % d] for j in range(d)] for i in range(d)])
    np.testing.assert_allclose(ks_experiment.circulant_average(C), C, atol=1e-14)
    M = rng.normal(size=(d, d))
    A = ks_experiment.circulant_average(M)
    np.testing.assert_allclose(np.trace(A), np.trace(M))
    np.testing.assert_allclose(A, np.roll(np.roll(A, 1, 0), 1, 1))  # circulant
    # AR(1) on every grid point, several members: pooled ACF with the known mean = phi^k
    phi, n = 0.8, 20_000
    X = np.zeros((4, n, d))
    for t in range(1, n):
        X[:, t] = phi * X[:, t - 1] + rng.normal(size=(4, d))
    r = ks_experiment.pooled_acf(X, 5, 0.0)
    np.testing.assert_allclose(r, phi ** np.arange(6), atol=0.02)
    # pairs (u_i, u_{i+j}) with j = d are (u_i, u_i): all mass on the diagonal
    edges = np.linspace(-6, 6, 13)
    h, p = ks_experiment.pooled_pair_pdf(X, d, edges)
    assert np.allclose(h, np.diag(np.diag(h)))
    assert np.isclose((p * np.diff(edges)[0] ** 2).sum(), 1.0)


# --------------------------------------------------------------------------------------------
# the quick run, end to end
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quick_run(ks_experiment, tmp_path, capsys):
    out = tmp_path / "ks"
    assert ks_experiment.main(["--quick", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "averaged PDF KL" in printed and "target acf_rmse_averaged" in printed
    for name in ("model.nc", "score.nc", "ks_experiment.png", "matrices.png", "results.json",
                 "cli_sim.nc"):
        assert (out / name).stat().st_size > 1000, name
    r = json.loads((out / "results.json").read_text())

    # python -m xlangevin generate on the saved model
    cli = r["cli_check"]
    assert cli["returncode"] == 0, cli.get("stderr_tail")
    assert cli["dims"] == {"member": 2, "time": 5, "x": 32} and cli["finite"]

    # score: measured validation loss 0.394 (zero predictor 1.028)
    s = r["score"]
    assert s["steps"] == 640 and s["n_parameters"] == 70665
    assert s["final_validation_loss"] < 0.5
    # held-out Stein matrix: measured diag mean -0.942, max|V + I| 0.41, circulant 0.18
    st = r["stein_held_out"]
    assert abs(st["diag_mean"] + 1) < 0.15
    assert st["max_abs_V_plus_I"] < 0.7
    assert st["circulant_max_abs_V_plus_I"] < 0.35

    # finite volume with the global correction: measured |Phi_A|/|Phi_S| 0.44, eig max 1.0
    fv = r["finite_volume"]
    assert fv["cdot_estimator"] == "finite_volume" and fv["phi_s_eig_min"] >= 0
    assert 300 < fv["n_cells"] < 550 and 0.3 < fv["leave_fraction"] < 0.5
    assert fv["phi_a_over_phi_s_frobenius"] < 1.0
    assert 0.2 < fv["phi_s_eig_max"] < 3.0
    # the default (lagged) estimator sees a smooth, deterministic signal: C(tau) is flat at
    # tau = 0, so its Phi_S is ~0 (eig max 0.024 measured, 20 eigenvalues clipped)
    de = r["default"]
    assert de["cdot_estimator"] == "lagged"
    assert de["phi_s_eig_max"] < 0.1 and de["n_clipped"] >= 10

    # the ensemble model: Phi_S (increments over 2 samples) s + v, the current velocity from
    # 4543 cells of the shift-augmented central differences; measured r2 0.944, Phi_A = 0
    cv = r["current_velocity"]
    assert r["ensemble_model"] == "current_velocity"
    assert cv["r2"] > 0.85 and cv["shift_augmentation"] and cv["phi_a_frobenius"] == 0.0
    # its ensemble: measured PDF KL 0.0215, ACF RMSE 0.047, std 1.432 (data 1.455), bivariate
    # KL 0.117 / 0.087 / 0.065 (the constant-Phi FV model at this size: KL 0.043, ACF RMSE
    # 0.157, std 1.525)
    en = r["ensemble"]
    assert en["resets"] == 0
    assert abs(en["std_model"] / en["std_data"] - 1) < 0.1
    assert en["pdf_kl_averaged"] < 0.045
    assert en["acf_rmse_averaged"] < 0.1
    assert max(en["kl_2d_averaged"].values()) < 0.25
    assert set(r["targets"]) == {"max_abs_V_plus_I", "phi_a_over_phi_s_frobenius",
                                 "pdf_kl_averaged", "acf_rmse_averaged"}
