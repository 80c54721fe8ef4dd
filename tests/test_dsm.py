"""DSM (denoising score matching, METHODS.md section 3) against exact scores and KGMM.

The accuracy tests use 10^5 INDEPENDENT draws from the exact stationary densities (inverse CDF),
as tests/test_kgmm.py does, and the same error measures (density-weighted relative L2 error of
the score; double well on [-2, 2], 2-D potential in its 95 % region). The default runs train for
10 epochs; the slow one (tests/validation/test_score_validation.py, ``pytest -m slow``) uses
the default schedule (~100 epochs) and fits KGMM at the same sigma beside it. Measured numbers
and the tolerances' margins are in docs/dsm.md.
"""

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import xlangevin
from xlangevin.data import DataError
from xlangevin.score import MLP
from xlangevin.score.dsm import DSM, lr_factor
from xlangevin.systems import double_well, potential
from xlangevin.testing import has_torch_cuda, requires_cuda, weighted_relative_error

FAST = dict(progress=False, device="cpu")  # CPU: bitwise reproducible under a seed


# one_thread, double_well_samples, potential_samples, ks: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")


def double_well_error(model):
    x = np.linspace(-2, 2, 801)
    return weighted_relative_error(model(x[:, None]), double_well.score(x),
                                   double_well.density(x))


def potential_error(model):
    g = np.linspace(-2.2, 2.2, 121)
    G = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = potential.density(G)
    order = np.sort(dens)[::-1]
    level = order[np.searchsorted(np.cumsum(order) / order.sum(), 0.95)]
    inside = dens >= level
    return weighted_relative_error(model(G[inside]), potential.score(G[inside]), dens[inside])


# --------------------------------------------------------------------------------------------
# accuracy
def test_double_well_score_error(double_well_samples, capsys):
    model = DSM(sigma=0.05, epochs=10, seed=0, **FAST).fit(double_well_samples)
    err = double_well_error(model)
    with capsys.disabled():
        print(f"\n  DSM double well, sigma 0.05, 10 epochs of 1e5: error {err:.3f} "
              f"(KGMM at 0.05: 0.021; full DSM schedule: see the slow test)")
    assert model.method == "dsm" and model.sigma == 0.05
    assert err < 0.09  # measured 0.043-0.055 over seeds 0-2 (10 epochs)


def test_potential_score_error(potential_samples, capsys):
    model = DSM(sigma=0.05, epochs=10, seed=0, **FAST).fit(potential_samples)
    err = potential_error(model)
    with capsys.disabled():
        print(f"\n  DSM 2-D potential, sigma 0.05, 10 epochs of 1e5: error {err:.3f} "
              f"(KGMM at 0.05: ~0.06)")
    assert err < 0.12  # measured 0.075-0.079 over seeds 0-2 (10 epochs)


def test_antithetic_pairs_cut_gradient_noise(double_well_samples):
    """At sigma 0.05 the (z, -z) pairs cancel the terms of the loss gradient linear in z:
    the spread of minibatch gradients drops several-fold (same data, same network)."""
    torch.manual_seed(0)
    net = MLP(1)
    y = torch.as_tensor(double_well_samples[:512], dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)

    def grad(antithetic):
        z = torch.randn(y.shape, generator=gen)
        x, t = (torch.cat([y + 0.05 * z, y - 0.05 * z]), torch.cat([z, -z])) if antithetic \
            else (y + 0.05 * z, z)
        net.zero_grad()
        torch.mean((net(x) - t) ** 2).backward()
        return torch.cat([p.grad.ravel() for p in net.parameters()])

    spread = {a: torch.stack([grad(a) for _ in range(40)]).std(0).norm().item()
              for a in (False, True)}
    assert spread[False] > 4 * spread[True]


# --------------------------------------------------------------------------------------------
# training mechanics
def test_schedule_warmup_then_cosine_to_a_tenth():
    total, warm = 1000, 50
    f = np.array([lr_factor(s, total, warm) for s in range(total)])
    np.testing.assert_allclose(f[:warm], np.arange(1, warm + 1) / warm)
    assert f[warm] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1)
    assert np.all(np.diff(f[warm:]) <= 1e-12) and f[warm:].min() == pytest.approx(0.1)
    assert lr_factor(0, 1, 0) == pytest.approx(1.0)  # one step, no warm-up


def test_history_attrs_and_real_step_count(double_well_samples):
    y = double_well_samples[:3000]
    model = DSM(sigma=0.1, epochs=4, batch_size=100, samples_per_epoch=1000,
                warmup_fraction=0.1, learning_rate=2e-3, seed=0, **FAST).fit(y)
    a, h = model.attrs, model.history
    assert a["epochs"] == 4 and a["steps"] == 40 and a["warmup_steps"] == 4
    assert a["n_validation"] == 150 and a["samples_per_epoch"] == 1000
    for key in ("train", "validation", "epoch_time", "validation_time", "lr"):
        assert len(h[key]) == 4
    assert len(a["train_loss"]) == 4 and len(a["epoch_time_s"]) == 4
    # the learning rate after the last step is the floor: 0.1 x the peak
    assert h["lr"][-1] == pytest.approx(lr_factor(40, 40, 4) * 2e-3)
    assert lr_factor(39, 40, 4) == pytest.approx(0.1)
    assert np.all(np.isfinite(h["validation"])) and a["validation_loss_zero"] > 0.9
    # samples_per_epoch above the training set: several shuffled passes
    m2 = DSM(sigma=0.1, epochs=1, batch_size=500, samples_per_epoch=5000, seed=0,
             validation_fraction=0.0, **FAST).fit(y)
    assert m2.attrs["steps"] == 10 and np.isnan(m2.attrs["final_validation_loss"])


