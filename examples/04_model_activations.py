"""Model activations as assemblies: extract layers of a small trained CNN, save them, hand them to Brain-Score.

User story: I have a torch model and a stimulus set with object identity and position. I want
each layer's responses as labeled assemblies, to check how object identity becomes readable
across positions layer by layer, to save the features, and to exchange them with Brain-Score.

Run: ``python examples/04_model_activations.py [OUTDIR]``.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import loaders
from neurogeom import assembly as asm


def cross_position_decoding(a):
    """Train a linear object decoder on the corner positions, test it on the centre ones."""
    x = np.asarray(a.values)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    y = a["object_name"].values
    corner = (a["position_x"].values != 4) & (a["position_y"].values != 4)
    clf = LogisticRegression(max_iter=500).fit(x[corner], y[corner])
    return clf.score(x[~corner], y[~corner])


def main(outdir) -> dict:
    """Run the story; return accuracy, decoding per layer and what the files held (tests assert)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    # 1. a CNN trained in seconds on sklearn's digits (cached after the first run) and a
    #    held-out image set: 10 digits x 4 handwritten exemplars x 9 positions
    net, accuracy = loaders.synthetic.digits_convnet(return_accuracy=True)
    images, meta = loaders.synthetic.translated_digits(n_exemplars=4)
    print(f"digits_convnet held-out accuracy {accuracy:.2f}; {len(images)} images "
          f"{images.shape[1:]}; layers: {loaders.layer_names(net)}")

    # 2. one assembly per layer, metadata columns as presentation coords
    layers = ["block1.pool", "block2.pool", "fc"]
    acts = loaders.model_activations(net, images, layers, metadata=meta, progress=False)
    untrained = loaders.model_activations(loaders.synthetic.untrained_convnet(), images, layers,
                                          metadata=meta, progress=False)
    print(f"{'layer':12s} {'units':>6s} {'object decoding across positions':>34s}")
    decoding = {}
    for name in layers:
        a = acts[name]
        decoding[name] = (cross_position_decoding(a), cross_position_decoding(untrained[name]))
        print(f"{name:12s} {a.sizes['neuroid']:6d} {decoding[name][0]:20.2f} trained"
              f" / {decoding[name][1]:.2f} untrained")

    # 3. a separate stimulus set fits the PCA used to reduce the benchmark set (Brain-Score style)
    fit_images, _ = loaders.synthetic.translated_digits(n_exemplars=4, seed=1)
    pcas = loaders.fit_pca(net, fit_images, ["block2.pool"], n_components=20, progress=False)
    reduced = loaders.model_activations(net, images, "block2.pool", metadata=meta,
                                        reduce=pcas, progress=False)["block2.pool"]
    print(f"block2.pool reduced by PCA: {reduced.sizes['neuroid']} components")

    # 4. a layer bigger than the memory budget streams to zarr and comes back dask-backed
    spilled = loaders.model_activations(net, images, "block1.conv", metadata=meta,
                                        memory_budget=1_000_000, spill_dir=outdir / "spill",
                                        progress=False)["block1.conv"]
    print(f"block1.conv: {spilled.nbytes / 1e6:.1f} MB, spilled={spilled.attrs['spilled']}, "
          f"backed by {type(spilled.data).__module__}")

    # 5. save, read back, and exchange with Brain-Score
    path = loaders.write_features(acts["block2.pool"], outdir / "block2_pool.h5")
    back = loaders.read_features(path)
    assert back.identical(acts["block2.pool"])
    bs_path = loaders.to_brainscore(acts["fc"], outdir / "fc_brainscore.nc",
                                    stimulus_set_identifier="neurogeom.translated_digits")
    from_bs = loaders.from_brainscore(bs_path)
    assert from_bs.identical(acts["fc"].assign_attrs(
        stimulus_set_identifier="neurogeom.translated_digits"))
    features, neural_like = asm.align(acts["fc"], from_bs)
    print(f"wrote {path.name} and {bs_path.name}; both read back identical "
          f"({features.sizes['presentation']} aligned presentations)")
    return {"accuracy": accuracy, "images": len(images), "decoding": decoding,
            "pca_components": reduced.sizes["neuroid"], "spilled": bool(spilled.attrs["spilled"]),
            "spilled_backend": type(spilled.data).__module__,
            "aligned_presentations": features.sizes["presentation"]}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="neurogeom-example-"))
