"""The batched non-negative QP solver against exact per-problem solvers written here."""

import itertools

import numpy as np
import pytest
from scipy.optimize import nnls

from neurogeom._backend import get_namespace
from neurogeom.capacity import qp
from neurogeom.capacity.qp import (kkt_residual, project_onto_polyhedral_cone,
                                   solve_nonneg_qp)
from neurogeom.errors import AnalysisError


def nnls_dual(G, q):
    """Exact reference for positive-definite G: Lawson–Hanson NNLS (scipy), one call per QP.

    With G = L Lᵀ, ½λᵀGλ + qᵀλ = ½||Lᵀλ + L⁻¹q||² − const, so the QP is NNLS(Lᵀ, −L⁻¹q).
    """
    L = np.linalg.cholesky(G)
    lam, _ = nnls(L.T, -np.linalg.solve(L, q), maxiter=50 * len(q))
    return lam


def brute_force_projection(S, t, kappa):
    """Exact projection of t onto {v : sᵀv ≤ −κ for all columns s of S}, by enumeration.

    Tries every set A of at most d linearly independent constraints as the active set: project t
    onto {sᵀv = −κ, s ∈ A} and keep the closest candidate that is feasible and has non-negative
    multipliers (the KKT conditions). Exponential, so only for tiny d; independent of the
    solver under test.
    """
    d, m = S.shape
    if np.all(S.T @ t + kappa <= 1e-12):
        return t.copy()
    best, best_dist = None, np.inf
    for size in range(1, d + 1):
        for A in itertools.combinations(range(m), size):
            SA = S[:, A]
            GA = SA.T @ SA
            if np.linalg.matrix_rank(GA) < size:
                continue
            lam = np.linalg.solve(GA, SA.T @ t + kappa)
            if lam.min() < -1e-12:
                continue
            v = t - SA @ lam
            if np.max(S.T @ v + kappa) > 1e-9:
                continue
            dist = np.sum((v - t) ** 2)
            if dist < best_dist:
                best, best_dist = v, dist
    return best


def manifold_matrix(rng, d, m, scale=3.0):
    """Points of a manifold with the MFT's appended constant coordinate, as columns."""
    return np.vstack([scale * rng.standard_normal((d - 1, m)), np.ones((1, m))])


