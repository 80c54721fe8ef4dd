"""KGMM: score estimation by a k-means Gaussian-mixture average and a network interpolator.

Paper 000 / METHODS.md §2. In standardized units, with data ``y ~ p`` and ``x = y + sigma z``:

    s_sigma(x) = -E[z | x] / sigma,
    div s_sigma(x) = (E[|z|^2 | x] - d) / sigma^2 - |s_sigma(x)|^2.

Algorithm: build the bisecting k-means partition on one noisy draw of (a subsample of) the data;
then passes over the data, each with fresh noise, assigning ``x`` to cells by tree descent and
accumulating per cell ``sum z``, ``sum x``, ``sum |z|^2`` and counts. The estimates are the
count-weighted cumulative means; passes stop when ``|E_i - E_{i-1}|_F^2 / |E_i|_F^2 < tol``.
Cell centre = mean of the noisy ``x`` in the cell; cell score ``q_k = -mean_z_k / sigma``; standard
error ``sqrt(var(z)/n_k) / sigma`` with var(z) the per-component variance averaged over components.
Finally an MLP ``eps(x)`` is fitted to ``(centre_k, mean_z_k)`` with loss weights ``n_k``:
``sum_k n_k |eps(c_k) - mean_z_k|^2 / (d sum_k n_k)``, and the score is ``-eps(x) / sigma``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ._params import Interval, OneOf, validate_params
from ._version import __version__
from .backends import import_cupy, resolve_backend
from .data import as_feature_data
from .nets import MLP, torch_threads
from .partition import BisectingPartition
from .score import NoiseToScore, ScoreModel

__all__ = ["KGMM", "kgmm_cell_statistics", "fit_interpolator"]


def accumulate_cells(labels, z, x, n_cells, backend=None):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` of one chunk, on the chosen backend."""
    backend = resolve_backend(z, backend)
    if backend == "numba":
        from .backends import numba_kernels as kernels
    elif backend == "cupy":
        from .backends import cupy_kernels as kernels
    else:
        from .backends import numpy_kernels as kernels
    return kernels.accumulate_cells(labels, z, x, n_cells)


def kgmm_cell_statistics(Y, sigma, partition, rng, tol=1e-2, stderr_tol=None, max_passes=150,
                         min_passes=2, antithetic=True, chunk_size=1 << 18, backend=None,
                         progress=True):
    """The KGMM passes over standardized data ``Y`` (numpy or dask, (n, d)).

    Each pass draws fresh ``z`` for every sample; with ``antithetic`` both ``y + sigma z`` and
    ``y - sigma z`` are used (each is a valid draw, so the estimate stays unbiased, and pairs that
    land in the same cell cancel exactly, which removes most of the noise of interior points).
    Passes stop after ``min_passes`` once the relative change of the cumulative mean ``E`` of z
    is below ``tol`` and, if ``stderr_tol`` is given, the count-weighted relative standard error
    of the cell means is below it.

    Returns a dict with per-cell ``count``, ``centre`` (mean noisy x), ``mean_z``, ``mean_z2``
    (mean |z|^2), ``stderr_z`` (standard error of a component of mean_z, from the spread between
    passes), the number of passes, and the histories ``rel_change`` and ``rel_stderr``.
    """
    n, d = Y.shape
    K = partition.n_cells
    dtype = Y.dtype
    count = np.zeros(K, np.int64)
    sum_z, sum_x, sum_z2 = np.zeros((K, d)), np.zeros((K, d)), np.zeros(K)
    pass_sq = np.zeros(K)  # sum over passes of count_p |mean_z_p|^2
    passes_seen = np.zeros(K, np.int64)
    history, se_history, previous = [], [], None
    is_dask = type(Y).__module__.split(".")[0] == "dask"
    backend = resolve_backend(Y, backend)
    on_gpu = backend == "cupy"
    if on_gpu:  # noise drawn on the device from a generator seeded by ``rng``
        xp = import_cupy()
        gpu_rng = xp.random.default_rng(int(rng.integers(2**63)))
    signs = (1.0, -1.0) if antithetic else (1.0,)
    bar = tqdm(total=max_passes, disable=not progress, desc="KGMM passes", leave=False)
    try:
        for i in range(max_passes):
            c_p, z_p = np.zeros(K, np.int64), np.zeros((K, d))
            for start in range(0, n, chunk_size):
                y = Y[start:start + chunk_size]
                y = np.asarray(y.compute()) if is_dask else y
                if on_gpu:
                    y = xp.asarray(y)
                    z = gpu_rng.standard_normal(y.shape, dtype=dtype)
                else:
                    z = rng.standard_normal(y.shape, dtype=dtype)
                for sign in signs:
                    zs = z if sign > 0 else -z
                    x = y + dtype.type(sigma) * zs
                    labels = partition.assign(x, backend=backend, check_finite=False)
                    c, sz, sx, sz2 = accumulate_cells(labels, zs, x, K, backend=backend)
                    c_p += c
                    z_p += sz
                    sum_x += sx
                    sum_z2 += sz2
            count += c_p
            sum_z += z_p
            hit = c_p > 0
            pass_sq[hit] += np.sum(z_p[hit] ** 2, axis=1) / c_p[hit]
            passes_seen += hit
            filled = count > 0
            E = np.zeros((K, d))
            E[filled] = sum_z[filled] / count[filled, None]
            se = _stderr(count, sum_z, pass_sq, passes_seen, d)
            ok = filled & np.isfinite(se)
            rel_se = float(np.sqrt(np.sum(count[ok] * se[ok] ** 2 * d)
                                   / max(np.sum(count[ok, None] * E[ok] ** 2), 1e-300)))
            se_history.append(rel_se)
            if previous is not None:
                rel = float(np.sum((E - previous) ** 2) / max(np.sum(E**2), 1e-300))
                history.append(rel)
                bar.set_postfix(rel_change=f"{rel:.2e}", rel_stderr=f"{rel_se:.2e}")
            previous = E
            bar.update(1)
            if (i + 1 >= min_passes and history and history[-1] < tol
                    and (stderr_tol is None or rel_se < stderr_tol)):
                break
    finally:
        bar.close()
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count,
                "centre": sum_x / count[:, None],
                "mean_z": sum_z / count[:, None],
                "mean_z2": sum_z2 / count,
                "stderr_z": _stderr(count, sum_z, pass_sq, passes_seen, d),
                "passes": i + 1,
                "rel_change": np.asarray(history),
                "rel_stderr": np.asarray(se_history)}


