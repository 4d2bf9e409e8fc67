"""``neurogeom demo``: the end-to-end run on synthetic data, with nothing to download.

Steps: write a realistic macaque RSVP session as NWB, inspect it, load stimulus-locked spike
responses, average repetitions, and measure the MFT capacity, radius and dimension of the object
manifolds in each brain area; extract activations of a small CNN (trained on scikit-learn's
digits, and untrained) for translated digits and follow capacity through its layers (Cohen et
al. 2020); predict the recorded neurons from a model layer with the Brain-Score protocol and
its noise ceiling, and explain the error spectrally (Canatar et al. 2023). Each step prints one
block; result files go to ``--output``.
"""

from __future__ import annotations

import tempfile
import time
import warnings
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
    import numpy as np
    import xarray as xr

    import loaders

    from neurogeom import assembly, io
    from neurogeom import manifold_capacity
    from neurogeom import neural_predictivity
    from neurogeom import spectral_decomposition

    from neurogeom.errors import StorageError

    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="neurogeom-demo-"))
    if out.exists() and not out.is_dir():
        raise StorageError(f"--output {out} is a file; the demo writes its files into a folder")
    io.check_destination(out / "responses.nc")      # a folder we can create and write into
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the demo folder {out}: {exc.strerror or exc}") from exc
    step = _Steps()
    print("neurogeom demo: a synthetic macaque V4/IT recording, from NWB file to geometry")

    step("write a DiCarlo-style RSVP session (NWB, pynwb)")
    nwb_path = out / "macaque_rsvp.nwb"
    truth = loaders.synthetic.write_macaque_rsvp(nwb_path, n_objects=8, n_images_per_object=10,
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
    io.to_netcdf(mean, out / "responses.nc")

    step(f"manifold capacity (replica MFT, n_t = {args.n_t}) of object manifolds per area")
    for region in sorted(set(mean["region"].values.tolist())):
        area = mean.isel(neuroid=mean["region"].values == region)
        result = manifold_capacity(area, by="object_name", n_t=args.n_t, seed=args.seed)
        io.to_netcdf(result, out / f"capacity_{region}.nc")
        print(f"  {region:>4}: {area.sizes['neuroid']} units, {result.sizes['manifold']} objects: "
              f"capacity {float(result.capacity_overall):.3f}, "
              f"radius {float(result.radius_overall):.2f}, "
              f"dimension {float(result.dimension_overall):.2f}, "
              f"center correlation {float(result.center_correlation):.3f}")

    step("object manifolds through a CNN: pixels -> conv blocks -> last hidden layer")
    images, meta = loaders.synthetic.translated_digits(n_exemplars=4, seed=args.seed)
    layers = ["block1.pool", "block2.pool", "fc"]
    print(f"  {len(images)} images: 10 digits x 4 exemplars x 9 positions ({images.shape[-1]}px)")
    pixels = xr.DataArray(
        np.asarray(images, dtype=np.float64).reshape(len(images), -1),
        dims=("presentation", "neuroid"),
        coords={**{c: ("presentation", meta[c].to_numpy()) for c in ("stimulus_id", "object_name")},
                "neuroid_id": ("neuroid", [f"pixel/{i}" for i in range(images[0].size)])})
    result = manifold_capacity(pixels, by="object_name", n_t=args.n_t, seed=args.seed)
    print(f"  pixels capacity by digit: {float(result.capacity_overall):.3f}")
    for label, net in (("trained", loaders.synthetic.digits_convnet(seed=args.seed)),
                       ("untrained", loaders.synthetic.untrained_convnet(seed=args.seed))):
        acts = loaders.model_activations(net, images, layers, metadata=meta, progress=False)
        caps = []
        for layer, a in acts.items():
            result = manifold_capacity(a, by="object_name", n_t=args.n_t, seed=args.seed)
            caps.append(f"{layer} {float(result.capacity_overall):.3f}")
        print(f"  {label:>9} net capacity by digit: " + ", ".join(caps))

    step("model-to-brain: ridge predictivity of IT from a model layer, ceiling, spectrum")
    it = responses.isel(neuroid=responses["region"].values == "IT")
    # a stand-in "model": random ReLU features of the true (noise-free) IT tuning the file was
    # generated from, corrupted by noise, so it predicts the recording well but not perfectly
    names = truth.extra["image_names"]
    objects = dict(zip(truth.stimulus_ids, truth.object_names))
    tuning = xr.DataArray(
        truth.rates[:, truth.regions == "IT"], dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", names),
                "object_name": ("presentation", [objects[n] for n in names]),
                "neuroid_id": ("neuroid", [f"tuning/{i}" for i in range(int((truth.regions == "IT").sum()))])})
    model = loaders.synthetic.random_features(tuning, 300, noise=1.0, layer="model_layer",
                                              seed=args.seed)
    with warnings.catch_warnings():
        # a suspicious ceiled score is printed below, beside the numbers
        warnings.filterwarnings("ignore", message="neural_predictivity: ")
        pred = neural_predictivity(model, it, regression="ridge", seed=1)
    io.to_netcdf(pred, out / "predictivity_IT.nc")
    print(f"  stand-in model layer: {model.sizes['neuroid']} random ReLU features of noisy IT "
          f"tuning, {model.sizes['presentation']} images")
    print(f"  median Pearson r {float(pred.score):.3f} +/- {float(pred.error):.3f} "
          f"over {pred.sizes['split']} splits; split-half ceiling {float(pred.ceiling):.3f}")
    print(f"  ceiled: r^2/ceiling {float(pred.ceiled_score_r2_over_ceiling):.3f} (current "
          f"Brain-Score), (r/ceiling)^2 {float(pred.ceiled_score_r_over_ceiling_squared):.3f} "
          f"(earlier; the ceiling is a reliability, on the r^2 scale)")
    if pred.attrs.get("suspicious"):
        print(f"  warning: {pred.attrs['suspicious']}")
    spec = spectral_decomposition(model, it, seed=args.seed)
    io.to_netcdf(spec, out / "spectral_IT.nc")
    print(f"  spectral theory: generalization error E_g at p = {int(spec.p.values[-1])} training "
          f"images {float(spec.theory_error.values[-1]):.3f} "
          f"(empirical {float(spec.empirical_error.values[-1]):.3f}); "
          f"{100 * float(spec.power_outside_span):.1f}% of the response power "
          f"lies outside the model's span")

    print(f"\ndone in {time.perf_counter() - step.t0:.1f} s; files in {out}")
    return 0
