"""DSM: fixed-sigma denoising score matching with a torch noise predictor (METHODS.md section 3).

In standardized units, with data ``y ~ p`` and fresh noise ``z ~ N(0, I)`` drawn for every sample
in every epoch, ``x = y + sigma z``; a network ``eps_theta`` is trained on

    loss = mean |eps_theta(x) - z|^2          (mean over samples and components)

whose minimizer is ``E[z | x] = -sigma s_sigma(x)``; the score is ``s~ = -eps_theta / sigma``, the
score of ``p_sigma = p * N(0, sigma^2 I)`` (the Langevin SDE with it preserves ``p_sigma``).
:class:`~xlangevin.score.ScoreModel` maps it to physical units.

Training: Adam, linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to 0.1x
the learning rate at the last step, computed from the real number of optimizer steps; an
exponential moving average (EMA) of the weights is the returned network; a held-out share of the
samples gives a validation loss on fixed noise draws. Options: antithetic noise pairs
``(z, -z)`` in every batch (unbiased, far lower gradient noise at small sigma), random circular
shifts of the feature axis for translation-invariant periodic fields, and for the U-Net an
exactly shift-equivariant evaluation (``symmetrize``).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from ..backends import torch_threads
from ..base import Estimator, Flag, Interval, OneOf, Seed, Sizes, provenance
from ..data import DataError, check_periodic_field
from ..progress import bar as progress_bar
from .model import NoiseToScore, ScoreModel
from .nets import MLP, UNet1d

__all__ = ["DSM", "lr_factor"]

_TARGET_STEPS = 20_000  # epochs=None: about this many optimizer steps (~100 epochs of 1e5 / 512)


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based) of ``total``: linear
    warm-up ``(step + 1) / warmup`` over the first ``warmup`` steps, then cosine decay from 1 to
    ``floor``, reached exactly at the last step ``total - 1``."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - 1 - warmup, 1)
    t = min((step - warmup) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


class DSM(Estimator):
    """Denoising score matching at one noise level (see module docstring).

    Parameters
    ----------
    sigma : noise scale in standardized units (the model is the score of p_sigma).
    network : ``"mlp"`` (``d -> hidden -> d``, swish), ``"unet1d"`` (1-D periodic U-Net over the
        grid index, for one variable on one periodic dim), or a torch ``nn.Module`` mapping
        ``(n, d) -> (n, d)`` (copied, not modified; savable when registered with
        :func:`xlangevin.score.nets.register_network`).
    hidden : MLP hidden widths.
    base_channels, channel_mults, norm : U-Net width, per-level multipliers (the number of
        levels is ``len(channel_mults)``) and normalization (``"group"``, ``"batch"``,
        ``"none"``). ``"group"`` normalizes each channel group over the grid and so hides the
        field's spatial mean from the network (fully with one channel per group); use
        ``"none"`` when the score along the spatial mean matters, e.g. a conserved mean as in
        Kuramoto-Sivashinsky (docs/ks.md).
    symmetrize : U-Net only: the returned network averages over the circular shifts it is not
        exactly equivariant to, so that the score commutes with every circular shift of the
        field (costs ``2^levels`` evaluations; see :class:`xlangevin.score.nets.UNet1d`). Training
        itself is not symmetrized. Implies the pooled standardization (below).
    epochs : passes; ``None`` = about 2x10^4 optimizer steps (between 10 and 2000 epochs).
    batch_size : samples per optimizer step (each sample twice with ``antithetic``).
    samples_per_epoch : a random subset of this many training samples per epoch (``None`` =
        all; larger than the training set = several shuffled passes).
    learning_rate : peak Adam learning rate.
    warmup_fraction : share of the optimizer steps used for the linear warm-up; then cosine
        decay to 0.1x at the last step.
    ema_decay : decay of the exponential moving average of the weights (0 = no averaging); the
        EMA weights are returned. The effective decay at step t is ``min(ema_decay,
        (1 + t) / (10 + t))`` so that short runs are not dominated by the initial weights.
    validation_fraction : share of the samples held out; their loss (antithetic fixed draws) is
        recorded every epoch for the EMA network.
    antithetic : use ``(z, -z)`` for every sample of a batch. Both are valid draws, so the loss
        stays an unbiased DSM loss; the terms linear in ``z`` cancel, which removes most of the
        gradient noise at small sigma.
    shift_augmentation : apply a random circular shift of the (single, periodic) feature axis to
        every sample: for translation-invariant periodic fields. With it (or ``symmetrize``) the
        data are standardized with ONE mean and scale pooled over the grid instead of per grid
        point, so that a circular shift of a standardized state is a shift of the physical
        field (per-point moments of a finite record differ by sampling noise -- by 10-20 % for
        the shipped KS record -- and would make the U-Net's shifts unphysical).
    device : ``"cpu"``, ``"cuda"``, ... (``None``: cuda when available). The model is returned on
        this device; ``model.to("cpu")`` moves it.
    dim, variables : data-layer options for xarray input.
    seed : seeds the split, the initialization and every noise draw; same seed -> same model on
        the CPU.
    progress : progress bar over epochs with the current losses.
    """

    sigma: float = 0.1
    network: object = "mlp"
    hidden: tuple = (128, 64)
    base_channels: int = 16
    channel_mults: tuple = (1, 2, 4)
    norm: str = "group"
    symmetrize: bool = False
    epochs: int | None = None
    batch_size: int = 512
    samples_per_epoch: int | None = None
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.05
    ema_decay: float = 0.999
    validation_fraction: float = 0.05
    antithetic: bool = True
    shift_augmentation: bool = False
    device: object = None
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = True

    _constraints = {
        "sigma": Interval(0, None, closed="neither"),
        "hidden": Sizes(),
        "channel_mults": Sizes(),
        "epochs": Interval(1, None, integer=True, optional=True),
        "batch_size": Interval(1, None, integer=True),
        "samples_per_epoch": Interval(1, None, integer=True, optional=True),
        "learning_rate": Interval(0, None, closed="neither"),
        "warmup_fraction": Interval(0, 1, closed="left"),
        "ema_decay": Interval(0, 1, closed="left"),
        "validation_fraction": Interval(0, 0.5, closed="left"),
        "base_channels": Interval(1, None, integer=True),
        "norm": OneOf(("group", "batch", "none")),
        "antithetic": Flag(),
        "shift_augmentation": Flag(),
        "symmetrize": Flag(),
        "seed": Seed(),
    }

    def _check(self) -> None:
        net = self.network
        if not (isinstance(net, nn.Module) or net in ("mlp", "unet1d")):
            raise ValueError(f"network must be 'mlp', 'unet1d' or a torch nn.Module, got {net!r}")
        if self.symmetrize and not (net == "unet1d" or isinstance(net, UNet1d)):
            raise ValueError("symmetrize=True is for the U-Net (network='unet1d') only")

    def _data_options(self) -> dict:
        return {"dtype": np.float32}

    def _device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must name a torch device ('cpu', 'cuda', 'cuda:1', ...), "
                             f"got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' but torch sees no CUDA GPU (torch "
                             f"{torch.__version__}); use device='cpu'")
        return device

    def _build_network(self, d, torch_seed):
        if isinstance(self.network, nn.Module):
            return copy.deepcopy(self.network)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            if self.network == "mlp":
                return MLP(d, self.hidden)
            return UNet1d(d, base_channels=self.base_channels, channel_mults=self.channel_mults,
                          norm=self.norm)

    # ---------------------------------------------------------------------------------------
    def _fit(self, features) -> ScoreModel:
        device = self._device()
        # DSM samples batches at random: the data in memory, float32
        features = features.in_memory().as_dtype(np.float32)
        space, Y = features.space, np.asarray(features.X, dtype=np.float32)
        n, d = Y.shape
        if self.network == "unet1d" or isinstance(self.network, UNet1d):
            check_periodic_field(space, "network='unet1d' (else use network='mlp')")
        invariant = self.shift_augmentation or self.symmetrize
        if self.shift_augmentation:
            check_periodic_field(space, "shift_augmentation=True")
        if invariant:  # translation-invariant field: one mean and scale for the whole grid
            space, Y = _pooled_standardization(space, Y)
        rng = np.random.default_rng(self.seed)
        val_idx, train_idx = self._split(n, rng)
        plan = self._schedule(len(train_idx))
        net = self._build_network(d, int(rng.integers(2**31))).to(device).float()
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        cpu_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        val_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        Yt = torch.as_tensor(Y[train_idx], device=device)
        Yv = torch.as_tensor(Y[val_idx], device=device)
        Zv = torch.randn(Yv.shape, generator=val_gen).to(device)
        shift = None
        if self.shift_augmentation:
            shift = (torch.tensor(np.array(space.mean), dtype=torch.float32, device=device),
                     torch.tensor(np.array(space.scale), dtype=torch.float32, device=device))
        history = self._train(net, Yt, (Yv, Zv), plan["epochs"], plan["steps_per_epoch"],
                              plan["per_epoch"], plan["total_steps"], plan["warmup"], gen,
                              cpu_gen, shift, device)
        ema = history.pop("network")
        if self.symmetrize:
            ema.symmetrize = True
        attrs = self._attrs(ema, plan, history, n, len(val_idx), device, invariant)
        return ScoreModel(NoiseToScore(ema.eval(), self.sigma), space, self.sigma, "dsm",
                          attrs=attrs, history={k: np.asarray(v) if isinstance(v, list) else v
                                                for k, v in history.items()})

    def _split(self, n, rng):
        """Sorted validation and training rows (a random ``validation_fraction`` held out)."""
        perm = rng.permutation(n)
        n_val = int(round(self.validation_fraction * n))
        if n - n_val < 2:
            raise DataError(f"only {n - n_val} training samples after holding out "
                            f"validation_fraction={self.validation_fraction}; use more data")
        return np.sort(perm[:n_val]), np.sort(perm[n_val:])

    def _schedule(self, n_train) -> dict:
        """Samples per epoch, steps per epoch, epochs, total and warm-up steps."""
        per_epoch = n_train if self.samples_per_epoch is None else int(self.samples_per_epoch)
        steps_per_epoch = -(-per_epoch // self.batch_size)
        epochs = self.epochs
        if epochs is None:
            epochs = int(np.clip(-(-_TARGET_STEPS // steps_per_epoch), 10, 2000))
        total_steps = epochs * steps_per_epoch
        return {"per_epoch": per_epoch, "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "total_steps": total_steps,
                "warmup": int(math.ceil(self.warmup_fraction * total_steps))}

    def _attrs(self, ema, plan, history, n, n_val, device, invariant) -> dict:
        return provenance(
            self, network=type(ema).__name__, network_config=getattr(ema, "config", "custom"),
            n_parameters=int(sum(p.numel() for p in ema.parameters())),
            epochs=int(plan["epochs"]), steps=int(plan["total_steps"]),
            warmup_steps=int(plan["warmup"]), batch_size=int(self.batch_size),
            samples_per_epoch=int(plan["per_epoch"]), antithetic=bool(self.antithetic),
            shift_augmentation=bool(self.shift_augmentation),
            standardization="pooled over the grid" if invariant else "per feature",
            n_samples=int(n), n_validation=int(n_val), device=str(device),
            final_train_loss=history["train"][-1],
            final_validation_loss=history["validation"][-1] if n_val else float("nan"),
            validation_loss_zero=history["validation_zero"], train_loss=history["train"],
            validation_loss=history["validation"], epoch_time_s=history["epoch_time"],
            train_time_s=float(np.sum(history["epoch_time"])))

    # ---------------------------------------------------------------------------------------
    def _train(self, net, Yt, val, epochs, steps_per_epoch, per_epoch, total_steps, warmup,
               gen, cpu_gen, shift, device):
        sigma = float(self.sigma)
        n_train = Yt.shape[0]
        on_gpu = device.type == "cuda"
        # fused Adam: one kernel per step on the GPU (the U-Net's steps are launch-bound)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate,
                               **({"fused": True} if on_gpu else {}))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, total_steps, warmup))
        ema = copy.deepcopy(net).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        history = {"train": [], "validation": [], "epoch_time": [], "validation_time": [],
                   "lr": []}
        Yv, Zv = val
        history["validation_zero"] = float(self._validation_loss(None, Yv, Zv, sigma)) \
            if len(Yv) else float("nan")
        # a small MLP trains fastest on one CPU thread (per-op threading overhead dominates)
        small = isinstance(net, MLP) and device.type == "cpu" and max(net.hidden) <= 512
        threads = 1 if small else torch.get_num_threads()
        bar = progress_bar(range(epochs), progress=self.progress, desc="DSM", leave=False)
        step = 0
        # (cudnn.benchmark was measured: -6 % per U-Net step on an H100 but ~17 s of autotuning,
        # a loss below ~2x10^4 steps; it is left to the user's setting)
        with torch_threads(threads):
            for epoch in bar:
                t0 = time.perf_counter()
                order = self._epoch_order(n_train, per_epoch, cpu_gen).to(device)
                total, step = self._epoch(net, ema, opt, sched, Yt, order, shift, gen, step)
                history["train"].append(float(total) / per_epoch)  # (synchronizes)
                if not math.isfinite(history["train"][-1]):
                    bar.close()
                    raise FloatingPointError(
                        f"DSM training diverged in epoch {epoch + 1} (loss "
                        f"{history['train'][-1]}); lower learning_rate (now "
                        f"{self.learning_rate:g}) or check the data for extreme values")
                history["lr"].append(opt.param_groups[0]["lr"])
                t1 = time.perf_counter()
                if len(Yv):
                    history["validation"].append(
                        float(self._validation_loss(ema, Yv, Zv, sigma)))
                t2 = time.perf_counter()
                history["epoch_time"].append(t2 - t0)
                history["validation_time"].append(t2 - t1)
                post = {"loss": f"{history['train'][-1]:.5f}"}
                if history["validation"]:
                    post["val"] = f"{history['validation'][-1]:.5f}"
                bar.set_postfix(post)
        bar.close()
        history["network"] = ema
        return history

    def _epoch(self, net, ema, opt, sched, Y, order, shift, gen, step):
        """One epoch over the rows ``order`` of ``Y`` in batches: the antithetic DSM loss
        ``mean |eps(y + sigma z) - z|^2``, an Adam step and the EMA update per batch.
        Returns the summed loss (a tensor) and the step count."""
        sigma, bs = float(self.sigma), int(self.batch_size)
        params, ema_params = list(net.parameters()), list(ema.parameters())
        cols = torch.arange(Y.shape[1], device=Y.device)
        total = torch.zeros((), device=Y.device)
        net.train()
        for start in range(0, len(order), bs):
            y = Y[order[start:start + bs]]
            if shift is not None:
                y = self._shift(y, shift, cols, gen)
            z = torch.randn(y.shape, generator=gen, device=Y.device)
            if self.antithetic:
                x = torch.cat([y + sigma * z, y - sigma * z])
                z = torch.cat([z, -z])
            else:
                x = y + sigma * z
            loss = torch.mean((net(x) - z) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                _ema_update(ema_params, params, decay)
            total += loss.detach() * len(y)
            step += 1
        with torch.no_grad():
            for b_ema, b in zip(ema.buffers(), net.buffers()):
                b_ema.copy_(b)
        return total, step

    @staticmethod
    def _epoch_order(n_train, per_epoch, cpu_gen):
        """Indices of the samples of one epoch: a random permutation (or subset, or several
        permutations when ``per_epoch > n_train``)."""
        parts, left = [], per_epoch
        while left > 0:
            p = torch.randperm(n_train, generator=cpu_gen)
            parts.append(p[:left])
            left -= len(parts[-1])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @staticmethod
    def _shift(y, shift, cols, gen):
        """Circularly shift every (standardized) sample by a random number of grid points,
        exactly in physical units: ``x = m + S y``, ``x'[j] = x[j - k]``, ``y' = (x' - m) / S``."""
        mean, scale = shift
        d = y.shape[1]
        k = torch.randint(0, d, (y.shape[0], 1), generator=gen, device=y.device)
        x = torch.gather(mean + scale * y, 1, (cols[None, :] - k) % d)
        return (x - mean) / scale

    @staticmethod
    def _validation_loss(net, Yv, Zv, sigma, chunk=16384):
        """DSM loss on the held-out samples with the fixed draws ``Zv`` as antithetic pairs;
        ``net=None`` gives the loss of the zero predictor (= mean z^2) on the same draws."""
        if net is None:
            return torch.mean(Zv ** 2).item()
        net.eval()
        total = 0.0
        with torch.no_grad():
            for s in range(0, len(Yv), chunk):
                y, z = Yv[s:s + chunk], Zv[s:s + chunk]
                total += (torch.sum((net(y + sigma * z) - z) ** 2)
                          + torch.sum((net(y - sigma * z) + z) ** 2)).item()
        return total / (2 * Yv.numel())


def _pooled_standardization(space, Y):
    """The same mean and scale at every grid point (pooled moments), so that a circular shift
    of the standardized state is a shift of the physical field; returns (space, Y)."""
    phys = space.to_physical(Y)
    m = float(np.mean(space.mean))
    var = float(np.mean(space.scale**2 + (space.mean - m) ** 2))
    pooled = space.with_moments(np.full_like(space.mean, m), np.full_like(space.scale,
                                                                         np.sqrt(var)))
    return pooled, np.ascontiguousarray(pooled.to_standard(phys), dtype=np.float32)


def _ema_update(ema_params, params, decay):
    """``ema = decay * ema + (1 - decay) * p`` for every parameter (one fused call)."""
    if hasattr(torch, "_foreach_lerp_"):
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    else:  # pragma: no cover
        for e, p in zip(ema_params, params):
            e.lerp_(p, 1.0 - decay)
