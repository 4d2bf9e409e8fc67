"""Benchmark: batched MFT capacity vs one-QP-per-sample baselines on the same samples.

Claim (issue 5): on the reference README workload (100 manifolds × 50 points × 5000 features,
n_t = 200) neurogeom's MFT is ≥ 50× faster than a per-QP baseline solver run here on the same t
vectors, with the same answers to 1e-6, and under 2 s end to end (center-correlation step
included); plus time versus the number of manifolds and of points per manifold, and peak memory.

Baselines (both solve exactly the same QPs as the batched solver, one Python-level call each,
which is the structure of the reference ``mftma`` that calls ``cvxopt.solvers.qp`` per sample):

* ``slsqp``: a generic QP solver per sample (``scipy.optimize.minimize(method="SLSQP")`` on the
  primal min ||v − t||² s.t. Sᵀv ≤ −κ with analytic gradients) — the closest available stand-in
  for the reference's cvxopt call. It is slow, so it runs on ``--baseline-manifolds`` manifolds
  and its time is scaled to all of them (stated in the output).
* ``cvxopt``: the reference's own solver, ``cvxopt.solvers.qp`` per sample on the primal (with
  tightened tolerances), when cvxopt is installed (``pip install '.[bench]'``); scaled like SLSQP.
* ``nnls``: the strongest per-sample baseline we know: the dual as an NNLS after one Cholesky
  factorization per manifold, ``scipy.optimize.nnls`` (compiled Lawson–Hanson) per sample, run
  on all manifolds.

``--dataset cnn`` (issue 15) measures real activations instead: the bundled digits CNN
(``loaders.synthetic.digits_convnet``) on translated digits (10 digits × 45 images: 5 exemplars
at 9 positions), one manifold per digit, per layer. ``manifold_capacity`` runs end to end at its
defaults (center-correlation step with restarts and its spread included) against a reference
pipeline run here in the same process, as ``mftma`` ``manifold_analysis_corr`` runs it: its
center step (``fun_FA``: for K = 1, 2, … 10 runs of pymanopt's ``ConjugateGradient`` on the
Stiefel manifold with an autograd cost, at pymanopt's default stopping rules, the "most stable"
run kept, K by its stopping rule; see :func:`reference_center_step_pymanopt`) followed by one
``cvxopt.solvers.qp`` per Gaussian sample on every manifold (no scaling). Fallbacks, labeled in
the output, when the ``bench`` extra is incomplete: our BB optimizer for the runs when pymanopt
or autograd is missing, per-QP compiled NNLS when cvxopt is (both faster than what they replace,
so the ratio is understated). It also times the QP
stage alone on the CNN manifolds, whose Gram matrices are ill-conditioned (L/μ ≈ 1e3–1e4), so
they take the ADMM + polish path of ``capacity/qp.py``, and prints where the time goes.

Run: python benchmarks/capacity.py [--quick] [--baseline-manifolds 5] [--skip-sweeps]
    python benchmarks/capacity.py --dataset cnn [--layers block2.pool avgpool]

``--analysis effective|correlated`` (issue 15) instead times ``effective_geometry`` or
``correlated_capacity`` (n_t = 200, 20 dichotomies, kappa 0 and 0.5) on Gaussian clouds of
8 manifolds x 60 points x 100 features and 100 x 50 x 500, against the solver path they had
before (the per-sample full-size active set, ``solver="active_set"`` with the BLAS threads it
ran with then, i.e. without the one-thread limit added with the screened solver), on the same
samples: see :func:`analysis_benchmark`.
The machine may be shared: compare ratios measured in the same run, not absolute times.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, nnls

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neurogeom.capacity.mft import (_manifold_measures, _prepare,  # noqa: E402
                                    _solve_and_measure, mft_analysis)


def readme_data(P, M, N, seed=0):
    """The reference README dataset when P, M, N = 100, 50, 5000 (np.random.seed(0))."""
    np.random.seed(seed)
    return [np.random.randn(N, M) for _ in range(P)]


def baseline_nnls(coords, T, kappa):
    """One scipy NNLS call per sample. Returns per-manifold (capacity, radius, dimension)."""
    out = []
    for X, Ti in zip(coords, T):
        S = np.vstack([X, np.ones((1, X.shape[1]))])
        L = np.linalg.cholesky(S.T @ S + 1e-12 * np.eye(S.shape[1]))
        lams = np.zeros((Ti.shape[1], X.shape[1]))
        for j, t in enumerate(Ti.T):
            if np.max(S.T @ t) + kappa < 0:
                continue  # interior: λ = 0
            lams[j] = nnls(L.T, np.linalg.solve(L, S.T @ t + kappa), maxiter=100 * X.shape[1])[0]
        out.append(_manifold_measures(X, Ti, lams, kappa)[:3])
    return np.array(out)


def baseline_slsqp(coords, T, kappa):
    """One generic QP call (SLSQP on the primal, as the reference does with cvxopt) per sample."""
    out = []
    for X, Ti in zip(coords, T):
        S = np.vstack([X, np.ones((1, X.shape[1]))])
        anchors_lam = np.zeros((Ti.shape[1], X.shape[1]))
        cons = {"type": "ineq", "fun": lambda v: -(S.T @ v + kappa), "jac": lambda v: -S.T}
        for j, t in enumerate(Ti.T):
            if np.max(S.T @ t) + kappa < 0:
                continue
            r = minimize(lambda v: 0.5 * np.sum((v - t) ** 2), t, jac=lambda v: v - t,
                         constraints=[cons], method="SLSQP",
                         options={"ftol": 1e-14, "maxiter": 500})
            # recover λ from t − v = Sλ on the active constraints (least squares, ≥ 0)
            lam, _ = nnls(S, t - r.x)
            anchors_lam[j] = lam
        out.append(_manifold_measures(X, Ti, anchors_lam, kappa)[:3])
    return np.array(out)


def baseline_cvxopt(coords, T, kappa):
    """One ``cvxopt.solvers.qp`` call per sample on the primal, as the reference ``mftma`` does.

    min ½ vᵀv − tᵀv  s.t.  Sᵀv ≤ −κ; the constraint duals are λ. Tolerances are tightened
    from cvxopt's defaults so its answers can be compared with ours to 1e-6.
    """
    import cvxopt
    from cvxopt import solvers

    solvers.options.update(show_progress=False, abstol=1e-11, reltol=1e-11, feastol=1e-11,
                           maxiters=200)
    out = []
    for X, Ti in zip(coords, T):
        S = np.vstack([X, np.ones((1, X.shape[1]))])
        P_ = cvxopt.matrix(np.eye(S.shape[0]))
        G_ = cvxopt.matrix(S.T.copy())
        h_ = cvxopt.matrix(-kappa * np.ones(S.shape[1]))
        lams = np.zeros((Ti.shape[1], X.shape[1]))
        for j, t in enumerate(Ti.T):
            if np.max(S.T @ t) + kappa < 0:
                continue  # interior: λ = 0
            sol = solvers.qp(P_, cvxopt.matrix(-t), G_, h_)
            lams[j] = np.maximum(np.array(sol["z"]).ravel(), 0.0)
        out.append(_manifold_measures(X, Ti, lams, kappa)[:3])
    return np.array(out)


CPU_TIMES = {}


def timed(fn, *args, **kwargs):
    """Wall time of one call; its CPU time (all threads of this process) goes to CPU_TIMES.

    On a shared, oversubscribed machine the CPU time is the better estimate of what the wall
    time would be on an idle one (this code runs BLAS single-threaded in its small-matrix parts).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    CPU_TIMES[getattr(fn, "__name__", "fn")] = time.process_time() - c0
    return out, time.perf_counter() - t0