@pytest.mark.parametrize("kappa", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("d,m", [(51, 50), (12, 8), (4, 3)])
def test_shared_G_matches_nnls(d, m, kappa):
    rng = np.random.default_rng(d * 100 + m)
    S = manifold_matrix(rng, d, m)
    T = rng.standard_normal((150, d))
    v, res = project_onto_polyhedral_cone(S, T, kappa)
    G, q = S.T @ S, -(T @ S) - kappa
    ref = np.array([nnls_dual(G, qi) for qi in q])
    # G is positive definite (m ≤ d, general position) so λ is unique; both solvers are exact
    # active-set answers up to rounding, so they agree far below 1e-6 (the bar).
    assert np.abs(res.lam - ref).max() < 1e-8 * (1 + np.abs(ref).max())
    assert np.abs(v - (T - ref @ S.T)).max() < 1e-8
    assert res.converged.all() and res.max_kkt < 1e-9
    assert (res.lam >= 0).all()


def test_grouped_and_per_problem_layouts_agree():
    rng = np.random.default_rng(1)
    P, B, d, m = 6, 40, 10, 7
    S = np.stack([manifold_matrix(rng, d, m) for _ in range(P)])
    T = rng.standard_normal((P, B, d))
    G = np.swapaxes(S, 1, 2) @ S
    q = -(T @ S) - 0.3
    grouped = solve_nonneg_qp(G, q)
    assert grouped.lam.shape == (P, B, m) and grouped.kkt.shape == (P, B)
    per = solve_nonneg_qp(np.repeat(G, B, axis=0), q.reshape(P * B, m))
    assert np.abs(per.lam.reshape(P, B, m) - grouped.lam).max() < 1e-9
    for p in range(P):
        ref = np.array([nnls_dual(G[p], qi) for qi in q[p]])
        assert np.abs(grouped.lam[p] - ref).max() < 1e-8 * (1 + np.abs(ref).max())


@pytest.mark.parametrize("kappa", [0.0, 1.0])
def test_singular_G_densely_sampled_segment(kappa):
    """Many collinear points (a segment, D = 1): G = SᵀS has rank 2, λ is not unique, but the
    primal solution v = t − Sλ is, and it matches an exact brute-force projection."""
    rng = np.random.default_rng(2)
    x = np.linspace(-0.7, 0.7, 25)
    S = np.vstack([x, np.ones_like(x)])
    T = rng.standard_normal((200, 2))
    v, res = project_onto_polyhedral_cone(S, T, kappa)
    ref = np.array([brute_force_projection(S, t, kappa) for t in T])
    assert np.abs(v - ref).max() < 1e-7
    assert res.converged.all()


def test_duplicate_points_and_low_rank():
    """Repeated points and points on a 3-d subspace of a 6-d space (singular G)."""
    rng = np.random.default_rng(3)
    base = manifold_matrix(rng, 4, 5)
    S = np.hstack([base, base[:, :3]])             # three duplicated columns
    T = rng.standard_normal((120, 4))
    v, res = project_onto_polyhedral_cone(S, T, 0.2)
    ref = np.array([brute_force_projection(S, t, 0.2) for t in T])
    assert np.abs(v - ref).max() < 1e-7


def test_interior_problems_cost_nothing():
    rng = np.random.default_rng(4)
    G = np.eye(3)
    q = np.abs(rng.standard_normal((10, 3)))      # q ≥ 0: λ = 0 is optimal
    res = solve_nonneg_qp(G, q)
    assert (res.lam == 0).all() and res.trivial.all() and (res.iterations == 0).all()


def test_chunking_gives_identical_answers():
    rng = np.random.default_rng(6)
    S = np.stack([manifold_matrix(rng, 8, 6) for _ in range(5)])
    T = rng.standard_normal((5, 50, 8))
    G, q = np.swapaxes(S, 1, 2) @ S, -(T @ S)
    whole = solve_nonneg_qp(G, q)
    tiny = solve_nonneg_qp(G, q, max_chunk_bytes=1)  # one problem per chunk
    assert np.abs(whole.lam - tiny.lam).max() < 1e-10


def test_kkt_residual_detects_wrong_answers():
    rng = np.random.default_rng(7)
    S = manifold_matrix(rng, 6, 4)
    T = rng.standard_normal((20, 6))
    G, q = S.T @ S, -(T @ S)
    res = solve_nonneg_qp(G, q)
    assert kkt_residual(G, q, res.lam).max() < 1e-10
    assert kkt_residual(G, q, res.lam + 1e-3).min() > 1e-5
    assert kkt_residual(G, q, np.zeros_like(res.lam)).max() > 1e-3


def test_bad_inputs():
    with pytest.raises(AnalysisError, match="expected"):
        solve_nonneg_qp(np.eye(3), np.zeros((2, 4)))
    with pytest.raises(AnalysisError, match="NaN"):
        solve_nonneg_qp(np.eye(2), np.array([[np.nan, 1.0]]))
    with pytest.raises(AnalysisError, match="backend"):
        solve_nonneg_qp(np.eye(2), np.ones((1, 2)), backend="jax")
    with pytest.raises(AnalysisError, match="CPU"):
        solve_nonneg_qp(np.eye(2), np.ones((1, 2)), backend="numpy", device="cuda")


def gaussian_cloud_matrix(rng, n_features, m):
    """A centered Gaussian point cloud (radius² ≈ m) plus the constant coordinate: G = SᵀS is
    then well conditioned (eigenvalues near m), like the reference README workload's."""
    X = rng.standard_normal((n_features, m)) * np.sqrt(m / n_features)
    return np.vstack([X - X.mean(axis=1, keepdims=True), np.ones((1, m))])


def test_well_and_ill_conditioned_groups_in_one_batch_match_nnls():
    """Well-conditioned groups are solved by projected gradient, the others by ADMM + polish;
    both must agree with the exact per-problem NNLS."""
    rng = np.random.default_rng(8)
    m, B = 12, 60
    S = [gaussian_cloud_matrix(rng, 300, m) for _ in range(3)]
    S += [manifold_matrix(rng, 301, m, scale=0.05) for _ in range(2)]  # points close together
    G = np.stack([s.T @ s for s in S])
    q = np.stack([-(rng.standard_normal((B, 301)) @ s) - 0.1 for s in S])
    bound = qp._pg_iteration_bound(np.linalg.eigvalsh(G), 1e-10)
    assert (bound[:3] <= qp.PG_MAX_ITER).all() and (bound[3:] > qp.PG_MAX_ITER).all()
    res = solve_nonneg_qp(G, q)
    assert res.converged.all() and res.max_kkt <= 1e-10
    assert not res.polished[:3].any() and res.polished[3:].any()
    for p in range(len(S)):
        ref = np.array([nnls_dual(G[p], qi) for qi in q[p]])
        # polished groups are exact active-set solutions; for projected gradient the natural
        # residual bounds the error (strongly convex QP): ||λ − λ*|| ≤ (1 + L)/μ ·
        # ||min(λ, Gλ + q)|| ≤ (1 + L)/μ · √m · max(1, 1/μ) · 1e-10 (1 + ||q||∞) ≈ 1e-8 here
        # (L/μ ≈ 16/8, √m ≈ 3.5, ||q||∞ ≈ 15); observed ~1e-11
        assert np.abs(res.lam[p] - ref).max() < 1e-8 * (1 + np.abs(ref).max())
    # the reported residual is that of the returned λ
    assert np.allclose(res.kkt, kkt_residual(G, q, res.lam), rtol=1e-6, atol=1e-15)


def test_admm_compacted_to_the_active_problems_matches_nnls(monkeypatch):
    """Ill-conditioned groups with many samples, of which a few need many more ADMM
    iterations than the rest: once at most half of a group's problems are left, ADMM iterates
    on those alone (narrower arrays); the answers must still be the exact NNLS solutions, in
    their original places."""
    rng = np.random.default_rng(12)
    m, B = 16, 120
    S = [manifold_matrix(rng, 17, m, scale=0.05) for _ in range(3)]
    G = np.stack([s.T @ s for s in S])
    q = np.stack([-(rng.standard_normal((B, 17)) @ s) for s in S])
    widths = []
    gkkt = qp._gkkt

    def spy(xp, G_, q_, lam, d, **kw):
        widths.append(q_.shape[1])
        return gkkt(xp, G_, q_, lam, d, **kw)

    monkeypatch.setattr(qp, "_gkkt", spy)
    res = solve_nonneg_qp(G, q)
    assert res.converged.all() and res.max_kkt <= 1e-10
    assert min(widths) <= B // 2          # compaction happened
    for p in range(len(S)):
        ref = np.array([nnls_dual(G[p], qi) for qi in q[p]])
        assert np.abs(res.lam[p] - ref).max() < 1e-8 * (1 + np.abs(ref).max())
    assert np.allclose(res.kkt, kkt_residual(G, q, res.lam), rtol=1e-6, atol=1e-15)
    # iterations are reported per problem, in place (interior problems, λ = 0, take none)
    it = res.iterations[~res.trivial]
    assert (res.iterations[res.trivial] == 0).all() and it.max() >= 2 * it.min() > 0


def test_projected_gradient_that_misses_tol_falls_back_to_admm(monkeypatch):
    rng = np.random.default_rng(9)
    S = gaussian_cloud_matrix(rng, 200, 10)
    G, q = S.T @ S, -(rng.standard_normal((80, 201)) @ S)
    # pretend 1 iteration (+ the spare ones) is guaranteed: too few, so every group must fail
    # over to ADMM + polish and still be solved
    monkeypatch.setattr(qp, "_pg_iteration_bound", lambda ev, tol: np.ones(ev.shape[0]))
    monkeypatch.setattr(qp, "PG_SPARE_ITER", 0)
    res = solve_nonneg_qp(G, q)
    assert res.converged.all() and res.polished.any()
    ref = np.array([nnls_dual(G, qi) for qi in q])
    assert np.abs(res.lam - ref).max() < 1e-8 * (1 + np.abs(ref).max())


def test_projected_gradient_iteration_bound_holds():
    """_pg_iteration_bound is a guarantee (derived in its docstring), not an estimate: projected
    gradient never needs more iterations than it promises, for any tol."""
    rng = np.random.default_rng(10)
    for m in (1, 5, 30):
        S = gaussian_cloud_matrix(rng, 400, m)
        G, q = S.T @ S, -(3 * rng.standard_normal((200, 401)) @ S) - 0.5
        for tol in (1e-6, 1e-10, 1e-12):
            bound = qp._pg_iteration_bound(np.linalg.eigvalsh(G)[None], tol)[0]
            res = solve_nonneg_qp(G, q, tol=tol)
            assert res.converged.all() and not res.polished.any()
            assert res.iterations.max() <= bound


@pytest.mark.parametrize("path", ["admm", "projected_gradient"])
def test_torch_backend_matches_numpy(path):
    """Both solver paths give the same λ on torch (CPU) as on numpy: ill-conditioned manifolds
    take ADMM + polish (exact active set: agreement to rounding), Gaussian clouds projected
    gradient, which stops at KKT residual ≤ 1e-10 possibly one iteration apart under different
    BLAS rounding; by the natural-residual error bound λ then agrees to ~1e-9 at worst."""
    torch = pytest.importorskip("torch")
    if path == "admm":
        rng = np.random.default_rng(5)
        S = np.stack([manifold_matrix(rng, 9, 6) for _ in range(3)])
        T, tol = rng.standard_normal((3, 30, 9)), 1e-10
    else:
        rng = np.random.default_rng(11)
        S = np.stack([gaussian_cloud_matrix(rng, 100, 8) for _ in range(4)])
        T, tol = rng.standard_normal((4, 50, 101)), 1e-8
    G, q = np.swapaxes(S, 1, 2) @ S, -(T @ S)
    a = solve_nonneg_qp(G, q)
    b = solve_nonneg_qp(torch.as_tensor(G), torch.as_tensor(q), backend="torch")
    assert isinstance(b.lam, torch.Tensor) and b.converged.all()
    if path == "projected_gradient":
        assert not a.polished.any()
    assert np.abs(b.lam.numpy() - a.lam).max() < tol


@pytest.mark.parametrize("max_steps", [1, 2, 4])
def test_polish_returns_the_residual_of_the_lambda_it_returns(max_steps):
    """The polish keeps its best iterate: the residual it reports must be that iterate's, also
    when it stops early (it used to report the best residual with the last iterate)."""
    rng = np.random.default_rng(12)
    x = np.sort(rng.uniform(-1, 1, 30))
    S = np.vstack([x, 0.3 * x ** 2, np.ones_like(x)])     # densely sampled arc: singular G
    G = (S.T @ S)[None]
    q = -(2 * rng.standard_normal((100, 3)) @ S) - 0.3
    lam0 = 0.1 * np.abs(rng.standard_normal((100, 30)))  # a poor start: the polish cannot finish
    xp = get_namespace("numpy")
    group = np.zeros(100, dtype=int)
    d = qp._diag_scale(xp, G)[group]
    start_k = kkt_residual(G[0], q, lam0)
    lam, k = qp._polish(xp, G, group, q, lam0, lam0 @ G[0] + q, d, 1e-10, max_steps=max_steps)
    assert np.allclose(k, kkt_residual(G[0], q, lam), rtol=1e-12, atol=1e-15)
    assert (k <= start_k).all()
