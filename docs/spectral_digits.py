"""Handwritten digits by spectral score matching (docs/spectral_score.md).

scikit-learn's ``load_digits`` (1797 8x8 images), 70/30 split; PCA to 10 dimensions fitted on
the training images; one spectral score per class (Hermite, ``order=2, total_order=2``: 66
functions, the Gaussian dependence plus pairwise products) on that class's PCA codes; 200
reverse-time SDE samples per class decoded back to 8x8 images (clipped to 0..16). A logistic
regression trained on the real training images classifies the decoded samples: its accuracy on
them (their label is the class whose score generated them) against its accuracy on the real
held-out images. Writes ``spectral_digits.png`` (a row of generated digits per class) and
prints the numbers. Run: ``python docs/spectral_digits.py`` (about a minute on 1 core).
"""

import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from xlangevin.io import atomic_target
from xlangevin.score import SpectralScore

HERE = Path(__file__).resolve().parent


def main(per_class: int = 200, seed: int = 0):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed,
                                          stratify=y)
    clf = LogisticRegression(max_iter=5000).fit(Xtr, ytr)
    pca = PCA(10, random_state=seed).fit(Xtr)
    images, labels = [], []
    for digit in range(10):
        codes = pca.transform(Xtr[ytr == digit])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SpectralScore(order=2, total_order=2).fit(codes)
            S = model.sample(per_class, n_steps=200, seed=seed + digit, progress=False,
                             as_array=True)
        S = S[np.isfinite(S).all(1)]
        images.append(np.clip(pca.inverse_transform(S), 0, 16))
        labels.append(np.full(len(S), digit))
    images, labels = np.concatenate(images), np.concatenate(labels)
    real, generated = clf.score(Xte, yte), clf.score(images, labels)
    recon = clf.score(np.clip(pca.inverse_transform(pca.transform(Xte)), 0, 16), yte)
    print(f"classifier accuracy: real held-out {real:.3f}, real held-out through the PCA "
          f"{recon:.3f}, generated {generated:.3f} ({len(images)} samples)")
    _figure(images, labels)
    return real, recon, generated


def _figure(images, labels, per_row: int = 10):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(10, per_row, figsize=(per_row * 0.6, 6.2))
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)[:per_row]
        for j, ax in enumerate(axes[digit]):
            ax.imshow(images[rows[j]].reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
            ax.axis("off")
    fig.suptitle("spectral score matching: generated digits (one row per class)", fontsize=8)
    with atomic_target(HERE / "spectral_digits.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
