"""Transition counts, rate matrix, Cdot(0) estimators and the mobility (METHODS.md §0, §4)."""

import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

from xlangevin.dynamics import cdot as c
from xlangevin.dynamics import transitions as g
from xlangevin.dynamics.mobility import mobility_from_cdot, stein_matrix
from xlangevin.dynamics.transitions import GeneratorWarning
from xlangevin.systems import ou, potential

J = np.array([[0.0, -1.0], [1.0, 0.0]])
PHI = np.eye(2) + 0.8 * J                       # [[1, -0.8], [0.8, 1]]
A_OU = -PHI                                     # C0 = I
B_OU = np.sqrt(2.0) * np.eye(2)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def sym(M):
    return 0.5 * (M + M.T)


def anti(M):
    return 0.5 * (M - M.T)


def loop_counts(labels, ns, bounds, lag):
    N = np.zeros((ns, ns), dtype=np.int64)
    for i in range(len(bounds) - 1):
        seq = labels[bounds[i]:bounds[i + 1]]
        for t in range(len(seq) - lag):
            N[seq[t + lag], seq[t]] += 1
    return N


def random_bounds(rng, T, n_cuts):
    cuts = np.sort(rng.integers(0, T + 1, n_cuts))
    return np.concatenate([[0], cuts, [T]])


# ---------------------------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ns", [1, 7, 300, 2000])
@pytest.mark.parametrize("lag", [1, 3])
def test_counts_match_loop_and_reference(ns, lag):
    rng = np.random.default_rng(ns + 10 * lag)
    T = 3000
    labels = rng.integers(0, ns, T)
    bounds = random_bounds(rng, T, 12)
    bounds = np.sort(np.concatenate([bounds, [bounds[3], bounds[5] + 1]]))  # empty + short seqs
    bounds = np.clip(bounds, 0, T)
    want = loop_counts(labels, ns, bounds, lag)
    for backend, methods in [("numba", ["auto", "dense", "bucket"]),
                             ("numpy", ["auto", "bincount", "sort"])]:
        for method in methods:
            N = g.transition_counts(labels, ns, bounds, lag=lag, backend=backend, method=method)
            assert isinstance(N, sp.csr_array) and N.shape == (ns, ns)
            assert N.has_sorted_indices
            np.testing.assert_array_equal(N.toarray(), want, err_msg=f"{backend}/{method}")
            assert N.nnz == np.count_nonzero(want)        # no explicit zeros
    assert want.sum() == np.maximum(np.diff(bounds) - lag, 0).sum()


@pytest.mark.parametrize("kind", ["uniform", "walk"])
@pytest.mark.parametrize("ns,method", [(600, "bucket"), (3000, "bucket"), (400, "dense")])
def test_counts_numba_vs_numpy_larger(kind, ns, method):
    # ns=600 with 2e5 labels takes the scan branch of the bucket reduction, ns=3000 the sort one
    rng = np.random.default_rng(1)
    T = 200_000
    if kind == "uniform":
        labels = rng.integers(0, ns, T)
    else:
        labels = np.mod(np.cumsum(rng.integers(-2, 3, T)), ns)
    bounds = random_bounds(rng, T, 50)
    a = g.transition_counts(labels, ns, bounds, backend="numba", method=method)
    b = g.transition_counts(labels, ns, bounds, backend="numpy")
    assert (a != b).nnz == 0
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def test_counts_crafted_pairs_all_reduction_branches():
    # Sequences of length 2 give arbitrary (source, destination) pairs. The heavy last row makes
    # the rows 0 and 1 share one reduction block. Row 0: short, one source (tracked + sorted);
    # row 1: many distinct sources, tracked because row 0 had few, falling back to the table
    # scan; row 2: long with 2 sources (scan branch).
    rng = np.random.default_rng(9)
    ns = 2000
    src = np.concatenate([np.full(50, 5), rng.integers(0, ns, 1500), np.tile([7, 3], 50_000)])
    dst = np.concatenate([np.zeros(50, int), np.ones(1500, int), np.full(100_000, 2)])
    labels = np.column_stack([src, dst]).ravel()
    bounds = np.arange(0, labels.size + 1, 2)
    want = np.zeros((ns, ns), dtype=np.int64)
    np.add.at(want, (dst, src), 1)
    N = g.transition_counts(labels, ns, bounds, method="bucket")
    np.testing.assert_array_equal(N.toarray(), want)
    assert N.has_sorted_indices and np.all(np.diff(N.indices[N.indptr[1]:N.indptr[2]]) > 0)


