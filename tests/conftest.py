"""Fixtures shared by the fast test modules and the slow ones in ``tests/validation/``.

A fixture lives here when a test in ``tests/test_*.py`` and a test in ``tests/validation/`` both
use it; the project-wide helpers (``raise_if_dask_computes``) are in the repository root's
``conftest.py``. Module-scoped fixtures are still built once per module that uses them.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import xlangevin
from xlangevin.backends import torch_threads
from xlangevin.systems import double_well, potential
from xlangevin.testing import sample_density_1d

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Small networks: one torch thread is fastest and immune to oversubscribed cores.

    Not autouse: a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    with torch_threads(1):
        yield


# ---------------------------------------------------------------------------------------------
# score estimation (test_kgmm, test_dsm, validation/test_score_validation)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def double_well_samples():
    rng = np.random.default_rng(5)
    return sample_density_1d(double_well.density, 100_000, -4, 4, rng)[:, None]


@pytest.fixture(scope="module")
def potential_samples():
    rng = np.random.default_rng(12)
    # exp(-U) factorizes over coordinates: draw each from its marginal
    return np.stack([sample_density_1d(lambda t, i=i: potential.marginal_density(t, axis=i),
                                       100_000, -3, 3, rng) for i in (0, 1)], axis=1)


@pytest.fixture(scope="module")
def ks():
    return xlangevin.datasets.open_dataset("ks")


# ---------------------------------------------------------------------------------------------
# effective Langevin models (test_langevin, validation/test_langevin_validation)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pot_data():
    return potential.simulate(n_samples=1_000_000, C=0.8, seed=3, progress=False)


# ---------------------------------------------------------------------------------------------
# the KS experiment script (test_ks_experiment, validation/test_ks_experiment_validation)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ks_experiment():
    spec = importlib.util.spec_from_file_location("ks_experiment",
                                                  ROOT / "docs" / "ks_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