def peak_memory(fn, *args, **kwargs):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


# --------------------------------------------------------------------------------------------
# --dataset cnn: real activations, end to end against a reference pipeline
# --------------------------------------------------------------------------------------------

def cnn_assemblies(layers):
    """The bundled digits CNN's activations on translated digits, one assembly per layer."""
    import loaders

    net = loaders.synthetic.digits_convnet()
    images, meta = loaders.synthetic.translated_digits(n_exemplars=5)
    return loaders.model_activations(net, images, list(layers), metadata=meta, progress=False)


def _reference_basis(centers):
    """mftma ``fun_FA``'s setup: mean-subtracted centers X (P × (P − 1)) in the basis of the
    thin QR of their transpose, that basis (N × (P − 1)), and maxK (its rule: the index where
    the cumulative center variance passes 95%, plus 11; capped here at P − 2, which the
    reference does not do: K = P − 1 would leave no dimension)."""
    P = centers.shape[0]
    Xb = centers - centers.mean(axis=0)
    Q, _ = np.linalg.qr(Xb.T)
    Q = Q[:, :P - 1]
    s = np.linalg.svd(Xb, compute_uv=False)
    total = np.cumsum(s ** 2) / np.sum(s ** 2)
    max_k = min(int(np.argmax(np.where(total < 0.95, total, 0))) + 11, P - 2)
    return Xb @ Q, Q, max_k


def _reference_k_loop(X, max_k, n_reps, optimize):
    """mftma ``fun_FA``'s loop over K: ``n_reps`` optimizations per K (``optimize(k)`` returns
    one orthonormal (P − 1) × k solution), the one with the largest "stability"
    min_μ ||residual center μ|| / ||center μ|| kept; the residual mean |cos| per K; stop after
    three consecutive increases (K > 4); K = the lowest residual. Returns (K, V per K)."""
    from neurogeom.capacity.centers import mean_abs_cosine

    norms = np.linalg.norm(X, axis=1)
    residuals, kept = [], []
    for k in range(1, max_k + 1):
        best, best_v = 0.0, None
        for _ in range(n_reps):
            V = optimize(k)
            stability = np.min(np.linalg.norm(X - X @ V @ V.T, axis=1) / norms)
            if stability > best:
                best, best_v = stability, V
        residuals.append(mean_abs_cosine(X - X @ best_v @ best_v.T))
        kept.append(best_v)
        if k > 4 and residuals[-1] > residuals[-2] > residuals[-3] > residuals[-4]:
            break
    return int(np.argmin(residuals)) + 1, kept


