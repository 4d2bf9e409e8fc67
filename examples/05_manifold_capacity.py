"""User story: how separable are object manifolds? Replica MFT capacity, radius and dimension.

Builds synthetic object responses with two manifold radii, measures their MFT capacity with
``neurogeom.manifold_capacity`` (grouping presentations by ``object_name``), prints the
per-object table, and saves the result as a self-describing netCDF file.

Run: python examples/05_manifold_capacity.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import loaders
import neurogeom as ng


def main(out_dir: Path) -> dict:
    """Run the story; return capacity, R_M and D_M per manifold radius (the tests assert them)."""
    out_dir = Path(out_dir)
    numbers, results = {}, {}
    for radius in (0.3, 1.0):
        responses = loaders.synthetic.object_manifolds(n_objects=8, n_images=20, n_neuroids=100,
                                                       n_repetitions=2, radius=radius,
                                                       dimension=5, seed=0)
        mean = ng.average_repetitions(responses)          # one point per image
        result = ng.manifold_capacity(mean, by="object_name", n_t=100, seed=0)
        print(f"radius {radius}: capacity {float(result.capacity_overall):.3f}, "
              f"R_M {float(result.radius_overall):.3f}, D_M {float(result.dimension_overall):.2f}, "
              f"center correlation {float(result.center_correlation):.3f} (K={int(result.K)})")
        path = ng.io.to_netcdf(result, out_dir / f"capacity_radius{radius}.nc")
        results[f"capacity_radius{radius}"] = result
        numbers[radius] = {name: float(result[f"{name}_overall"])
                           for name in ("capacity", "radius", "dimension")}
    print(result[["capacity", "radius", "dimension"]].to_dataframe().round(3))
    print(f"saved {path}")
    # the pictures: one self-contained HTML page and each figure as a PNG file
    numbers["figures"] = [ng.report.html(results, out_dir / "report.html", title="Manifold capacity against manifold radius", dpi=60),
                          *ng.report.save_figures(results, out_dir, dpi=60)]
    print(f"report: {numbers['figures'][0]} and {len(numbers['figures']) - 1} PNG figures")
    return numbers


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
