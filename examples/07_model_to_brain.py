"""User story: how well does a model layer predict each neuron, how close is that to the data's
own reliability, and which eigenmodes of the model carry the error?

Synthetic "IT" responses (object manifolds with trial noise) and two synthetic model layers
(random ReLU features of the responses, one degraded by noise) are compared with Brain-Score's
protocol (ridge with alpha per neuroid, then PLS), ceiled by split-half consistency, and
explained spectrally (Canatar et al. 2023).

Run: python examples/07_model_to_brain.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import loaders
import neurogeom as ng


def main(out_dir: Path) -> dict:
    """Run the story; return the ceiling and each layer's scores (the tests assert them)."""
    out_dir = Path(out_dir)
    shape = dict(n_objects=8, n_images=16, n_neuroids=40, seed=0)
    neural = loaders.synthetic.object_manifolds(**shape, n_repetitions=4, noise=0.6)
    # The same population without trial noise (same seed, same stimuli): what a model could
    # know about the stimuli. The layers read it through random ReLU units, one with extra noise.
    clean = loaders.synthetic.object_manifolds(**shape, n_repetitions=1, noise=0.0)
    layers = {"good_layer": loaders.synthetic.random_features(clean, 150, noise=0.3, seed=1),
              "poor_layer": loaders.synthetic.random_features(clean, 150, noise=2.0, seed=2)}

    ceiling = ng.noise_ceiling(neural)
    # The ceiling is a reliability (a squared-correlation scale): a perfect model reaches
    # r = sqrt(ceiling), so r slightly above the ceiling itself is expected for good models.
    print(f"noise ceiling (split-half, Spearman-Brown): {float(ceiling['ceiling']):.3f}")
    numbers = {"ceiling": float(ceiling["ceiling"])}
    results = {"noise_ceiling": ceiling}
    for name, features in layers.items():
        ridge = ng.neural_predictivity(features, neural, regression="ridge")
        pls = ng.neural_predictivity(features, neural, regression="pls", n_components=25)
        print(f"{name}: ridge r = {float(ridge['score']):.3f} ± {float(ridge['error']):.3f}, "
              f"PLS r = {float(pls['score']):.3f}; ceiled (r^2/ceiling) = "
              f"{float(ridge['ceiled_score_r2_over_ceiling']):.3f}, ((r/ceiling)^2) = "
              f"{float(ridge['ceiled_score_r_over_ceiling_squared']):.3f}")
        spec = ng.spectral_decomposition(features, neural, n_trials=3)
        last = spec.sel(p=spec["p"].max())
        print(f"  spectral: power outside span {float(spec['power_outside_span']):.3f}; "
              f"E_g(p={int(last['p'])}) theory {float(last['theory_error']):.3f}, empirical "
              f"{float(last['empirical_error']):.3f}; R_em {float(last['error_mode_radius']):.3f}"
              f", D_em {float(last['error_mode_dimension']):.2f}")
        ng.io.to_netcdf(ridge, out_dir / f"{name}_predictivity.nc")
        ng.io.to_netcdf(spec, out_dir / f"{name}_spectral.nc")
        results.update({f"{name}_ridge": ridge, f"{name}_pls": pls, f"{name}_spectral": spec})
        numbers[name] = {
            "ridge_r": float(ridge["score"]), "pls_r": float(pls["score"]),
            "r2_over_ceiling": float(ridge["ceiled_score_r2_over_ceiling"]),
            "power_outside_span": float(spec["power_outside_span"]),
            "theory_error": float(last["theory_error"]),
            "empirical_error": float(last["empirical_error"]),
            "error_mode_radius": float(last["error_mode_radius"]),
            "error_mode_dimension": float(last["error_mode_dimension"])}
    print(f"results written to {out_dir}")
    # the pictures: one self-contained HTML page and each figure as a PNG file
    numbers["figures"] = [ng.report.html(results, out_dir / "report.html", title="Model to brain: predictivity, noise ceiling, error modes", dpi=60),
                          *ng.report.save_figures(results, out_dir, dpi=60)]
    print(f"report: {numbers['figures'][0]} and {len(numbers['figures']) - 1} PNG figures")
    return numbers


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
