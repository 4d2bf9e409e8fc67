"""Benchmark: latent-dimensionality sweep (NCE + RRR, d = 1…16) and cvPCA at the issue's sizes.

Claims (issue 7, tightened by issue 16): a full sweep d = 1…16 (NCE and RRR, one split) on
4,000 samples with 500 source and 1,000 target neurons in under 60 s on 2 CPU cores at the NCE's
default settings, every d trained at once as one stacked network (epochs and attributed time
per d are printed), RRR for all ranks from one decomposition; cvPCA on 2,000 stimuli × 10,000
neurons in under 20 s.

Baselines measured in the same run: the NCE sweep at the pre-issue-16 defaults, one d after
another (timed for --baseline-epochs epochs at --baseline-dims and EXTRAPOLATED: the full fit
takes tens of minutes); RRR refitted once per rank (what one decomposition avoids); cvPCA by the
direct method (SVD of each repeat's full stimuli × neurons matrix per shuffle).
Prints times, ratios and peak memory (tracemalloc for numpy/python allocations, ru_maxrss for
the process, which includes torch).

Run: python benchmarks/latent.py [--samples 4000 --sources 500 --targets 1000 --max-dim 16]
     [--stimuli 2000 --neurons 10000] [--skip-nce] [--skip-cvpca] [--device cuda] [--threads 1]
     [--blas-threads 1] [--baseline-dims 2 16] [--baseline-epochs 2] [--hidden 500 250 100]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import loaders  # noqa: E402
from neurogeom.latent import NeuralCrossEncoder, ReducedRankRegression, sample_sets  # noqa: E402
from neurogeom.latent.nce import NCEConvergenceWarning, fit_models  # noqa: E402
from neurogeom.latent.eigenspectrum import cvpca_spectrum  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep(args) -> None:
    n_neur = args.sources + args.targets
    a = loaders.synthetic.random_feature_latents(args.latent_d, n_neur, args.samples,
                                                 readout="relu", noise=args.noise, seed=0)
    x = np.asarray(a.values)
    rng = np.random.default_rng(0)
    perm = rng.permutation(n_neur)
    src, tgt = perm[:args.sources], perm[args.sources:]
    sets = sample_sets(args.samples, continuous=False, seed=1)
    parts = [(x[sets == k][:, src], x[sets == k][:, tgt]) for k in range(3)]
    (xt, yt), (xv, yv), (xs, ys) = parts
    dims = np.arange(1, args.max_dim + 1)
    print(f"sweep: {args.samples} samples (train {len(xt)}, validation {len(xv)}, test "
          f"{len(xs)}), {args.sources} sources -> {args.targets} targets, ReLU latents "
          f"d={args.latent_d}, noise {args.noise}; dims 1..{args.max_dim}")

    tracemalloc.start()
    t0 = time.perf_counter()
    model = ReducedRankRegression().fit(xt, yt, validation=(xv, yv))
    rrr_curve = model.score_ranks(xs, ys, dims)
    t_rrr = time.perf_counter() - t0
    rrr_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    t0 = time.perf_counter()
    refit = [ReducedRankRegression(rank=int(r)).fit(xt, yt, validation=(xv, yv)).score(xs, ys)
             for r in dims]
    t_refit = time.perf_counter() - t0
    assert np.allclose(refit, rrr_curve, atol=1e-8), "one-decomposition curve != refits"
    print(f"RRR all {len(dims)} ranks, one decomposition: {t_rrr:.2f} s; refit per rank "
          f"(baseline): {t_refit:.2f} s; speed-up x{t_refit / t_rrr:.1f}; "
          f"peak traced memory {rrr_peak:.0f} MiB")

    if args.skip_nce:
        return
    nce_params = {} if args.threads is None else {"n_threads": args.threads}
    for name in ("hidden", "max_epochs", "batch_size", "lr", "patience"):
        value = getattr(args, name)
        if value is not None:
            nce_params[name] = tuple(value) if name == "hidden" else value
    template = NeuralCrossEncoder(1, **nce_params)
    print(f"NCE settings: {describe(template)}")
    # the whole sweep as one stacked model; each epoch's time is shared among the d still
    # training, which gives the time attributed to each d
    share = np.zeros(len(dims))
    clock = {"last": None}

    def report(epoch, training, r2, done):
        now = time.perf_counter()
        for d in training:
            share[d - 1] += (now - clock["last"]) / len(training)
        clock["last"] = now
        if done:
            print(f"  epoch {epoch + 1:3d}: d={','.join(map(str, done))} stopped "
                  f"({now - t0:.1f} s so far; validation R2 "
                  f"{', '.join(f'{d}:{v:.4f}' for d, v in zip(training, r2) if d in done)})",
                  flush=True)

    models = [NeuralCrossEncoder(int(d), device=args.device, progress=False, **nce_params)
              for d in dims]
    t0, c0 = time.perf_counter(), time.process_time()
    clock["last"] = t0
    fit_models(models, xt, yt, validation=(xv, yv), report=report)
    t_nce, c_nce = time.perf_counter() - t0, time.process_time() - c0
    nce_curve = [m.score(xs, ys) for m in models]
    epochs = [m.n_epochs_ for m in models]
    print("  d   test R2  epochs  converged  p     time attributed (s)")
    for d, m, r, t in zip(dims, models, nce_curve, share):
        print(f"  {d:2d}  {r:.4f}  {m.n_epochs_:6d}  {str(m.converged_):9s}  {m.exponent_:.2f}  "
              f"{t:.2f}")
    total = t_nce + t_rrr
    best = max(max(nce_curve), rrr_curve.max())

    def dim_of(curve):
        hit = np.flatnonzero(np.asarray(curve) >= 0.95 * best)
        return int(dims[hit[0]]) if hit.size else f"none within 1..{dims[-1]}"
    print(f"RRR R2 by d: {np.round(rrr_curve, 4).tolist()}")
    print(f"NCE R2 by d: {np.round(nce_curve, 4).tolist()}")
    print(f"95% dimension: NCE {dim_of(nce_curve)}, RRR {dim_of(rrr_curve)} "
          f"(true latent d = {args.latent_d})")
    print(f"NCE sweep d = 1..{dims[-1]} (stacked): {t_nce:.1f} s wall, {c_nce:.1f} s CPU, "
          f"{np.sum(epochs)} model-epochs ({np.min(epochs)}..{np.max(epochs)} per d); with RRR "
          f"{total:.1f} s = {total / 60:.2f} x the 60 s target; peak RSS {peak_rss_mb():.0f} MiB")
    if args.baseline_dims:
        baseline(args, xt, yt, xv, yv, t_nce, c_nce, int(np.sum(epochs)))


def describe(model) -> str:
    keys = ("hidden", "batch_size", "lr", "lr_patience", "lr_factor", "patience", "tol",
            "max_epochs")
    return ", ".join(f"{k}={getattr(model, k)}" for k in keys)


# what a sweep cost before issue 16: one NeuralCrossEncoder per d at the defaults of then,
# trained d after d (Adam, no learning-rate schedule, stop after 20 epochs without a relative
# improvement of 1e-7)
OLD_DEFAULTS = dict(hidden=(500, 250, 100), max_epochs=300, lr=1e-3, batch_size=64,
                    patience=20, lr_patience=10 ** 9, lr_factor=1.0, tol=0.0)


def baseline(args, xt, yt, xv, yv, t_nce, c_nce, n_model_epochs) -> None:
    """Time the pre-issue-16 default fit for a few epochs at a few d and extrapolate."""
    per_epoch, cpu = [], []
    for d in args.baseline_dims:
        model = NeuralCrossEncoder(int(d), **{**OLD_DEFAULTS, "max_epochs": args.baseline_epochs},
                                   device=args.device, progress=False,
                                   n_threads=args.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NCEConvergenceWarning)
            model.fit(xt, yt, validation=(xv, yv))
        per_epoch.append((time.perf_counter() - t0) / model.n_epochs_)
        cpu.append((time.process_time() - c0) / model.n_epochs_)
        print(f"  old defaults d={d}: {per_epoch[-1]:.2f} s per epoch, {cpu[-1]:.2f} s CPU "
              f"(timed over {model.n_epochs_} epochs)")
    mean = float(np.mean(per_epoch))
    per_model_epoch = t_nce / n_model_epochs
    print(f"per model-epoch: stacked {per_model_epoch:.3f} s wall, {c_nce / n_model_epochs:.3f} "
          f"s CPU; old single fit {mean:.3f} s wall, {np.mean(cpu):.3f} s CPU (wall times on a "
          "shared machine vary between the two measurements; CPU times less so)")
    n_d = args.max_dim
    low = mean * n_d * (OLD_DEFAULTS["patience"] + 1)
    high = mean * n_d * OLD_DEFAULTS["max_epochs"]
    low_cpu = float(np.mean(cpu)) * n_d * (OLD_DEFAULTS["patience"] + 1)
    print(f"old default sweep d = 1..{n_d}, EXTRAPOLATED from {len(per_epoch)} d x "
          f"{args.baseline_epochs} epochs: {mean:.2f} s/epoch x {n_d} d x 21..300 epochs (its "
          f"patience + 1 .. its max_epochs) = {low:.0f}..{high:.0f} s; stacked sweep "
          f"{t_nce:.1f} s -> ratio x{low / t_nce:.0f} (if every old fit stopped as early as it "
          f"could) .. x{high / t_nce:.0f} (if they ran to max_epochs); in CPU time at least "
          f"x{low_cpu / c_nce:.1f}")


def direct_cvpca(r1, r2, n_shuffles, seed):
    """Baseline: SVD of each (swapped) repeat's full matrix, then project both repeats."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_shuffles):
        swap = np.zeros(len(r1), bool) if s == 0 else rng.random(len(r1)) < 0.5
        a = np.where(swap[:, None], r2, r1)
        b = np.where(swap[:, None], r1, r2)
        a = a - a.mean(0)
        b = b - b.mean(0)
        vt = np.linalg.svd(a, full_matrices=False)[2][: len(r1) - 1]
        out.append(np.sum((a @ vt.T) * (b @ vt.T), axis=0))
    return np.array(out)


