"""Benchmark: ``map_recordings`` on a 2-worker LocalCluster vs a serial loop over 8 recordings.

Claim (issue 13): 8 recordings, a real analysis (MFT capacity per region, on the
repetition-averaged responses), a 2-worker ``distributed.LocalCluster`` against a plain serial
loop of the same load + analysis in the same run: at least 1.7x the throughput on 2 cores; the
scheduler's overhead per task reported; the client process's peak memory (tracemalloc, which
numpy's buffers report to) below one recording's assembly.

The recordings are macaque RSVP sessions written by ``loaders.synthetic`` (two regions, V4 and
IT, threshold-crossing units, a trials table), loaded with the declarative spike loader.

Run: python benchmarks/parallel.py [--recordings 8] [--units 256] [--repetitions 10] [--n-t 200]
[--passes 3]
The machine may be shared: compare the ratio measured in the same run, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import loaders  # noqa: E402
import neurogeom as ng  # noqa: E402
from loaders.synthetic import nwb as syn  # noqa: E402

LOAD = loaders.from_spec({"kind": "spikes", "intervals": "trials",
                          "stimulus": "stimulus_presented", "window": (0.07, 0.17)})


class CapacityPerRegion:
    """MFT capacity of each region's units on the repetition-averaged responses, stacked along
    a ``region`` dim (picklable: a worker receives it by value)."""

    def __init__(self, n_t: int):
        self.n_t = n_t

    def __call__(self, a):
        mean = ng.average_repetitions(a)
        parts = []
        for region in sorted(set(mean["region"].values.tolist())):
            sub = mean.isel(neuroid=np.flatnonzero(mean["region"].values == region))
            res = ng.manifold_capacity(sub, by="object_name", n_t=self.n_t, seed=0)
            parts.append(res.expand_dims(region=[region]))
        out = xr.concat(parts, dim="region", combine_attrs="override")
        return out


def warm(path, n_t):
    """One load + analysis, run on every worker before timing (imports, first-call caches)."""
    CapacityPerRegion(n_t)(LOAD(path))


def _bare_job(paths, n_t):
    """The control: load + analyze ``paths`` in a plain process (1 BLAS thread); seconds."""
    from threadpoolctl import threadpool_limits

    warm(paths[0], n_t)
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        for path in paths:
            CapacityPerRegion(n_t)(LOAD(path))
    return time.perf_counter() - start


def bare_processes(paths, n_t, n_processes) -> float:
    """What the machine gives without Dask: the recordings split over ``n_processes`` plain
    processes (multiprocessing, spawn) vs all in one; the ratio of recordings per second, each
    process timed after its own warm-up. About ``n_processes`` on an idle machine; near 1 when
    other work already fills the cores, in which case no scheduler can do better."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        one = pool.apply(_bare_job, (paths, n_t))
    with ctx.Pool(n_processes) as pool:
        split = pool.starmap(_bare_job, [(paths[i::n_processes], n_t)
                                         for i in range(n_processes)])
    return one / max(split)


def noop(a):
    return xr.Dataset({"n": ((), a.sizes["neuroid"])}, attrs={"analysis": "noop"})


