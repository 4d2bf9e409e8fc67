"""Benchmark: NWB file -> stimulus-locked spike counts, against pynapple and the read floor.

Claim (issue 3): on a generated file with 500 units and 20,000 presentations, our file-to-counts
path (``loaders.spike_responses``) is at least 2x faster than pynapple's path on the same file
(``nap.load_file`` + counting in each trial window) with identical counts, and takes at most 2x
the time of simply reading every unit's spike times from the file (the floor). Peak memory: one
copy of the spike times plus the output.

Every method runs in its own subprocess (so ``ru_maxrss`` is that method's peak) on a warm page
cache; the time is the best of ``--repeat`` runs, imports excluded. Peak memory is reported as
both the tracemalloc peak (Python + numpy allocations made by the method) and the process's
``ru_maxrss``. Floors: ``floor_pynwb`` opens the file with pynwb and reads each unit's spike
times through the units table (what "reading every unit's spike times" means for a pynwb user);
``floor_h5py`` reads the flat spike-time array and its index with bare h5py (the least any
reader can do). Ours counts units in up to ``loaders.nwb.counting.MAX_THREADS`` threads (as
many as the machine's CPUs); pass ``--threads 1`` to measure it on one.

Usage::

    python benchmarks/loaders.py                    # 500 units, 20,000 presentations
    python benchmarks/loaders.py --units 100 --presentations 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# this script is named like the package it measures: make `import loaders` find the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
WINDOW = (0.07, 0.17)


def method_ours(path):
    import loaders
    from loaders.nwb import counting

    if os.environ.get("NEUROGEOM_BENCH_THREADS"):
        counting.MAX_THREADS = int(os.environ["NEUROGEOM_BENCH_THREADS"])

    resp = loaders.spike_responses(path, "trials", "stimulus_presented", window=WINDOW,
                                   rate=False)
    return resp.values  # (presentation, unit), presentations in time order


def method_pynapple(path):
    import numpy as np
    import pynapple as nap

    data = nap.load_file(path)
    units = data["units"]
    trials = data["trials"]
    onsets = np.asarray(trials.start)
    windows = nap.IntervalSet(start=onsets + WINDOW[0], end=onsets + WINDOW[1])
    counts = units.count(ep=windows)  # no bin size: one count per interval
    return np.asarray(counts.values)


def method_floor_pynwb(path):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(path, "r") as io:
        units = io.read().units
        column = units["spike_times"]
        trains = [column[i] for i in range(len(units.id))]
    return sum(len(t) for t in trains)


def method_floor_h5py(path):
    import h5py

    with h5py.File(path, "r") as f:
        flat = f["units/spike_times"][()]
        index = f["units/spike_times_index"][()]
    return flat.size + index.size


METHODS = {"ours": method_ours, "pynapple": method_pynapple, "floor_pynwb": method_floor_pynwb,
           "floor_h5py": method_floor_h5py}


def run_one(name, path, repeat, out):
    """Child process: time one method (best of ``repeat``), then its tracemalloc peak."""
    import resource
    import tracemalloc

    import numpy as np

    fn = METHODS[name]
    fn(path)  # warm-up: imports, page cache, pynwb type map
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(path)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if isinstance(result, np.ndarray):
        np.save(out, result)
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"method": name, "seconds": min(times), "all_seconds": times,
                      "tracemalloc_peak_mb": peak / 2 ** 20, "maxrss_mb": maxrss_kb / 1024}))


def generate(path, n_units, n_presentations):
    """Write the benchmark file: a macaque RSVP session, 20 repetitions of each image."""
    from loaders.synthetic import write_macaque_rsvp

    n_reps = 20
    n_images = max(1, n_presentations // n_reps)
    n_objects = max(1, n_images // 20)
    t0 = time.perf_counter()
    truth = write_macaque_rsvp(path, n_objects=n_objects,
                               n_images_per_object=max(1, n_images // n_objects),
                               n_repetitions=n_reps, n_units=n_units, seed=0)
    n_spikes = sum(len(t) for t in truth.spike_times)
    print(f"generated {path.name}: {n_units} units, {truth.onsets.size} presentations, "
          f"{truth.extra['image_names'].size} images, {n_spikes:,} spikes "
          f"({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=500)
    p.add_argument("--presentations", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--file", help="reuse (or keep) the generated file at this path")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--threads", type=int, help="most threads our counting may use")
    p.add_argument("--generate", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        name, path, out = args.child
        run_one(name, path, args.repeat, out)
        return 0
    if args.generate:
        generate(Path(args.generate), args.units, args.presentations)
        return 0

    import numpy as np

    tmp = tempfile.TemporaryDirectory()
    path = Path(args.file) if args.file else Path(tmp.name) / "bench.nwb"
    try:
        import pynapple  # noqa: F401
    except ImportError:
        print("pynapple is not installed (pip install pynapple): its comparison is skipped")
        args.methods = [m for m in args.methods if m != "pynapple"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.threads:
        env["NEUROGEOM_BENCH_THREADS"] = str(args.threads)
    if not path.exists():
        # generate in a child too: Linux keeps ru_maxrss across exec, so a big parent would
        # inflate every child's peak
        proc = subprocess.run([sys.executable, __file__, "--units", str(args.units),
                               "--presentations", str(args.presentations),
                               "--generate", str(path)], env=env, text=True)
        if proc.returncode != 0:
            return 1
    results, arrays = {}, {}
    for name in args.methods:
        out = Path(tmp.name) / f"{name}.npy"
        proc = subprocess.run([sys.executable, __file__, "--repeat", str(args.repeat),
                               "--child", name, str(path), str(out)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{name} failed:\n{proc.stderr}")
            return 1
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        if out.exists():
            arrays[name] = np.load(out)

    print(f"\n{'method':<13}{'time (s)':>10}{'tracemalloc peak':>18}{'max RSS':>10}")
    for name, r in results.items():
        print(f"{name:<13}{r['seconds']:>10.3f}{r['tracemalloc_peak_mb']:>15.0f} MB"
              f"{r['maxrss_mb']:>7.0f} MB")
    if "ours" in results:
        ours = results["ours"]["seconds"]
        if "pynapple" in results:
            same = ("ours" in arrays and "pynapple" in arrays
                    and arrays["ours"].shape == arrays["pynapple"].shape
                    and np.array_equal(arrays["ours"], arrays["pynapple"]))
            print(f"\npynapple / ours   = {results['pynapple']['seconds'] / ours:6.2f}x   "
                  f"(claim: >= 2)   identical counts: {same}")
        for floor in ("floor_pynwb", "floor_h5py"):
            if floor in results:
                print(f"ours / {floor:<11}= {ours / results[floor]['seconds']:6.2f}x   "
                      "(claim vs the floor: <= 2)")
        if "ours" in arrays:
            out_mb = arrays["ours"].nbytes / 2 ** 20
            print(f"output array: {out_mb:.0f} MB; spike times: "
                  f"{os.path.getsize(path) / 2**20:.0f} MiB file")
    print("(timings on a shared 2-core machine; ratios are measured in the same run)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