def reference_center_step_pymanopt(centers, n_reps=10, seed=0):
    """The reference's center step as ``mftma`` runs it (``fun_FA`` + ``CGmanopt``): for each
    K, ``n_reps`` runs of pymanopt's ``ConjugateGradient`` at its defaults (Hestenes–Stiefel,
    adaptive line search, ≤ 1000 iterations, gradient norm 1e-6, step 1e-10) on the Stiefel
    manifold (QR retraction), the cost written in ``autograd.numpy`` and differentiated by
    autograd. ``fun_FA`` builds a start [random mixture of centers, V kept at K − 1] and
    passes tolerances (gtol 1e-6, ftol 1e-8, 20000 iterations) to ``CGmanopt``, but
    ``CGmanopt`` ignores both (``solver.solve(problem)`` with no start and default options),
    so every run starts from pymanopt's random point; that is reproduced here. Randomness
    from ``np.random`` (seeded), as in the reference. Returns (V (N, K), optimizer iterations)."""
    import autograd.numpy as anp
    import pymanopt
    from pymanopt.manifolds import Stiefel
    from pymanopt.optimizers import ConjugateGradient

    np.random.seed(seed)
    X, basis, max_k = _reference_basis(centers)
    C = X @ X.T
    diag = np.diag(C)[:, None]
    problems, iterations = {}, [0]
    optimizer = ConjugateGradient(verbosity=0, log_verbosity=0)

    def optimize(k):
        if k not in problems:
            manifold = Stiefel(X.shape[1], k)

            @pymanopt.function.autograd(manifold)
            def cost(V):
                c = anp.dot(X, V)
                c0 = diag - anp.sum(c * c, axis=1, keepdims=True)
                return 0.5 * anp.sum((C - anp.dot(c, c.T)) ** 2 / anp.dot(c0, c0.T))

            problems[k] = pymanopt.Problem(manifold, cost)
        result = optimizer.run(problems[k])
        iterations[0] += result.iterations
        return np.asarray(result.point).reshape(X.shape[1], k)

    K, kept = _reference_k_loop(X, max_k, n_reps, optimize)
    return basis @ kept[K - 1], iterations[0]


def reference_center_step_ours(centers, n_reps=10, seed=0):
    """Fallback when pymanopt or autograd is missing: the same procedure
    (:func:`reference_center_step_pymanopt`) with each run done by our Riemannian
    Barzilai–Borwein optimizer (``stiefel_minimize``, gtol 1e-6, ftol 1e-8, ≤ 20000
    iterations) from a uniform random start. It is several times faster than pymanopt's
    conjugate gradient with autograd, so the reference's time is understated.
    Returns (V (N, K), optimizer iterations)."""
    from neurogeom.capacity.centers import stiefel_minimize

    rng = np.random.default_rng(seed)
    X, basis, max_k = _reference_basis(centers)
    iterations = [0]

    def optimize(k):
        V0 = np.linalg.qr(rng.standard_normal((X.shape[1], k)))[0]
        V, _, it = stiefel_minimize(V0, X, max_iter=20000, gtol=1e-6, ftol=1e-8)
        iterations[0] += it
        return V

    K, kept = _reference_k_loop(X, max_k, n_reps, optimize)
    return basis @ kept[K - 1], iterations[0]


def reference_tools():
    """Which center-step optimizer and per-sample QP solver the reference pipeline can use
    here: (center step function, its label, QP function, its label)."""
    try:
        import autograd  # noqa: F401
        import pymanopt  # noqa: F401
    except ImportError:
        center = (reference_center_step_ours,
                  "our BB optimizer (FALLBACK: pymanopt/autograd not installed; faster than "
                  "the reference's, so the ratio is understated)")
    else:
        center = (reference_center_step_pymanopt,
                  f"pymanopt {pymanopt.__version__} ConjugateGradient + autograd, as mftma")
    try:
        import cvxopt  # noqa: F401
    except ImportError:
        qp = (baseline_nnls, "per-QP compiled NNLS (FALLBACK: cvxopt not installed; the "
                             "reference's cvxopt.solvers.qp is slower, so the ratio is "
                             "understated)")
    else:
        qp = (baseline_cvxopt, "per-QP cvxopt.solvers.qp, as mftma")
    return (*center, *qp)


def reference_pipeline(points, n_t, seed=0):
    """mftma's ``manifold_analysis_corr`` steps: global centering, the center step
    (:func:`reference_tools`), projection and center normalization, its QR reduction, then one
    QP per sample (cvxopt as the reference, or the NNLS fallback). points: list of (N, M)
    arrays. Returns (α overall, K, times dict, center-step optimizer iterations)."""
    center_step, _, qp_solver, _ = reference_tools()
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    origin = np.mean(np.concatenate(points, axis=1), axis=1, keepdims=True)
    centers = np.stack([X.mean(axis=1) for X in points])
    V, n_iter = center_step(centers - origin.T, seed=seed)
    t1 = time.perf_counter()
    coords, T = [], []
    for X in points:
        Xr = X - origin
        Xr = Xr - V @ (V.T @ Xr)
        c = Xr.mean(axis=1, keepdims=True)
        S = (Xr - c) / np.linalg.norm(c)
        if S.shape[0] > S.shape[1]:
            Q, _ = np.linalg.qr(S)
            S = Q.T @ S
        coords.append(S)
        T.append(rng.standard_normal((S.shape[0] + 1, n_t)))
    caps = qp_solver(coords, T, 0.0)[:, 0]
    t2 = time.perf_counter()
    return (1.0 / np.mean(1.0 / caps), V.shape[1],
            {"center step": t1 - t0, "QPs": t2 - t1}, n_iter)


