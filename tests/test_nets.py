"""Networks: the periodic U-Net's shapes and its exact circular equivariance, and the
arrays round trip of every registered network.

Equivariance, precisely (see ``UNet1d``'s docstring): with ``L`` levels of stride-2
downsampling and ``2^L | d`` the network commutes exactly with circular shifts by multiples of
``2^L``, and not with a shift by one point; ``symmetrize=True`` makes it commute with every
shift, for any ``d``. "Exactly" = up to the rounding of sums taken in a different order
(checked in float64 to 1e-12).
"""

import numpy as np
import pytest
import torch
from torch import nn

from xlangevin.backends import torch_threads
from xlangevin.score.nets import (MLP, Swish, UNet1d, circular_pad, network_from_arrays,
                                  network_to_arrays, register_network)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _double(net):
    net = net.double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def roll(x, k):
    return torch.roll(x, k, dims=-1)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 30, 32, 33, 64])
@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_unet_output_shape_for_any_grid_size(d, norm):
    torch.manual_seed(0)
    net = UNet1d(d, base_channels=4, norm=norm)
    x = torch.randn(3, d)
    net.train()
    assert net(x).shape == (3, d)
    net.eval()
    y = net(x)
    assert y.shape == (3, d) and torch.all(torch.isfinite(y))


@pytest.mark.parametrize("d", [32, 64, 40])
@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_unet_exact_equivariance_for_shifts_by_multiples_of_2_to_the_levels(d, norm):
    torch.manual_seed(1)
    net = _double(UNet1d(d, base_channels=16 if d == 32 else 4, norm=norm))
    if norm == "batch":  # give the running statistics non-trivial values first
        net.train()
        net(torch.randn(64, d, dtype=torch.float64))
        net.eval()
    assert net.exact_shift == 8
    x = torch.randn(5, d, dtype=torch.float64)
    y = net(x)
    for k in (8, 16, -8, d - 8):
        np.testing.assert_allclose(net(roll(x, k)).numpy(), roll(y, k).numpy(), atol=1e-12)
    # a shift that is not a multiple of 2^L is NOT exact (far above rounding): the stride-2
    # layers pair other neighbours
    for k in (1, 2, 4):
        assert (net(roll(x, k)) - roll(y, k)).abs().max() > 1e-9 * y.abs().max()


def test_unet_levels_set_the_exact_shift():
    torch.manual_seed(2)
    net = _double(UNet1d(32, channel_mults=(1, 2)))
    assert net.exact_shift == 4
    x = torch.randn(4, 32, dtype=torch.float64)
    np.testing.assert_allclose(net(roll(x, 4)).numpy(), roll(net(x), 4).numpy(), atol=1e-12)
    assert UNet1d(30).exact_shift == 30  # 8 does not divide 30: only the trivial shift


@pytest.mark.parametrize("d", [32, 30, 33, 7])
def test_symmetrized_unet_commutes_with_every_shift(d):
    torch.manual_seed(3)
    net = _double(UNet1d(d, base_channels=4, symmetrize=True))
    x = torch.randn(4, d, dtype=torch.float64)
    y = net(x)
    for k in (1, 3, d // 2):
        np.testing.assert_allclose(net(roll(x, k)).numpy(), roll(y, k).numpy(), atol=1e-12)
    # it is the average over shifted copies of the plain network
    plain = _double(UNet1d(d, base_channels=4))
    plain.load_state_dict(net.state_dict())
    P = net.exact_shift
    expected = sum(roll(plain(roll(x, k)), -k) for k in range(P)) / P
    np.testing.assert_allclose(y.numpy(), expected.numpy(), atol=1e-12)


def test_unet_non_divisible_grid_has_no_boundary_effect_beyond_a_seam():
    """With d = 30 the odd-length levels break exact equivariance, but the error of a shift is
    a fraction of the output's size (no edge: the padding is periodic at every level)."""
    torch.manual_seed(4)
    net = _double(UNet1d(30, base_channels=4))
    x = torch.randn(16, 30, dtype=torch.float64)
    y = net(x)
    err = (net(roll(x, 1)) - roll(y, 1)).abs().max() / y.abs().max()
    assert 0 < err < 1.5


def test_unet_jacobian_and_vmap():
    """ScoreModel.jacobian uses torch.func.vmap(jacrev(...)) on the field."""
    torch.manual_seed(5)
    for sym in (False, True):
        net = UNet1d(16, base_channels=4, symmetrize=sym).double().eval()
        x = torch.randn(3, 16, dtype=torch.float64)
        J = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0]))(x)
        J0 = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x[0])
        np.testing.assert_allclose(J[0].detach().numpy(), J0.detach().numpy(), atol=1e-10)


