"""Score estimation end to end: KGMM on Lorenz data, DSM's full schedule against KGMM, and the
KS U-Net on the GPU (moved from tests/test_kgmm.py and tests/test_dsm.py; measured numbers in
docs/kgmm.md and docs/dsm.md).
"""

import numpy as np
import pytest

from test_dsm import FAST, double_well_error, potential_error
from xlangevin import systems
from xlangevin.score import KGMM
from xlangevin.score.dsm import DSM
from xlangevin.testing import requires_cuda

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# KGMM (tests/test_kgmm.py)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, sigma", [("lorenz63", 0.2), ("lorenz96", 0.5)])
def test_lorenz_end_to_end(name, sigma):
    """Lorenz-63 (3-D) and Lorenz-96 slow variables (4-D), fit end to end on decorrelated runs
    (samples 0.1 / 0.05 time units apart), checked by the Stein identity <s x^T> = -I on
    perturbed samples. The data noise of a cell score grows like sigma^(-3/2) (module
    docstring), so with 1-2x10^5 correlated samples sigma = 0.2 (L63) and 0.5 (L96) are used:
    measured max|V + I| 0.05 and 0.08 (sigma = 0.05 gave 0.2-0.9)."""
    if name == "lorenz63":
        ds = systems.lorenz63.simulate(n_samples=200_000, save_every=100, seed=0,
                                       progress=False)
    else:
        ds = systems.lorenz96.simulate(n_samples=100_000, save_every=100, seed=0,
                                       progress=False)[["x"]]
    model = ds.score.fit(method="kgmm", sigma=sigma, p_min=2e-3, seed=0, progress=False)
    X = model.space.transform(ds)
    rng = np.random.default_rng(1)
    Xn = X + model.sigma * rng.standard_normal(X.shape)
    s = model.space.score_to_standard(model(model.space.to_physical(Xn)))
    V = s.T @ Xn / len(Xn)
    d = X.shape[1]
    print(f"{name}: max |V + I| = {np.max(np.abs(V + np.eye(d))):.3f}")
    assert np.max(np.abs(V + np.eye(d))) < 0.15
    assert np.isfinite(model.divergence(model.space.to_physical(Xn[:100]))).all()


# ---------------------------------------------------------------------------------------------
# DSM (tests/test_dsm.py; one torch thread, as there)
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_full_schedule_matches_kgmm(double_well_samples, potential_samples, capsys):
    """Default schedule (~2x10^4 steps, ~100 epochs of 1e5) against KGMM at the same sigma."""
    rows = []
    for name, Y, err, p_min in (("double well", double_well_samples, double_well_error, 0.02),
                                ("2-D potential", potential_samples, potential_error, 0.005)):
        dsm = err(DSM(sigma=0.05, seed=0, **FAST).fit(Y))
        kgmm = err(KGMM(sigma=0.05, p_min=p_min, seed=0, tol=1e-4, stderr_tol=0.035,
                        progress=False).fit(Y))
        rows.append((name, dsm, kgmm))
    with capsys.disabled():
        print("\n  sigma 0.05, 1e5 independent samples: relative L2 error of the score")
        for name, dsm, kgmm in rows:
            print(f"  {name:14s} DSM {dsm:.3f}   KGMM {kgmm:.3f}")
    (_, dw, dw_k), (_, pot, pot_k) = rows
    assert dw < 0.04 and dw < 2 * dw_k + 0.01
    assert pot < 0.09 and pot < 1.5 * pot_k + 0.01


@pytest.mark.usefixtures("one_thread")
@requires_cuda
@pytest.mark.gpu
def test_ks_unet_stein_identity_on_held_out_data(ks, capsys):
    """KS, 32 points, U-Net with shift augmentation on the GPU (~65 s on an H100), trained on
    the first 8000 samples: on sigma-perturbed HELD-OUT samples (the last 2000) the score of
    p_sigma satisfies <s(x) x^T> = -I (standardized units). Measured on an H100: diagonal mean
    -1.015, max |V + I| 0.44, |V + I|_F / sqrt(d) 0.69 (Monte-Carlo noise of the max ~0.27);
    on the training samples 0.18 and 0.27; symmetrized the same (0.42, 0.69)."""
    train, test = ks.u.isel(time=slice(0, 8000)), ks.u.isel(time=slice(8000, None))
    model = DSM(sigma=0.1, network="unet1d", shift_augmentation=True, epochs=300,
                device="cuda", seed=0, progress=False).fit(train)
    X = model.space.transform(test)
    rng = np.random.default_rng(0)
    V = np.zeros((32, 32))
    for _ in range(8):
        Xn = X + 0.1 * rng.standard_normal(X.shape)
        s = model.space.score_to_standard(model(model.space.to_physical(Xn)))
        V += s.T @ Xn / len(Xn) / 8
    E = V + np.eye(32)
    rel = np.linalg.norm(E) / np.sqrt(32)
    with capsys.disabled():
        print(f"\n  KS U-Net Stein identity (held out): diagonal mean {np.diag(V).mean():.3f}, "
              f"max |V + I| {np.abs(E).max():.3f}, |V + I|_F / sqrt(d) {rel:.3f}; validation "
              f"loss {model.attrs['final_validation_loss']:.4f} (zero predictor "
              f"{model.attrs['validation_loss_zero']:.4f})")
    assert abs(np.diag(V).mean() + 1) < 0.05
    assert np.abs(E).max() < 0.7 and rel < 1.0
