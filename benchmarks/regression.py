"""Benchmark: model-to-brain regression and spectral decomposition against sklearn baselines.

Workload (issue 6): 3200 stimuli x 10,000 model features -> 256 neuroids, 10 Brain-Score splits.

* ridge: ``neural_predictivity(regression="ridge")`` with 20 alphas chosen per neuroid (one Gram
  matrix for all splits) vs sklearn ``RidgeCV(alpha_per_target=True)`` fitted on each split;
  identical alphas and predictions are checked.
* PLS (25 components): ours on every split vs sklearn ``PLSRegression(scale=False)`` on ONE
  split (about 110 s per split); the per-split times are compared and the predictions on that
  split diffed.
* spectral: ``spectral_decomposition`` on the workload (default p grid, 5 trials).

Peak memory: tracemalloc peak of the allocations made by each phase (numpy reports its buffers
to tracemalloc), against the size of the feature matrix; plus the process ru_maxrss.

Run: python benchmarks/regression.py [--stimuli 3200 --features 10000 --neuroids 256]
     [--splits 10] [--sklearn-ridge-splits 10] [--sklearn-pls-splits 1] [--skip-sklearn-pls]
     [--threads N]
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
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import neurogeom as ng  # noqa: E402


def workload(n_stim, n_feat, n_neur, seed=0):
    """Features with a power-law spectrum; neurons read a random subspace of them plus noise."""
    rng = np.random.default_rng(seed)
    n_obj = max(2, n_stim // 50)
    objects = np.array([f"object_{i % n_obj:03d}" for i in range(n_stim)])
    stim = np.array([f"stim_{i:05d}" for i in range(n_stim)])
    X = rng.standard_normal((n_stim, n_feat))
    X *= (np.arange(1, n_feat + 1) ** -0.5)[None, :]
    B = rng.standard_normal((200, n_neur))
    Y = X[:, :200] @ B * 5 + rng.standard_normal((n_stim, n_neur)) + 10.0
    coords = {"stimulus_id": ("presentation", stim), "object_name": ("presentation", objects)}
    source = xr.DataArray(X, dims=("presentation", "neuroid"),
                          coords={**coords, "neuroid_id": ("neuroid",
                                                           [f"f{i}" for i in range(n_feat)])})
    target = xr.DataArray(Y, dims=("presentation", "neuroid"),
                          coords={**coords, "neuroid_id": ("neuroid",
                                                           [f"n{i}" for i in range(n_neur)])})
    return source, target


class Clock:
    """Wall-clock and process CPU seconds. With --threads 1 on a shared, oversubscribed
    machine the CPU time is what the same work takes on an idle core, so ratios are reported
    for both."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def __str__(self):
        return f"{self.wall:.1f} s wall / {self.cpu:.1f} s CPU"


def measured(fn):
    """Run ``fn``; return (result, Clock, tracemalloc peak in bytes)."""
    tracemalloc.start()
    with Clock() as clock:
        out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, clock, peak