def test_circular_pad_longer_than_signal():
    x = torch.arange(3.0)[None, None, :]
    np.testing.assert_array_equal(circular_pad(x, 2, 2)[0, 0].numpy(), [1, 2, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(circular_pad(x, 4, 5)[0, 0].numpy(),
                                  np.arange(-4, 3 + 5) % 3)
    assert circular_pad(x, 0, 0) is x


@pytest.mark.parametrize("make", [
    lambda: MLP(3, (16, 8)),
    lambda: UNet1d(24, base_channels=4, norm="group"),
    lambda: UNet1d(30, base_channels=4, channel_mults=(1, 2), norm="batch", symmetrize=True),
    lambda: UNet1d(16, base_channels=4, norm="none", kernel_size=3),
])
def test_network_arrays_round_trip(make):
    torch.manual_seed(6)
    net = make()
    if any(isinstance(m, nn.BatchNorm1d) for m in net.modules()):
        net.train()
        net(torch.randn(32, net.dim))
    net.eval()
    config, arrays = network_to_arrays(net)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    back = network_from_arrays(config, arrays)
    assert type(back) is type(net) and back.config == net.config
    x = torch.randn(5, net.dim)
    torch.testing.assert_close(back(x), net(x), rtol=0, atol=0)


def test_unregistered_network_cannot_be_saved_and_registration_fixes_it():
    class Tiny(nn.Module):
        def __init__(self, dim=2):
            super().__init__()
            self.lin = nn.Linear(dim, dim)

        def forward(self, x):
            return self.lin(x)

    with pytest.raises(TypeError, match="register_network"):
        network_to_arrays(Tiny())

    @register_network
    class Tiny2(Tiny):
        @property
        def config(self):
            return {"type": "Tiny2", "dim": self.lin.in_features}

    net = Tiny2(3)
    back = network_from_arrays(*network_to_arrays(net))
    x = torch.randn(4, 3)
    torch.testing.assert_close(back(x), net(x))


def test_bad_unet_arguments():
    with pytest.raises(ValueError, match="norm"):
        UNet1d(32, norm="layer")
    with pytest.raises(ValueError, match="kernel_size"):
        UNet1d(32, kernel_size=4)
    with pytest.raises(ValueError, match="channel_mults"):
        UNet1d(32, channel_mults=())
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        UNet1d(32)(torch.randn(4, 31))


def test_mlp_swish_and_threads():
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(Swish()(x), x * torch.sigmoid(x))
    assert MLP(2).config == {"type": "MLP", "dim": 2, "hidden": [128, 64]}
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_evaluation_batches_sized_from_the_network():
    """A ScoreModel's default batch follows the network's activation size, read at evaluation
    time: a symmetrized U-Net (8 shifted copies, ~0.2 MB a state) gets batches ~8x smaller
    than the plain one, and both stay within the memory budget (a fixed 65536 states of the
    symmetrized base-8 U-Net took >10 GB and an OOM kill). An explicit batch_size wins."""
    import resource

    from xlangevin.data import FeatureSpace
    from xlangevin.score import NoiseToScore, ScoreModel

    net = UNet1d(32, base_channels=8, norm="none")
    import xarray as xr

    space = FeatureSpace.fit(xr.DataArray(np.random.default_rng(0).standard_normal((64, 32)),
                                          dims=("time", "x")), standardize=False)
    model = ScoreModel(NoiseToScore(net, 0.1), space, 0.1, "dsm")
    plain = model.batch_size
    net.symmetrize = True
    sym = model.batch_size
    assert plain == 8 * sym
    assert sym * 4 * net.floats_per_row <= ScoreModel.EVAL_MEMORY
    assert ScoreModel(NoiseToScore(MLP(4), 0.1), space, 0.1, "kgmm").batch_size == 65536
    assert ScoreModel(NoiseToScore(net, 0.1), space, 0.1, "dsm", batch_size=100).batch_size \
        == 100
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    X = np.random.default_rng(1).standard_normal((3 * sym + 5, 32))
    S = model(X)
    assert S.shape == X.shape and np.all(np.isfinite(S))
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 4 * ScoreModel.EVAL_MEMORY
