"""``score="auto"``: the score estimator chosen by the held-out score-matching loss."""

import json

import numpy as np
import pytest

import xlangevin
from xlangevin.score import AutoScore, Gaussian
from xlangevin.score.select import one_standard_error_choice, score_matching_loss
from xlangevin.testing import sample_density_1d, weighted_relative_error

FAST = ("gaussian", "gmm(sigma=0.4)", "gmm(sigma=0.2)", "gmm(sigma=0.1)")


def _double_well(n, seed):
    density = lambda x: np.exp(-(x**4 / 4 - x**2 / 2))  # noqa: E731
    return sample_density_1d(density, n, -4, 4, np.random.default_rng(seed))[:, None], density


def test_score_matching_loss_of_the_gaussian_is_exact():
    """For s~ = -x~ on standard normal samples: |s|^2/2 + div s = x^2/2 - 1, mean -1/2."""
    X = np.random.default_rng(0).normal(size=(4000, 1))
    model = Gaussian().fit(X)
    Xs = model.space.to_standard(X)
    loss = score_matching_loss(model, Xs)
    np.testing.assert_allclose(loss, 0.5 * Xs[:, 0] ** 2 - 1.0, rtol=1e-9, atol=1e-12)


def test_one_standard_error_rule_prefers_the_earlier_of_equals():
    rng = np.random.default_rng(1)
    base = rng.normal(size=400)
    losses = {"smooth": base + 0.001 * rng.normal(size=400),   # equal within the noise
              "rough": base - 0.002 + 0.5 * rng.normal(size=400)}
    assert one_standard_error_choice(losses) == "smooth"
    losses["sharp"] = base - 0.5                               # clearly better: chosen
    assert one_standard_error_choice(losses) == "sharp"


def test_gaussian_data_get_the_gaussian_score():
    X = np.random.default_rng(2).normal(size=(3000, 2)) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    model = AutoScore(candidates=FAST, seed=0, progress=False).fit(X)
    assert model.attrs["selection"] == "gaussian" and model.method == "gaussian"
    assert set(json.loads(model.attrs["selection_losses"])) == set(FAST)
    assert "chosen by auto: gaussian" in repr(model)


def test_bimodal_data_get_a_nonlinear_score_and_the_choice_is_saved(tmp_path):
    y, density = _double_well(2000, 0)
    model = AutoScore(candidates=FAST, seed=0, progress=False).fit(y)
    assert model.attrs["selection"].startswith("gmm")
    g = np.linspace(-2, 2, 201)
    err = weighted_relative_error(model(g[:, None]).ravel(), -(g**3 - g), density(g))
    assert err < 0.3        # the best of these rough candidates; the full list reaches < 0.15
    back = xlangevin.open_model(model.to_netcdf(tmp_path / "auto.nc"))
    assert back.attrs["selection"] == model.attrs["selection"]
    assert back.attrs["selection_rule"].startswith("held-out implicit score-matching loss")


def test_short_records_warn_and_bad_candidates_raise():
    y, _ = _double_well(500, 1)
    with pytest.warns(UserWarning, match="short record"):
        AutoScore(candidates=("gaussian", "gmm(sigma=0.4)"), progress=False).fit(y)
    with pytest.raises(ValueError, match="candidates must be"):
        AutoScore(candidates=("kde",)).fit(y)
    with pytest.raises(ValueError, match="holdout must be"):
        AutoScore(holdout=0.9).fit(y)


# ----------------------------------------------------------------------------------------------
# the subspace score: nonlinear along the leading principal directions
# ----------------------------------------------------------------------------------------------
def test_subspace_field_with_a_gaussian_inner_is_the_gaussian_score():
    """With s_q(z) = -z the subspace model is the Gaussian: P^T P = R^{-1}."""
    import torch

    from xlangevin.score.gaussian import LinearField
    from xlangevin.score.subspace import SubspaceField, principal_whitening

    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 3)) @ np.array([[1.0, 0.9, 0.8], [0.0, 0.4, 0.5], [0, 0, 0.2]])
    X = (X - X.mean(0)) / X.std(0)
    R = np.cov(X, rowvar=False, bias=True)
    P = principal_whitening(X)
    np.testing.assert_allclose(P @ R @ P.T, np.eye(3), atol=1e-10)
    for k in (1, 2):
        field = SubspaceField(LinearField(-np.eye(k)), P, k)
        got = field(torch.tensor(X[:10])).numpy()
        np.testing.assert_allclose(got, -np.linalg.solve(R, X[:10].T).T, rtol=1e-9, atol=1e-9)


def test_subspace_score_keeps_a_skewed_leading_direction(tmp_path):
    """Three highly correlated copies of a skewed signal (like a delay embedding): the
    subspace score beats the Gaussian on held-out data, and saves and loads exactly."""
    from xlangevin.score import LeadingSubspace
    from xlangevin.score.select import score_matching_loss

    rng = np.random.default_rng(4)
    u = rng.gamma(4.0, size=6000)
    X = np.stack([u, u + 0.1 * rng.normal(size=6000), u + 0.2 * rng.normal(size=6000)], 1)
    sub = LeadingSubspace(method="gmm", options={"sigma": 0.2}, seed=0).fit(X[:5000])
    gauss = Gaussian().fit(X[:5000])
    held = sub.space.to_standard(X[5000:])
    gain = score_matching_loss(gauss, held).mean() - score_matching_loss(sub, held).mean()
    print(f"held-out score-matching gain of the subspace score over the Gaussian: {gain:.3f}")
    assert gain > 0.05
    back = xlangevin.open_model(sub.to_netcdf(tmp_path / "sub.nc"))
    np.testing.assert_array_equal(back(X[:5]), sub(X[:5]))
    assert back.attrs["inner_method"] == "gmm" and back.sigma == 0


def test_averaged_field_is_the_mean_and_saves(tmp_path):
    from xlangevin.score.gaussian import LinearField
    from xlangevin.score.select import average_scores

    X = np.random.default_rng(5).normal(size=(3000, 2))
    a = Gaussian().fit(X)
    b = a._replace(field=LinearField(-2.0 * np.eye(2)), sigma=0.2)
    avg = average_scores([a, b], "a+b")
    np.testing.assert_allclose(avg(X[:7]), 0.5 * (a(X[:7]) + b(X[:7])), rtol=1e-12)
    assert avg.sigma == pytest.approx(0.1) and json.loads(avg.attrs["members"]) == ["gaussian",
                                                                                   "gaussian"]
    back = xlangevin.open_model(avg.to_netcdf(tmp_path / "avg.nc"))
    np.testing.assert_array_equal(back(X[:7]), avg(X[:7]))
