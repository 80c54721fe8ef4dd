r"""Scores and drifts as the Langevin model sees them: standardized functions of the state.

The model works in the standardized units ``x~ = S^{-1}(x - m)`` of its data's FeatureSpace. A
user's score becomes an adapter ``std(X~) -> s~(X~)`` on (n, d) arrays (:func:`as_score`):

* a :class:`~xlangevin.ScoreModel`, whose own FeatureSpace may differ from the model's (then
  ``s~(x~) = a * field(a x~ + b)`` with ``a = S / S'``, ``b = (m - m') / S'``);
* a plain callable on physical (n, d) arrays, taken as the exact score:
  ``s~(x~) = S f(m + S x~)``;
* a numba-jitted ``f(x_row, out_row)`` (exact score, physical units).

:class:`DriftField` is the drift ``Phi~ s~(x~) [+ v~(x~)]`` handed to the Euler-Maruyama steppers
(:mod:`xlangevin.backends.euler_maruyama`) at one dtype. For the numba kernel an MLP score (with
a current velocity of the same depth) is folded into one network computing the whole drift: the
unit maps and ``-1/sigma`` into the first and last layers, ``Phi`` into the output layer, and the
current velocity's MLP stacked beside the score's (:func:`joint_mlp`).
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

from ..backends import euler_maruyama as em
from ..backends import torch_threads
from ..data import DataError, FeatureSpace
from ..score import MLP, NoiseToScore, ScoreModel

__all__ = ["as_score", "central_jacobian", "DriftField", "fold_mobility", "joint_mlp",
           "MLP_BLOCK"]

#: members per block of the numba MLP kernel: large blocks make the layer products efficient
#: GEMMs (256 members: 1.3-1.9x the member-steps per second of 32, benchmarks/bench_generate.py);
#: the kernel runs with OpenBLAS limited to one thread (threadpoolctl), so a large product never
#: starts BLAS threads inside numba's
MLP_BLOCK = 256



def central_jacobian(f, X, h) -> np.ndarray:
    """``J[n, i, j] = d f_i / d x_j`` of a vector field ``f`` on (n, d) arrays by central
    differences with steps ``h`` (a number, or one per coordinate), error O(h^2); 2 d calls."""
    h = np.broadcast_to(np.asarray(h, dtype=np.float64), (X.shape[1],))
    cols = [(f(X + h[j] * e) - f(X - h[j] * e)) / (2 * h[j])
            for j, e in enumerate(np.eye(X.shape[1]))]
    return np.stack(cols, axis=2)

def _is_numba_function(f) -> bool:
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover
        return False
    return isinstance(f, CPUDispatcher)


class _Score:
    """A score seen in the model's standardized units: ``std(X~) -> s~(X~)`` on (n, d) arrays.

    ``kind`` names it, ``sigma`` is its smoothing scale (0 for an exact score) and ``perturb``
    (d,) the standard deviation of the Stein-matrix perturbation in the model's units.
    """

    kind = "score"
    sigma = 0.0

    def __init__(self, space: FeatureSpace):
        self.space = space
        self.perturb = np.zeros(space.n_features)

    def std(self, X):
        raise NotImplementedError

    def strategy(self, dtype):
        """``(drift, p, ip, scratch_per_member, block)`` for the numba kernel, or None."""
        return None


class _ModelScore(_Score):
    """A :class:`~xlangevin.ScoreModel`; its own FeatureSpace may differ from the model's: then
    ``s~(x~) = a * field(a x~ + b)`` with ``a = S / S'``, ``b = (m - m') / S'``."""

    kind = "ScoreModel"

    def __init__(self, model: ScoreModel, space: FeatureSpace):
        super().__init__(space)
        ms = model.space
        if ms.n_features != space.n_features:
            raise DataError(f"the score model has {ms.n_features} features, the data "
                            f"{space.n_features}; fit the score on the same variables")
        self.model = model
        self.sigma = float(model.sigma)
        self.a = space.scale / ms.scale
        self.b = (space.mean - ms.mean) / ms.scale
        self.identity = bool(np.allclose(self.a, 1.0, rtol=1e-12, atol=0.0)
                             and np.allclose(self.b, 0.0, rtol=0.0, atol=1e-12))
        self.perturb = self.sigma / self.a
        self._fields = {}

    def _field(self, dtype):
        tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        if tdtype not in self._fields:
            field = self.model.field
            if self.model.dtype != tdtype:
                field = copy.deepcopy(field).to(tdtype)
            self._fields[tdtype] = field.eval()
        return self._fields[tdtype], tdtype

    def std(self, X):
        X = np.asarray(X)
        if not X.flags.writeable:      # the data layer's read-only arrays: torch wants its own
            X = X.copy()
        out = np.empty(X.shape, dtype=X.dtype)
        batch_size = self.model.batch_size
        for start in range(0, X.shape[0], batch_size):
            t = torch.from_numpy(np.ascontiguousarray(X[start:start + batch_size]))
            out[start:start + batch_size] = self.std_tensor(t).cpu().numpy()
        return out

    def std_tensor(self, t):
        """``s~`` of a CPU tensor in the model's units (the field runs on its own device)."""
        field, tdtype = self._field(np.float64 if t.dtype == torch.float64 else np.float32)
        device = self.model.device
        # small batches run faster on one thread (per-op threading overhead dominates, and
        # collapses on a busy machine)
        threads = torch_threads(1) if t.shape[0] < 512 and device.type == "cpu" else \
            contextlib.nullcontext()
        with torch.no_grad(), threads:
            x = t.to(device=device, dtype=tdtype)
            if self.identity:
                s = field(x)
            else:
                a = torch.as_tensor(self.a, dtype=tdtype, device=device)
                b = torch.as_tensor(self.b, dtype=tdtype, device=device)
                s = field(x * a + b) * a
        return s.to(device="cpu", dtype=t.dtype)

    def mlp_layers(self):
        """``(weights (out, in), biases)`` of the score MLP in float64 with the unit maps and the
        ``-1/sigma`` factor folded in (``s~`` of the model's units), or None for other nets."""
        field = self.model.field
        factor, net = 1.0, field
        if isinstance(field, NoiseToScore):
            factor, net = -1.0 / field.sigma, field.net
        if not isinstance(net, MLP):
            return None
        linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
        W = [lin.weight.detach().cpu().numpy().astype(np.float64) for lin in linears]
        bias = [lin.bias.detach().cpu().numpy().astype(np.float64) for lin in linears]
        if not self.identity:          # input map x' = a x~ + b, output s~ = a s'
            bias[0] = W[0] @ self.b + bias[0]
            W[0] = W[0] * self.a[None, :]
        out_scale = factor * (1.0 if self.identity else self.a)
        W[-1] = np.asarray(out_scale).reshape(-1, 1) * W[-1]
        bias[-1] = out_scale * bias[-1]
        return W, bias

    def strategy(self, dtype):
        layers = self.mlp_layers()
        return None if layers is None else _mlp_strategy(*layers, dtype)