def ours_breakdown(points, keys, n_t):
    """Where ``mft_analysis`` spends its time at its defaults: the center step, the QP stage
    (first QP pass), the spread's QP passes (the others) and the rest (centering, Grams,
    reduction, measures). Returns (seconds per part, reduced coordinates, samples)."""
    import neurogeom.capacity.mft as mft_mod

    spent = {"center step": 0.0, "QP stage": 0.0, "spread QP passes": 0.0}
    orig_center, orig_solve = mft_mod.center_subspace, mft_mod._solve_and_measure
    kept = {}

    def timed_center(*a, **k):
        t = time.perf_counter()
        out = orig_center(*a, **k)
        spent["center step"] += time.perf_counter() - t
        return out

    def timed_solve(coords, T, *a, **kw):
        t = time.perf_counter()
        out = orig_solve(coords, T, *a, **kw)
        part = "QP stage" if not kept else "spread QP passes"
        kept.setdefault("coords", (coords, T))
        spent[part] += time.perf_counter() - t
        return out

    mft_mod.center_subspace, mft_mod._solve_and_measure = timed_center, timed_solve
    try:
        t = time.perf_counter()
        mft_mod.mft_analysis(points, 0.0, n_t, keys=keys)
        total = time.perf_counter() - t
    finally:
        mft_mod.center_subspace, mft_mod._solve_and_measure = orig_center, orig_solve
    spent["rest"] = total - sum(spent.values())
    return spent, *kept["coords"]


