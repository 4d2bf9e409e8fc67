"""User story: the same capacity analysis over a folder of sessions, on Dask, resumable.

A lab has a folder of NWB sessions (here: synthetic macaque RSVP sessions, half recorded from
sites with compact object manifolds, half with wide ones, and one file cut short by a failed
copy). ``neurogeom.map_recordings`` loads and analyzes each session in its own Dask task,
writes each finished result to a store as it completes, and returns one Dataset with a
``recording`` dim: the broken file is a ``failed`` row with its error, the others are compared
side by side. Rerunning with ``resume=True`` recomputes nothing that finished.

The same from the command line::

    neurogeom batch "sessions/*.nwb" --load spikes --intervals trials \\
        --stimulus stimulus_presented --window 0.07 0.17 --analysis capacity --by object_name \\
        --average-repetitions --store store/ -o capacity.nc

Run: python examples/09_batch_sessions.py [OUTPUT_DIR] [--workers N]
"""

import functools
import sys
import tempfile
from pathlib import Path

import loaders
import neurogeom as ng
from loaders.synthetic import nwb as syn


def capacity_of_means(a, n_t=100):
    """MFT capacity of object manifolds on the repetition-averaged responses."""
    return ng.manifold_capacity(ng.average_repetitions(a), by="object_name", n_t=n_t, seed=0)


def main(out_dir: Path, n_sessions: int = 2, workers=None, n_units: int = 48) -> dict:
    """Run the story; return per-session status and capacity, and what resume recomputed."""
    out_dir = Path(out_dir)
    sessions = out_dir / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    radius = {}
    for i in range(n_sessions):
        r = 0.3 if i % 2 == 0 else 1.5                    # compact / wide object manifolds
        name = f"site{i}_{'compact' if r < 1 else 'wide'}"
        # a pair of sites per seed: the same tuning directions, only the radius differs; a gain
        # of 30 spikes/s lifts the object signal well above the Poisson noise of 3 repeats
        syn.write_macaque_rsvp(sessions / f"{name}.nwb", n_objects=6, n_images_per_object=8,
                               n_repetitions=3, n_units=n_units, radius=r, gain=30.0,
                               seed=i // 2)
        radius[name] = r
    broken = sessions / "site9_copy_failed.nwb"
    broken.write_bytes((sessions / f"{name}.nwb").read_bytes()[:4096])

    load = loaders.from_spec({"kind": "spikes", "intervals": "trials",
                              "stimulus": "stimulus_presented", "window": (0.07, 0.17)})
    analysis = functools.partial(capacity_of_means, n_t=100)
    store = out_dir / "store"
    result = ng.map_recordings(str(sessions / "*.nwb"), analysis, load, workers=workers,
                               store=store)
    for key in result["recording"].values:
        row = result.sel(recording=key)
        what = (f"capacity {float(row['capacity_overall']):.3f}, R_M "
                f"{float(row['radius_overall']):.3f}, {int(row['n_units'])} units"
                if row["status"] == "ok" else str(row["error"].values))
        print(f"{key:<22} {str(row['status'].values):<6} {float(row['seconds']):6.2f} s  {what}")
    ok = result.where(result["status"] == "ok", drop=True)
    compact = [k for k in ok["recording"].values if radius[str(k)] < 1]
    wide = [k for k in ok["recording"].values if radius[str(k)] >= 1]
    print(f"mean capacity: compact sites {float(ok['capacity_overall'].sel(recording=compact).mean()):.3f}, "
          f"wide sites {float(ok['capacity_overall'].sel(recording=wide).mean()):.3f}")

    calls = []                                  # resume: nothing that finished runs again

    def counting(a):
        calls.append(a.attrs["session"] if "session" in a.attrs else "?")
        return capacity_of_means(a)

    again = ng.map_recordings(str(sessions / "*.nwb"), counting, load, store=store,
                              resume=True, progress=False)
    print(f"resume: {again.attrs['resumed']} sessions read from {store}, {len(calls)} "
          "analyses ran again (the broken file is retried and fails in its load)")
    print(f"saved {store / 'map_recordings.nc'}")
    numbers = {"status": {str(k): str(v) for k, v in zip(result["recording"].values,
                                                     result["status"].values)},
            "error": str(result["error"].sel(recording="site9_copy_failed").values),
            "capacity": {str(k): float(v) for k, v in zip(ok["recording"].values,
                                                         ok["capacity_overall"].values)},
            "radius": radius, "resumed": int(again.attrs["resumed"]),
            "recomputed": len(calls),
            "same_after_resume": bool(again["capacity_overall"].equals(
                result["capacity_overall"]))}
    results = {"sessions": result}
    # the pictures: one self-contained HTML page and each figure as a PNG file
    numbers["figures"] = [ng.report.html(results, out_dir / "report.html", title="Capacity per session (map_recordings)", dpi=60),
                          *ng.report.save_figures(results, out_dir, dpi=60)]
    print(f"report: {numbers['figures'][0]} and {len(numbers['figures']) - 1} PNG figures")
    return numbers


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    workers = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else None
    if workers is not None:
        args = [a for a in args if a != str(workers)]
    main(Path(args[0]) if args else Path(tempfile.mkdtemp()), n_sessions=4, workers=workers)