def test_counts_never_cross_bounds():
    # sequences of constant labels: any cross-bound pair would create an off-diagonal count
    labels = np.repeat(np.arange(5), 100)
    bounds = np.arange(0, 501, 100)
    for lag in (1, 5):
        for backend in ("numba", "numpy"):
            N = g.transition_counts(labels, 5, bounds, lag=lag, backend=backend).toarray()
            np.testing.assert_array_equal(N, np.diag(np.full(5, 100 - lag)))
    # one sequence: the 4 joins are counted
    N = g.transition_counts(labels, 5).toarray()
    assert N[1, 0] == 1 and N.sum() == 499


def test_counts_validation():
    with pytest.raises(ValueError, match="n_states"):
        g.transition_counts(np.array([0, 1, 5]), 3)
    with pytest.raises(ValueError, match=r"\[0, n_states\)"):
        g.transition_counts(np.array([0, -1, 2]), 3)
    with pytest.raises(ValueError, match="integers"):
        g.transition_counts(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="bounds"):
        g.transition_counts(np.array([0, 1, 1]), 2, bounds=[0, 2])
    with pytest.raises(ValueError, match="lag"):
        g.transition_counts(np.array([0, 1, 1]), 2, lag=0)
    assert g.transition_counts(np.array([0, 1, 1, 0])).shape == (2, 2)   # inferred n_states


# ---------------------------------------------------------------------------------------------
# rate matrix
# ---------------------------------------------------------------------------------------------
def two_state_chain(a, b, dt, n, seed):
    """Continuous-time chain 0 -> 1 at rate a, 1 -> 0 at rate b, sampled exactly every dt."""
    rng = np.random.default_rng(seed)
    total = n * dt
    m = int(2 * total * max(a, b) + 100)
    rates = np.where(np.arange(m) % 2 == 0, a, b)    # start in 0 (plus a random phase below)
    hold = rng.exponential(1.0 / rates)
    jumps = np.cumsum(hold)
    assert jumps[-1] > total + 50
    t = 50.0 + dt * np.arange(n)                    # skip a burn-in: the start is stationary
    return (np.searchsorted(jumps, t) % 2).astype(np.int64)


def test_rate_matrix_formula_and_columns():
    rng = np.random.default_rng(2)
    labels = np.mod(np.cumsum(rng.integers(-1, 2, 20_000)), 40)
    bounds = random_bounds(rng, labels.size, 5)
    dt = 0.05
    with pytest.warns(GeneratorWarning, match="leave fraction"):
        G = g.estimate_generator(labels, dt, 40, bounds)
    Q = G.Q.toarray()
    N = loop_counts(labels, 40, bounds, 1).astype(float)
    Nn = N.sum(axis=0)
    want = N / (Nn * dt)
    np.fill_diagonal(want, 0.0)
    np.fill_diagonal(want, -want.sum(axis=0))
    np.testing.assert_allclose(Q, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Q.sum(axis=0), 0.0, atol=1e-9)
    assert np.all(Q - np.diag(np.diag(Q)) >= 0)
    # pi = occupancy of all samples; the null vector agrees up to sequence-end effects (6
    # sequences, amplified by the slow mixing of a walk on a ring of 40 cells)
    np.testing.assert_allclose(G.pi, np.bincount(labels, minlength=40) / labels.size)
    _, _, Vt = np.linalg.svd(Q)
    null = Vt[-1] / Vt[-1].sum()
    np.testing.assert_allclose(G.null_vector, null, atol=1e-10)
    assert G.diagnostics["null_distance"] == pytest.approx(0.5 * np.abs(null - G.pi).sum())
    assert G.diagnostics["null_distance"] < 0.02
    assert G.diagnostics["n_components"] == 1
    L = Nn - np.diag(N)
    assert G.diagnostics["leave_fraction"] == pytest.approx(L.sum() / N.sum())