def test_reproducible_under_seed(double_well_samples, ks):
    y = double_well_samples[:4000]
    kw = dict(sigma=0.1, epochs=2, batch_size=256, **FAST)
    a, b, c = (DSM(seed=s, **kw).fit(y) for s in (3, 3, 4))
    x = np.linspace(-2, 2, 11)[:, None]
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.allclose(a(x), c(x))
    assert a.attrs["train_loss"] == b.attrs["train_loss"]
    u = ks.u.isel(time=slice(0, 600))
    kw = dict(sigma=0.1, network="unet1d", base_channels=4, epochs=1, batch_size=128,
              shift_augmentation=True, **FAST)
    a, b = DSM(seed=1, **kw).fit(u), DSM(seed=1, **kw).fit(u)
    np.testing.assert_array_equal(a(u.values[:5]), b(u.values[:5]))


def test_ema_weights_are_the_returned_network(double_well_samples):
    y = double_well_samples[:2000]
    kw = dict(sigma=0.1, epochs=3, batch_size=100, seed=0, **FAST)
    no_avg = DSM(ema_decay=0.0, **kw).fit(y)
    avg = DSM(ema_decay=0.99, **kw).fit(y)
    x = np.linspace(-2, 2, 9)[:, None]
    assert not np.allclose(no_avg(x), avg(x))  # same run, averaged weights differ
    assert np.all(np.isfinite(avg(x)))


def test_shift_augmentation_is_an_exact_circular_shift_in_physical_units():
    rng = np.random.default_rng(0)
    d = 6
    mean, scale = rng.normal(size=d), rng.uniform(0.5, 2, d)
    X = rng.normal(size=(50, d)) * scale + mean
    Y = torch.as_tensor((X - mean) / scale)
    gen = torch.Generator().manual_seed(0)
    out = DSM._shift(Y, (torch.as_tensor(mean), torch.as_tensor(scale)), torch.arange(d), gen)
    back = out.numpy() * scale + mean
    gen = torch.Generator().manual_seed(0)
    k = torch.randint(0, d, (50, 1), generator=gen).numpy()[:, 0]
    expected = np.stack([np.roll(X[i], k[i]) for i in range(50)])
    np.testing.assert_allclose(back, expected, atol=1e-12)
    assert len(set(k)) > 1


# --------------------------------------------------------------------------------------------
# U-Net, xarray, save/load
def test_unet_on_ks_field_xarray_and_save_load(ks, tmp_path):
    u = ks.u.isel(time=slice(0, 2000))
    model = DSM(sigma=0.1, network="unet1d", base_channels=4, epochs=1, batch_size=256,
                shift_augmentation=True, seed=0, **FAST).fit(u)
    assert model.attrs["network"] == "UNet1d" and model.dim == 32
    out = model(u.isel(time=slice(0, 5)))
    assert isinstance(out, xr.DataArray) and out.dims == ("time", "x") and out.shape == (5, 32)
    np.testing.assert_array_equal(out.x.values, u.x.values)
    path = tmp_path / "dsm_unet.nc"
    model.to_netcdf(path)
    back = xlangevin.open_model(path)
    assert back.method == "dsm" and back.sigma == 0.1
    assert back.attrs["train_loss"] == model.attrs["train_loss"]
    X = u.values[:20]
    np.testing.assert_array_equal(back(X), model(X))
    np.testing.assert_allclose(back.divergence(X[:3]), model.divergence(X[:3]), rtol=1e-6)


@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_unet_non_power_of_two_grid_and_symmetrized_save_load(norm, tmp_path):
    """d = 30 (2^3 does not divide it): exact (n, d) output; with symmetrize the score commutes
    exactly with every circular shift of the state (the standardization is pooled over the
    grid), before and after saving."""
    rng = np.random.default_rng(0)
    d = 30
    k = np.fft.rfftfreq(d, 1 / d)
    coef = (rng.normal(size=(1500, k.size)) + 1j * rng.normal(size=(1500, k.size))) \
        / (1 + k**2)
    u = np.fft.irfft(coef, n=d, axis=1)
    U = u[:1000] + 0.3 * np.arange(d) / d  # per-point moments differ: pooling makes them one
    da = xr.DataArray(U, dims=("time", "x"), coords={"x": np.arange(d) * 0.5}, name="u")
    model = DSM(sigma=0.1, network="unet1d", base_channels=4, channel_mults=(1, 2),
                norm=norm, symmetrize=True, epochs=1, batch_size=512, samples_per_epoch=2048,
                seed=0, **FAST).fit(da)
    assert model.attrs["standardization"] == "pooled over the grid"
    np.testing.assert_array_equal(model.space.scale, model.space.scale[0])
    np.testing.assert_array_equal(model.space.mean, model.space.mean[0])
    X = U[:4]
    s = model(X)
    assert s.shape == (4, d)
    np.testing.assert_allclose(model(np.roll(X, 1, axis=1)), np.roll(s, 1, axis=1),
                               rtol=1e-5, atol=1e-5 * np.abs(s).max())
    path = tmp_path / f"sym_{norm}.nc"
    model.to_netcdf(path)
    back = xlangevin.open_model(path)
    assert back.field.net.symmetrize and back.field.net.norm == norm
    np.testing.assert_array_equal(back(X), s)


