"""Geometry of model representations: an MMCR-trained CNN vs the same net untrained vs supervised.

User story: I train a small CNN with the maximum-manifold-capacity objective (MMCR; Yerxa et al.
2023) on handwritten digits, without labels, and compare it with the same network untrained and
trained with labels. For each network I want the linear-probe accuracy, the MFT capacity of
augmentation manifolds (the views of one image), of translation manifolds (one image at
several positions; Ligeralde et al. 2023) and of class manifolds (all images of one digit)
layer by layer, and the radius and dimension of adversarial manifolds (PGD perturbations of
one image; Dapello et al. 2021) per layer. The numbers go to a netCDF file, the figures
(one line per network along the layers, drawn by ``neurogeom.report``) to ``report.html`` and
PNG files.

Run: ``python examples/11_model_geometry.py [OUTDIR]`` (a few minutes on one core; the tests
run ``main(outdir, size="small")``).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from sklearn.datasets import load_digits

import loaders
import neurogeom as ng

SIZES = {
    # training images, MMCR epochs, images per manifold set, capacity samples, layers, and
    # whether MFT removes center correlations first (the reference's default; the slow part)
    "full": dict(n_train=1000, epochs=20, n_images=40, n_t=200, centers=True,
                 layers=["block1.pool", "block2.pool", "avgpool", "fc"]),
    "small": dict(n_train=200, epochs=3, n_images=10, n_t=40, centers=False,
                  layers=["block2.pool", "fc"]),
}
CANVAS = 16


def training_digits(n):
    """The first ``n`` sklearn digits (those digits_convnet trains on), centred on the canvas."""
    x = (load_digits().images[:n] / 16.0).astype(np.float32)
    out = np.zeros((n, 1, CANVAS, CANVAS), np.float32)
    c = (CANVAS - 8) // 2
    out[:, 0, c:c + 8, c:c + 8] = x
    return out


def capacity(a, by, cfg):
    res = ng.manifold_capacity(a, by=by, n_t=cfg["n_t"], center_correlations=cfg["centers"])
    return float(res.capacity_overall), float(res.radius_overall), float(res.dimension_overall)


def main(outdir, size: str = "full") -> dict:
    """Train, measure, write ``model_geometry.nc``; return the numbers (tests assert them)."""
    cfg = SIZES[size]
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    layers = cfg["layers"]

    # 1. three copies of one architecture: untrained, MMCR (no labels), supervised (labels)
    augment = ng.models.RandomShift(3, noise=0.1)
    mmcr = loaders.synthetic.untrained_convnet(seed=0)
    history = ng.models.train_ssl(mmcr, training_digits(cfg["n_train"]), augment,
                                  epochs=cfg["epochs"], batch_size=100, n_views=4, lr=1e-2,
                                  seed=0, progress=False)
    nets = {"untrained": loaders.synthetic.untrained_convnet(seed=0), "mmcr": mmcr,
            "supervised": loaders.synthetic.digits_convnet(seed=0)}
    print(f"MMCR loss (-nuclear norm of the view centroids) per epoch: "
          f"{np.round(history.loss.values, 2).tolist()}")

    # 2. held-out digits (exemplars no network trained on): centred for the probe, the
    #    augmentation and the adversarial manifolds; a 3x3 position grid for class manifolds
    probe_images, probe_meta = loaders.synthetic.translated_digits(n_exemplars=30,
                                                                   positions=[(4, 4)])
    grid_images, grid_meta = loaders.synthetic.translated_digits(
        n_exemplars=3 if size == "full" else 2)
    pick = np.random.default_rng(0).choice(len(probe_images), cfg["n_images"], replace=False)
    images, labels = probe_images[pick], probe_meta.digit.values[pick]
    shifted, shift_table = ng.models.translation_manifolds(images, [(dx, dy) for dx in (-3, 0, 3)
                                                                    for dy in (-3, 0, 3)])

    names = list(nets)
    shape = (len(names), len(layers))
    out = {key: np.zeros(shape) for key in (
        "augmentation_capacity", "augmentation_radius", "translation_capacity",
        "class_capacity", "adversarial_capacity", "adversarial_radius", "adversarial_dimension")}
    probe = np.zeros(shape)
    success = np.zeros(len(names))
    for i, name in enumerate(names):
        net = nets[name]
        clean = ng.models.augmentation_manifolds(net, probe_images, lambda x: x, n_views=1,
                                                 layers=layers, labels=probe_meta.digit.values)
        views = ng.models.augmentation_manifolds(net, images, augment, n_views=8, layers=layers,
                                                 seed=1)
        trans = loaders.model_activations(net, shifted, layers, metadata=shift_table,
                                          progress=False)
        classes = loaders.model_activations(net, grid_images, layers, metadata=grid_meta,
                                            progress=False)
        adv = ng.models.adversarial_manifolds(net, images, labels, eps=0.1, n_samples=8,
                                              steps=10, layers=layers, seed=2)
        success[i] = adv[layers[0]].attrs["attack_success_rate"]
        for j, layer in enumerate(layers):
            probe[i, j] = float(ng.models.linear_probe(clean[layer], "label").accuracy)
            c, r, _ = capacity(views[layer], "object_name", cfg)
            out["augmentation_capacity"][i, j], out["augmentation_radius"][i, j] = c, r
            out["translation_capacity"][i, j] = capacity(trans[layer], "object_name", cfg)[0]
            out["class_capacity"][i, j] = capacity(classes[layer], "object_name", cfg)[0]
            (out["adversarial_capacity"][i, j], out["adversarial_radius"][i, j],
             out["adversarial_dimension"][i, j]) = capacity(adv[layer], "object_name", cfg)

    result = xr.Dataset(
        {"probe_accuracy": (("network", "layer"), probe),
         "attack_success_rate": ("network", success),
         **{key: (("network", "layer"), value) for key, value in out.items()},
         "mmcr_loss": ("epoch", history.loss.values)},
        coords={"network": names, "layer": layers, "epoch": history.epoch.values},
        attrs={"description": "examples/11_model_geometry.py: MFT capacity (kappa=0) of "
                              "augmentation, translation, class and adversarial (PGD L-inf, "
                              "eps=0.1) manifolds per layer; linear-probe accuracy "
                              "(5-fold CV logistic regression)",
               "size": size, "n_t": cfg["n_t"], "n_manifold_images": cfg["n_images"],
               "center_correlations": int(cfg["centers"]),
               "translation_manifolds": "as in Ligeralde et al. (2023), arXiv:2312.02791",
               # the citations the pieces carry: MMCR, Dapello et al. and PGD, MFT
               "references": list(dict.fromkeys(
                   list(history.attrs["references"]) + list(adv[layers[0]].attrs["references"])
                   + list(ng.manifold_capacity(adv[layers[0]], by="object_name",
                                               n_t=10).attrs["references"])))})
    ng.io.to_netcdf(result, outdir / "model_geometry.nc")

    print(f"\n{'':34s}" + "".join(f"{n:>11s}" for n in names))
    for key in ("probe_accuracy", *out):
        for j, layer in enumerate(layers):
            print(f"{key + ' ' + layer:34s}" + "".join(
                f"{result[key].values[i, j]:11.3f}" for i in range(len(names))))
    print(f"{'attack_success_rate (eps 0.1)':34s}" + "".join(f"{v:11.3f}" for v in success))
    print(f"wrote {outdir / 'model_geometry.nc'}")
    # the figures, drawn by neurogeom.report: each manifold kind as a layer profile (one line
    # per network along the layers), the linear probe beside the class manifolds' capacity
    chance = float(probe_meta.digit.value_counts(normalize=True).max())   # the probe's chance
    profiles = {}
    for kind in ("augmentation", "translation", "class", "adversarial"):
        variables = {name: result[f"{kind}_{name}"] for name in ("capacity", "radius", "dimension")
                     if f"{kind}_{name}" in result}
        if kind == "class":     # the probe decodes the same labels: the papers' companion axis
            variables |= {"decoding_accuracy": result["probe_accuracy"], "chance": chance}
        profiles[f"{kind}_manifolds"] = xr.Dataset(
            variables, attrs={"analysis": "layer_profile", "manifolds": kind,
                              "description": f"MFT geometry of {kind} manifolds per layer "
                                             f"(from model_geometry.nc)",
                              "references": result.attrs["references"]})
    figures = [ng.report.html({"model_geometry": result, **profiles}, outdir / "report.html",
                              title="Model geometry: untrained, MMCR and supervised networks",
                              dpi=60),
               *ng.report.save_figures(profiles, outdir, dpi=60)]
    print(f"report: {figures[0]} and {len(figures) - 1} PNG figures")
    return {"result": result, "path": outdir / "model_geometry.nc",
            "loss": history.loss.values, "report": figures[0], "figures": figures,
            "profiles": profiles}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="neurogeom_models_"))
