"""User story: how many latent variables drive a population? cvPCA, power law and the NCE vs RRR.

A population of 300 neurons reads out a 2-d latent (a point on a circle) through ReLUs. Its
eigenspectrum decays slowly, so linear methods see many dimensions; the Neural Cross-Encoder,
whose one-layer nonlinear decoder matches the readout, finds the 2 that generate it.

Run: python examples/08_latent_dimensionality.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

from threadpoolctl import threadpool_limits

import loaders
import neurogeom as ng


def main(out_dir: Path) -> dict:
    """Run the story; return its dimension estimates (the tests assert them)."""
    out_dir = Path(out_dir)
    with threadpool_limits(1):   # small decompositions run faster single-threaded
        return _story(out_dir)


def _story(out_dir: Path) -> dict:
    # the ring model: a step readout of one angle; PR = 3 although the latent is 2-d
    ring = loaders.synthetic.ring_model(n_neuroids=200, n_samples=5000, seed=0)
    ring_pr = ng.participation_ratio(ring)
    print(f"ring model participation ratio: {ring_pr:.2f} (theory 3)")

    # two noisy repeats of 1,000 stimuli: cvPCA removes the noise floor from the spectrum
    responses = loaders.synthetic.random_feature_latents(2, n_neuroids=300, n_stimuli=1000,
                                                         noise=0.3, n_repetitions=2, seed=0)
    spectrum = ng.cvpca(responses)
    cumulative = spectrum["cv_variance_normalized"].cumsum("mode").values
    linear_dims = int((cumulative < 0.95).sum()) + 1
    print(f"cvPCA: {linear_dims} linear dimensions hold 95% of the stimulus-related variance "
          f"(participation ratio {ng.participation_ratio(spectrum):.1f})")

    # NCE vs ridge RRR, crossing the two repeats; a small encoder keeps this example fast
    result = ng.latent_dimensionality(
        responses, dims=range(1, 7), n_splits=1,
        nce_params=dict(hidden=(100,), lr=1e-2, batch_size=32, max_epochs=40, patience=8,
                        n_threads=1))
    dimensions = {}
    for method in result.method.values:
        r2 = result["r2"].sel({"method": method}).values[:, 0]
        dimensions[str(method)] = dim = float(result["dimension"].sel({"method": method})[0])
        print(f"{method}: test R2 by d = {[round(float(v), 3) for v in r2]} -> "
              f"95% dimension {dim:g}")
    path = ng.io.to_netcdf(result, out_dir / "latent_dimensionality.nc")
    print(f"saved {path}")
    numbers = {"ring_participation_ratio": float(ring_pr), "cvpca_dimension": linear_dims,
               **{f"{method}_dimension": dim for method, dim in dimensions.items()}}
    results = {"cvpca": spectrum, "latent_dimensionality": result}
    # the pictures: one self-contained HTML page and each figure as a PNG file
    numbers["figures"] = [ng.report.html(results, out_dir / "report.html", title="Latent dimensionality: cvPCA, ridge RRR and NCE", dpi=60),
                          *ng.report.save_figures(results, out_dir, dpi=60)]
    print(f"report: {numbers['figures'][0]} and {len(numbers['figures']) - 1} PNG figures")
    return numbers


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
