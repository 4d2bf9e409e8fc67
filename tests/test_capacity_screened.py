"""The screened joint-QP solver (default of effective_geometry and correlated_capacity)."""

import numpy as np
import pytest
import scipy.optimize

from neurogeom.capacity.correlated import correlated_capacity
from neurogeom.capacity.effective import effective_geometry
from neurogeom.capacity.joint import solve_joint

from geom_helpers import as_assembly


def _clouds(seed=5, n_manifolds=5, n_points=8, n_features=30, radius=0.6):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_manifolds, 1, n_features))
    pts = (c + radius * rng.standard_normal((n_manifolds, n_points, n_features)))
    return as_assembly(pts.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points))


# Outputs of the solver path before the screened solver (main at 9fa9576, solver="active_set",
# the default then), same data and seeds. Both solvers return the exact QP solution to a KKT
# residual <= 1e-10 relative to 1 + |q|, so everything computed from it agrees to ~1e-9; 1e-8
# relative leaves room for the summation order of 180 samples.
OLD = {
    0.0: {"effective": [0.597125260261236, 0.6549226506480788, 2.381030825180882,
                        0.31868316068762936, 0.15145925916443062],
          "effective_capacity": [0.5559380034779953, 0.5951414018851982, 0.6824952298817373,
                                 0.5730879262663712, 0.5937279144202577],
          "correlated": 0.5733314300676197,
          "correlated_capacity": [0.6429852532281518, 0.5482007050339065, 0.5852538890866278,
                                  0.5564929554455164, 0.5446812830710025]},
    0.3: {"effective": [0.330142680968228, 0.6217285793397331, 2.1565101643313276,
                        0.316341843611213, 0.14525137874235589],
          "effective_capacity": [0.2885021631738771, 0.332696990158329, 0.39481288300580436,
                                 0.3448287534108266, 0.30862151320718273],
          "correlated": 0.31784104339504676,
          "correlated_capacity": [0.35047834050968174, 0.3211797248958079, 0.3363947253925353,
                                  0.30721436564642235, 0.2827562836823959]},
}


@pytest.mark.parametrize("kappa", [0.0, 0.3])
def test_screened_reproduces_the_previous_solver(kappa):
    # 40 points of 5 clouds in 30 dims: the correlated tensor (40 vectors) needs its ridge, so
    # both the Cholesky and the dependent-rows paths of the restricted solve are exercised
    a = _clouds()
    e = effective_geometry(a, by="object_name", n_t=30, n_dichotomies=6, kappa=kappa, seed=3)
    c = correlated_capacity(a, by="object_name", n_t=30, n_dichotomies=6, kappa=kappa, seed=3)
    old = OLD[kappa]
    got = [float(e.capacity_overall), float(e.radius_overall), float(e.dimension_overall),
           float(e.center_alignment_overall), float(e.axis_alignment_overall)]
    np.testing.assert_allclose(got, old["effective"], rtol=1e-8)
    np.testing.assert_allclose(e.capacity, old["effective_capacity"], rtol=1e-8)
    np.testing.assert_allclose(float(c.capacity_overall), old["correlated"], rtol=1e-8)
    np.testing.assert_allclose(c.capacity, old["correlated_capacity"], rtol=1e-8)
    assert e.attrs["solver"] == "screened" and e.attrs["max_kkt_residual"] < 1e-10