def test_mlp_save_load_and_accessor(tmp_path):
    ds = xlangevin.datasets.open_dataset("potential").isel(time=slice(0, 5000))
    model = ds.x.score.fit(method="dsm", sigma=0.1, epochs=2, batch_size=256, seed=0,
                           progress=False, device="cpu")
    assert isinstance(model.field.net, MLP) and model.method == "dsm"
    path = tmp_path / "dsm_mlp.nc"
    model.to_netcdf(path)
    back = xlangevin.open_model(path)
    X = ds.x.values[:50]
    np.testing.assert_array_equal(back(X), model(X))
    np.testing.assert_allclose(back.jacobian(X[:3]), model.jacobian(X[:3]), rtol=1e-6)
    out = back(ds.x.isel(time=slice(0, 3)))
    assert isinstance(out, xr.DataArray) and out.shape == (3, 2)


def test_custom_network_module(double_well_samples, tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    net = Net()
    before = [p.detach().clone() for p in net.parameters()]
    model = DSM(sigma=0.1, network=net, epochs=2, seed=0, **FAST).fit(
        double_well_samples[:5000])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # not modified
    assert np.all(np.isfinite(model(np.zeros((3, 1)))))
    with pytest.raises(TypeError, match="register_network"):
        model.to_netcdf(tmp_path / "custom.nc")


# --------------------------------------------------------------------------------------------
# bad inputs
@pytest.mark.parametrize("params, message", [
    (dict(sigma=0.0), "sigma must be in"),
    (dict(sigma=-0.1), "sigma must be in"),
    (dict(network="resnet"), "network must be"),
    (dict(norm="layer"), "norm must be one of"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(warmup_fraction=1.0), "warmup_fraction"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(validation_fraction=0.6), "validation_fraction"),
    (dict(symmetrize=True), "U-Net"),
    (dict(hidden=()), "hidden"),
    (dict(device="tpu:x"), "device"),
])
def test_bad_parameters(params, message, double_well_samples):
    with pytest.raises(ValueError, match=message):
        DSM(**{"progress": False, **params}).fit(double_well_samples[:500])


def test_divergence_is_a_clear_error(double_well_samples):
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        DSM(learning_rate=1e30, epochs=2, batch_size=100, seed=0, **FAST).fit(
            double_well_samples[:1000])


@pytest.mark.skipif(has_torch_cuda(), reason="checks the message on a machine without a GPU")
def test_cuda_without_gpu_is_a_clear_error(double_well_samples):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        DSM(device="cuda", progress=False).fit(double_well_samples[:500])


def test_unet_and_shift_augmentation_need_one_periodic_field():
    rng = np.random.default_rng(0)
    two = xr.Dataset({"a": (("time", "x"), rng.normal(size=(300, 8))),
                      "b": (("time", "x"), rng.normal(size=(300, 8)))})
    with pytest.raises(DataError, match="single variable on one periodic grid dim"):
        DSM(network="unet1d", progress=False).fit(two)
    with pytest.raises(DataError, match="shift_augmentation"):
        DSM(shift_augmentation=True, progress=False).fit(two)
    field2d = xr.DataArray(rng.normal(size=(300, 4, 5)), dims=("time", "lat", "lon"), name="T")
    with pytest.raises(DataError, match=r"T\('lat', 'lon'\)"):
        DSM(network="unet1d", progress=False).fit(field2d)


# --------------------------------------------------------------------------------------------
@requires_cuda
@pytest.mark.gpu
def test_cuda_training_and_cpu_round_trip(double_well_samples, ks, tmp_path):
    model = DSM(sigma=0.05, epochs=10, device="cuda", seed=0, progress=False).fit(
        double_well_samples)
    assert model.device.type == "cuda"
    assert double_well_error(model) < 0.09
    u = ks.u
    unet = DSM(sigma=0.1, network="unet1d", epochs=2, device="cuda", seed=0,
               progress=False).fit(u)
    unet.to_netcdf(tmp_path / "gpu.nc")
    back = xlangevin.open_model(tmp_path / "gpu.nc")
    assert back.device.type == "cpu"
    s = unet(u.values[:8])
    # cuDNN convolutions run in TF32 by default (10-bit mantissa): ~1e-3 relative differences
    np.testing.assert_allclose(back(u.values[:8]), s, rtol=0, atol=3e-3 * np.abs(s).max())