def _mlp_strategy(W, bias, dtype):
    """The numba kernel's drift strategy for an MLP given as (out, in) weights and biases."""
    p, ip = em.pack_mlp(W, bias, dtype)
    hidden = max([w.shape[0] for w in W[:-1]], default=1)
    return em.mlp_drift, p, ip, 2 * hidden, MLP_BLOCK


def fold_mobility(layers, Phi):
    """The MLP ``x -> Phi net(x)``: ``Phi`` multiplied into the output layer."""
    W, bias = list(layers[0]), list(layers[1])
    W[-1], bias[-1] = Phi @ W[-1], Phi @ bias[-1]
    return W, bias


def joint_mlp(score_layers, current_layers, Phi):
    """One MLP computing ``Phi s(x) + v(x)`` from the score MLP and the current-velocity MLP
    (same depth): stacked first layers, block-diagonal hidden layers and a summed output layer
    (swish acts element-wise, so the two networks stay independent inside)."""
    (Ws, bs), (Wv, bv) = fold_mobility(score_layers, Phi), current_layers
    W = [np.vstack([Ws[0], Wv[0]])]
    bias = [np.concatenate([bs[0], bv[0]])]
    for a, b in zip(Ws[1:-1], Wv[1:-1]):
        block = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
        block[:a.shape[0], :a.shape[1]], block[a.shape[0]:, a.shape[1]:] = a, b
        W.append(block)
    W.append(np.hstack([Ws[-1], Wv[-1]]))
    bias += [np.concatenate([a, b]) for a, b in zip(bs[1:-1], bv[1:-1])]
    bias.append(bs[-1] + bv[-1])
    return W, bias


