"""The small network that interpolates per-cell averages (KGMM's score, the current velocity).

``fit_interpolator`` fits ``MLP(c_k) ~= t_k`` to cell centres ``c_k`` and cell targets ``t_k`` with
the loss weights ``w_k`` (cell counts): ``sum_k w_k |f(c_k) - t_k|^2 / (d sum_k w_k)`` (KGMM paper,
Sec. 3; METHODS.md §2), Adam. Two ways to stop:

* ``stop="patience"``: mini-batches, early stopping on held-out cells (the current velocity; KGMM
  with explicit ``epochs``).
* ``stop="plateau"``: full-batch Adam on all cells, stopped at the end of the fast phase of the
  loss -- once it falls by less than ``plateau_tol`` (relative) over ``plateau_window`` steps --
  or after ``max_steps`` (KGMM's default, with a step budget set by the noise of the cells;
  docs/kgmm_small_samples.md). Full-batch steps follow a smooth path: first the smooth field
  is fitted, then the noise of the individual cells. The held-out cells of the other rule are
  too few and too noisy at ~10^3 samples to tell the two phases apart, and mini-batch steps
  make the fitted field wander from one step to the next.

``scale_targets`` trains on the targets divided by their weighted RMS and folds that scale into the
output layer afterwards, so that the optimizer's steps and the stopping rules do not depend on the
targets' units (KGMM's targets are ``sigma`` times the score, tiny at small sigma).
"""

from __future__ import annotations

import numpy as np
import torch

from ..backends import torch_threads
from ..progress import bar as progress_bar
from .nets import MLP

__all__ = ["fit_interpolator"]


def fit_interpolator(centres, targets, weights, hidden=(128, 64), epochs=None, batch_size=32,
                     learning_rate=1e-3, validation_fraction=0.1, patience=300, seed=None,
                     progress=True, device="cpu", stop="patience", scale_targets=False,
                     plateau_window=100, plateau_tol=0.01, max_steps=30_000):
    """Fit ``MLP(x) ~= target`` with weighted MSE ``sum w |f(c) - t|^2 / (d sum w)``.

    ``stop="patience"``: ``epochs=None`` trains for about 3x10^4 optimizer steps (between 200 and
    2000 epochs). A share ``validation_fraction`` of the rows is held out (when there are at
    least 50 rows); training stops after ``patience`` epochs without a better validation loss
    and the best weights are kept.

    ``stop="plateau"``: full-batch steps on all rows (``batch_size``, ``epochs``,
    ``validation_fraction`` and ``patience`` are not used) until the loss falls by less than
    ``plateau_tol`` relative over the last ``plateau_window`` steps, at most ``max_steps``
    (``history["plateau"]`` says whether the plateau was reached). The last weights are kept.

    ``scale_targets``: see the module docstring. Returns (network, history dict).
    """
    if stop not in ("patience", "plateau"):
        raise ValueError(f"stop must be 'patience' or 'plateau', got {stop!r}")
    centres = np.asarray(centres, np.float32)
    targets = np.asarray(targets, np.float64)
    weights = np.asarray(weights, np.float32)
    n, d = centres.shape
    scale = 1.0
    if scale_targets:
        w64 = weights.astype(np.float64)
        rms = float(np.sqrt(np.sum(w64[:, None] * targets**2) / max(d * w64.sum(), 1e-300)))
        scale = rms if np.isfinite(rms) and rms > 0 else 1.0
    targets = (targets / scale).astype(np.float32)
    gen = np.random.default_rng(seed)
    perm = gen.permutation(n)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(gen.integers(2**31)))
        net = MLP(d, hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731

    def loss_of(x, target, w):
        return (w[:, None] * (net(x) - target) ** 2).sum() / (d * w.sum())

    history = {"train": [], "validation": []}
    torch_gen = torch.Generator().manual_seed(int(gen.integers(2**31)))
    with torch_threads(1 if device == "cpu" else torch.get_num_threads()):
        if stop == "plateau":
            steps = _train_plateau(net, opt, loss_of, (t(centres), t(targets), t(weights)),
                                   plateau_window, plateau_tol, max_steps, progress, history)
            history["epochs"] = steps
        else:
            n_val = int(round(validation_fraction * n)) if n >= 50 else 0
            val, train = perm[:n_val], perm[n_val:]
            if epochs is None:
                steps_per_epoch = -(-len(train) // batch_size)
                epochs = int(np.clip(30_000 // steps_per_epoch, 200, 2000))
            train_set = (t(centres[train]), t(targets[train]), t(weights[train]))
            val_set = (t(centres[val]), t(targets[val]), t(weights[val]))
            bar = progress_bar(range(epochs), progress=progress, desc="interpolator",
                                leave=False)
            epoch = _train_epochs(net, opt, loss_of, bar, train_set, val_set, n_val, batch_size,
                                  patience, torch_gen, history)
            bar.close()
            net.load_state_dict(history.pop("best_state"))
            history["epochs"] = epoch + 1
    if scale != 1.0:  # the linear output layer absorbs the target scale
        last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.mul_(scale)
            last.bias.mul_(scale)
    history["target_scale"] = scale
    return net.eval(), history


def _train_plateau(net, opt, loss_of, train_set, window, tol, max_steps, progress, history):
    """Full-batch steps until the loss falls by less than ``tol`` (relative) over ``window``
    steps; returns the number of steps taken."""
    X, T, W = train_set
    losses = history["train"]
    net.train()
    bar = progress_bar(range(max_steps), progress=progress, desc="interpolator", leave=False)
    history["plateau"] = False
    for step in bar:
        opt.zero_grad()
        loss = loss_of(X, T, W)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))  # the loss before this step
        if step >= window and losses[-1 - window] - losses[-1] < tol * losses[-1]:
            history["plateau"] = True
            break
        if step % 100 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3e}")
    bar.close()
    net.eval()
    with torch.no_grad():
        final = float(loss_of(X, T, W).item())
    history["best_validation"] = final  # no held-out cells: the final training loss
    history["validation"] = [final]
    return step + 1


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
