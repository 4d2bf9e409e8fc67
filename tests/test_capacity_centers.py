"""The center-correlation step of MFT capacity on real activations (issue 15): its answer does
not depend on the seed, degenerate optima are discarded, and ``center_step_spread`` reports how
far the other optima would move the capacity.

Data: the bundled digits CNN (``loaders.synthetic.digits_convnet``) on translated digits, layer
``block2.pool`` (10 digit manifolds × 45 images × 256 units), where single random starts of the
reference's optimizer land in optima whose capacities differ by up to 20%.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import loaders  # noqa: E402
from neurogeom.capacity import manifold_capacity, mft_analysis  # noqa: E402
from neurogeom.capacity.mft import (SPREAD_ALTERNATIVES, SPREAD_SAMPLES,  # noqa: E402
                                    _prepare, _solve_and_measure)
from neurogeom.capacity.centers import (DEGENERATE_RATIO, SAME_OPTIMUM,  # noqa: E402
                                        _cost_grad_ratio, _pullback_hessian,
                                        center_subspace, stiefel_minimize, stiefel_newton)


@pytest.fixture(scope="module")
def block2():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = loaders.synthetic.digits_convnet()
        images, meta = loaders.synthetic.translated_digits(n_exemplars=5)
        a = loaders.model_activations(net, images, "block2.pool", metadata=meta,
                                      progress=False)["block2.pool"]
    finally:
        torch.set_num_threads(threads)
    a = a.astype(np.float64)
    labels = np.unique(a["digit"].values)
    points = [a.values[a["digit"].values == d].T for d in labels]
    return a, points, list(labels)


def _centers(points):
    origin = np.concatenate(points, axis=1).mean(axis=1)
    return np.stack([X.mean(axis=1) for X in points]) - origin


def test_center_subspace_is_the_same_for_every_seed(block2):
    """Five seeds keep the same K and the same subspace (projectors equal to the optimizer's
    tolerance; distinct optima here are ≥ 0.2 apart), which is the lowest proper optimum: no
    restart of any seed found a lower cost. The kept subspace leaves every center more than
    DEGENERATE_RATIO of its norm, and some restarts were discarded as degenerate."""
    _, points, labels = block2
    centers = _centers(points)
    outs = [center_subspace(centers, seed=s, keys=labels) for s in range(5)]
    assert len({o["K"] for o in outs}) == 1 and outs[0]["K"] >= 1
    K = outs[0]["K"]
    P0 = outs[0]["V"] @ outs[0]["V"].T
    for o in outs[1:]:
        assert np.linalg.norm(o["V"] @ o["V"].T - P0) < SAME_OPTIMUM
        assert o["costs"][K - 1] == pytest.approx(outs[0]["costs"][K - 1], rel=1e-6)
    best = min(o["costs"][K - 1] for o in outs)
    for o in outs:
        # the alternatives are other optima, all with a higher cost than the kept one
        assert all(c >= best * (1 - 1e-6) for c in o["alternative_costs"])
        Xc = centers - centers.mean(axis=0)
        resid = Xc - (Xc @ o["V"]) @ o["V"].T
        ratio = np.linalg.norm(resid, axis=1) / np.linalg.norm(Xc, axis=1)
        assert ratio.min() > DEGENERATE_RATIO
    assert sum(o["n_degenerate"] for o in outs) > 0


def test_capacity_does_not_depend_on_the_center_step_seed(block2):
    """With the Gaussian samples fixed, the seed only enters through the center step: the
    capacities agree to the optimizer's precision (the subspaces agree to ~1e-5 in projector
    norm, which moves α by far less than 0.1%). Two seeds here (five in the test above)."""
    _, points, labels = block2
    rng = np.random.default_rng(0)
    t = [rng.standard_normal((X.shape[1], 100)) for X in points]   # rank 44 (+1 center coord)
    alphas = []
    for s in (0, 3):
        res = mft_analysis(points, t_vectors=t, seed=s, keys=labels, spread_optima=0)
        alphas.append(1 / np.mean(1 / res.capacity))
    assert (max(alphas) - min(alphas)) / np.mean(alphas) < 1e-3


@pytest.mark.slow
def test_five_seeds_at_n_t_2000_agree_within_two_percent(block2):
    """Issue 15's acceptance test: seeds 0–4 at n_t = 2000 (the seed drives both the samples
    and the center step) give α within 2% of each other (before: 0.079 … 0.064, 22%). With
    the center step fixed, the Monte-Carlo spread of the five α alone is ≈ 1% (measured
    0.1144–0.1157 without center correlations)."""
    a, _, _ = block2
    alphas = [float(manifold_capacity(a, by="digit", n_t=2000, seed=s, spread_optima=0)
                    .capacity_overall) for s in range(5)]
    assert (max(alphas) - min(alphas)) / np.mean(alphas) < 0.02, alphas


def test_center_step_spread_is_what_the_docstring_says(block2):
    a, _, _ = block2
    ds = manifold_capacity(a, by="digit", n_t=60, spread_optima=2)
    caps = ds["center_step_capacity"].values
    assert ds.sizes["optimum"] == caps.size and 1 <= caps.size <= 3
    assert caps[0] == pytest.approx(float(ds.capacity_overall), rel=1e-12)
    assert float(ds.center_step_spread) == pytest.approx((caps.max() - caps.min()) / caps[0])
    # on this layer the other optima move α by several percent: the answer is fragile to the
    # optimum, which is what the variable is for (measured 8–19% at n_t = 200)
    assert float(ds.center_step_spread) > 0.01
    off = manifold_capacity(a, by="digit", n_t=20, center_correlations=False)
    assert float(off.center_step_spread) == 0.0 and off.sizes["optimum"] == 1
    skipped = manifold_capacity(a, by="digit", n_t=20, spread_optima=0)
    assert np.isnan(float(skipped.center_step_spread)) and skipped.sizes["optimum"] == 1
    assert skipped.attrs["spread_optima"] == 0


def test_spread_reads_the_kept_optimum_off_the_main_qps(block2):
    """The kept optimum's capacity on the first SPREAD_SAMPLES samples is read off the QPs of
    α itself (the same problems): solving them again, and each other optimum's on the same
    samples, gives the reported center_step_capacities (to the QP tolerance)."""
    _, points, labels = block2
    rng = np.random.default_rng(1)
    t = [rng.standard_normal((X.shape[1], 80)) for X in points]   # rank 44 (+1 center coord)
    res = mft_analysis(points, t_vectors=t, keys=labels)
    coords, T, _, _, _, alts = _prepare(points, 0.0, 80, 0, True, "rank", t, 32, labels,
                                        1e-12, SPREAD_ALTERNATIVES)
    assert len(alts) == len(res.center_step_capacities) - 1 >= 1
    first = [ti[:, :SPREAD_SAMPLES] for ti in T]

    def overall(cs):
        caps = _solve_and_measure(cs, first, 0.0, None, None, 1e-10, 64 * 2**20)[0]
        return 1.0 / np.mean(1.0 / caps)

    kept = overall(coords)
    alpha = res.center_step_capacities[0]
    expected = [alpha] + [alpha * overall(a) / kept for a in alts]
    assert np.allclose(res.center_step_capacities, expected, rtol=1e-8)


def test_cost_floor_is_reached_and_stops_the_optimizer():
    """½ Σ_μν cos²(residual centers) ≥ P²/(2d) with d = r − K dims left (frame potential); with
    d = 1 every residual is ± one direction, so the cost is P²/2 for every V and the optimizer
    stops at once, converged."""
    rng = np.random.default_rng(3)
    P, r = 7, 5
    X = rng.standard_normal((P, r))
    V0 = np.linalg.qr(rng.standard_normal((r, r - 1)))[0]
    V, f, n_iter, info = stiefel_minimize(V0, X, return_info=True)
    assert f == pytest.approx(P * P / 2, rel=1e-12)
    assert info["converged"] and n_iter == 1


def _grassmann_grad(Y, X, C, diagC):
    """The independent reference for the Hessian test: the Euclidean gradient of the cost at any full-rank basis Y (..., r, K) of the subspace.

    The cost depends on V only through the projector: cc ᵀ = XΠXᵀ with Π = Y G⁻¹ Yᵀ,
    G = YᵀY. With A = XY and B = A G⁻¹ Aᵀ the cost is ½ Σ (C − B)²/(c0 c0ᵀ), c0 = diag(C − B),
    and (as in :func:`_cost_and_grad`) dcost = ⟨E, dB⟩ with the symmetric
    E = −(C − B)/W + diag((C − B)²/W² · c0), W = c0 c0ᵀ. Differentiating B,
    ∂cost/∂Y = 2 Xᵀ E A G⁻¹ − 2 Y G⁻¹ AᵀEA G⁻¹. Written with analytic operations only (no abs,
    max or conjugation), so it extends to complex Y: the complex-step derivative
    Im ∇(Y + i h Δ)/h is the exact Hessian–vector product along Δ (Squire & Trapp 1998).
    """
    A = X @ Y                                                       # (..., P, K)
    Hinv = np.linalg.inv(np.swapaxes(Y, -1, -2) @ Y)
    AH = A @ Hinv
    B = AH @ np.swapaxes(A, -1, -2)
    c0 = diagC - np.einsum("...ii->...i", B)
    Ahat = C - B
    AW = Ahat / (c0[..., :, None] * c0[..., None, :])
    h = np.einsum("...ij,...j->...i", AW * AW, c0)
    EAH = -(AW @ AH) + h[..., None] * AH                            # E A G⁻¹
    return 2.0 * (X.T @ EAH) - 2.0 * (Y @ (np.swapaxes(AH, -1, -2) @ EAH))


def test_newton_hessian_is_the_derivative_of_the_gradient():
    """The analytic pullback Hessian of :func:`stiefel_newton` equals the complex-step
    derivative of the analytic gradient (exact to rounding), is symmetric, and the general
    gradient at an orthonormal V is the projected Euclidean one; central finite differences of
    the cost along the chart agree with the gradient."""
    rng = np.random.default_rng(0)
    P, r, K = 8, 7, 3
    X = rng.standard_normal((P, r))
    C, dC = X @ X.T, np.diag(X @ X.T).copy()
    V = np.linalg.qr(rng.standard_normal((2, r, K)))[0]
    Vp = np.linalg.qr(V, mode="complete")[0][:, :, K:]
    n = K * (r - K)
    D = np.einsum("rab,jbk->rjak", Vp, np.eye(n).reshape(n, r - K, K))
    H = _pullback_hessian(V, Vp, X, C, dC)
    h = 1e-30
    Hc = (np.swapaxes(Vp, 1, 2)[:, None] @ _grassmann_grad(V[:, None] + 1j * h * D, X, C, dC)
          ).imag.reshape(2, n, n) / h
    assert np.abs(H - Hc).max() <= 1e-11 * np.abs(Hc).max()
    assert np.abs(H - np.swapaxes(H, 1, 2)).max() <= 1e-11 * np.abs(H).max()
    f, g, _ = _cost_grad_ratio(V, X, C, dC)
    proj = g - V @ (np.swapaxes(V, 1, 2) @ g)
    assert np.abs(_grassmann_grad(V, X, C, dC) - proj).max() <= 1e-12 * np.abs(g).max()
    eps = 1e-6
    fd = np.stack([(_cost_grad_ratio(V + eps * D[:, j], X, C, dC)[0]
                    - _cost_grad_ratio(V - eps * D[:, j], X, C, dC)[0]) / (2 * eps)
                   for j in range(n)], axis=1)
    gz = (np.swapaxes(Vp, 1, 2) @ g).reshape(2, n)
    assert np.allclose(fd, gz, rtol=1e-6, atol=1e-6 * np.abs(gz).max())


def test_newton_reaches_the_optima_of_the_first_order_optimizer(block2):
    """From the same starts, Newton and Barzilai–Borwein (run to a tight gradient tolerance)
    reach the same stationary points where both converge, Newton in far fewer iterations."""
    _, points, _ = block2
    c = _centers(points)
    c = c - c.mean(axis=0)
    U, s, _ = np.linalg.svd(c, full_matrices=False)
    X = U[:, :9] * s[:9]
    V0 = np.linalg.qr(np.random.default_rng(1).standard_normal((16, 9, 1)))[0]
    Vb, fb, _, ib = stiefel_minimize(V0, X, max_iter=20000, gtol=1e-9, ftol=0.0,
                                     return_info=True)
    Vn, fn, itn, inn = stiefel_newton(V0, X, gtol=1e-9, ftol=0.0, return_info=True)
    both = ib["converged"] & inn["converged"]
    assert both.sum() >= 8 and itn <= 60
    same = [np.linalg.norm(Vb[i] @ Vb[i].T - Vn[i] @ Vn[i].T) < 1e-6 for i in np.flatnonzero(both)]
    assert np.mean(same) >= 0.75
    assert np.allclose(fb[both][same], fn[both][same], rtol=1e-12)
    # the lowest optimum reached is the same
    assert fn[~inn["degenerate"]].min() == pytest.approx(fb[~ib["degenerate"]].min(), rel=1e-10)


def test_center_subspace_newton_and_bb_keep_the_same_subspace(block2):
    """``method="auto"`` (Newton on 10 centers) keeps the same K and subspace as the
    first-order optimizer (``method="bb"``) on block2.pool."""
    _, points, _ = block2
    c = _centers(points)
    a = center_subspace(c, seed=0)
    b = center_subspace(c, seed=0, method="bb")
    assert a["K"] == b["K"] == 2
    # the same optimum (SAME_OPTIMUM; BB stops at gtol 1e-6·(1 + cost) and leaves ~1e-4 here)
    assert np.linalg.norm(a["V"] @ a["V"].T - b["V"] @ b["V"].T) < SAME_OPTIMUM
    assert a["costs"][1] == pytest.approx(b["costs"][1], rel=1e-8)
    with pytest.raises(Exception, match="method"):
        center_subspace(c, method="cg")
