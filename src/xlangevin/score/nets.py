"""Torch networks used as score interpolators and denoisers.

Every network here maps standardized states ``(n, d)`` to ``(n, d)`` and can be rebuilt from
plain arrays (``config`` + ``state_arrays``), so models save to NetCDF without pickle.

* :class:`MLP` -- ``d -> hidden -> d`` with swish activations (low-dimensional states).
* :class:`UNet1d` -- a 1-D periodic U-Net over the grid index for fields on a periodic grid
  (METHODS.md section 3). See its docstring for exactly which circular shifts it commutes with.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["MLP", "Swish", "UNet1d", "circular_pad", "network_from_arrays", "network_to_arrays",
           "register_network"]


class Swish(nn.Module):
    """``x * sigmoid(x)`` (SiLU)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class MLP(nn.Module):
    """``d -> hidden[0] -> ... -> d`` with swish activations and a linear output (KGMM paper:
    hidden = (128, 64))."""

    def __init__(self, dim: int, hidden=(128, 64)):
        super().__init__()
        self.dim = int(dim)
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (self.dim, *self.hidden, self.dim)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(Swish())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)

    @property
    def config(self) -> dict:
        return {"type": "MLP", "dim": self.dim, "hidden": list(self.hidden)}

    @property
    def floats_per_row(self) -> int:
        """Rough peak number of activation values per state in an inference pass (sizes the
        evaluation batches of :class:`~xlangevin.ScoreModel`)."""
        return 4 * (self.dim + sum(self.hidden))


def circular_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Pad the last axis periodically: ``[x[-left:], x, x[:right]]``, for any length (also
    when the padding is longer than the signal, where ``F.pad(mode="circular")`` refuses)."""
    n = x.shape[-1]
    if left == 0 and right == 0:
        return x
    if left <= n and right <= n:
        return torch.cat([x[..., n - left:], x, x[..., :right]], dim=-1)
    idx = torch.arange(-left, n + right, device=x.device) % n
    return x.index_select(-1, idx)


class _CircularConv1d(nn.Module):
    """``Conv1d`` with an odd kernel on a periodic axis (output length = input length)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel_size)

    def forward(self, x):
        return self.conv(circular_pad(x, self.pad, self.pad))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":  # groups of (at least) 2 channels: 8 groups for 16+ channels
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    return nn.Identity()


class _ConvBlock(nn.Module):
    """``[circular conv k -> norm -> swish] x 2``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, norm: str):
        super().__init__()
        self.layers = nn.Sequential(  # nn.SiLU = swish x sigmoid(x), one fused kernel
            _CircularConv1d(c_in, c_out, kernel_size), _norm(norm, c_out), nn.SiLU(),
            _CircularConv1d(c_out, c_out, kernel_size), _norm(norm, c_out), nn.SiLU())

    def forward(self, x):
        return self.layers(x)


class _Down(nn.Module):
    """Stride-2, kernel-2 convolution; an odd length is first padded periodically by one point
    on the right, so a length ``m`` becomes ``ceil(m / 2)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 2, stride=2)

    def forward(self, x):
        if x.shape[-1] % 2:
            x = circular_pad(x, 0, 1)
        return self.conv(x)