def test_two_state_chain_corrections():
    a, b, dt, n = 1.0, 2.0, 0.4, 400_000
    labels = two_state_chain(a, b, dt, n, seed=3)
    P = sla.expm(np.array([[-a, b], [a, -b]]) * dt)   # column convention: P[m, n] = n -> m
    p_stay = np.diag(P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneratorWarning)
        G0 = g.estimate_generator(labels, dt, 2)
        G1 = g.estimate_generator(labels, dt, 2, correction="per_state")
        G2 = g.estimate_generator(labels, dt, 2, correction="global")
    # each estimator converges to its finite-dt limit: naive (1 - p)/dt, per-state -ln(p)/dt
    naive = (1 - p_stay) / dt
    corrected = -np.log(p_stay) / dt
    # binomial standard error of 1 - p over ~n pi_n steps (x3 for the correlation of runs)
    se = np.sqrt(p_stay * (1 - p_stay) / (n * np.array([b, a]) / (a + b))) / dt * 3
    assert np.all(np.abs(G0.exit_rates - naive) < 4 * se), (G0.exit_rates, naive, se)
    assert np.all(np.abs(G1.exit_rates - corrected) < 4 * se / p_stay), (G1.exit_rates, corrected)
    # the formula itself, on the realized counts
    N = G0.counts.toarray()
    p_hat = np.diag(N) / N.sum(axis=0)
    kappa = -np.log(p_hat) / (1 - p_hat)
    np.testing.assert_allclose(G1.kappa, kappa, rtol=1e-12)
    np.testing.assert_allclose(G1.Q.toarray(), G0.Q.toarray() * kappa[None, :], rtol=1e-12)
    kg = np.mean(-np.log(p_hat) / dt) / np.mean((1 - p_hat) / dt)
    assert G2.diagnostics["global_kappa"] == pytest.approx(kg, rel=1e-12)
    np.testing.assert_allclose(G2.Q.toarray(), kg * G0.Q.toarray(), rtol=1e-12)
    # here (a jump process, coarse dt) the per-state correction moves towards the true rates
    true = np.array([a, b])
    assert np.all(np.abs(G1.exit_rates - true) < np.abs(G0.exit_rates - true))
    # stationary distribution: occupancy ~ (b, a)/(a + b); a global factor keeps Q's null
    # vector, per-state factors move it
    np.testing.assert_allclose(G0.pi, [b / (a + b), a / (a + b)], atol=0.01)
    assert G0.diagnostics["null_distance"] < 1e-4
    assert G2.diagnostics["null_distance"] < 1e-4
    assert G1.diagnostics["null_distance"] > 10 * G0.diagnostics["null_distance"]


def test_leave_fraction_warning_and_capping():
    labels = np.tile([0, 1], 500)                     # leaves at every step
    with pytest.warns(GeneratorWarning, match="leave fraction"):
        G = g.estimate_generator(labels, 0.1, 2, correction="per_state")
    assert G.diagnostics["leave_fraction"] == 1.0
    assert G.diagnostics["n_capped"] == 2
    assert np.all(np.isfinite(G.Q.toarray()))


