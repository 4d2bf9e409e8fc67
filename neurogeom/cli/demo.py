"""``neurogeom demo``: the end-to-end run on synthetic data, with nothing to download.

Steps: write a realistic macaque RSVP session as NWB, inspect it, load stimulus-locked spike
responses, average repetitions, and measure the MFT capacity, radius and dimension of the object
manifolds in each brain area. Each step prints one block; result files go to ``--output``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on synthetic data",
                       description="Write a synthetic NWB session, load it, and run the "
                                   "analyses end to end on it; prints a summary of each step.")
    p.add_argument("-o", "--output", default=None,
                   help="folder for the demo's files (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--n-t", type=int, default=200,
                   help="Gaussian samples per manifold for MFT capacity (default 200)")
    p.set_defaults(func=run)


class _Steps:
    """Numbered, timed step headers so a user sees progress on the longer steps."""

    def __init__(self):
        self.n = 0
        self.t0 = time.perf_counter()

    def __call__(self, title: str) -> None:
        self.n += 1
        print(f"\n[{self.n}] {title}  (t = {time.perf_counter() - self.t0:.1f} s)", flush=True)


def run(args) -> int:
    import loaders

    from .. import assembly
    from ..capacity import manifold_capacity

    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="neurogeom-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    step = _Steps()
    print("neurogeom demo: a synthetic macaque V4/IT recording, from NWB file to geometry")

    step("write a DiCarlo-style RSVP session (NWB, pynwb)")
    nwb_path = out / "macaque_rsvp.nwb"
    loaders.synthetic.write_macaque_rsvp(nwb_path, n_objects=8, n_images_per_object=10,
                                         n_repetitions=4, n_units=96, radius=0.6,
                                         dimension=4, seed=args.seed)
    summary = loaders.nwb_summary(nwb_path)
    units = summary.get("units", {})
    print(f"  {nwb_path}")
    print(f"  units: {units.get('count')} in regions {units.get('regions')}")
    for name, table in summary.get("intervals", {}).items():
        print(f"  intervals {name!r}: {table.get('rows')} rows, columns "
              f"{', '.join(map(str, table.get('columns', [])))}")

    step("load spike responses 70-170 ms after each image onset")
    responses = loaders.spike_responses(nwb_path, intervals="trials",
                                        stimulus="stimulus_presented", window=(0.07, 0.17),
                                        exclude={"fixation_correct": False})
    print(f"  assembly {dict(responses.sizes)} in {responses.attrs['units']}")
    mean = assembly.average_repetitions(responses, ignore=["fixation_correct"])
    print(f"  averaged repetitions -> {dict(mean.sizes)} "
          f"({int(mean['n_repetitions'].min())}-{int(mean['n_repetitions'].max())} repeats per image)")
    assembly.to_netcdf(mean, out / "responses.nc")

    step(f"manifold capacity (replica MFT, n_t = {args.n_t}) of object manifolds per area")
    for region in sorted(set(mean["region"].values.tolist())):
        area = mean.isel(neuroid=mean["region"].values == region)
        result = manifold_capacity(area, by="object_name", n_t=args.n_t, seed=args.seed)
        assembly.to_netcdf(result, out / f"capacity_{region}.nc")
        print(f"  {region:>4}: {area.sizes['neuroid']} units, {result.sizes['manifold']} objects: "
              f"capacity {float(result.capacity_overall):.3f}, "
              f"radius {float(result.radius_overall):.2f}, "
              f"dimension {float(result.dimension_overall):.2f}, "
              f"center correlation {float(result.center_correlation):.3f}")

    print(f"\ndone in {time.perf_counter() - step.t0:.1f} s; files in {out}")
    return 0