class UNet1d(nn.Module):
    """1-D periodic U-Net over the grid index: states ``(n, d)`` -> ``(n, d)``.

    The input is one channel on a periodic grid of ``d`` points, ``(n, 1, d)``. Encoder level
    ``i`` (``i = 1..L``, ``L = len(channel_mults)``): ConvBlock to ``base_channels *
    channel_mults[i]`` channels (kept as the skip), then a learned stride-2 kernel-2 downsampling.
    Bottleneck: ConvBlock doubling the channels. Decoder level ``i`` (reversed): nearest-neighbour
    upsampling by 2, cropped to the skip's length, concatenated with the skip, ConvBlock to the
    level's channels. A final 1x1 convolution gives one channel. ConvBlock = ``[circular conv
    k -> norm -> swish] x 2`` (``kernel_size`` 5). ``norm``: ``"group"`` (GroupNorm with
    ``gcd(channels, 8)`` groups; default), ``"batch"`` or ``"none"``.

    Grid sizes: any ``d >= 1``. An odd length at some level is padded periodically by one point
    before its downsampling and the upsampled decoder features are cropped back, so the output
    is exactly ``(n, d)``.

    Circular equivariance (``T_k`` = circular shift of the grid by ``k`` points), precisely:

    * every layer except the stride-2 downsampling commutes with every ``T_k`` (circular
      convolutions, GroupNorm/BatchNorm statistics over the whole grid, pointwise swish); a
      stride-2 layer only commutes with even shifts (``T_2`` before it is ``T_1`` after it), and
      nearest upsampling maps ``T_1`` to ``T_2``. Hence, when ``2^L`` divides ``d``, the network
      commutes EXACTLY with ``T_k`` for ``k`` a multiple of ``2^L`` (8 by default) -- and in
      general with no other shift (tested: shifting by one point changes the output by O(1)).
    * when ``2^L`` does not divide ``d``, some level has an odd length whose periodic padding
      breaks the period, and no non-trivial shift is exact (the network is still periodic in the
      sense that it has no boundary: the seam error is local).
    * ``symmetrize=True`` averages over the shifts that are not exact,
      ``f(x) = (1/P) sum_{k<P} T_k^{-1} g(T_k x)`` with ``P = 2^L`` when ``2^L`` divides ``d``
      and ``P = d`` otherwise: then ``f`` commutes exactly with EVERY shift, at ``P`` times the
      cost of one evaluation. For a field trained with circular-shift augmentation the average
      has a lower (or equal) denoising loss than ``g`` itself (Jensen), so it can be switched on
      after training.
    """

    def __init__(self, dim: int, base_channels: int = 16, channel_mults=(1, 2, 4),
                 norm: str = "group", kernel_size: int = 5, symmetrize: bool = False):
        super().__init__()
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if norm not in ("group", "batch", "none"):
            raise ValueError(f"norm must be 'group', 'batch' or 'none', got {norm!r}")
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        mults = tuple(int(m) for m in channel_mults)
        if not mults or min(mults) < 1 or int(base_channels) < 1:
            raise ValueError("channel_mults must be a non-empty sequence of positive integers "
                             f"and base_channels positive; got {channel_mults}, {base_channels}")
        self.dim = int(dim)
        self.base_channels = int(base_channels)
        self.channel_mults = mults
        self.norm = norm
        self.kernel_size = int(kernel_size)
        self.symmetrize = bool(symmetrize)
        widths = [self.base_channels * m for m in mults]
        k = self.kernel_size
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        c_in = 1
        for w in widths:
            self.encoders.append(_ConvBlock(c_in, w, k, norm))
            self.downs.append(_Down(w))
            c_in = w
        self.bottleneck = _ConvBlock(c_in, 2 * c_in, k, norm)
        c_in = 2 * c_in
        self.decoders = nn.ModuleList()
        for w in reversed(widths):
            self.decoders.append(_ConvBlock(c_in + w, w, k, norm))
            c_in = w
        self.head = nn.Conv1d(c_in, 1, 1)

    @property
    def levels(self) -> int:
        return len(self.channel_mults)

    @property
    def exact_shift(self) -> int:
        """Smallest shift ``k > 0`` the un-symmetrized network commutes with exactly: ``2^L``
        when it divides ``d``, else ``d`` (only the trivial shift)."""
        step = 2 ** self.levels
        return step if self.dim % step == 0 else self.dim

    def _forward(self, x):
        h = x[:, None, :]
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for dec, skip in zip(self.decoders, reversed(skips)):
            h = h.repeat_interleave(2, dim=-1)[..., :skip.shape[-1]]
            h = dec(torch.cat([h, skip], dim=1))
        return self.head(h)[:, 0, :]

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"UNet1d expects states of shape (n, {self.dim}), got "
                             f"{tuple(x.shape)}")
        if not self.symmetrize or self.exact_shift == 1:
            return self._forward(x)
        P, n, d = self.exact_shift, x.shape[0], self.dim
        # all P shifted copies in one batch: row (k, i) is x_i shifted by k
        k = torch.arange(P, device=x.device)
        j = torch.arange(d, device=x.device)
        shift = (j[None, :] - k[:, None]) % d          # T_k x: (T_k x)[j] = x[j - k]
        xs = x[:, shift].transpose(0, 1).reshape(P * n, d)
        ys = self._forward(xs).reshape(P, n, d)
        back = (j[None, :] + k[:, None]) % d           # T_k^{-1} y: y[j + k]
        ys = torch.gather(ys, 2, back[:, None, :].expand(P, n, d))
        return ys.mean(0)

    @property
    def floats_per_row(self) -> int:
        """Rough peak number of activation values per state in an inference pass: ~8 live
        copies of every level's features (convolutions, swish, skips, concatenations), times
        the number of shifted copies when symmetrized (measured: 160 KB a state for base 8,
        d = 32, symmetrized; this gives 256 KB)."""
        length, total = self.dim, 0
        for m in self.channel_mults:
            total += self.base_channels * m * length
            length = -(-length // 2)
        total += 2 * self.base_channels * self.channel_mults[-1] * length
        copies = self.exact_shift if self.symmetrize and self.exact_shift > 1 else 1
        return 8 * total * copies

    @property
    def config(self) -> dict:
        return {"type": "UNet1d", "dim": self.dim, "base_channels": self.base_channels,
                "channel_mults": list(self.channel_mults), "norm": self.norm,
                "kernel_size": self.kernel_size, "symmetrize": self.symmetrize}


_NETWORKS = {"MLP": MLP, "UNet1d": UNet1d}


def register_network(cls):
    """Make a network class savable by name: it needs a ``config`` property returning
    ``{"type": cls.__name__, **constructor keyword arguments}``."""
    _NETWORKS[cls.__name__] = cls
    return cls


def network_to_arrays(net: nn.Module) -> tuple[dict, dict]:
    """(config, {parameter name: float array}) of a network of this module."""
    kind = type(net).__name__
    if _NETWORKS.get(kind) is not type(net) or not hasattr(net, "config"):
        raise TypeError(f"a network of type {kind} cannot be saved: only registered networks "
                        f"({sorted(_NETWORKS)}) can; register yours with "
                        "xlangevin.score.nets.register_network (it needs a `config` property)")
    return net.config, {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def network_from_arrays(config: dict, arrays: dict) -> nn.Module:
    """Rebuild a network from :func:`network_to_arrays` output. The network is first built on
    torch's ``meta`` device (no memory): its parameter shapes must equal the stored arrays'
    before the real network is allocated, so a file's config cannot ask for more memory than
    its weights occupy."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in _NETWORKS:
        raise ValueError(f"unknown network type {kind!r}; known: {sorted(_NETWORKS)}")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in _NETWORKS[kind](**config).state_dict().items()}
    stored = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    if shapes != stored:
        wrong = sorted(set(shapes.items()) ^ set(stored.items()))[:4]
        raise ValueError(f"the stored weights do not match the {kind} network's configuration "
                         f"(first differences: {wrong})")
    net = _NETWORKS[kind](**config)
    net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()})
    return net.eval()