def _slsqp(z, t, kappa):
    """Independent per-sample reference: the primal min ||v - t||² s.t. z v >= kappa."""
    res = scipy.optimize.minimize(lambda v: 0.5 * np.sum((v - t) ** 2), t, jac=lambda v: v - t,
                                  constraints=[{"type": "ineq", "fun": lambda v: z @ v - kappa,
                                                "jac": lambda v: z}],
                                  method="SLSQP", options={"ftol": 1e-13, "maxiter": 1000})
    assert np.min(z @ res.x - kappa) > -1e-7
    return res.x


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_screened_matches_a_generic_qp_solver(kappa):
    # 48 points of 6 manifolds in 10 dims (more constraints than dimensions: active sets change
    # from sample to sample). The first dichotomy's signed points all have z_0 >= 2, so a
    # margin is feasible; the second is random (kappa = 0 only: always feasible).
    rng = np.random.default_rng(11)
    owner = np.repeat(np.arange(6), 8)
    labels = np.array([rng.choice([-1.0, 1.0], 6), rng.choice([-1.0, 1.0], 6)])
    coords = rng.standard_normal((48, 10))
    coords[:, 0] = labels[0][owner] * (np.abs(coords[:, 0]) + 2.0)
    n_dich = 2 if kappa == 0 else 1
    t = rng.standard_normal((n_dich, 12, 10))
    sol = solve_joint(coords, owner, labels[:n_dich], t, kappa)
    for i, (d, b) in enumerate(np.ndindex(n_dich, 12)):
        z = coords * labels[d][owner][:, None]
        v = _slsqp(z, t[d, b], kappa)
        # SLSQP's primal is accurate to ~1e-7 (ftol 1e-13 on the objective ½|v - t|²); the
        # screened dual is exact to the KKT tolerance 1e-10, so their |v* - t|² agree to ~1e-6
        assert sol.share[i].sum() == pytest.approx(np.sum((v - t[d, b]) ** 2), rel=1e-6,
                                                   abs=1e-8)
    assert sol.kkt.max() < 1e-10


