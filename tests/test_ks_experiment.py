"""The Kuramoto-Sivashinsky reduced-model experiment (docs/ks_experiment.py, issue #5).

The slow test (tests/validation/test_ks_experiment_validation.py) runs the script's ``--quick``
size end to end (~3 minutes on a shared 2-core CPU) and checks the files it writes and its
numbers. The quick size trains a small U-Net for 640
steps, far from the paper's ~2x10^4, so its numbers do NOT meet the issue's acceptance targets
(docs/ks.md has the measured values of every size; the ensemble's ACF target is met already at
this size by the current-velocity model); the tolerances there are about 1.5-2x the
measured quick values (seed 0, CPU, bitwise reproducible under the seed on one machine), so
that they catch a broken pipeline (blow-ups, wrong units, a score blind to a direction, an
ensemble off the attractor) rather than small numerical differences between machines.
"""

import numpy as np


# ks_experiment (the script imported as a module): tests/conftest.py
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
