"""User story: build an assembly, check it, average repeats, group into object manifolds, save it.

Run: python examples/01_assembly_basics.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import loaders
import neurogeom as ng


def main(out_dir: Path) -> None:
    responses = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=50,
                                                   n_repetitions=3, seed=1)
    ng.validate(responses)                                   # raises AssemblyError if broken
    mean = ng.average_repetitions(responses)                 # one row per image
    for label, points in ng.manifolds(mean, by="object_name"):
        print(f"{label}: {points.shape[0]} images x {points.shape[1]} neurons")
    path = ng.io.to_netcdf(mean, out_dir / "mean_responses.nc")
    print(f"saved {path}; reopened dims {dict(ng.io.open(path).sizes)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
