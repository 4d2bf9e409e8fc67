"""Ridge, PLS and OLS estimators against sklearn, brute force and the algebraic identities."""

import warnings

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression as SkPLS
from sklearn.linear_model import Ridge, RidgeCV

from neurogeom.errors import AnalysisError
from neurogeom.regression import LinearRegression, PLSRegression, RidgeRegression
from neurogeom._backend import get_namespace
from neurogeom.regression.pls import kernel_pls_predict, kernel_pls_splits
from neurogeom.regression.ridge import (decompose_gram, double_center, dual_coefficients,
                                        gram_ridge_predict, loo_errors, loo_select,
                                        select_alphas)

ALPHAS = np.logspace(-2, 4, 9)


def make_data(n, p, t=4, seed=0, offset=3.0):
    """Correlated features with a non-zero mean (so centering matters) and a noisy linear target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) / np.sqrt(p) + offset
    Y = X[:, :5] @ rng.standard_normal((5, t)) + rng.standard_normal((n, t)) + 1.0
    return X, Y


# Both solvers: kernel form (samples < features) and primal form (samples > features).
SHAPES = [(40, 120), (120, 30)]


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("alpha", ALPHAS[[0, 4, 8]])
def test_ridge_equals_sklearn_on_centered_data(n, p, alpha):
    X, Y = make_data(n, p)
    ours = RidgeRegression(alphas=alpha).fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    ref = Ridge(alpha=alpha, fit_intercept=False, solver="cholesky").fit(Xc, Yc)
    # Both solve the same well-posed linear system (condition number <= s_max^2/alpha ~ 1e6),
    # so agreement is ~1e-10 relative; 1e-8 is the bound.
    scale = np.abs(ref.coef_).max()
    assert np.abs(ours.coef_ - ref.coef_).max() <= 1e-8 * scale
    X_new = make_data(10, p, seed=5)[0]
    expected = (X_new - X.mean(0)) @ ref.coef_.T + Y.mean(0)
    assert np.allclose(ours.predict(X_new), expected, rtol=0, atol=1e-8 * np.abs(expected).max())
    assert ours.solver_ == ("kernel" if n <= p else "primal")


@pytest.mark.parametrize("n,p", SHAPES)
def test_ridgecv_alpha_per_target_equals_sklearn(n, p):
    X, Y = make_data(n, p, t=6)
    ours = RidgeRegression(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    assert np.array_equal(ours.alpha_, ref.alpha_)
    X_new = make_data(15, p, seed=9)[0]
    assert np.allclose(ours.predict(X_new), ref.predict(X_new), rtol=0, atol=1e-8)
    shared = RidgeRegression(alphas=ALPHAS, alpha_per_target=False).fit(X, Y)
    ref_shared = RidgeCV(alphas=ALPHAS).fit(X, Y)
    assert np.allclose(shared.alpha_, ref_shared.alpha_)


@pytest.mark.parametrize("n,p", SHAPES)
def test_loo_shortcut_equals_brute_force(n, p):
    X, Y = make_data(n, p, t=3, seed=2)
    alphas = ALPHAS[::4]
    ours = RidgeRegression(alphas=alphas).fit(X, Y)
    brute = np.zeros((len(alphas), Y.shape[1]))
    for k, alpha in enumerate(alphas):
        for i in range(n):
            keep = np.arange(n) != i
            fit = Ridge(alpha=alpha, solver="cholesky").fit(X[keep], Y[keep])
            brute[k] += (fit.predict(X[i:i + 1])[0] - Y[i]) ** 2 / n
    # The shortcut is algebraically exact; round-off of the eigendecomposition gives ~1e-12.
    assert np.allclose(ours.cv_errors_, brute, rtol=1e-8, atol=0)


def test_kfold_cv_equals_brute_force():
    X, Y = make_data(37, 80, t=2, seed=3)
    ours = RidgeRegression(alphas=ALPHAS, cv=4).fit(X, Y)
    bounds = np.concatenate([[0], np.cumsum([10, 9, 9, 9])])   # sklearn KFold sizes for 37/4
    brute = np.zeros((len(ALPHAS), 2))
    for k, alpha in enumerate(ALPHAS):
        for f in range(4):
            test = np.arange(bounds[f], bounds[f + 1])
            train = np.setdiff1d(np.arange(37), test)
            fit = Ridge(alpha=alpha, solver="cholesky").fit(X[train], Y[train])
            brute[k] += ((fit.predict(X[test]) - Y[test]) ** 2).sum(0) / 37
    assert np.allclose(ours.cv_errors_, brute, rtol=1e-8, atol=0)
    assert np.array_equal(ours.alpha_index_, brute.argmin(0))


def test_push_through_identity():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 70))
    for alpha in (0.1, 10.0):
        left = np.linalg.solve(X.T @ X + alpha * np.eye(70), X.T)
        right = X.T @ np.linalg.inv(X @ X.T + alpha * np.eye(30))
        assert np.allclose(left, right, atol=1e-10)
    # and the kernel-form estimator equals the primal normal equations on centered data
    X, Y = make_data(30, 70, seed=4)
    ours = RidgeRegression(alphas=3.0).fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    primal = np.linalg.solve(Xc.T @ Xc + 3.0 * np.eye(70), Xc.T @ Yc)
    assert ours.solver_ == "kernel"
    assert np.allclose(ours.coef_.T, primal, atol=1e-10 * np.abs(primal).max())


def test_alpha_never_sees_test_rows():
    """Changing the responses of test stimuli must not change the chosen alphas or predictions.

    A leaky implementation (LOO over all rows, or centering on all rows) fails this test.
    """
    X, Y = make_data(60, 150, t=5, seed=6)
    xp = get_namespace()
    Xg = X - X.mean(0)
    K = Xg @ Xg.T
    train, test = np.arange(0, 50), np.arange(50, 60)
    pred, best, errors = gram_ridge_predict(K, Y, train, test, ALPHAS, xp)
    Y_poisoned = Y.copy()
    Y_poisoned[test] = 1e3 * np.random.default_rng(0).standard_normal((10, 5))
    pred2, best2, errors2 = gram_ridge_predict(K, Y_poisoned, train, test, ALPHAS, xp)
    assert np.array_equal(best, best2)
    assert np.allclose(errors, errors2, rtol=1e-12)
    assert np.allclose(pred, pred2, rtol=1e-10)
    # and it equals fitting the estimator on the training rows alone
    ref = RidgeRegression(alphas=ALPHAS).fit(X[train], Y[train])
    assert np.array_equal(ALPHAS[best], ref.alpha_)
    assert np.allclose(pred, ref.predict(X[test]), atol=1e-8)


@pytest.mark.parametrize("complete", [True, False])
@pytest.mark.parametrize("noise", [0.01, 1.0, 100.0])
def test_pruned_loo_selection_equals_full_search(complete, noise):
    """loo_select skips (alpha, target) pairs whose lower bound exceeds an exact error; the
    chosen alphas, the errors it does compute and the dual coefficients must equal the full
    search, and every skipped pair must really be worse than the chosen one. Low noise gives
    sharp LOO curves (much pruning), high noise flat ones (little), in both solver forms."""
    xp = get_namespace()
    alphas = np.logspace(-3, 6, 19)
    rng = np.random.default_rng(11)
    n, p = (80, 200) if complete else (150, 60)
    X = rng.standard_normal((n, p)) * np.arange(1, p + 1) ** -0.5
    Y = X[:, :8] @ rng.standard_normal((8, 24)) + noise * rng.standard_normal((n, 24))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    if complete:
        e, U = decompose_gram(Xc @ Xc.T, xp)
    else:
        e, V = decompose_gram(Xc.T @ Xc, xp)
        U = (Xc @ V) / np.sqrt(e)
    full = loo_errors(U, e, Yc, alphas, xp, complete=complete)
    best_full = select_alphas(full, True, xp)
    best, errors, dual = loo_select(U, e, Yc, alphas, xp, complete=complete, chunk_columns=5)
    assert np.array_equal(best, best_full)
    done = np.isfinite(errors)
    # same formula, different column grouping of the products: round-off only
    assert np.allclose(errors[done], full[done], rtol=1e-12, atol=0)
    chosen = full[best_full, np.arange(full.shape[1])]
    assert (full[~done] > np.broadcast_to(chosen, full.shape)[~done]).all()
    ref = dual_coefficients(U, e, Yc, alphas[best_full], xp, complete=complete)
    assert np.allclose(dual, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_centered_gram_equals_centered_product(backend):
    """Blockwise syrk accumulation (numpy) / addmm (torch) equals (X - m)(X - m)^T."""
    if backend == "torch":
        pytest.importorskip("torch")
    xp = get_namespace(backend)
    X = np.random.default_rng(3).standard_normal((70, 1001)) + 5.0
    ref = (X - X.mean(0)) @ (X - X.mean(0)).T
    K = xp.to_numpy(xp.centered_gram(xp.asarray(X), block=128))
    assert np.array_equal(K, K.T)
    assert np.allclose(K, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_torch_backend_matches_numpy():
    pytest.importorskip("torch")
    X, Y = make_data(40, 90, seed=7)
    a = RidgeRegression(alphas=ALPHAS).fit(X, Y)
    b = RidgeRegression(alphas=ALPHAS, backend="torch").fit(X, Y)
    assert np.array_equal(a.alpha_, b.alpha_)
    assert np.allclose(a.coef_, b.coef_, atol=1e-9 * np.abs(a.coef_).max())
    c = PLSRegression(5, backend="torch").fit(X, Y)
    d = PLSRegression(5).fit(X, Y)
    assert np.allclose(c.predict(X), d.predict(X), atol=1e-8)


def test_float32_is_close():
    X, Y = make_data(40, 90, seed=8)
    a = RidgeRegression(alphas=10.0).fit(X, Y)
    b = RidgeRegression(alphas=10.0, dtype="float32").fit(X, Y)
    assert b.coef_.dtype == np.float32
    # single precision: ~1e-7 relative per operation, amplified by the conditioning (~1e2)
    assert np.allclose(a.predict(X), b.predict(X), rtol=1e-3, atol=1e-3)


def pls_data(seed=0, n=150, p=120, t=12):
    """Latent factors with well separated strengths, so sklearn's power iterations converge."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((n, 8)) * np.array([12, 9, 7, 5, 4, 3, 2.4, 1.8])
    X = L @ rng.standard_normal((8, p)) + 0.3 * rng.standard_normal((n, p)) + 2.0
    Y = L @ rng.standard_normal((8, t)) + rng.standard_normal((n, t)) - 1.0
    return X, Y, rng.standard_normal((20, p))


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_pls_equals_sklearn(k):
    X, Y, X_new = pls_data()
    ours = PLSRegression(n_components=k).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # tol on the squared change of the weights: 1e-28 makes sklearn iterate to round-off
        ref = SkPLS(n_components=k, scale=False, tol=1e-28, max_iter=20000).fit(X, Y)
    assert max(ref.n_iter_) < 20000, "sklearn did not converge; comparison meaningless"
    assert np.allclose(ours.predict(X_new), ref.predict(X_new), rtol=0, atol=1e-6)
    assert np.allclose(np.abs(ours.x_weights_), np.abs(ref.x_weights_), atol=1e-6)
    # the sample-space (kernel) form used by neural_predictivity gives the same predictions
    mu = X.mean(0)
    K, K_new = (X - mu) @ (X - mu).T, (X_new - mu) @ (X - mu).T
    pred, used = kernel_pls_predict(K, K_new, Y - Y.mean(0), k, get_namespace())
    assert used == k
    assert np.allclose(pred + Y.mean(0), ref.predict(X_new), rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_pls_splits_in_lockstep_equal_one_split_at_a_time(backend):
    """kernel_pls_splits (all splits from one Gram, double centering applied to products)
    equals kernel_pls_predict on each split's explicitly double-centered Gram, and sklearn.
    Includes a split whose training set has lower rank than the requested components, so one
    problem stops early while the others go on."""
    if backend == "torch":
        pytest.importorskip("torch")
    xp = get_namespace(backend)
    X, Y, _ = pls_data(seed=3, n=90, p=140, t=6)
    X[:30] = X[:30, :1] * np.ones((1, X.shape[1]))        # rows 0-29: rank one
    Xg = X - X.mean(0)
    K = Xg @ Xg.T
    rng = np.random.default_rng(0)
    splits = [(np.sort(rng.permutation(90)[:70]), None) for _ in range(3)]
    splits = [(tr, rng.permutation(np.setdiff1d(np.arange(90), tr))) for tr, _ in splits]
    splits[0] = (splits[0][0], splits[0][1][:15])         # test set smaller than the rest
    splits.append((np.arange(0, 30), np.arange(30, 90)))  # rank-one training set
    fits = kernel_pls_splits(xp.asarray(K), xp.asarray(Y), splits, 12, xp)
    for (tr, te), (pred, used) in zip(splits, fits):
        K_tt, K_st = double_center(K, te, tr, get_namespace())
        y_mean = Y[tr].mean(0)
        ref, ref_used = kernel_pls_predict(K_tt, K_st, Y[tr] - y_mean, 12, get_namespace())
        assert used == ref_used
        scale = np.abs(ref).max()
        # Same model, different operation order (K_s Y is assembled from the full K Y). The
        # 12-component solve with T^T K U has condition number ~4e8 on these data (factor
        # strengths 12 -> 0.3), so round-off differences up to ~eps * cond ~ 1e-7 are possible;
        # observed ~1e-10. 1e-8 still catches any algebra error, which would be O(1).
        assert np.allclose(xp.to_numpy(pred), ref + y_mean, rtol=0, atol=1e-8 * scale)
        if used == 12:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sk = SkPLS(n_components=12, scale=False, tol=1e-14, max_iter=5000).fit(X[tr], Y[tr])
            assert np.allclose(xp.to_numpy(pred), sk.predict(X[te]), rtol=0, atol=1e-6 * scale)
    assert fits[-1][1] == 1


def test_pls_single_target_and_rank_limit():
    X, Y, X_new = pls_data(seed=1, t=1)
    ours = PLSRegression(n_components=4).fit(X, Y[:, 0])
    ref = SkPLS(n_components=4, scale=False).fit(X, Y[:, 0])
    assert ours.predict(X_new).shape == (20,)
    assert np.allclose(ours.predict(X_new), ref.predict(X_new).ravel(), atol=1e-6)
    # rank-3 X: at most 3 components can be extracted
    rng = np.random.default_rng(0)
    X3 = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 20))
    fit = PLSRegression(n_components=10).fit(X3, X3[:, :2])
    assert fit.n_components_ <= 4
    assert np.allclose(fit.predict(X3), X3[:, :2], atol=1e-8)


