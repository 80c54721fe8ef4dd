"""Long runs of the simulators: their stationary laws, chaos and the default KS dataset.

Moved from tests/systems/ (test_ks.py, test_potential.py, test_slowfast.py, test_triad.py), whose
module docstrings give the reference numbers; the helpers come from those modules.
"""

import time

import numpy as np
import pytest

from test_potential import ks_distance
from test_triad import cdf_from_score, wrong_sign_score
from xlangevin.analysis import effective_sample_size
from xlangevin.systems import ks, potential, slowfast, triad

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# Kuramoto-Sivashinsky (tests/systems/test_ks.py)
# ---------------------------------------------------------------------------------------------
def test_lyapunov_exponent_L22_long():
    """8 x 20000 time units: 0.0484 +- 0.0004 measured; [0.046, 0.051] is ~ +-6 sd."""
    lam = ks.lyapunov_exponent(L=22.0, t_total=20000, seed=1, n_members=8)
    assert 0.046 < lam < 0.051


def test_default_dataset_timing_and_statistics():
    """The default dataset (L 34, N 64, dt 0.1, 1e4 samples after 1000 units): < 60 s."""
    t = time.perf_counter()
    ds = ks.simulate(n_samples=10_000, burn_in=1000, seed=0, progress=False)
    elapsed = time.perf_counter() - t
    assert elapsed < 60, elapsed
    assert ds.u.shape == (10_000, 64)
    assert 1.33 < ds.u.std().item() < 1.51  # one 1e4-unit run: sd ~0.018
    # 8 members x 1e4 units: sd of the mean std ~0.007; measured 1.417 +- 0.006 at dt 0.1
    ens = ks.simulate(n_samples=10_000, burn_in=1000, seed=1, n_members=8, progress=False)
    assert 1.39 < ens.u.std().item() < 1.45


# ---------------------------------------------------------------------------------------------
# 2-D asymmetric potential (tests/systems/test_potential.py)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("C", [0.0, 0.8])
def test_long_run_marginals(C):
    ds = potential.simulate(n_samples=1_000_000, n_members=8, seed=77, C=C, progress=False)
    x = ds.x.values
    for ax in (0, 1):
        n_eff = float(np.sum(effective_sample_size(x[..., ax], axis=1)))
        tol = 1.95 / np.sqrt(n_eff)
        d = ks_distance(x[..., ax], lambda v: potential.marginal_cdf(v, ax))
        print(f"potential slow C={C} axis {ax}: n_eff={n_eff:.0f} KS={d:.4f} tol={tol:.4f}")
        assert d < tol


# ---------------------------------------------------------------------------------------------
# slow-fast system (tests/systems/test_slowfast.py)
# ---------------------------------------------------------------------------------------------
def test_long_run_switches_between_wells():
    ds = slowfast.simulate(n_samples=5000, n_members=2, seed=8, progress=False)
    z = ds.z.values
    crossings = (np.diff(np.sign(z), axis=1) != 0).sum()
    hist, edges = np.histogram(z, bins=np.linspace(-1.6, 1.6, 17))
    centre = hist[7:9].sum() / 2
    print(f"slowfast slow: crossings {crossings}, histogram {hist}")
    assert crossings >= 2
    # two modes: each half's peak is far above the density at z ~ 0
    assert hist[:8].max() > 3 * max(centre, 1) and hist[8:].max() > 3 * max(centre, 1)


# ---------------------------------------------------------------------------------------------
# reduced triad (tests/systems/test_triad.py)
# ---------------------------------------------------------------------------------------------
def test_long_run_histogram_l1():
    ds = triad.simulate(n_samples=2_000_000, n_members=8, seed=101, progress=False)
    x = ds.x.values
    n_eff = float(np.sum(effective_sample_size(x, axis=1)))
    edges = np.linspace(-0.3, 0.8, 56)
    per_member = np.array([np.histogram(r, bins=edges)[0] / r.size for r in x])
    counts = per_member.mean(0)
    exact = np.diff(triad.cdf(edges))
    # the 8 members are independent: the spread of their histograms gives the standard error of
    # every bin directly (the n_eff of x understates the bins' n_eff: tau of x is set by the rare
    # heavy-tail excursions). E|N(0, se)| = 0.8 se, so 2 sum(se) is ~2.5x the expected L1.
    se = per_member.std(0, ddof=1) / np.sqrt(len(x))
    tol = 2 * se.sum()
    l1 = np.abs(counts - exact).sum()
    print(f"triad slow: n_eff(x)={n_eff:.0f} L1={l1:.5f} tol={tol:.5f}")
    assert l1 < tol, (l1, tol)
    wrong = np.diff(cdf_from_score(wrong_sign_score)(edges))
    assert np.abs(counts - wrong).sum() > 10 * tol