def test_components_absorbing_unvisited_and_restriction():
    # {0, 1} -> {2, 3} one way, {2, 3} heavier; 5 absorbing (entered, never left); 4 unvisited
    seq = [0, 1] * 10 + [2, 3] * 40 + [5] * 6
    labels = np.array(seq)
    with pytest.warns(GeneratorWarning) as rec:
        G = g.estimate_generator(labels, 0.1, 6)
    msgs = " ".join(str(w.message) for w in rec)
    assert "never visited" in msgs and "never left" in msgs and "strongly connected" in msgs
    d = G.diagnostics
    assert d["n_components"] == 3
    np.testing.assert_array_equal(d["unvisited"], [4])
    np.testing.assert_array_equal(d["absorbing"], [5])
    np.testing.assert_array_equal(d["largest_component"], [2, 3])
    np.testing.assert_allclose(G.Q.toarray()[:, 5], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneratorWarning)
        R = g.estimate_generator(labels, 0.1, 6, restrict="largest")
    np.testing.assert_array_equal(R.states, [2, 3])
    Q = R.Q.toarray()
    assert Q.shape == (2, 2)
    np.testing.assert_allclose(Q.sum(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(R.pi, [0.5, 0.5])
    assert R.diagnostics["kept_mass"] == pytest.approx(80 / labels.size)
    # 2 -> 3 -> 2 ... 40 times; the transition 3 -> 5 is dropped: departures of 3 = 39
    np.testing.assert_array_equal(R.departures, [40, 39])
    np.testing.assert_allclose(Q[1, 0], 1.0 / 0.1)
    np.testing.assert_allclose(R.null_vector, [0.5, 0.5])


# ---------------------------------------------------------------------------------------------
# model correlation
# ---------------------------------------------------------------------------------------------
def test_generator_correlation_vs_dense_expm():
    rng = np.random.default_rng(4)
    ns, d = 30, 3
    R = rng.random((ns, ns)) * (rng.random((ns, ns)) < 0.3)
    np.fill_diagonal(R, 0.0)
    Q = R - np.diag(R.sum(axis=0))
    pi = rng.random(ns)
    pi /= pi.sum()
    cen = rng.normal(size=(ns, d))
    C0 = g.generator_correlation(sp.csr_array(Q), pi, cen, 0.0, center=False)
    np.testing.assert_allclose(C0, cen.T @ np.diag(pi) @ cen, rtol=1e-12)
    cc = cen - pi @ cen
    for taus in (np.linspace(0, 2, 5), np.array([0.3, 0.05, 1.7])):
        got = g.generator_correlation(sp.csr_array(Q), pi, cen, taus)
        want = np.array([cc.T @ sla.expm(Q * t) @ np.diag(pi) @ cc for t in taus])
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="centres"):
        g.generator_correlation(sp.csr_array(Q), pi, cen.T, [0.0])


# ---------------------------------------------------------------------------------------------
# data covariances and Cdot(0)
# ---------------------------------------------------------------------------------------------
def test_lagged_covariances_within_sequences():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 2)).cumsum(axis=0) * 0.1
    bounds = np.array([0, 120, 121, 300, 500])
    C = c.lagged_covariances(X, [0, 1, 4], bounds)
    Xc = X - X.mean(axis=0)
    for j, k in enumerate([0, 1, 4]):
        pairs = [(t, t + k) for i in range(4) for t in range(bounds[i], bounds[i + 1] - k)]
        want = sum(np.outer(Xc[s], Xc[r]) for r, s in pairs) / len(pairs)
        np.testing.assert_allclose(C[j], want, rtol=1e-10)


@pytest.mark.parametrize("dt", [0.02, 0.1])
def test_extrapolation_order_on_exact_ou(dt):
    # f(tau) = (C(tau) - C(0)) / tau from the EXACT covariances: error O(dt) for one lag,
    # O(dt^3) for the quadratic extrapolation over lags (1, 2, 3)
    lags = np.array([1, 2, 3])
    C = ou.lagged_covariance(A_OU, B_OU, np.concatenate([[0.0], lags * dt]))
    f = (C[1:] - C[0]) / (lags * dt)[:, None, None]
    exact = A_OU @ C[0]
    err1 = np.linalg.norm(f[0] - exact)
    w = c.extrapolation_weights(lags * dt, 2)
    np.testing.assert_allclose(w, [3, -3, 1], atol=1e-9)
    err3 = np.linalg.norm(np.tensordot(w, f, axes=1) - exact)
    assert err1 > 0.3 * dt                              # first-order error, |A^2|/2 ~ 0.9 dt
    assert err3 < 1.5 * dt**3                           # ~ 6 dt^3 |A^4| / 24 ~ 0.95 dt^3


@pytest.fixture(scope="module")
def ou_data():
    dt = 0.01
    X = ou.simulate(A_OU, B_OU, 1_000_000, dt, seed=11, progress=False).x.values
    return X, dt


def test_cdot_convention_ou_exact_limit():
    # a non-standardized OU: Phi = Cdot(0) V^-1 with V = -I must equal ou.langevin_phi = -A C0
    A = np.array([[-1.5, 0.7], [-0.3, -0.6]])
    B = np.array([[1.0, 0.0], [0.4, 0.8]])
    C0 = ou.stationary_covariance(A, B)
    cdot = A @ C0                                    # dC/dtau at 0+
    m = mobility_from_cdot(cdot)
    np.testing.assert_allclose(m.Phi, ou.langevin_phi(A, B), rtol=1e-12)
    np.testing.assert_allclose(m.Phi_S, B @ B.T / 2, rtol=1e-10)
    np.testing.assert_allclose(m.Sigma @ m.Sigma.T, B @ B.T / 2, rtol=1e-10)
    # and the same from logm of the exact propagator at a long lag
    tau = 0.7
    K = ou.lagged_covariance(A, B, tau) @ np.linalg.inv(C0)
    np.testing.assert_allclose(sla.logm(K).real @ C0 / tau, cdot, rtol=1e-8)