class _CallableScore(_Score):
    """A plain callable on physical (n, d) arrays, taken as the exact score (``sigma = 0``):
    ``s~(x~) = S f(m + S x~)``."""

    kind = "callable"

    def __init__(self, f, space):
        super().__init__(space)
        self.f = f

    def _physical(self, X):
        return self.space.mean + self.space.scale * np.asarray(X, dtype=np.float64)

    def std(self, X):
        X = np.asarray(X)
        s = np.asarray(self.f(self._physical(X)), dtype=np.float64)
        if s.shape != X.shape:
            raise ValueError(f"the score callable returned shape {s.shape} for input of shape "
                             f"{X.shape}; it must map (n, d) physical states to (n, d) scores")
        return (s * self.space.scale).astype(X.dtype, copy=False)


class _NumbaScore(_CallableScore):
    """A numba-jitted ``f(x_row, out_row)`` on one physical state (exact score)."""

    kind = "numba"

    def std(self, X):
        X = np.asarray(X)
        P = self._physical(X)
        out = np.empty_like(P)
        em.apply_rows(self.f)(P, out)
        return (out * self.space.scale).astype(X.dtype, copy=False)

    def strategy(self, dtype):
        d = self.space.n_features
        p = np.concatenate([self.space.mean, self.space.scale]).astype(dtype)
        return em.row_drift(self.f), p, np.zeros(1, np.int64), 2 * d, 32


def as_score(score, space) -> _Score:
    """The adapter of a user's ``score`` (ScoreModel, numba row function or callable)."""
    if isinstance(score, ScoreModel):
        return _ModelScore(score, space)
    if _is_numba_function(score):
        return _NumbaScore(score, space)
    if callable(score):
        return _CallableScore(score, space)
    raise TypeError(f"score must be a ScoreModel, a callable on (n, d) physical arrays, a "
                    f"numba-jitted f(x_row, out_row), or a method name such as 'kgmm'; got "
                    f"{type(score).__name__}")


class DriftField:
    """The drift ``Phi~ s~(x~)`` (``+ v~(x~)`` with a current velocity) of a model at one dtype,
    as the steppers take it: ``Phi`` (d, d), ``score_std`` / ``score_tensor`` (numpy / torch or
    None), ``current``, and the numba ``strategy`` (or None) with ``folded`` (the strategy
    computes the whole drift; otherwise it computes ``s~`` and the kernel applies ``Phi``)."""

    def __init__(self, score: _Score, Phi_std, current, dtype):
        self.kind = score.kind
        self.Phi = np.ascontiguousarray(Phi_std, dtype=dtype)
        self.score_std = score.std
        self.score_tensor = getattr(score, "std_tensor", None)
        self.current = current
        self.strategy, self.folded = _numba_strategy(score, np.asarray(Phi_std), current, dtype)


def _numba_strategy(score, Phi, current, dtype):
    """``(strategy or None, folded)``: an MLP score (and current velocity) becomes one network
    computing the whole drift ``Phi s(x) [+ v(x)]`` (``folded``); other numba scores give ``s``
    alone."""
    score_layers = score.mlp_layers() if isinstance(score, _ModelScore) else None
    if current is None:
        if score_layers is None:
            return score.strategy(dtype), False
        return _mlp_strategy(*fold_mobility(score_layers, Phi), dtype), True
    current_layers = current.mlp_layers()
    if score_layers is None or current_layers is None \
            or len(score_layers[0]) != len(current_layers[0]):
        return None, False
    return _mlp_strategy(*joint_mlp(score_layers, current_layers, Phi), dtype), True