def main_cnn(args):
    import cProfile
    import io
    import pstats

    from neurogeom.capacity import manifold_capacity
    from neurogeom.capacity.qp import solve_nonneg_qp

    n_t = args.n_t
    acts = cnn_assemblies(args.layers)
    print(f"# MFT capacity on CNN activations: digits_convnet, translated digits, by digit, "
          f"n_t={n_t} (machine may be shared: ratios are measured in the same run)")
    _, center_label, qp_solver, qp_label = reference_tools()
    print(f"# reference pipeline: center step with {center_label}; QPs: {qp_label}")
    rows = []
    for layer in args.layers:
        a = acts[layer]
        labels = np.unique(a["digit"].values)
        points = [a.values[a["digit"].values == d].T.astype(np.float64) for d in labels]
        print(f"\n## {layer}: {len(points)} manifolds x {points[0].shape[1]} points x "
              f"{points[0].shape[0]} features")
        manifold_capacity(a, by="digit", n_t=5)   # warm up
        res, t_ours = timed(manifold_capacity, a, by="digit", n_t=n_t)
        c_ours = CPU_TIMES["manifold_capacity"]
        print(f"ours manifold_capacity (defaults): {t_ours:.3f} s wall, "
              f"{CPU_TIMES['manifold_capacity']:.3f} s CPU; alpha={float(res.capacity_overall):.4f}"
              f" K={int(res.K)} center_step_spread={float(res.center_step_spread):.3f}")
        spent, coords, T = ours_breakdown(points, list(labels), n_t)
        print("ours, where the time goes: " + ", ".join(f"{k} {v:.3f} s" for k, v in spent.items()))
        (alpha_ref, k_ref, ref_times, ref_iter), t_ref = timed(reference_pipeline, points, n_t)
        c_ref = CPU_TIMES["reference_pipeline"]
        print(f"reference pipeline: {t_ref:.2f} s wall, {c_ref:.2f} s CPU ("
              + ", ".join(f"{k} {v:.2f} s" for k, v in ref_times.items())
              + f"; {ref_iter} optimizer iterations); alpha={alpha_ref:.4f} K={k_ref}")
        # the QP stage alone on the same samples: ill-conditioned Grams -> ADMM + polish
        T = [T[i] for i in range(len(T))]
        G = np.stack([c.T @ c + 1.0 for c in coords])
        ev = np.linalg.eigvalsh(G)
        q = -np.stack([(c.T @ t[:-1] + t[-1]).T for c, t in zip(coords, T)])
        qp, t_qp = timed(solve_nonneg_qp, G, q, tol=1e-10)
        b = min(args.baseline_manifolds, len(coords))
        _, t_cv = timed(qp_solver, coords[:b], T[:b], 0.0)
        t_cv_all = t_cv * len(coords) / b
        singular = int(np.sum(ev[:, 0] <= 1e-12 * ev[:, -1]))
        cond = ev[:, -1] / np.maximum(ev[:, 0], 1e-300)
        regular = cond[ev[:, 0] > 1e-12 * ev[:, -1]]
        cond_text = (f"L/mu {regular.min():.0f}-{regular.max():.0f}" if regular.size else "")
        cond_text += f", {singular} singular G" if singular else ""
        print(f"QP stage alone ({q.shape[0] * q.shape[1]} QPs of {q.shape[2]} variables, "
              f"{cond_text}: "
              f"ADMM + polish): {t_qp:.3f} s, iterations median "
              f"{np.median(qp.iterations):.0f} / max {qp.iterations.max()}, polished "
              f"{qp.polished.mean():.0%}, max KKT {qp.kkt.max():.1e}; the reference's per-QP "
              f"{t_cv_all:.2f} s (scaled from {b} manifolds) -> {t_cv_all / t_qp:.0f}x")
        rows.append((layer, t_ours, t_ref, c_ours, c_ref, float(res.capacity_overall), alpha_ref,
                     t_qp, t_cv_all, int(res.K), k_ref, ref_times["center step"]))
        if args.profile and layer == args.layers[0]:
            prof = cProfile.Profile()
            prof.runcall(manifold_capacity, a, by="digit", n_t=n_t)
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(18)
            print("\n".join(out.getvalue().splitlines()[:40]))
    print(f"\nreference: center step {center_label}; QPs {qp_label}")
    print("| layer | ours end to end (wall / CPU) | reference pipeline (wall / CPU; its center "
          "step wall) | ratio wall / CPU | alpha (K) ours / ref | QP stage (ADMM + polish) | "
          "reference per-QP | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for layer, t_o, t_r, c_o, c_r, a_o, a_r, t_q, t_c, k_o, k_r, t_rc in rows:
        print(f"| {layer} | {t_o:.3f} / {c_o:.3f} s | {t_r:.2f} / {c_r:.2f} s; {t_rc:.2f} s | "
              f"{t_r / t_o:.1f}x / {c_r / c_o:.1f}x | {a_o:.4f} ({k_o}) / {a_r:.4f} ({k_r}) "
              f"| {t_q:.3f} s | {t_c:.2f} s | {t_c / t_q:.0f}x |")
    tracemalloc.start()
    manifold_capacity(acts[args.layers[0]], by="digit", n_t=n_t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\npeak traced memory of manifold_capacity ({args.layers[0]}): {peak / 2**20:.1f} MiB; "
          f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
def clouds_assembly(P, M, N, seed=0):
    """Gaussian clouds of relative radius 0.5 around Gaussian centers, as an assembly."""
    import xarray as xr
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((P, 1, N)) + 0.5 * rng.standard_normal((P, M, N))
    return xr.DataArray(pts.reshape(P * M, N), dims=("presentation", "neuroid"),
                        coords={"object_name": ("presentation", np.repeat(
                                    [f"m{i:03d}" for i in range(P)], M)),
                                "stimulus_id": ("presentation",
                                                [f"s{i}" for i in range(P * M)]),
                                "neuroid_id": ("neuroid", [f"n{i}" for i in range(N)])})


def analysis_benchmark(which, quick=False, cases=None, samples=4, skip_old=False, full=True):
    """Screened joint-QP solver (default) vs the previous per-sample active set, same samples.

    The old path is ``solver="active_set"`` run as it ran before issue 15: BLAS with its default
    threads (the one-thread limit is patched out for it) and the feasibility LP up front. It is
    slow, so on the small case it runs on ``base_dich`` dichotomies of the same seed and its
    time is scaled to all 20; on the large case it runs one dichotomy at two sample counts and
    its time is extrapolated as fixed + per-sample part (stated); the capacities are compared
    on the same samples (same t, so they agree to the solver tolerance). Ours is timed on all
    20 x 200 samples of the large case (``full``, the default); with ``full=False`` it is
    extrapolated like the old path from one dichotomy at ``samples`` and ``3 * samples``
    samples, which underestimates 2-6x (measured 2026-12-06: 11-30 s extrapolated vs 71.8 s in
    full for effective, kappa 0; the dichotomies differ in difficulty). ``skip_old`` leaves
    out the old path on the large case (minutes per sample there).
    """
    import contextlib

    import neurogeom.capacity.joint as joint
    from neurogeom.capacity.correlated import correlated_capacity
    from neurogeom.capacity.effective import effective_geometry
    fn = effective_geometry if which == "effective" else correlated_capacity
    if cases is None:
        cases = [(8, 60, 100, 200, 20, 4), (100, 50, 500, 200, 20, 1)]
        if quick:
            cases = [(8, 60, 100, 50, 4, 4)]
    print(f"# {fn.__name__}: screened solver vs the previous per-sample active set "
          "(machine may be shared: ratios are measured in the same run)")
    print("| P x M x N | kappa | samples | ours (s) | old (s) | ratio | ours peak (MiB) | "
          "max rel. diff (same dichotomies) |")
    print("|---|---|---|---|---|---|---|---|")
    fn(clouds_assembly(3, 4, 10), by="object_name", n_t=4, n_dichotomies=2)  # imports
    for P, M, N, n_t, n_dich, base_dich in cases:
        a = clouds_assembly(P, M, N)
        for kappa in (0.0, 0.5):
            kw = dict(by="object_name", n_t=n_t, kappa=kappa, seed=0)
            large = P > 8
            if large and full:
                ours, t_ours = timed(fn, a, n_dichotomies=n_dich, **kw)
                ours_note = (f" (full run; cpu {CPU_TIMES[fn.__name__]:.1f}; peak: of one "
                             "dichotomy)")
                peak = peak_memory(fn, a, n_dichotomies=1, **kw)
            elif large:
                # seconds per sample for ours too: one dichotomy at two sample counts, and the
                # time extrapolated as fixed part (whitening, Gram) + per-sample part
                k1, k2 = samples, 3 * samples
                (ours, t_a), c_a = timed(fn, a, n_dichotomies=1, **{**kw, "n_t": k1}), \
                    CPU_TIMES[fn.__name__]
                (_, t_b), c_b = timed(fn, a, n_dichotomies=1, **{**kw, "n_t": k2}), \
                    CPU_TIMES[fn.__name__]
                per = max(t_b - t_a, 0.0) / (k2 - k1)
                t_ours = max(t_a - k1 * per, 0.0) + n_dich * n_t * per
                cper = max(c_b - c_a, 0.0) / (k2 - k1)
                c_ours = max(c_a - k1 * cper, 0.0) + n_dich * n_t * cper
                ours_note = (f" (extrapolated, underestimates: run without --extrapolate; "
                             f"{max(t_a - k1 * per, 0.0):.1f} + {per * 1e3:.1f} ms/sample, "
                             f"from 1 x {k1}, {k2}; cpu {c_ours:.1f} = "
                             f"{max(c_a - k1 * cper, 0.0):.1f} + {cper * 1e3:.1f} ms/sample)")
                peak = peak_memory(fn, a, n_dichotomies=1, **{**kw, "n_t": k1})
            else:
                ours, t_ours = timed(fn, a, n_dichotomies=n_dich, **kw)
                ours_note = f" (cpu {CPU_TIMES[fn.__name__]:.2f})"
                peak = peak_memory(fn, a, n_dichotomies=n_dich, **kw)
            if large and skip_old:
                print(f"| {P} x {M} x {N} | {kappa} | {n_dich} x {n_t} | {t_ours:.2f}{ours_note}"
                      f" | (skipped) | | {peak / 2**20:.0f} | |", flush=True)
                continue
            saved = joint.single_threaded_blas
            joint.single_threaded_blas = contextlib.nullcontext
            try:
                # the large case: 2 and 4 samples of one dichotomy (the old path takes ~20 s to
                # minutes per sample there), extrapolated the same way
                counts = (2, 4) if large else (n_t,)
                runs = [timed(fn, a, n_dichotomies=1 if large else base_dich, solver="active_set",
                              **{**kw, "n_t": k}) for k in counts]
            finally:
                joint.single_threaded_blas = saved
            old = runs[-1][0]
            if large:
                per_old = max(runs[1][1] - runs[0][1], 0.0) / 2
                fixed_old = max(runs[0][1] - 2 * per_old, 0.0)
                t_old_all = fixed_old + n_dich * n_t * per_old
                old_note = f" ({fixed_old:.1f} + {per_old:.2f}/sample, from 1 x 2, 4)"
            else:
                t_old_all = runs[0][1] * n_dich / base_dich
                old_note = f" (scaled from {base_dich} x {n_t})"
            same = fn(a, n_dichotomies=1 if large else base_dich, **{**kw, "n_t": counts[-1]})
            diff = abs(float(same.capacity_overall) / float(old.capacity_overall) - 1)
            print(f"| {P} x {M} x {N} | {kappa} | {n_dich} x {n_t} | {t_ours:.2f}{ours_note} | "
                  f"{t_old_all:.1f}{old_note} | "
                  f"{t_old_all / t_ours:.1f}x | {peak / 2**20:.0f} | {diff:.1e} |", flush=True)
            del ours


def analysis_cnn(which, layers, base_dich=4):
    """``effective_geometry`` / ``correlated_capacity`` at their defaults (20 dichotomies x 200
    samples, kappa = 0: with a margin most dichotomies of these centered activations are not
    separable) on the bundled CNN's layers, one manifold per digit, against the previous
    per-sample active set (``solver="active_set"``, BLAS with its default threads) on
    ``base_dich`` of the same dichotomies, scaled to 20. Same t: same answers to the solver
    tolerance."""
    import contextlib

    import neurogeom.capacity.joint as joint
    from neurogeom.capacity.correlated import correlated_capacity
    from neurogeom.capacity.effective import effective_geometry
    fn = effective_geometry if which == "effective" else correlated_capacity
    print(f"# {fn.__name__} on the digits CNN's activations (10 digits x 45 images), defaults")
    print("| layer (features) | ours (s) | old path (s) | ratio | capacity ours / old |")
    print("|---|---|---|---|---|")
    for name, a in cnn_assemblies(layers).items():
        ours, t_ours = timed(fn, a, by="digit")
        cpu = CPU_TIMES[fn.__name__]
        saved = joint.single_threaded_blas
        joint.single_threaded_blas = contextlib.nullcontext
        try:
            old, t_old = timed(fn, a, by="digit", n_dichotomies=base_dich, solver="active_set")
        finally:
            joint.single_threaded_blas = saved
        same = fn(a, by="digit", n_dichotomies=base_dich)
        t_old_all = t_old * 20 / base_dich
        print(f"| {name} ({a.sizes['neuroid']}) | {t_ours:.2f} (cpu {cpu:.2f}) | "
              f"{t_old_all:.1f} (scaled from {base_dich} x 200) | {t_old_all / t_ours:.1f}x | "
              f"{float(ours.capacity_overall):.4f}; same dichotomies "
              f"{float(same.capacity_overall):.10f} / {float(old.capacity_overall):.10f} |",
              flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("readme", "cnn"), default="readme",
                    help="readme: Gaussian clouds of the reference README (default); cnn: the "
                         "bundled digits CNN's activations on translated digits")
    ap.add_argument("--layers", nargs="+", default=["block1.pool", "block2.pool", "avgpool"],
                    help="CNN layers for --dataset cnn")
    ap.add_argument("--profile", action="store_true", help="cProfile ours on the first layer")
    ap.add_argument("--manifolds", type=int, default=100)
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--features", type=int, default=5000)
    ap.add_argument("--n-t", type=int, default=200)
    ap.add_argument("--baseline-manifolds", type=int, default=3,
                    help="manifolds the slow SLSQP baseline runs on (time scaled to all)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    ap.add_argument("--skip-sweeps", action="store_true")
    ap.add_argument("--extrapolate", action="store_true",
                    help="--analysis, large case: time ours on one dichotomy at SAMPLES and "
                         "3 x SAMPLES samples and extrapolate to 20 x 200 (underestimates "
                         "2-6x: the dichotomies differ) instead of timing all 20 x 200 samples "
                         "(the default)")
    ap.add_argument("--samples", type=int, default=4,
                    help="--extrapolate: the sample counts (default 4)")
    ap.add_argument("--skip-old", action="store_true",
                    help="--analysis: leave out the old solver path on the large case")
    ap.add_argument("--case", choices=("small", "large", "both"), default="both",
                    help="--analysis: which case(s) to run")
    ap.add_argument("--analysis", choices=("effective", "correlated"),
                    help="time effective_geometry / correlated_capacity vs their old solver path "
                         "(with --dataset cnn: on the CNN's layers)")
    args = ap.parse_args(argv)
    if args.analysis and args.dataset == "cnn":
        return analysis_cnn(args.analysis, args.layers)
    if args.analysis:
        cases = {"small": [(8, 60, 100, 200, 20, 4)], "large": [(100, 50, 500, 200, 20, 1)],
                 "both": None}[args.case]
        return analysis_benchmark(args.analysis, args.quick, cases=cases,
                                  samples=args.samples, skip_old=args.skip_old,
                                  full=not args.extrapolate)
    if args.dataset == "cnn":
        if args.quick:
            args.layers = args.layers[-1:]
        return main_cnn(args)
    if args.quick:
        args.manifolds, args.points, args.features, args.n_t = 20, 20, 500, 50
        args.baseline_manifolds = 2
    P, M, N, n_t = args.manifolds, args.points, args.features, args.n_t
    print(f"# MFT capacity benchmark: P={P} manifolds x M={M} points x N={N} features, "
          f"n_t={n_t}")
    print("# (machine may be shared: ratios are measured in the same run)")
    data = readme_data(P, M, N)

    # --- end to end, ours -------------------------------------------------------------------
    for dim in ("reference", "rank"):
        mft_analysis(data[:3], n_t=5, dimension=dim)  # warm up imports / BLAS
        res, t_total = timed(mft_analysis, data, 0.0, n_t, dimension=dim)
        alpha = 1 / np.mean(1 / res.capacity)
        print(f"ours end-to-end dimension={dim!r}: {t_total:.3f} s wall, "
              f"{CPU_TIMES['mft_analysis']:.3f} s CPU  alpha={alpha:.4f} "
              f"R={res.radius.mean():.4f} D={res.dimension.mean():.3f} "
              f"rho_c={res.center_correlation:.4f} K={res.K}  max KKT={res.max_kkt.max():.1e}")
    res_nc, t_nc = timed(mft_analysis, data, 0.0, n_t, dimension="reference",
                         center_correlations=False)
    print(f"ours end-to-end without the center-correlation step: {t_nc:.3f} s wall, "
          f"{CPU_TIMES['mft_analysis']:.3f} s CPU")

    # --- the QP stage alone, ours vs per-QP baselines on the same t vectors -----------------
    (coords, T, *_), t_prep = timed(_prepare, data, 0.0, n_t, 0, True, "reference", None, 3,
                                    list(range(P)), 1e-12)
    T = [T[i] for i in range(len(T))]  # materialize the (lazily drawn) samples for the baselines
    print(f"shared preparation (centering, center correlations, reduction): {t_prep:.3f} s "
          f"wall, {CPU_TIMES['_prepare']:.3f} s CPU")
    ours_qp, t_ours_qp = timed(_solve_and_measure, coords, T, 0.0, "numpy", "cpu", 1e-10,
                               64 * 2**20)
    ours = np.stack(ours_qp[:3], 1)

    print(f"ours QP stage: {t_ours_qp:.3f} s wall, {CPU_TIMES['_solve_and_measure']:.3f} s CPU")
    base_nnls, t_nnls = timed(baseline_nnls, coords, T, 0.0)
    dev_nnls = np.max(np.abs(base_nnls - ours) / np.abs(ours))
    n_qp = P * n_t
    print(f"per-QP NNLS baseline ({n_qp} scipy.optimize.nnls calls): {t_nnls:.3f} s; "
          f"max relative difference in (alpha_M, R_M, D_M) = {dev_nnls:.1e}")

    b = min(args.baseline_manifolds, P)
    base_sl, t_sl = timed(baseline_slsqp, coords[:b], T[:b], 0.0)
    dev_sl = np.max(np.abs(base_sl - ours[:b]) / np.abs(ours[:b]))
    t_sl_all = t_sl * P / b
    print(f"per-QP SLSQP baseline on {b} manifolds ({b * n_t} calls): {t_sl:.3f} s -> "
          f"{t_sl_all:.1f} s scaled to {P} manifolds; max relative difference = {dev_sl:.1e}")

    try:
        import cvxopt  # noqa: F401  (the reference's own QP solver; `pip install .[bench]`)
    except ImportError:
        base_cv, t_cv_all = None, None
        print("per-QP cvxopt baseline: skipped (cvxopt not installed; pip install '.[bench]')")
    else:
        base_cv, t_cv = timed(baseline_cvxopt, coords[:b], T[:b], 0.0)
        dev_cv = np.max(np.abs(base_cv - ours[:b]) / np.abs(ours[:b]))
        t_cv_all = t_cv * P / b
        print(f"per-QP cvxopt baseline (the reference's solver) on {b} manifolds "
              f"({b * n_t} calls): {t_cv:.3f} s -> {t_cv_all:.1f} s scaled to {P} manifolds; "
              f"max relative difference = {dev_cv:.1e}")

    t_end = timed(mft_analysis, data, 0.0, n_t, dimension="reference")[1]
    print(f"ours end-to-end again: {t_end:.3f} s wall, {CPU_TIMES['mft_analysis']:.3f} s CPU")
    print("\n| comparison | ours | baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| QP stage vs per-QP NNLS (same t) | {t_ours_qp:.3f} s | {t_nnls:.3f} s | "
          f"{t_nnls / t_ours_qp:.1f}x |")
    print(f"| QP stage vs per-QP SLSQP (same t, scaled) | {t_ours_qp:.3f} s | {t_sl_all:.1f} s | "
          f"{t_sl_all / t_ours_qp:.0f}x |")
    print(f"| end to end vs prep + per-QP SLSQP | {t_end:.3f} s | {t_prep + t_sl_all:.1f} s | "
          f"{(t_prep + t_sl_all) / t_end:.0f}x |")
    print(f"| end to end vs prep + per-QP NNLS | {t_end:.3f} s | {t_prep + t_nnls:.2f} s | "
          f"{(t_prep + t_nnls) / t_end:.1f}x |")
    if t_cv_all is not None:
        print(f"| QP stage vs per-QP cvxopt, the reference's solver (same t, scaled) | "
              f"{t_ours_qp:.3f} s | {t_cv_all:.1f} s | {t_cv_all / t_ours_qp:.0f}x |")
        print(f"| end to end vs prep + per-QP cvxopt | {t_end:.3f} s | {t_prep + t_cv_all:.1f} s "
              f"| {(t_prep + t_cv_all) / t_end:.0f}x |")

    # --- memory -----------------------------------------------------------------------------
    data_bytes = sum(x.nbytes for x in data)
    peak = peak_memory(mft_analysis, data, 0.0, n_t, dimension="reference")
    print(f"\npeak traced memory during mft_analysis: {peak / 2**20:.1f} MiB "
          f"(data itself: {data_bytes / 2**20:.1f} MiB, not counted: allocated before)")
    print(f"process max RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")

    if args.skip_sweeps:
        return
    # --- scaling ---------------------------------------------------------------------------
    # The sweeps time the QP pipeline without the center-correlation step, whose cost depends on
    # how many K the reference's rule tries (it grows like P² per optimizer iteration) and is
    # timed separately for P ≤ 100.
    from neurogeom.capacity.centers import center_subspace
    Nsweep = 200 if not args.quick else 100
    print(f"\n# time vs number of manifolds (M=50 points, N={Nsweep} features, n_t={n_t}; "
          "center-correlation step timed separately)")
    print("| manifolds | MFT without center step (s) | per manifold (ms) | center step (s) | "
          "peak traced memory (MiB) |")
    print("|---|---|---|---|---|")
    for Ps in ((10, 100, 1000) if not args.quick else (10, 50)):
        d = readme_data(Ps, 50, Nsweep, seed=1)
        t = timed(mft_analysis, d, 0.0, n_t, center_correlations=False)[1]
        pk = peak_memory(mft_analysis, d, 0.0, n_t, center_correlations=False)
        if Ps <= 100:
            cen = np.stack([x.mean(axis=1) for x in d])
            (cs, tc) = timed(center_subspace, cen)
            tcs = f"{tc:.3f} (K={cs['K']}, tried {len(cs['residuals'])})"
        else:
            tcs = "not run"
        print(f"| {Ps} | {t:.3f} | {1000 * t / Ps:.2f} | {tcs} | {pk / 2**20:.1f} |")
    print(f"\n# time vs points per manifold (P=100, N=500, n_t={n_t}, no center step)")
    print("| points | time (s) | peak traced memory (MiB) |")
    print("|---|---|---|")
    for Ms in ((10, 50, 200) if not args.quick else (10, 30)):
        d = readme_data(100 if not args.quick else 20, Ms, 500, seed=2)
        t = timed(mft_analysis, d, 0.0, n_t, center_correlations=False)[1]
        pk = peak_memory(mft_analysis, d, 0.0, n_t, center_correlations=False)
        print(f"| {Ms} | {t:.3f} | {pk / 2**20:.1f} |")


if __name__ == "__main__":
    main()
