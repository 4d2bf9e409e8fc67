"""User story: build an assembly, check it, average repeats, group into object manifolds, save it.

Run: python examples/01_assembly_basics.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import loaders
import neurogeom as ng


def main(out_dir: Path) -> dict:
    """Run the story; return its key numbers (the tests assert them)."""
    out_dir = Path(out_dir)
    responses = loaders.synthetic.object_manifolds(n_objects=4, n_images=10, n_neuroids=50,
                                                   n_repetitions=3, seed=1)
    ng.validate(responses)                                   # raises AssemblyError if broken
    mean = ng.average_repetitions(responses)                 # one row per image
    groups = ng.manifolds(mean, by="object_name")
    for label, points in groups:
        print(f"{label}: {points.shape[0]} images x {points.shape[1]} neurons")
    path = ng.io.to_netcdf(mean, out_dir / "mean_responses.nc")
    reopened = ng.io.open(path)
    print(f"saved {path}; reopened dims {dict(reopened.sizes)}")
    return {"presentations": responses.sizes["presentation"], "mean_dims": dict(mean.sizes),
            "manifold_shapes": {str(label): points.shape for label, points in groups},
            "round_trip_identical": bool(reopened.identical(mean))}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