def test_cdot_estimators_general_ou():
    # anisotropic C0 (not I) and a non-normal drift: both estimators against the exact A C0,
    # and Phi = Cdot V^-1 with the data's Stein matrix against ou.langevin_phi (T = 1e4)
    A = np.array([[-1.5, 0.7], [-0.3, -0.6]])
    B = np.array([[1.0, 0.0], [0.4, 0.8]])
    dt = 0.05
    X = ou.simulate(A, B, 200_000, dt, seed=3, progress=False).x.values
    C0 = ou.stationary_covariance(A, B)
    assert np.linalg.cond(C0) > 1.5
    V = stein_matrix(X, ou.score(X, A, B))
    for cdot, _ in (c.cdot_lagged(X, dt), c.cdot_logm(X, dt, lag=2)):
        assert rel(cdot, A @ C0) < 0.05
        assert rel(mobility_from_cdot(cdot, V).Phi, ou.langevin_phi(A, B)) < 0.05


@pytest.mark.parametrize("estimator", ["lagged", "logm"])
def test_cdot_estimators_recover_ou_phi(ou_data, estimator):
    # 1e6 samples at dt = 0.01 (T = 1e4). With V from the data (exact score, as in the pipeline)
    # the statistical error of Phi_A entries is ~1/sqrt(T) = 0.01 (1.25% of 0.8): 5% is 4 sigma.
    X, dt = ou_data
    if estimator == "lagged":
        cdot, diag = c.cdot_lagged(X, dt, lags=(1, 2, 3))
        np.testing.assert_allclose(diag["weights"], [3, -3, 1], atol=1e-9)
    else:
        cdot, diag = c.cdot_logm(X, dt, lag=1)
        assert diag["logm_residual"] < 1e-10
    V = stein_matrix(X, ou.score(X, A_OU, B_OU))
    np.testing.assert_allclose(V, -np.eye(2), atol=0.05)
    m = mobility_from_cdot(cdot, V)
    assert rel(m.Phi_S, sym(PHI)) < 0.05
    assert rel(m.Phi_A, anti(PHI)) < 0.05
    assert m.clip["n_clipped"] == 0
    # with V = -I (no score) Phi_A carries the extra noise of the sample covariance
    m2 = mobility_from_cdot(cdot)
    assert rel(m2.Phi_S, sym(PHI)) < 0.02
    assert rel(m2.Phi_A, anti(PHI)) < 0.08


def test_lagged_plain_difference_is_first_order(ou_data):
    # one-step difference: Phi_A biased by ~ -|Phi_A| dt (A^2 term), visible at dt=0.1
    X, dt = ou_data
    X = X[::10]                                       # dt = 0.1, T = 1e4
    c1, _ = c.cdot_lagged(X, 0.1, lags=(1,))
    c3, _ = c.cdot_lagged(X, 0.1, lags=(1, 2, 3))
    e1 = rel(-anti(c1), anti(PHI))
    e3 = rel(-anti(c3), anti(PHI))
    assert e1 > 0.07 and e3 < 0.03


def test_finite_volume_is_lagged_difference_of_centres(ou_data):
    # Xc Q diag(pi) Xc^T == one-step (C(dt) - C(0))/dt of the cell-centre trajectory (up to the
    # difference between pi and the departure occupancy, O(1/T)).
    X, dt = ou_data
    X = X[:200_000]
    edges = np.linspace(-3, 3, 11)
    lab = np.digitize(X[:, 0], edges) * 12 + np.digitize(X[:, 1], edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneratorWarning)
        cdot, diag = c.cdot_finite_volume(X, lab, dt, n_states=144)
    G = diag["generator"]
    np.testing.assert_allclose(G.Q.sum(axis=0), 0.0, atol=1e-8)
    cen, _ = g.cell_centres(X, lab, 144)
    Y = cen[lab]
    c1, _ = c.cdot_lagged(Y, dt, lags=(1,))
    np.testing.assert_allclose(cdot, c1, atol=2e-3 * np.abs(c1).max())
    # the finite-volume Phi_S is inflated (cell size 0.55 >> sqrt(2 dt) = 0.14)
    m = mobility_from_cdot(cdot)
    assert np.trace(m.Phi_S) / 2 > 1.5
    # the model correlation at tau = 0 is the centre covariance, and its slope is cdot
    C = g.generator_correlation(G.Q, G.pi, diag["centres"], [0.0, 1e-4])
    np.testing.assert_allclose(C[0], (diag["centres"].T * G.pi) @ diag["centres"], rtol=1e-12)
    np.testing.assert_allclose((C[1] - C[0]) / 1e-4, cdot, rtol=0.05, atol=1e-3)


