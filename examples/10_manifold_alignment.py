"""Manifold alignment: how a CNN orients digit-identity and position manifolds, layer by layer, and how that compares with a brain region.

User story: I have a trained network, an untrained one, and responses of a brain region to the
same images of digits at several positions. I want to see, layer by layer, how separable the
identity manifolds are (capacity, linear decoding), how the identity manifolds are aligned with
each other and with the position manifolds, how well each layer predicts the region, and whether
the region's manifold geometry agrees with the layer's — the figure of Kuoch et al. (CPAL 2024).

The "brain region" here is synthetic: a random linear mixture of the trained network's last
layer plus trial noise, two repetitions per image, so the right answer is known: the last layer
should predict it best and agree with its geometry.

Run: ``python examples/10_manifold_alignment.py [OUTDIR]``.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

import loaders
import neurogeom as ng


def synthetic_region(layer: xr.DataArray, n_neuroids: int, *, noise: float, seed: int = 0):
    """A random linear mixture of ``layer`` plus trial noise, two repetitions per image."""
    rng = np.random.default_rng(seed)
    x = np.asarray(layer.values, dtype=float)
    x = (x - x.mean(0)) / (x.std() + 1e-12)
    mixed = x @ rng.standard_normal((x.shape[1], n_neuroids)) / np.sqrt(x.shape[1])
    reps = [mixed + noise * rng.standard_normal(mixed.shape) for _ in range(2)]
    coords = {c: ("presentation", np.tile(np.asarray(layer[c].values), 2))
              for c in layer.coords if layer[c].dims == ("presentation",)}
    coords["repetition"] = ("presentation", np.repeat([0, 1], len(x)))
    coords["neuroid_id"] = ("neuroid", [f"IT/{i}" for i in range(n_neuroids)])
    coords["region"] = ("neuroid", ["IT"] * n_neuroids)
    return xr.DataArray(np.concatenate(reps), dims=("presentation", "neuroid"), coords=coords,
                        attrs={"source": "synthetic mixture of the trained fc layer",
                               "units": "a.u."}, name="IT")


def main(outdir, *, digits=(0, 1, 3, 7, 8), n_exemplars=4, n_t=100) -> dict:
    """Run the story; return the numbers it prints (the tests assert them)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    # 1. images: digits x exemplars x 4 positions (the corners of a 16 x 16 canvas)
    positions = [(0, 0), (8, 0), (0, 8), (8, 8)]
    images, meta = loaders.synthetic.translated_digits(digits=list(digits),
                                                       n_exemplars=n_exemplars,
                                                       positions=positions)
    layers = ["block1.pool", "block2.pool", "fc"]
    trained = loaders.model_activations(loaders.synthetic.digits_convnet(), images, layers,
                                        metadata=meta, progress=False)
    untrained = loaders.model_activations(loaders.synthetic.untrained_convnet(), images, layers,
                                          metadata=meta, progress=False)
    print(f"{len(images)} images: {len(digits)} digits x {n_exemplars} exemplars x "
          f"{len(positions)} positions")

    # 2. identity manifolds against position manifolds in the trained last layer
    cross = ng.manifold_alignment(trained["fc"], "object_name", other_by="position")
    within = {name: ng.manifold_alignment(net["fc"], "object_name")
              for name, net in (("trained", trained), ("untrained", untrained))}
    print(f"fc: identity vs position subspaces, mean cos^2 "
          f"{float(cross['subspace_alignment_mean']):.3f}; identity centers in position "
          f"subspaces {float(cross['center_axis_alignment_mean']):.3f}")
    for name, res in within.items():
        print(f"fc ({name}): identity centers mean |cos| "
              f"{float(res['center_alignment_mean']):.3f}, subspaces mean cos^2 "
              f"{float(res['subspace_alignment_mean']):.3f}")

    # 3. the layer profile of both networks against the region
    region = synthetic_region(trained["fc"], 40, noise=0.3)
    profile = ng.layer_profile(trained, {"IT": region}, "object_name", n_t=n_t,
                               n_permutations=200, predictivity_options={"n_splits": 5})
    baseline = ng.layer_profile(untrained, None, "object_name", analyses=("capacity", "decoding"),
                                n_t=n_t)
    print(f"{'layer':12s} {'capacity':>9s} {'decoding':>9s} {'untrained':>10s} "
          f"{'predicts IT':>12s} {'procrustes':>11s} {'p':>6s}")
    for layer in layers:
        row, base = profile.sel(layer=layer), baseline.sel(layer=layer)
        print(f"{layer:12s} {float(row['capacity']):9.3f} {float(row['decoding_accuracy']):9.3f} "
              f"{float(base['decoding_accuracy']):10.3f} "
              f"{float(row['predictivity'].sel(region='IT')):12.3f} "
              f"{float(row['procrustes_alignment'].sel(region='IT')):11.3f} "
              f"{float(row['procrustes_alignment_pvalue'].sel(region='IT')):6.3f}")
    path = ng.io.to_netcdf(profile, outdir / "layer_profile.nc")
    print(f"wrote {path.name}")

    def per_layer(ds, name, **sel):
        return {layer: float(ds[name].sel(layer=layer, **sel)) for layer in layers}

    numbers = {
        "images": len(images),
        "cross_subspace_alignment": float(cross["subspace_alignment_mean"]),
        "cross_dims": dict(cross.sizes),
        "capacity": per_layer(profile, "capacity"),
        "decoding": per_layer(profile, "decoding_accuracy"),
        "untrained_decoding": per_layer(baseline, "decoding_accuracy"),
        "untrained_capacity": per_layer(baseline, "capacity"),
        "chance": float(profile["chance"].sel(layer="fc")),
        "predictivity": per_layer(profile, "predictivity", region="IT"),
        "center_alignment_similarity": per_layer(profile, "center_alignment_similarity",
                                                 region="IT"),
        "procrustes_pvalue": per_layer(profile, "procrustes_alignment_pvalue", region="IT"),
        "saved": ng.io.open(path).identical(profile),
    }
    results = {"identity_vs_position_fc": cross, "identity_fc_trained": within["trained"],
               "identity_fc_untrained": within["untrained"], "layer_profile": profile,
               "layer_profile_untrained": baseline}
    # the pictures: one self-contained HTML page and each figure as a PNG file
    numbers["figures"] = [ng.report.html(results, outdir / "report.html", title="Manifold alignment and the layer profile", dpi=60),
                          *ng.report.save_figures(results, outdir, dpi=60)]
    print(f"report: {numbers['figures'][0]} and {len(numbers['figures']) - 1} PNG figures")
    return numbers


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="neurogeom-align-"))