def test_ols_equals_lstsq():
    X, Y = make_data(80, 20, seed=3)
    ours = LinearRegression().fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    ref = np.linalg.lstsq(Xc, Yc, rcond=None)[0]
    assert np.allclose(ours.coef_.T, ref, atol=1e-9)
    # more features than samples: minimum-norm interpolation
    X, Y = make_data(20, 60, seed=3)
    fit = LinearRegression().fit(X, Y)
    assert np.allclose(fit.predict(X), Y, atol=1e-7)
    assert np.allclose(fit.coef_.T, np.linalg.pinv(X - X.mean(0)) @ (Y - Y.mean(0)), atol=1e-7)


def test_self_regression_is_perfect():
    X, _ = make_data(60, 25, seed=1)
    assert np.allclose(PLSRegression(25).fit(X, X).predict(X), X, atol=1e-8)
    fit = RidgeRegression(alphas=ALPHAS).fit(X, X)
    assert np.corrcoef(fit.predict(X).ravel(), X.ravel())[0, 1] > 0.9999


@pytest.mark.parametrize("bad, match", [
    (dict(alphas=[-1.0]), "alphas must be finite and > 0"),
    (dict(alphas=[]), "non-empty"),
    (dict(cv="bogus"), "cv must be 'loo' or an integer"),
    (dict(cv=1), "cv=1 folds impossible"),
])
def test_ridge_bad_parameters(bad, match):
    X, Y = make_data(20, 10)
    params = {"alphas": ALPHAS, **bad}
    with pytest.raises(AnalysisError, match=match):
        RidgeRegression(**params).fit(X, Y)


def test_estimator_bad_inputs():
    X, Y = make_data(20, 10)
    with pytest.raises(AnalysisError, match="X has 20 samples but Y has 19"):
        RidgeRegression().fit(X, Y[:19])
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(AnalysisError, match="non-finite"):
        PLSRegression(2).fit(Xn, Y)
    with pytest.raises(AnalysisError, match="not fitted"):
        PLSRegression(2).predict(X)
    with pytest.raises(AnalysisError, match="n_components=11 exceeds the 10 features"):
        PLSRegression(11).fit(X, Y)
    with pytest.raises(AnalysisError, match="fitted with 10 features"):
        RidgeRegression(alphas=1.0).fit(X, Y).predict(X[:, :5])
    with pytest.raises(AnalysisError, match="dtype must be one of"):
        RidgeRegression(dtype="float16").fit(X, Y)