def ratio(base: "Clock", ours: "Clock", scale: float = 1.0) -> str:
    return (f"{scale * base.wall / ours.wall:.1f}x wall, "
            f"{scale * base.cpu / ours.cpu:.1f}x CPU")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stimuli", type=int, default=3200)
    ap.add_argument("--features", type=int, default=10000)
    ap.add_argument("--neuroids", type=int, default=256)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--sklearn-ridge-splits", type=int, default=None,
                    help="splits sklearn RidgeCV runs (default: all); time is per split")
    ap.add_argument("--sklearn-pls-splits", type=int, default=1)
    ap.add_argument("--skip-sklearn-pls", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=["ridge", "pls", "spectral"])
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads for ours and the baselines alike (default: library "
                         "default). On an oversubscribed machine multithreaded LAPACK can be "
                         "100x slower, so --threads 1 gives fairer numbers there")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
        print(f"BLAS threads limited to {args.threads}")
    from sklearn.cross_decomposition import PLSRegression as SkPLS
    from sklearn.linear_model import RidgeCV

    source, target = workload(args.stimuli, args.features, args.neuroids)
    X, Y = source.values, target.values
    feature_bytes = X.nbytes
    alphas = np.logspace(-2, 7, 20)
    print(f"workload: {args.stimuli} stimuli x {args.features} features -> {args.neuroids} "
          f"neuroids, {args.splits} splits; feature matrix {feature_bytes / 2**20:.0f} MiB")
    print("(machine shared with other engineers: absolute times are noisy, ratios less so)")

    if "ridge" not in args.skip:
        ds, ours_s, peak = measured(lambda: ng.neural_predictivity(
            source, target, regression="ridge", alphas=alphas, n_splits=args.splits,
            keep_predictions=True))
        n_sk = args.sklearn_ridge_splits or args.splits
        sk, max_diff, same_alpha = Clock(), 0.0, True
        for s in range(n_sk):
            test = ds["is_test"].values[s].astype(bool)
            with sk:
                ref = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X[~test], Y[~test])
                pred = ref.predict(X[test])
            max_diff = max(max_diff, float(np.abs(pred - ds["prediction"].values[s][test]).max()))
            same_alpha &= bool(np.array_equal(ref.alpha_, ds["alpha"].values[s]))
        print(f"ridge (20 alphas per neuroid): ours {ours_s} for {args.splits} splits; "
              f"sklearn RidgeCV {sk} for {n_sk} split(s); speedup over {args.splits} splits "
              f"{ratio(sk, ours_s, args.splits / n_sk)}; identical alphas: {same_alpha}; max |pred diff| "
              f"{max_diff:.2e} (responses ~{np.abs(Y).mean():.0f}); peak "
              f"{peak / 2**20:.0f} MiB = {peak / feature_bytes:.2f}x features; score "
              f"{float(ds['score']):.4f}")

    if "pls" not in args.skip:
        # timed as users run it (keep_predictions=False, the default; storing every split's
        # predictions costs ~0.15 s), then once more, untimed, to diff predictions
        _, ours_s, peak = measured(lambda: ng.neural_predictivity(
            source, target, regression="pls", n_components=25, n_splits=args.splits))
        ds = ng.neural_predictivity(source, target, regression="pls", n_components=25,
                                    n_splits=args.splits, keep_predictions=True)
        line = (f"PLS (25 components): ours {ours_s} for {args.splits} splits (Gram "
                f"included); peak {peak / 2**20:.0f} MiB = "
                f"{peak / feature_bytes:.2f}x features")
        if not args.skip_sklearn_pls:
            sk, max_diff = Clock(), 0.0
            for s in range(args.sklearn_pls_splits):
                test = ds["is_test"].values[s].astype(bool)
                with sk, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ref = SkPLS(n_components=25, scale=False).fit(X[~test], Y[~test])
                    pred = ref.predict(X[test])
                max_diff = max(max_diff,
                               float(np.abs(pred - ds["prediction"].values[s][test]).max()))
            line += (f"; sklearn PLSRegression {sk} for {args.sklearn_pls_splits} split(s); "
                     f"speedup per split "
                     f"{ratio(sk, ours_s, args.splits / args.sklearn_pls_splits)}; max |pred "
                     f"diff| vs sklearn defaults (tol=1e-6, not converged) {max_diff:.2e} "
                     f"(response sd {Y.std():.1f})")
        print(line)
        # Same predictions where sklearn converges: a sub-problem small enough to iterate
        # sklearn's power method to round-off (tol is on the squared change of the weights).
        n_sub, p_sub = min(400, args.stimuli), min(1000, args.features)
        sub_s, sub_t = source.isel(presentation=slice(0, n_sub), neuroid=slice(0, p_sub)), \
            target.isel(presentation=slice(0, n_sub), neuroid=slice(0, min(32, args.neuroids)))
        sub = ng.neural_predictivity(sub_s, sub_t, regression="pls", n_components=25,
                                     n_splits=1, keep_predictions=True, stratify_by=None)
        test = sub["is_test"].values[0].astype(bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conv = SkPLS(n_components=25, scale=False, tol=1e-28, max_iter=100000).fit(
                sub_s.values[~test], sub_t.values[~test])
        diff = np.abs(conv.predict(sub_s.values[test]) - sub["prediction"].values[0][test]).max()
        print(f"PLS vs converged sklearn (tol=1e-28) on a {n_sub}x{p_sub} sub-problem: max |pred "
              f"diff| {diff:.2e} (sklearn needed up to {max(conv.n_iter_)} iterations/component)")

    if "spectral" not in args.skip:
        ds, ours_s, peak = measured(lambda: ng.spectral_decomposition(source, target))
        print(f"spectral decomposition (p = {ds['p'].values.min()}..{ds['p'].values.max()}, "
              f"{ds.sizes['p']} sizes x 5 trials): {ours_s} (target < 30 s); peak "
              f"{peak / 2**20:.0f} MiB = {peak / feature_bytes:.2f}x features; E_g theory vs "
              f"empirical at p={int(ds['p'][-1])}: {float(ds['theory_error'][-1]):.4f} / "
              f"{float(ds['empirical_error'][-1]):.4f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"process peak RSS {rss / 2**20:.0f} MiB = {rss / feature_bytes:.2f}x features "
          "(includes the workload itself, sklearn baselines and the interpreter)")


if __name__ == "__main__":
    main()
