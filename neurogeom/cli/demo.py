"""``neurogeom demo``: the end-to-end run on synthetic data, with nothing to download."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on synthetic data",
                       description="Build a synthetic recording, validate it, average "
                                   "repetitions and print a summary.")
    p.add_argument("-o", "--output", default=None,
                   help="folder for the demo's result files (default: none written)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from loaders import synthetic

    from .. import assembly

    t0 = time.perf_counter()
    raw = synthetic.object_manifolds(n_objects=8, n_images=20, n_neuroids=100,
                                     n_repetitions=4, seed=args.seed)
    assembly.validate(raw)
    avg = assembly.average_repetitions(raw)
    groups = assembly.manifolds(avg, by="object_name")
    print("neurogeom demo: synthetic IT-like recording")
    print(f"  raw assembly        {dict(raw.sizes)}  ({raw.attrs['units']})")
    print(f"  repetitions         {int(raw['repetition'].max()) + 1} per image, averaged -> "
          f"{dict(avg.sizes)}")
    sizes = sorted({len(points) for _, points in groups})
    print(f"  object manifolds    {len(groups)} by 'object_name', {sizes} points each")
    spread = np.mean([np.linalg.norm(p - p.mean(0), axis=1).mean() for _, p in groups])
    print(f"  mean within-object distance to center: {spread:.2f} {raw.attrs['units']}")
    if args.output:
        out = Path(args.output)
        path = assembly.to_netcdf(avg, out / "responses.nc")
        print(f"  wrote {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0
