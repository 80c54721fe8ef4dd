"""The gallery's figures (docs/gallery.md): each source paper's key figure, redrawn with
xlangevin, and the numbers printed beside the paper's.

``python docs/gallery.py [--out docs]`` (about 4 minutes on 2 cores) writes
``gallery_kgmm.png``, ``gallery_diffmap.png`` and ``gallery_flowmap.png`` and prints the
numbers the page quotes. The KS and digits figures of the page come from
``docs/ks_experiment.py`` and ``docs/spectral_digits.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import xlangevin as xl
from xlangevin.systems import double_well, lorenz63, manifolds
from xlangevin.testing import sample_density_1d, weighted_relative_error


def kgmm_figure(fig):
    """Giorgini, Bischoff & Souza, Figure 1: the double-well score from 10^5 samples, KGMM
    against the plain Gaussian mixture at the same small sigma."""
    ax = fig.subplots()
    y = sample_density_1d(double_well.density, 100_000, -3, 3, np.random.default_rng(0))[:, None]
    x = np.linspace(-2, 2, 401)
    exact, weight = double_well.score(x), double_well.density(x)
    ax.plot(x, exact, "k", lw=2, label="exact")
    errors = {}
    for name, model in (("KGMM, sigma 0.05", xl.KGMM(sigma=0.05, p_min=0.02, seed=0,
                                                      progress=False).fit(y)),
                        ("GMM, sigma 0.01", xl.GMM(sigma=0.01).fit(y))):
        s = np.ravel(model(x[:, None]))
        errors[name] = weighted_relative_error(s, exact, weight)
        ax.plot(x, s, label=f"{name} (error {errors[name]:.3f})")
    ax.set(ylim=(-4, 4), xlabel="x", ylabel="score", title="KGMM: double-well score")
    ax.legend(fontsize=7)
    return errors


def diffmap_figure(fig):
    """Gottwald, Li, Marzouk & Reich, Figures 2-3: the arc, 2000 points, eps = 0.009 in raw
    units; 10^4 steps of one chain from the data point of smallest angle, fixed (beta = 0)
    against variable bandwidth (beta = -1/5), projected output."""
    X = manifolds.noisy_arc(2000, seed=0)
    start = X[np.argmin(np.arctan2(X[:, 1], X[:, 0]))]
    theta = np.arctan2(X[:, 1], X[:, 0])
    tails = {}
    for ax, beta, color in zip(fig.subplots(1, 2, sharey=True), (0.0, -0.2), ("C0", "C3")):
        ax.scatter(X[:, 0], X[:, 1], s=2, c="0.6", label="data")
        model = xl.DiffusionMap(eps=0.009, beta=beta, standardize=False, seed=0).fit(X)
        Y = model.generate(10_000, init=start, seed=1, as_array=True)[0]
        th = np.arctan2(Y[:, 1], Y[:, 0])
        tails[beta] = float(np.mean(np.abs(th - theta.mean()) > 2 * theta.std()))
        ax.scatter(Y[::5, 0], Y[::5, 1], s=1, c=color, label="one chain (every 5th state)")
        ax.set(aspect="equal", xlabel="x1")
        ax.set_title(f"beta = {beta:g}: angular mass beyond 2 sd {tails[beta]:.3f}", fontsize=10)
        ax.legend(fontsize=7, markerscale=5, loc="lower left")
    return {"data beyond 2 sd": float(np.mean(np.abs(theta - theta.mean()) > 2 * theta.std())),
            **{f"beta {b:g}": t for b, t in tails.items()}}


def flowmap_figure(fig):
    """Park, Yang & Chandramoorthy (the slides' table): Lorenz-63 flow maps trained by MSE and
    by Jacobian matching (MLP 64-64, 2000 samples, 20 epochs, seed 3), their exponents."""
    from xlangevin.tangent import FlowMap, simulator_flow_map

    data = lorenz63.simulate(n_samples=2000, noise=0.0, seed=0, progress=False)
    _, jacobian = simulator_flow_map(lorenz63, 0.01, n_sub=10)
    exponents = {"true": np.array([0.906, 0.0, -14.572])}
    for loss in ("mse", "jacobian"):
        m = FlowMap(loss=loss, epochs=20, hidden=(64, 64), seed=3).fit(
            data, jacobian=jacobian if loss == "jacobian" else None)
        exponents[loss] = m.lyapunov(t_total=300.0, burn_in=5.0, qr_interval=0.01,
                                     seed=0).exponents.values
    ax = fig.subplots()
    width = 0.27
    for i, (name, lam) in enumerate(exponents.items()):
        ax.bar(np.arange(3) + (i - 1) * width, lam, width, label=f"{name}: {np.round(lam, 2)}")
    ax.set(xticks=range(3), xticklabels=["lambda_1", "lambda_2", "lambda_3"],
           title="Lorenz-63 flow maps: Lyapunov exponents")
    ax.legend(fontsize=7)
    return exponents


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent))
    out = Path(p.parse_args(argv).out)
    for name, draw, size in (("kgmm", kgmm_figure, (5.5, 4)),
                             ("diffmap", diffmap_figure, (9, 4.8)),
                             ("flowmap", flowmap_figure, (5.5, 4))):
        fig = plt.figure(figsize=size, layout="constrained")
        print(name, draw(fig))
        xl.plot.save_figure(fig, out / f"gallery_{name}.png")
        plt.close(fig)


if __name__ == "__main__":
    main()
