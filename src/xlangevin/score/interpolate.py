"""The small network that interpolates per-cell averages (KGMM's score, the current velocity).

``fit_interpolator`` fits ``MLP(c_k) ~= t_k`` to cell centres ``c_k`` and cell targets ``t_k`` with
the loss weights ``w_k`` (cell counts): ``sum_k w_k |f(c_k) - t_k|^2 / (d sum_k w_k)`` (KGMM paper,
Sec. 3; METHODS.md §2), Adam, mini-batches, early stopping on held-out cells.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backends import torch_threads
from .nets import MLP

__all__ = ["fit_interpolator"]


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