@pytest.mark.parametrize("kappa", [0.0, 0.5])
@pytest.mark.parametrize("dims", [12, 30, 60])
def test_primal_dual_active_set_matches_the_active_set_path(monkeypatch, kappa, dims):
    # the primal-dual active set runs for large problems (joint._PDAS_MIN_POINTS); forced here
    # on 60 points: in 12 and 30 dims (slacks through the coordinates) and in 60 (more
    # coordinates than m/4: slacks from the Gram rows, the correlated case). In 12 dims some
    # working sets reach the rank and those samples go to the screened solver (the fallback is
    # exercised); above, nearly every sample finishes in the new one. Same shares and anchors as the
    # per-sample active set, to the KKT tolerance.
    import neurogeom.capacity.joint as joint
    rng = np.random.default_rng(7)
    owner = np.repeat(np.arange(6), 10)
    labels = rng.choice([-1.0, 1.0], (2, 6))
    coords = rng.standard_normal((60, dims))
    coords[:, 0] = labels[0][owner] * (np.abs(coords[:, 0]) + 2.0)   # a margin is feasible
    labels[1] = labels[0]
    labels[1, :3] *= -1                                              # partly: kappa = 0 only
    n_dich = 2 if kappa == 0 else 1
    t = rng.standard_normal((n_dich, 15, dims))
    ref = solve_joint(coords, owner, labels[:n_dich], t, kappa, solver="active_set")
    calls = []
    pdas = joint._solve_pdas
    monkeypatch.setattr(joint, "_solve_pdas", lambda *a, **k: calls.append(1) or pdas(*a, **k))
    monkeypatch.setattr(joint, "_PDAS_MIN_POINTS", 0)
    got = solve_joint(coords, owner, labels[:n_dich], t, kappa)
    assert calls
    gram = coords @ coords.T
    lam_fail = pdas(coords, owner, labels[:n_dich], t, kappa, 1e-10, gram, t @ coords.T,
                    joint._gram_products(coords, gram, None))[1]
    # (the second dichotomy is not separable: v* = 0, a degenerate support of rank-many points)
    assert lam_fail[0].mean() < (0.5 if dims == 12 else 0.1)
    # |v* - t|² is unique; the duals (so the per-manifold shares, anchors) only where the
    # support is independent: the separable dichotomy (rows 0-14)
    np.testing.assert_allclose(got.share.sum(axis=1), ref.share.sum(axis=1), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(got.share[:15], ref.share[:15], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.anchors[:15], ref.anchors[:15], rtol=1e-8, atol=1e-10)
    assert got.kkt.max() < 1e-10
    bare = solve_joint(coords, owner, labels[:n_dich], t, kappa, anchors=False)
    assert bare.anchors is None
    np.testing.assert_array_equal(bare.share, got.share)


def _signed_gram(seed, m, dims, k):
    """A Gram matrix of m random points in ``dims`` dimensions, random signs, k random points."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, dims))
    return rng, x @ x.T, rng.choice([-1.0, 1.0], m), rng.permutation(m)[:k]


def test_inverse_factor_appended_in_steps_equals_a_fresh_one():
    # T = R⁻¹ for G = RᵀR: built in chunks, extended by appended columns, or from a cached
    # block, it is the same upper triangular matrix with T Tᵀ = G⁻¹
    import neurogeom.capacity.joint as joint
    rng, gram0, sign, idx = _signed_gram(3, 150, 400, 140)
    g = gram0[np.ix_(idx, idx)] * np.outer(sign[idx], sign[idx])
    fresh, block = joint._extend_inverse(None, None, gram0, sign, idx, 0)   # 3 chunks of 64
    np.testing.assert_array_equal(block, g)
    r = np.linalg.cholesky(g).T
    np.testing.assert_allclose(fresh, np.linalg.inv(r), rtol=0, atol=1e-12 * np.abs(fresh).max())
    assert np.all(np.tril(fresh, -1) == 0)
    t_part, g_part = joint._extend_inverse(None, None, gram0, sign, idx[:90], 0)
    grown, block2 = joint._extend_inverse(t_part, g_part, gram0, sign, idx, 90)
    np.testing.assert_array_equal(block2, g)
    np.testing.assert_allclose(grown @ grown.T @ g, np.eye(140), atol=1e-10)
    np.testing.assert_allclose(grown, fresh, rtol=0, atol=1e-12 * np.abs(fresh).max())
    # a dependent set (more points than dimensions) is refused, not factored
    y = rng.standard_normal((80, 20))
    assert joint._extend_inverse(None, None, y @ y.T, np.ones(80), np.arange(40), 0)[0] is None


def test_primal_dual_active_set_is_the_same_on_one_thread_and_several(monkeypatch):
    # the per-sample solves of a round run on threads: each sample's arithmetic is its own,
    # so the duals are identical (bitwise) with one thread or several
    import neurogeom.capacity.joint as joint
    rng = np.random.default_rng(11)
    owner = np.repeat(np.arange(8), 12)
    coords = rng.standard_normal((96, 40))
    labels = rng.choice([-1.0, 1.0], (2, 8))
    coords[:, 0] = labels[0][owner] * (np.abs(coords[:, 0]) + 2.0)   # a margin is feasible
    labels[1] = labels[0]
    t = rng.standard_normal((2, 40, 40))
    gram = coords @ coords.T
    args = (coords, owner, labels, t, 0.3, 1e-10, gram, t @ coords.T,
            joint._gram_products(coords, gram, None))
    runs = []
    for n in (1, 3):
        monkeypatch.setattr(joint, "_solver_threads", lambda n=n: n)
        runs.append(joint._solve_pdas(*args))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][1].mean() < 0.1                 # (nearly) all finished in the solver


def test_low_rank_gram_gives_the_whitened_points_answer(monkeypatch):
    # correlated capacity passes the whitened points' Gram matrix as X Xᵀ + eps blockdiag
    # (whitened_points' "low_rank"): the same matrix as points pointsᵀ to rounding, and the
    # same joint-QP solution as through the whitened coordinates themselves
    import neurogeom.capacity.joint as joint
    from neurogeom.capacity.correlated import whitened_points
    rng = np.random.default_rng(5)
    owner = np.repeat(np.arange(6), 9)
    data = rng.standard_normal((6, 1, 30)) + 0.4 * rng.standard_normal((6, 9, 30))
    data = data.reshape(54, 30)
    points, info = whitened_points(data, owner)              # 54 > 30: ridge added
    assert info["ridge"] > 0
    low = info["low_rank"]
    gram = points @ points.T
    np.testing.assert_allclose(joint._gram_matrix(points, low), gram, rtol=0,
                               atol=1e-12 * np.abs(gram).max())
    x = rng.standard_normal((4, 54)) * (rng.random((4, 54)) < 0.2)
    np.testing.assert_allclose(joint._gram_products(points, gram, low)(x), x @ gram, rtol=0,
                               atol=1e-12 * np.abs(gram).max() * np.abs(x).sum(axis=1).max())
    monkeypatch.setattr(joint, "_PDAS_MIN_POINTS", 0)
    labels = rng.choice([-1.0, 1.0], (2, 6))
    t = rng.standard_normal((2, 25, points.shape[1]))
    plain = solve_joint(points, owner, labels, t, 0.2, anchors=False)
    fast = solve_joint(points, owner, labels, t, 0.2, anchors=False, low_rank=low)
    np.testing.assert_allclose(fast.share, plain.share, rtol=1e-9, atol=1e-12)
    assert fast.kkt.max() < 1e-10


@pytest.mark.parametrize("per_group", [1, 3, 6])
def test_most_violated_contiguous_layout_equals_the_group_loop(per_group):
    # equal contiguous groups take one argpartition on an (n, P, M) view; the same groups in
    # another order take the per-group loop: the same mask, ties and infinities included
    import neurogeom.capacity.joint as joint
    rng = np.random.default_rng(2)
    groups = [np.arange(i * 9, (i + 1) * 9) for i in range(12)]
    slack = np.round(rng.standard_normal((30, 108)), 1)
    slack[:, ::7] = np.inf
    limit = 0.1 * rng.standard_normal((30, 1))
    fast = joint._most_violated(slack, limit, groups, per_group)
    loop = joint._most_violated(slack, limit, groups[::-1], per_group)
    np.testing.assert_array_equal(fast, loop)
    assert fast.any() and (fast.sum(axis=1) <= 12 * per_group).all()


def test_solver_threads_follow_the_blas_limit():
    # map_recordings gives each worker a share of the cores as its BLAS limit; the joint
    # solver's threads follow it (one thread under a limit of 1)
    import neurogeom.capacity.joint as joint
    from neurogeom._blas import limit_threads
    limiter = limit_threads(1)
    try:
        assert joint._solver_threads() == 1
    finally:
        limiter.restore_original_limits()
    assert 1 <= joint._solver_threads() <= 4


def test_sparse_anchors_are_the_dense_anchors():
    # effective_geometry reads the anchors block by block from the dual weights
    # (anchors="sparse"): blocks, single samples, the mean and the full array equal the dense
    # anchors, inactive manifolds (their point nearest the margin) included
    from neurogeom.capacity.joint import SparseAnchors
    rng = np.random.default_rng(4)
    owner = np.repeat(np.arange(7), 6)
    coords = rng.standard_normal((7, 1, 12)) + 0.3 * rng.standard_normal((7, 6, 12))
    coords = coords.reshape(42, 12)
    labels = rng.choice([-1.0, 1.0], (3, 7))
    t = rng.standard_normal((3, 20, 12))
    dense = solve_joint(coords, owner, labels, t, 0.0)
    lazy = solve_joint(coords, owner, labels, t, 0.0, anchors="sparse")
    assert isinstance(lazy.anchors, SparseAnchors)
    assert not dense.active.all()                      # some manifolds inactive
    a = dense.anchors
    assert lazy.anchors.shape == a.shape == (60, 7, 12) and len(lazy.anchors) == 60
    tol = dict(rtol=0, atol=1e-13)
    np.testing.assert_allclose(lazy.anchors[5:17], a[5:17], **tol)
    np.testing.assert_allclose(lazy.anchors[33], a[33], **tol)
    np.testing.assert_allclose(lazy.anchors[[2, 40, 7]], a[[2, 40, 7]], **tol)
    np.testing.assert_allclose(lazy.anchors.mean(axis=0), a.mean(axis=0), **tol)
    np.testing.assert_allclose(np.asarray(lazy.anchors), a, **tol)
    np.testing.assert_array_equal(lazy.share, dense.share)


def test_dropping_points_from_an_inverse_factor():
    # the kept points' factor comes from the old inverse factor by a Schur complement of the
    # inverse (no refactoring); it extends like a fresh one
    import neurogeom.capacity.joint as joint
    rng, gram0, sign, idx = _signed_gram(8, 120, 300, 100)
    t_full, g_full = joint._extend_inverse(None, None, gram0, sign, idx, 0)
    drop = np.sort(rng.choice(100, 30, replace=False))
    keep = np.setdiff1d(np.arange(100), drop)
    f = joint._drop_points(t_full, keep, drop)
    g_kept = g_full[np.ix_(keep, keep)]
    np.testing.assert_allclose(f @ f.T @ g_kept, np.eye(70), atol=1e-9)
    more = np.setdiff1d(np.arange(120), idx)[:15]
    u = np.concatenate([idx[keep], more])
    grown, block = joint._extend_inverse(f, g_kept, gram0, sign, u, 70)
    np.testing.assert_array_equal(block, gram0[np.ix_(u, u)] * np.outer(sign[u], sign[u]))
    np.testing.assert_allclose(grown @ grown.T @ block, np.eye(85), atol=1e-9)


@pytest.mark.parametrize("solver", ["screened", "active_set", "shared"])
def test_progress_bar_counts_dichotomies(monkeypatch, solver, capsys):
    # progress=True shows one bar over the dichotomies, for every solver and for the large-
    # problem path on threads (forced here on a small problem); the answer does not change
    import neurogeom.capacity.joint as joint
    rng = np.random.default_rng(1)
    owner = np.repeat(np.arange(5), 8)
    coords = rng.standard_normal((40, 20))
    labels = rng.choice([-1.0, 1.0], (3, 5))
    t = rng.standard_normal((3, 10, 20))
    quiet = solve_joint(coords, owner, labels, t, solver=solver, progress=False)
    assert capsys.readouterr().err == ""
    if solver == "screened":
        monkeypatch.setattr(joint, "_PDAS_MIN_POINTS", 0)
        monkeypatch.setattr(joint, "_solver_threads", lambda: 2)
    import tqdm.auto
    counts = []

    class Recorder(tqdm.auto.tqdm):
        def close(self):
            counts.append(self.n)
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    shown = solve_joint(coords, owner, labels, t, solver=solver, progress=True)
    assert "joint QP" in capsys.readouterr().err
    assert counts and set(counts) == {3}             # every dichotomy counted once
    np.testing.assert_allclose(shown.share.sum(axis=1), quiet.share.sum(axis=1), rtol=1e-9,
                               atol=1e-12)


def test_nearly_square_problems_at_kappa_0_take_the_full_size_nnls(monkeypatch):
    # with a data rank of at least 3/4 of the points (CNN activations: 450 images in 512
    # features), the default solver runs the full-size NNLS per sample at kappa = 0; forced
    # through the restricted solves instead, the answer is the same; below the ratio, and
    # with a margin, the restricted solves run
    import neurogeom.capacity.joint as joint
    rng = np.random.default_rng(6)
    owner = np.repeat(np.arange(5), 8)
    labels = rng.choice([-1.0, 1.0], (2, 5))
    calls = []
    screened, active = joint._solve_screened, joint._solve_active_set
    monkeypatch.setattr(joint, "_solve_screened",
                        lambda *a, **k: calls.append("screened") or screened(*a, **k))
    monkeypatch.setattr(joint, "_solve_active_set",
                        lambda *a, **k: calls.append("full") or active(*a, **k))
    square = rng.standard_normal((40, 32))                          # rank 32 >= 0.75 * 40
    t = rng.standard_normal((2, 15, 32))
    full = solve_joint(square, owner, labels, t, 0.0)
    assert calls == ["full"]
    monkeypatch.setattr(joint, "_FULL_NNLS_RANK", np.inf)
    restricted = solve_joint(square, owner, labels, t, 0.0)
    assert calls == ["full", "screened"]
    np.testing.assert_allclose(restricted.share, full.share, rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(joint, "_FULL_NNLS_RANK", 0.75)
    thin = rng.standard_normal((40, 12))                            # rank 12 < 30
    solve_joint(thin, owner, labels, t[:, :, :12], 0.0)
    assert calls[-1] == "screened"