def cvpca_bench(args) -> None:
    a = loaders.synthetic.power_law_responses(args.stimuli, args.neurons, alpha=1.0, noise=1.0,
                                              n_modes=args.stimuli, seed=0)
    rep = a["repetition"].values
    r1, r2 = a.values[rep == 0], a.values[rep == 1]
    del a
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    ours = cvpca_spectrum(r1, r2, n_shuffles=args.shuffles, seed=0)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    n_base = args.baseline_shuffles
    t0 = time.perf_counter()
    base = direct_cvpca(r1, r2, n_base, seed=0)
    t_base = (time.perf_counter() - t0) * args.shuffles / n_base
    assert np.allclose(ours[:n_base], base, rtol=1e-6, atol=1e-8 * np.abs(base).max())
    print(f"cvPCA {args.stimuli} stimuli x {args.neurons} neurons, {args.shuffles} shuffles: "
          f"{t_ours:.1f} s wall, {c_ours:.1f} s CPU ({t_ours / 20:.2f} x the 20 s target); "
          f"direct SVD baseline "
          f"{t_base:.1f} s (timed on {n_base} shuffle(s), scaled); speed-up "
          f"x{t_base / t_ours:.1f}; peak traced memory {peak:.0f} MiB (inputs "
          f"{2 * r1.nbytes / 2 ** 20:.0f} MiB); peak RSS {peak_rss_mb():.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=4000)
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--targets", type=int, default=1000)
    p.add_argument("--max-dim", type=int, default=16)
    p.add_argument("--latent-d", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.2)
    p.add_argument("--max-epochs", type=int, default=None, help="NCE option (default: its own)")
    p.add_argument("--patience", type=int, default=None, help="NCE option (default: its own)")
    p.add_argument("--batch-size", type=int, default=None, help="NCE option (default: its own)")
    p.add_argument("--lr", type=float, default=None, help="NCE option (default: its own)")
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="NCE encoder widths (default: its own)")
    p.add_argument("--baseline-dims", type=int, nargs="*", default=[2, 16],
                   help="d values at which the pre-issue-16 default fit is timed (none: skip)")
    p.add_argument("--baseline-epochs", type=int, default=2,
                   help="epochs timed per baseline d (the time per epoch is extrapolated)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-nce", action="store_true")
    p.add_argument("--stimuli", type=int, default=2000)
    p.add_argument("--neurons", type=int, default=10000)
    p.add_argument("--shuffles", type=int, default=5)
    p.add_argument("--baseline-shuffles", type=int, default=1)
    p.add_argument("--skip-cvpca", action="store_true")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="limit BLAS threads (threaded OpenBLAS spins badly on an oversubscribed "
                        "machine); default: the library's own setting")
    args = p.parse_args()
    from contextlib import nullcontext
    from threadpoolctl import threadpool_limits
    limit = nullcontext() if args.blas_threads is None else threadpool_limits(args.blas_threads)
    with limit:
        if not args.skip_cvpca:
            cvpca_bench(args)
        if not args.skip_sweep:
            sweep(args)


if __name__ == "__main__":
    main()