def _stderr(count, sum_z, pass_sq, passes_seen, d):
    """Standard error of one component of the cumulative mean of z per cell, from the
    count-weighted spread of the per-pass means (NaN for cells seen in fewer than 2 passes)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sq = np.sum(sum_z**2, axis=1) / count**2
        spread = np.maximum(pass_sq / count - mean_sq, 0.0) / d
        return np.where(passes_seen > 1, np.sqrt(spread / (passes_seen - 1)), np.nan)


def fit_interpolator(centres, targets, weights, hidden=(128, 64), epochs=None, batch_size=32,
                     learning_rate=1e-3, validation_fraction=0.1, patience=300, seed=None,
                     progress=True, device="cpu"):
    """Fit ``MLP(x) ~= target`` with weighted MSE ``sum w |f(c) - t|^2 / (d sum w)``.

    ``epochs=None`` trains for about 3x10^4 optimizer steps (between 200 and 2000 epochs).
    A share ``validation_fraction`` of the rows is held out (when there are at least 50 rows);
    training stops after ``patience`` epochs without a better validation loss and the best
    weights are kept. Returns (network, history dict).
    """
    centres = np.asarray(centres, np.float32)
    targets = np.asarray(targets, np.float32)
    weights = np.asarray(weights, np.float32)
    n, d = centres.shape
    gen = np.random.default_rng(seed)
    perm = gen.permutation(n)
    n_val = int(round(validation_fraction * n)) if n >= 50 else 0
    val, train = perm[:n_val], perm[n_val:]
    if epochs is None:
        steps_per_epoch = -(-len(train) // batch_size)
        epochs = int(np.clip(30_000 // steps_per_epoch, 200, 2000))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(gen.integers(2**31)))
        net = MLP(d, hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    Xt, Tt, Wt = t(centres[train]), t(targets[train]), t(weights[train])
    Xv, Tv, Wv = t(centres[val]), t(targets[val]), t(weights[val])

    def loss_of(x, target, w):
        return (w[:, None] * (net(x) - target) ** 2).sum() / (d * w.sum())

    history = {"train": [], "validation": []}
    torch_gen = torch.Generator().manual_seed(int(gen.integers(2**31)))
    bar = tqdm(range(epochs), disable=not progress, desc="interpolator", leave=False)
    with torch_threads(1 if device == "cpu" else torch.get_num_threads()):
        epoch = _train_epochs(net, opt, loss_of, bar, (Xt, Tt, Wt), (Xv, Tv, Wv), n_val,
                              batch_size, patience, torch_gen, history)
    bar.close()
    net.load_state_dict(history.pop("best_state"))
    history["epochs"] = epoch + 1
    return net.eval(), history


def _train_epochs(net, opt, loss_of, bar, train_set, val_set, n_val, batch_size, patience,
                  torch_gen, history):
    """Mini-batch epochs with early stopping; stores the best state in ``history``."""
    Xt, Tt, Wt = train_set
    best, since = np.inf, 0
    for epoch in bar:
        net.train()
        order = torch.randperm(len(Xt), generator=torch_gen).to(Xt.device)
        total = 0.0
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = loss_of(Xt[idx], Tt[idx], Wt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history["train"].append(total / max(len(Xt), 1))
        net.eval()
        with torch.no_grad():
            monitor = (loss_of(*val_set) if n_val else loss_of(*train_set)).item()
        history["validation"].append(monitor)
        if monitor < best - 1e-12:
            best, since = monitor, 0
            history["best_state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
            history["best_validation"] = best
        else:
            since += 1
        if epoch % 20 == 0:
            bar.set_postfix(loss=f"{history['train'][-1]:.3e}", val=f"{monitor:.3e}")
        if since >= patience:
            break
    return epoch


class KGMM:
    """KGMM score estimator (see module docstring).

    Parameters
    ----------
    sigma : smoothing scale in standardized units (the model is the score of p_sigma).
    p_min : minimum cell probability of the partition (N_C ~= 0.7 / p_min); default
        ``max(1e-3, 20 / n)``.
    n_clusters : alternative to ``p_min``: sets ``p_min = 0.7 / n_clusters``.
    tol, stderr_tol, max_passes, min_passes : convergence rule of the passes (relative change of
        the cell means below ``tol`` and, if given, their count-weighted relative standard error
        below ``stderr_tol``).
    antithetic : use the noise pairs (z, -z) in every pass (variance reduction, unbiased).
    chunk_size : samples per noise/assignment chunk (bounds memory).
    hidden, epochs, batch_size, learning_rate, validation_fraction, patience : interpolator
        (MLP d -> 128 -> 64 -> d, swish; Adam; ``epochs=None`` ~ 3x10^4 steps; early stopping
        on held-out cells when there are at least 50 cells).
    dim, variables, dtype : data-layer options for xarray input.
    backend : kernel backend (None = numba for host arrays, cupy for cupy arrays).
    seed : seeds every random draw (noise, partition, network); same seed -> same model.
    progress : progress bars.
    """

    _table = {
        "sigma": Interval(0, None, closed="neither"),
        "p_min": Interval(0, 0.5, closed="right", optional=True),
        "n_clusters": Interval(2, None, integer=True, optional=True),
        "tol": Interval(0, None, closed="neither"),
        "stderr_tol": Interval(0, None, closed="neither", optional=True),
        "max_passes": Interval(1, None, integer=True),
        "min_passes": Interval(1, None, integer=True),
        "chunk_size": Interval(1, None, integer=True),
        "epochs": Interval(1, None, integer=True, optional=True),
        "batch_size": Interval(1, None, integer=True),
        "learning_rate": Interval(0, None, closed="neither"),
        "validation_fraction": Interval(0, 0.5, closed="left"),
        "patience": Interval(1, None, integer=True),
        "dtype": OneOf((np.float32, np.float64, "float32", "float64")),
    }

    def __init__(self, sigma=0.05, p_min=None, n_clusters=None, tol=1e-2, stderr_tol=0.05,
                 max_passes=150, min_passes=2, antithetic=True, chunk_size=1 << 18,
                 hidden=(128, 64), epochs=None, batch_size=32, learning_rate=1e-3,
                 validation_fraction=0.1, patience=300, dim="time",
                 variables=None, dtype=np.float64, backend=None, seed=None, progress=True):
        self.sigma = sigma
        self.p_min = p_min
        self.n_clusters = n_clusters
        self.tol = tol
        self.stderr_tol = stderr_tol
        self.max_passes = max_passes
        self.min_passes = min_passes
        self.antithetic = antithetic
        self.chunk_size = chunk_size
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.dim = dim
        self.variables = variables
        self.dtype = dtype
        self.backend = backend
        self.seed = seed
        self.progress = progress

    def get_params(self) -> dict:
        return dict(vars(self))

    def _resolve_p_min(self, n):
        if self.p_min is not None and self.n_clusters is not None:
            raise ValueError("give either p_min or n_clusters, not both")
        if self.n_clusters is not None:
            p_min = 0.7 / self.n_clusters
        elif self.p_min is not None:
            p_min = float(self.p_min)
        else:
            p_min = max(1e-3, 20.0 / n)
        if p_min < 10.0 / n:
            raise ValueError(f"p_min = {p_min:.3g} asks for cells of fewer than 10 samples with "
                             f"n = {n}; use p_min >= {10.0 / n:.3g} (n_clusters <= "
                             f"{int(0.07 * n)}) or more data")
        return p_min

    def fit(self, data) -> ScoreModel:
        """Fit on xarray (Dataset/DataArray) or an (n, d) array in physical units."""
        params = self.get_params()
        validate_params(params, self._table)
        resolve_backend(None, self.backend)
        rng = np.random.default_rng(self.seed)
        space, Y = as_feature_data(data, self.dim, self.variables, np.dtype(self.dtype))
        n, d = Y.shape
        p_min = self._resolve_p_min(n)
        tree_n = min(n, int(np.ceil(100.0 / p_min)))
        rows = np.sort(rng.choice(n, size=tree_n, replace=False)) if tree_n < n else slice(None)
        tree_data = np.asarray(Y[rows])
        tree_data = tree_data + self.sigma * rng.standard_normal(tree_data.shape)
        partition = BisectingPartition(p_min=p_min, seed=int(rng.integers(2**31))).fit(
            tree_data.astype(Y.dtype))
        stats = kgmm_cell_statistics(Y, self.sigma, partition, rng, tol=self.tol,
                                     stderr_tol=self.stderr_tol, max_passes=self.max_passes,
                                     min_passes=self.min_passes, antithetic=self.antithetic,
                                     chunk_size=self.chunk_size, backend=self.backend,
                                     progress=self.progress)
        count = stats["count"]
        filled = count > 0
        per_cell = np.median(count[filled]) / (stats["passes"] * (2 if self.antithetic else 1))
        if per_cell < 20:
            warnings.warn(f"the median cell holds {per_cell:.1f} samples per pass: the cell "
                          "averages are noisy; increase p_min (fewer cells) or use more data",
                          stacklevel=2)
        converged = (len(stats["rel_change"]) and stats["rel_change"][-1] < self.tol
                     and (self.stderr_tol is None or stats["rel_stderr"][-1] < self.stderr_tol))
        if not converged:
            warnings.warn(f"KGMM passes did not converge in max_passes={self.max_passes} "
                          f"(relative change {stats['rel_change'][-1] if len(stats['rel_change']) else float('nan'):.2g}"
                          f", relative standard error {stats['rel_stderr'][-1]:.2g}); raise "
                          "max_passes, loosen tol/stderr_tol, or use fewer cells", stacklevel=2)
        net, history = fit_interpolator(
            stats["centre"][filled], stats["mean_z"][filled], count[filled], hidden=self.hidden,
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            validation_fraction=self.validation_fraction, patience=self.patience,
            seed=int(rng.integers(2**31)), progress=self.progress)
        cells = self._cells_dataset(space, stats, filled, d)
        attrs = {
            "p_min": p_min, "n_cells": int(filled.sum()), "passes": int(stats["passes"]),
            "final_rel_change": float(stats["rel_change"][-1]) if len(stats["rel_change"])
            else float("nan"),
            "final_rel_stderr": float(stats["rel_stderr"][-1]),
            "interpolator_epochs": int(history["epochs"]),
            "interpolator_validation_loss": float(history["best_validation"]),
            "n_samples": int(n), "seed": "None" if self.seed is None else str(self.seed),
            "xlangevin_version": __version__,
        }
        model = ScoreModel(NoiseToScore(net, self.sigma), space, self.sigma, "kgmm", cells=cells,
                           attrs=attrs)
        model.partition = partition
        model.history = {"rel_change": stats["rel_change"], "rel_stderr": stats["rel_stderr"],
                         **history}
        return model

    def _cells_dataset(self, space, stats, filled, d):
        """Per-cell estimates in physical units as an xr.Dataset over (cell, feature)."""
        sigma = self.sigma
        mean_z = stats["mean_z"][filled]
        count = stats["count"][filled]
        score_std = -mean_z / sigma
        se_std = stats["stderr_z"][filled] / sigma
        div_std = (stats["mean_z2"][filled] - d) / sigma**2 - np.sum(score_std**2, axis=1)
        coords = {"cell": np.arange(int(filled.sum()))}
        coords.update(space.feature_coords("feature"))
        return xr.Dataset(
            {
                "centre": (("cell", "feature"), space.to_physical(stats["centre"][filled]),
                           {"long_name": "mean of the noisy samples in the cell"}),
                "cell_score": (("cell", "feature"), space.score_to_physical(score_std),
                          {"long_name": "cell score -mean(z)/sigma (physical units)"}),
                "stderr": (("cell", "feature"),
                           space.score_to_physical(np.repeat(se_std[:, None], d, axis=1)),
                           {"long_name": "standard error of the cell score"}),
                "count": (("cell",), count, {"long_name": "noisy samples over all passes"}),
                "divergence_std": (("cell",), div_std,
                                   {"long_name": "moment estimate of div s (standardized units)"}),
            },
            coords=coords, attrs={"sigma": sigma, "passes": int(stats["passes"])})
