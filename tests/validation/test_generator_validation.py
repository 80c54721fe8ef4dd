"""Cdot estimators and transition counts at full size (moved from tests/test_generator.py):
the OU sweep over dt with 10^6 samples each, and 10^7-step transition counts, numba = numpy.
"""

import numpy as np
import pytest

from test_generator import A_OU, B_OU, PHI, anti, random_bounds, rel, sym
from xlangevin.dynamics import cdot as c
from xlangevin.dynamics import transitions as g
from xlangevin.dynamics.mobility import mobility_from_cdot, stein_matrix
from xlangevin.systems import ou

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dt", [0.001, 0.01, 0.05, 0.1])
def test_cdot_ou_sweep_slow(dt):
    # Phi_S comes from the quadratic variation (relative noise ~ sqrt(2/n) = 0.14%): 5% with the
    # exact V = -I. Phi_A is a drift: its noise is ~1/sqrt(T) per entry (T = n dt), and a V
    # estimated on the data removes the sample-covariance part of it; tolerance max(5%, 4 sigma).
    X = ou.simulate(A_OU, B_OU, 1_000_000, dt, seed=21, progress=False).x.values
    V = stein_matrix(X, ou.score(X, A_OU, B_OU))
    T = 1_000_000 * dt
    tol_a = max(0.05, 4.0 / np.sqrt(T) / 0.8)
    for cdot, _ in (c.cdot_lagged(X, dt), c.cdot_logm(X, dt)):
        assert rel(mobility_from_cdot(cdot).Phi_S, sym(PHI)) < 0.05
        assert rel(mobility_from_cdot(cdot, V).Phi_A, anti(PHI)) < tol_a


def test_counts_1e7_slow():
    rng = np.random.default_rng(8)
    T, ns = 10_000_000, 4000
    for labels in (rng.integers(0, ns, T), np.mod(np.cumsum(rng.integers(-2, 3, T)), ns)):
        bounds = random_bounds(rng, T, 100)
        a = g.transition_counts(labels, ns, bounds)
        b = g.transition_counts(labels, ns, bounds, backend="numpy")
        assert (a != b).nnz == 0