def test_logm_rejects_negative_eigenvalues():
    rng = np.random.default_rng(6)
    n = 5000
    x = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) + 0.1 * rng.normal(size=n)
    X = np.column_stack([x, rng.normal(size=n)])
    with pytest.raises(ValueError, match="real eigenvalue"):
        c.cdot_logm(X, 0.1)


def test_lagged_validation():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="lags"):
        c.cdot_lagged(X, 0.1, lags=(0, 1))
    with pytest.raises(ValueError, match="order"):
        c.cdot_lagged(X, 0.1, lags=(1, 2), order=2)
    with pytest.raises(ValueError, match="bounds"):
        c.cdot_lagged(X, 0.1, bounds=[0, 5])
    with pytest.raises(ValueError, match="dt"):
        c.cdot_lagged(X, -1.0)


# ---------------------------------------------------------------------------------------------
# mobility
# ---------------------------------------------------------------------------------------------
def test_mobility_psd_clipping_rebuilds_phi():
    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    S = U @ np.diag([2.0, 0.5, -0.4]) @ U.T
    Aa = np.array([[0, 0.3, -0.2], [-0.3, 0, 0.5], [0.2, -0.5, 0]])
    V = np.array([[-1.2, 0.1, 0.0], [0.2, -0.9, 0.05], [0.0, 0.1, -1.1]])
    cdot = (S + Aa) @ V
    m = mobility_from_cdot(cdot, V, eps=1e-3)
    np.testing.assert_allclose(m.Phi_raw, S + Aa, atol=1e-12)
    np.testing.assert_allclose(m.Phi_A, Aa, atol=1e-12)          # antisymmetric part kept
    np.testing.assert_allclose(m.Phi, m.Phi_S + m.Phi_A, atol=1e-15)
    assert m.clip["n_clipped"] == 1
    np.testing.assert_allclose(np.sort(m.clip["eigenvalues_before"]), [-0.4, 0.5, 2.0])
    np.testing.assert_allclose(np.sort(m.clip["eigenvalues_after"]), [2e-3, 0.5, 2.0])
    np.testing.assert_allclose(np.linalg.eigvalsh(m.Phi_S), [2e-3, 0.5, 2.0], atol=1e-12)
    assert m.clip["shift_norm"] == pytest.approx(0.402)
    assert np.allclose(m.Sigma, np.tril(m.Sigma))                 # LOWER factor
    np.testing.assert_allclose(m.Sigma @ m.Sigma.T, m.Phi_S, atol=1e-12)
    # unclipped case leaves Phi as solved
    m2 = mobility_from_cdot((np.eye(3) + Aa) @ V, V)
    assert m2.clip["n_clipped"] == 0
    np.testing.assert_allclose(m2.Phi, np.eye(3) + Aa, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the rotational 2-D potential (true Phi = I + 0.8 J, nonlinear score)
# ---------------------------------------------------------------------------------------------
def test_potential_recommended_estimator():
    # default estimator (cdot_lagged, lags 1-3) within 10% of true_phi(0.8) on 1e6 samples
    ds = potential.simulate(1_000_000, C=0.8, seed=5, progress=False)
    X = ds.x.values
    dt = float(ds.attrs["dt"]) * int(ds.attrs["save_every"])
    V = stein_matrix(X, potential.score(X))
    cdot, _ = c.cdot_lagged(X, dt)
    m = mobility_from_cdot(cdot, V)
    true = potential.true_phi(0.8)
    assert rel(m.Phi, true) < 0.10
    assert rel(m.Phi_S, sym(true)) < 0.10
    assert rel(m.Phi_A, anti(true)) < 0.10
