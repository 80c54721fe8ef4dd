r"""Current velocity ``v(x) = j(x) / p(x)``: a state-dependent non-reversible drift.

For a stationary diffusion ``dx = b dt + sqrt(2 D) dW`` with density ``p`` and score ``s``, the
drift splits into a reversible part and the *current velocity* (Nelson's mean of the forward and
backward drifts)

    b = D s + div D + v,        v = j / p,        div(p v) = 0.

``v`` is what makes a process irreversible (``v = 0`` iff detailed balance). It is measured from
data by central differences, in which the diffusion terms cancel:

    E[(x_{t+tau} - x_{t-tau}) / (2 tau) | x_t = x] = v(x) + O(tau).

The effective model with this drift,

    dx = (Phi_S s(x) + v(x)) dt + sqrt(2) Sigma dW,        Sigma Sigma^T = Phi_S,

keeps ``p`` invariant for any ``v`` with ``div(p v) = 0`` (the Fokker–Planck flux is
``p v``), and contains the constant-mobility model as the case ``v = Phi_A s``. A constant
``Phi_A`` cannot carry a travelling wave whose density is a ring around a hole (its mean phase
velocity is proportional to the density at the centre, docs/lorenz96_demo.md); ``v(x)`` can.

Estimation (like KGMM's score, METHODS.md §2): central differences within sequences (never across
a member join or a gap), averaged per cell of a bisecting k-means partition of the states, and an
MLP fitted to the cell means with the cell counts as weights (:func:`~xlangevin.score.interpolate.
fit_interpolator`). Units: standardized states in, standardized velocity (per time unit of the
data) out.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

from ..backends import kernel, torch_threads
from ..base import Estimator, Flag, Interval, Seed, Sizes
from ..data import DataError, FeatureSpace, check_periodic_field
from ..partition import BisectingPartition
from ..score.cells import cell_means
from ..score.interpolate import fit_interpolator
from ..score.nets import MLP, network_from_arrays, network_to_arrays
from .cdot import extrapolation_weights

__all__ = ["CurrentVelocity", "CurrentField", "central_differences"]


def central_differences(X, bounds, lag: int, dt: float, order: int = 0):
    """``(x_t, v_t)`` for every ``t`` whose neighbours ``t +- (order + 1) lag`` lie in the same
    sequence ``X[bounds[i]:bounds[i+1]]``.

    ``v_t`` is the central difference ``(x_{t+k} - x_{t-k}) / (2 k dt)`` at ``k = lag``
    (``order=0``), or its extrapolation to ``k -> 0`` by the polynomial of degree ``order``
    through ``k = lag, 2 lag, ..., (order + 1) lag`` (Richardson; weights ``2, -1`` for
    ``order=1``, ``3, -3, 1`` for ``order=2``). For a diffusion the conditional mean of the
    central difference is ``v + O(k dt)`` (the forward and backward drifts differ at first
    order), so each order removes one power of ``k dt`` from the bias.
    """
    X = np.asarray(X, dtype=np.float64)
    ks = int(lag) * np.arange(1, int(order) + 2)
    weights = extrapolation_weights(ks * float(dt), int(order))
    reach = int(ks[-1])
    mids, vels = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = b - a
        if n > 2 * reach:
            seq = X[a:b]
            mids.append(seq[reach:n - reach])
            vels.append(sum(w * (seq[reach + k:n - reach + k] - seq[reach - k:n - reach - k])
                            / (2.0 * k * dt) for w, k in zip(weights, ks)))
    if not mids:
        raise DataError(f"no sequence is longer than 2 * (order + 1) * lag = {2 * reach} "
                        "samples: the current velocity needs consecutive samples on both sides "
                        "of each state")
    return np.concatenate(mids), np.concatenate(vels)


class CurrentField:
    """A fitted current velocity ``v~(x~)`` (standardized units, per time unit of the data).

    ``net`` is the MLP; ``diagnostics``: ``lag`` (samples), ``n_cells``, ``n_pairs``,
    ``r2`` (share of the variance of the central differences it explains),
    ``validation_loss``, ``epochs``, ``shift_augmentation``.
    """

    def __init__(self, net: MLP, diagnostics: dict):
        if not isinstance(net, MLP):
            raise TypeError(f"the current velocity network must be an xlangevin MLP, got "
                            f"{type(net).__name__}")
        self.net = net.eval()
        self.diagnostics = dict(diagnostics)
        self._cast = {}

    def _net(self, dtype):
        if dtype not in self._cast:
            self._cast[dtype] = copy.deepcopy(self.net).to(dtype).eval()
        return self._cast[dtype]

    kind = "mlp"

    def tensor(self, t, s=None):
        """``v~`` of a CPU tensor (its dtype kept; the score ``s`` is not used)."""
        small = torch_threads(1) if t.shape[0] < 512 else contextlib.nullcontext()
        with torch.no_grad(), small:
            return self._net(t.dtype)(t)

    def __call__(self, X, S=None):
        """``v~(x~)`` on standardized states (n, d) (numpy in, numpy out, dtype kept; the
        scores ``S`` are not used)."""
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return self.tensor(torch.from_numpy(np.array(X, dtype=dtype, order="C"))).numpy()

    def mlp_layers(self):
        """``(weights (out, in), biases)`` per layer in float64, for the numba kernel."""
        lin = [m for m in self.net.layers if isinstance(m, torch.nn.Linear)]
        return ([m.weight.detach().cpu().numpy().astype(np.float64) for m in lin],
                [m.bias.detach().cpu().numpy().astype(np.float64) for m in lin])

    def to_arrays(self):
        config, arrays = network_to_arrays(self.net)
        return {"kind": self.kind, "network": config, "diagnostics": self.diagnostics}, arrays

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(network_from_arrays(config["network"], arrays), config["diagnostics"])

    def __repr__(self):
        dg = self.diagnostics
        return (f"CurrentField(hidden={list(self.net.hidden)}, lag={dg.get('lag')}, "
                f"n_cells={dg.get('n_cells')}, r2={dg.get('r2', float('nan')):.3f})")


class CurrentVelocity(Estimator):
    """Estimator of the current velocity ``v(x)`` from consecutive samples (module docstring).

    Parameters
    ----------
    lag : half-width of the central difference, in samples (default 1: the bias is
        ``O(lag dt)``; larger lags smooth noisy records).
    order : degree of the extrapolation to zero lag over the half-widths ``lag, 2 lag, ...,
        (order + 1) lag`` (default 0: the plain central difference). ``order=1`` or ``2``
        removes the ``O(lag dt)`` (and ``O(lag^2 dt^2)``) bias when the sampling interval is
        not short against the fastest relaxation time (:func:`central_differences`).
    n_clusters : cells of the bisecting k-means partition (default ``min(2000, n / 50)``:
        about 50 central differences per cell).
    hidden : hidden widths of the interpolating MLP.
    epochs, batch_size, learning_rate, patience : its training
        (:func:`~xlangevin.score.interpolate.fit_interpolator`).
    shift_augmentation : add every circular shift of the states and velocities along the
        (single, periodic) feature dim, exactly in physical units (for translation-invariant
        fields such as Lorenz-96; ``v`` then commutes with the shifts up to the fit).
    seed, progress : reproducibility and progress bar.
    """

    lag: int = 1
    order: int = 0
    n_clusters: int | None = None
    hidden: tuple = (128, 64)
    epochs: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 300
    shift_augmentation: bool = False
    seed: int | None = None
    progress: bool = True

    _constraints = {
        "lag": Interval(1, None, integer=True),
        "order": Interval(0, 4, integer=True),
        "n_clusters": Interval(2, None, integer=True, optional=True),
        "hidden": Sizes(),
        "epochs": Interval(1, None, integer=True, optional=True),
        "batch_size": Interval(1, None, integer=True),
        "learning_rate": Interval(0, None, closed="neither"),
        "patience": Interval(1, None, integer=True),
        "shift_augmentation": Flag(),
        "seed": Seed(),
        "progress": Flag(),
    }

    def fit(self, X, bounds, dt: float, space: FeatureSpace | None = None) -> CurrentField:
        """Fit on standardized states ``X`` (n, d) in sequences ``bounds`` sampled every ``dt``;
        ``space`` (the data's FeatureSpace) is needed for ``shift_augmentation``. This
        estimator works on arrays: :class:`~xlangevin.EffectiveLangevin` hands them over."""
        self.validate()
        rng = np.random.default_rng(self.seed)
        mids, vels = central_differences(X, bounds, int(self.lag), float(dt),
                                         int(self.order))
        n_pairs = mids.shape[0]
        if self.shift_augmentation:
            if space is None:
                raise ValueError("shift_augmentation needs the data's FeatureSpace")
            check_periodic_field(space, "shift_augmentation=True")
            mids, vels = _shift_copies(space, mids, vels)
        n_clusters = self.n_clusters or int(np.clip(n_pairs // 50, 2, 2000))
        if mids.shape[0] < 10 * n_clusters:
            raise DataError(f"{mids.shape[0]} central differences for {n_clusters} cells: need "
                            f"about 10 per cell; give fewer n_clusters or a longer record")
        partition = BisectingPartition(n_clusters=n_clusters,
                                       seed=int(rng.integers(2**31))).fit(mids)
        sums = kernel("accumulate_cells")(partition.assign(mids), vels, mids, partition.n_cells)
        cells = cell_means(*sums)
        ok = cells["count"] > 0
        net, history = fit_interpolator(
            cells["centre"][ok], cells["mean_z"][ok], cells["count"][ok].astype(np.float64),
            hidden=tuple(int(h) for h in np.atleast_1d(self.hidden)), epochs=self.epochs,
            batch_size=self.batch_size, learning_rate=self.learning_rate,
            patience=self.patience, seed=int(rng.integers(2**31)), progress=self.progress)
        fitted = CurrentField(net, {})(mids.astype(np.float32)).astype(np.float64)
        if not np.all(np.isfinite(fitted)):
            raise FloatingPointError("the fitted current velocity is not finite; check the data")
        r2 = 1.0 - np.sum((vels - fitted) ** 2) / np.sum((vels - vels.mean(axis=0)) ** 2)
        return CurrentField(net, {
            "lag": int(self.lag), "order": int(self.order), "n_cells": int(ok.sum()),
            "n_pairs": int(n_pairs), "r2": float(r2),
            "validation_loss": float(history.get("best_validation", np.nan)),
            "epochs": int(history["epochs"]), "shift_augmentation": bool(self.shift_augmentation)})


def _shift_copies(space, mids, vels):
    """States and velocities with all circular shifts of the feature axis (physical units)."""
    m, s = space.mean, space.scale
    x, u = space.to_physical(mids), vels * s
    xs = [(np.roll(x, k, axis=1) - m) / s for k in range(x.shape[1])]
    us = [np.roll(u, k, axis=1) / s for k in range(x.shape[1])]
    return np.concatenate(xs), np.concatenate(us)