def write_sessions(folder: Path, n: int, units: int, repetitions: int) -> list[str]:
    return [syn.write_macaque_rsvp(folder / f"session_{i:02d}.nwb", n_objects=8,
                                   n_images_per_object=16, n_repetitions=repetitions,
                                   n_units=units, seed=100 + i).path for i in range(n)]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recordings", type=int, default=8)
    p.add_argument("--units", type=int, default=256, help="units per session (two regions)")
    p.add_argument("--repetitions", type=int, default=10, help="repeats of each of 128 images")
    p.add_argument("--n-t", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--noop-tasks", type=int, default=100)
    p.add_argument("--passes", type=int, default=3,
                   help="timed passes of each side over the batch; the median is reported")
    args = p.parse_args(argv)

    analysis = CapacityPerRegion(args.n_t)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_sessions(Path(tmp), args.recordings, args.units, args.repetitions)
        one = LOAD(paths[0])
        print(f"{args.recordings} sessions written in {time.perf_counter() - t0:.1f} s; one "
              f"assembly: {dict(one.sizes)}, {one.nbytes / 2**20:.2f} MiB")

        analysis(one)                                       # warm imports and caches
        from threadpoolctl import threadpool_limits

        def serial_pass():
            t0 = time.perf_counter()
            out = {Path(p).stem: analysis(LOAD(p)) for p in paths}
            return time.perf_counter() - t0, out

        # the cluster map_recordings(workers=N) starts
        with ng.parallel.local_cluster(args.workers) as client:
            # warm every worker (imports of neurogeom, loaders, pynwb; first-call caches), as
            # the first recordings of a long batch would
            client.run(warm, paths[0], args.n_t)
            # and a first pass over the batch (each worker's task thread, its allocator and
            # BLAS state), reported but not timed: a long batch amortizes it
            t0 = time.perf_counter()
            ng.map_recordings(paths, analysis, LOAD, client=client, progress=False)
            t_first = time.perf_counter() - t0
            # the passes alternate (serial, cluster, serial with one BLAS thread), so a
            # machine whose speed drifts (a shared VM) affects both sides alike
            serial_times, cluster_times, serial1_times = [], [], []
            for _ in range(args.passes):
                seconds, serial = serial_pass()      # the baseline: BLAS on every core
                serial_times.append(seconds)
                t0 = time.perf_counter()
                res = ng.map_recordings(paths, analysis, LOAD, client=client, progress=False)
                cluster_times.append(time.perf_counter() - t0)
                with threadpool_limits(limits=1):    # a worker's setting
                    serial1_times.append(serial_pass()[0])
            t_serial = float(np.median(serial_times))
            t_cluster = float(np.median(cluster_times))
            t_serial1 = float(np.median(serial1_times))
            ratios = [s / c for s, c in zip(serial_times, cluster_times)]
            # the client's peak in a second, untimed pass: tracemalloc hooks every allocation
            # of this process, the scheduler's included, and would slow the timed one
            tracemalloc.start()
            ng.map_recordings(paths, analysis, LOAD, client=client, progress=False)
            _, client_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()

            tiny = [loaders.synthetic.object_manifolds(n_objects=2, n_images=2, n_neuroids=8,
                                                       n_repetitions=1, seed=i)
                    for i in range(args.noop_tasks)]
            for i, a in enumerate(tiny):
                a.name = f"tiny_{i}"
            t0 = time.perf_counter()
            ng.map_recordings(tiny, noop, client=client, progress=False)
            t_noop = time.perf_counter() - t0

        ceiling = bare_processes(paths, args.n_t, args.workers)

        assert (res["status"] == "ok").all(), res["error"].values
        worst = 0.0
        for key, ref in serial.items():
            got = res["capacity_overall"].sel(recording=key).values
            worst = max(worst, float(np.max(np.abs(got - ref["capacity_overall"].values)
                                            / np.abs(ref["capacity_overall"].values))))
        task_seconds = float(res["seconds"].sum())
        overhead = (t_cluster * args.workers - task_seconds) / args.recordings

    ratio = t_serial / t_cluster
    print(f"median of {args.passes} passes over {args.recordings} recordings each")
    print(f"serial loop (this process, BLAS on {os.cpu_count()} cores): {t_serial:.2f} s "
          f"({args.recordings / t_serial:.2f} recordings/s)")
    print(f"LocalCluster, {args.workers} workers x 1 thread: {t_cluster:.2f} s "
          f"({args.recordings / t_cluster:.2f} recordings/s; first pass after start-up "
          f"{t_first:.2f} s)")
    print(f"serial loop with 1 BLAS thread (a worker's setting): {t_serial1:.2f} s")
    print(f"throughput ratio cluster / serial: {ratio:.2f}x (claim >= 1.7x on 2 cores; "
          f"per pass {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"cluster / serial with 1 BLAS thread: {t_serial1 / t_cluster:.2f}x; the serial "
          f"loop's own BLAS speedup from 1 to {os.cpu_count()} threads: "
          f"{t_serial1 / t_serial:.2f}x")
    print(f"control, no Dask: {args.workers} plain processes vs 1 on the same recordings: "
          f"{ceiling:.2f}x (the machine's parallel headroom now: ~{args.workers} when idle)")
    print(f"capacity per region, cluster vs serial: max relative difference {worst:.1e}")
    print(f"scheduler overhead per task: {1e3 * t_noop / args.noop_tasks:.1f} ms wall per "
          f"no-op task ({args.noop_tasks} tasks); in the real batch {1e3 * overhead:.0f} ms per "
          f"task of worker time not spent in tasks (sum of task times {task_seconds:.2f} s)")
    print(f"client peak (tracemalloc, scheduler included) {client_peak / 2**20:.2f} MiB vs one "
          f"assembly {one.nbytes / 2**20:.2f} MiB: "
          f"{'below' if client_peak < one.nbytes else 'ABOVE'}")
    return {"ratio": ratio, "first_pass": t_first, "bare_processes": ceiling, "ratio_1thread": t_serial1 / t_cluster, "client_peak": client_peak, "assembly_bytes": one.nbytes,
            "noop_ms": 1e3 * t_noop / args.noop_tasks, "max_rel_diff": worst}


if __name__ == "__main__":
    main()
