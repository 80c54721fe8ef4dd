r"""Implicit score matching of a time-dependent network score ``NN(t, y)`` ("classical" route).

The forward process is the Ornstein-Uhlenbeck process of the Hermite spectral score
(``V = |y|^2 / 2`` on the standardized state ``y``: ``dY = -Y dt + sqrt(2) dW``), whose solution
from the data is exact, ``Y_t = e^{-t} Y_0 + sqrt(1 - e^{-2t}) Z`` (no Euler-Maruyama error).
The network minimizes the implicit score-matching loss over time (Hyvärinen 2005; Khoo, Peng &
Oster, "Score based learning in scientific computing", slides 2025)

    J = E_t E_{Y_t} [ w(t) ( |s(t, Y_t)|^2 / 2 + div_y s(t, Y_t) ) ],

with ``t`` log-uniform in ``[t_min, T]`` and the weight ``w(t) = 1`` or ``1 - e^{-2t}`` (the
forward variance: it tames the loss at small ``t`` for sharp data, without moving the
minimizer at any ``t``, but learns small ``t`` more slowly). The
divergence is exact (``d`` backward passes) up to ``exact_max_dim`` features, else Hutchinson's
estimate ``E[v^T (ds/dy) v]`` with ``n_probes`` Rademacher vectors. Parametrization:
``s(t, y) = -y + NN(y, log t)`` (the stationary score plus a correction that the network
learns).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, OneOf, Seed, Sizes, provenance
from ..progress import bar
from .model import ScoreModel, register_field
from .spectral_basis import Hermite
from .time_model import TimeScoreModel

__all__ = ["ISM", "ISMStationary", "ISMTimeField"]


@register_field
class ISMTimeField(nn.Module):
    """``s(t, y) = -y + NN([y, log max(t, t_min)])``: a swish MLP (float32 weights); below the
    smallest training time the score is held at ``t_min``."""

    def __init__(self, dim: int, hidden=(128, 128), t_min: float = 1e-3):
        super().__init__()
        self.dim, self.hidden = int(dim), tuple(int(h) for h in hidden)
        self.t_min = float(t_min)
        sizes = (self.dim + 1, *self.hidden, self.dim)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, t, y):
        yf = y.to(torch.float32)
        tt = torch.as_tensor(t, dtype=torch.float32, device=y.device)
        logt = torch.log(torch.clamp(tt, min=self.t_min))
        logt = logt.expand(yf.shape[:1]) if logt.ndim == 0 else logt.reshape(-1)
        out = -yf + self.net(torch.cat([yf, logt[:, None]], 1))
        return out.to(y.dtype)

    def to_arrays(self):
        return ({"dim": self.dim, "hidden": list(self.hidden), "t_min": self.t_min},
                {k.replace(".", "__"): v.detach().cpu().numpy()
                 for k, v in self.state_dict().items()})

    @classmethod
    def from_arrays(cls, config, arrays):
        field = cls(config["dim"], config["hidden"], config["t_min"])
        field.load_state_dict({k.replace("__", "."): torch.as_tensor(v)
                               for k, v in arrays.items()})
        return field


class ISM(Estimator):
    """Time-dependent score network by implicit score matching (module docstring).

    Parameters
    ----------
    hidden : widths of the hidden layers.
    epochs : passes over the data (each sample gets a fresh time and noise per pass).
    batch_size : samples per gradient step.
    lr : Adam learning rate (cosine-decayed to 0).
    horizon : final time ``T`` (default ``log(1e4)``: the forward process within 1e-4 of
        ``N(0, I)``).
    t_min : smallest training time.
    exact_max_dim : exact divergence up to this many features, Hutchinson above.
    n_probes : Rademacher probes of Hutchinson's estimator.
    weighting : ``"none"`` (``w = 1``: the loss of the slides) or ``"variance"`` (``w(t) = 1 -
        e^{-2t}``, for data whose score is sharp at small ``t``).
    n_times : grid of the model (its ``times``; the network itself is continuous in ``t``).
    device : torch device.
    dim, variables : data-layer options for xarray input.
    seed : seeds the initialization, the times and the noise.
    progress : show a progress bar.
    """

    hidden: tuple = (128, 128)
    epochs: int = 200
    batch_size: int = 512
    lr: float = 2e-3
    horizon: float | None = None
    t_min: float = 1e-3
    exact_max_dim: int = 8
    n_probes: int = 1
    weighting: str = "none"
    n_times: int = 64
    device: str = "cpu"
    dim: str = "time"
    variables: object = None
    seed: object = None
    progress: bool = True

    _constraints = {"hidden": Sizes(), "epochs": Interval(1, None, integer=True),
                    "batch_size": Interval(1, None, integer=True),
                    "lr": Interval(0, None, closed="neither"),
                    "horizon": Interval(0, None, closed="neither", optional=True),
                    "t_min": Interval(0, None, closed="neither"),
                    "exact_max_dim": Interval(0, None, integer=True),
                    "n_probes": Interval(1, None, integer=True),
                    "weighting": OneOf(("none", "variance")),
                    "n_times": Interval(2, None, integer=True), "seed": Seed()}

    def _check(self) -> None:
        T = self.horizon or float(np.log(1e4))
        if self.t_min >= T:
            raise ValueError(f"t_min ({self.t_min}) must be below the horizon ({T})")

    def _fit(self, features) -> TimeScoreModel:
        X = np.asarray(features.in_memory().X, dtype=np.float32)
        n, d = X.shape
        T = self.horizon or float(np.log(1e4))
        seed = int(np.random.default_rng(self.seed).integers(2**31)) \
            if not isinstance(self.seed, (int, np.integer)) else int(self.seed)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        field = ISMTimeField(d, self.hidden, self.t_min).to(self.device)
        losses = self._train(field, torch.as_tensor(X, device=self.device), T, gen)
        field = field.cpu().eval()
        times = np.concatenate([[0.0], np.geomspace(self.t_min, T, self.n_times - 1)])
        attrs = provenance(self, n_samples=int(n), horizon=T, final_loss=float(losses[-1]),
                           divergence="exact" if d <= self.exact_max_dim else "hutchinson")
        return TimeScoreModel(field, Hermite(d), np.ones(d), np.zeros(d), features.space,
                              times, "ism", attrs=attrs)

    def _train(self, field, X, T, gen):
        n, d = X.shape
        steps = self.epochs * max(1, -(-n // self.batch_size))
        opt = torch.optim.Adam(field.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        exact = d <= self.exact_max_dim
        losses = []
        for _ in bar(range(self.epochs), progress=self.progress, desc="ISM"):
            order = torch.randperm(n, generator=gen).to(X.device)
            total = 0.0
            for start in range(0, n, self.batch_size):
                y0 = X[order[start:start + self.batch_size]]
                u = torch.rand(len(y0), generator=gen).to(X.device)
                t = self.t_min * (T / self.t_min) ** u
                z = torch.randn(y0.shape, generator=gen).to(X.device)
                yt = (torch.exp(-t)[:, None] * y0
                      + torch.sqrt(1 - torch.exp(-2 * t))[:, None] * z).requires_grad_(True)
                loss = self._loss(field, t, yt, exact, gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(y0)
            losses.append(total / n)
        return losses

    def _loss(self, field, t, y, exact, gen):
        """``mean w(t) (|s|^2 / 2 + div s)`` with the exact or Hutchinson divergence."""
        s = field(t, y)
        if exact:
            div = sum(torch.autograd.grad(s[:, k].sum(), y, create_graph=True)[0][:, k]
                      for k in range(y.shape[1]))
        else:
            div = 0.0
            for _ in range(self.n_probes):
                v = (torch.randint(0, 2, y.shape, generator=gen).to(y.device) * 2 - 1).to(y.dtype)
                jv = torch.autograd.grad((s * v).sum(), y, create_graph=True)[0]
                div = div + (jv * v).sum(1) / self.n_probes
        w = torch.ones_like(t) if self.weighting == "none" else 1 - torch.exp(-2 * t)
        return (w * (0.5 * (s**2).sum(1) + div)).mean()


class ISMStationary(ISM):
    """The score ``s(0, x)`` of :class:`ISM` (held at ``t_min``) as a :class:`ScoreModel`
    (``ds.score.fit(method="ism")``)."""

    def _fit(self, features) -> ScoreModel:
        return super()._fit(features).at(0.0)
