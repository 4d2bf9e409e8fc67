"""``neurogeom demo [--out DIR] [--quick]``: one coherent story, from NWB files to a report.

The story (nothing is downloaded):

1. Stimuli are scikit-learn's handwritten digits placed at controlled translations and scales;
   each digit is an object manifold. A hidden "brain" is the trained small CNN's intermediate
   (``block2.pool``: V4-like) and late (``fc``: IT-like) features passed through a noisy
   nonlinear readout with Poisson spiking and repetitions; that macaque RSVP session is written
   to NWB, with a mouse two-photon session and a mouse head-direction session (ring latents).
2. Every session is loaded back with the loaders, as a user would, and validated.
3. The trained and untrained CNN's activations for the same images are extracted.
4. Per layer and region: MFT capacity and effective geometry by object; manifold alignment and
   decoding; neural predictivity with its noise ceiling and the spectral decomposition; the
   layer-by-region profile; the mouse sessions as a batch through ``ng.map_recordings``, then
   latent dimensionality (NCE vs RRR) of the head-direction session and cvPCA of the
   two-photon session.
5. Every result is written as netCDF, then ``report.html``; the closing checks compare the
   numbers with the truths the demo planted and print PASS/FAIL; exit 1 if any fails.

Each step is one function below, so steps can be added without touching the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

#: model layers, early to late; the hidden brain reads V4 from the intermediate one, IT from
#: the late one
LAYERS = ("block1.pool", "block2.pool", "fc")
V4_LAYER, IT_LAYER = "block2.pool", "fc"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on synthetic data",
                       description="Write synthetic NWB sessions whose ground truth is known (a "
                                   "macaque V4/IT recording read out of a CNN, a mouse "
                                   "two-photon session, head-direction cells), load them back, "
                                   "analyse them end to end, write every result and "
                                   "report.html, and check the planted truths (exit 1 if one "
                                   "fails).")
    p.add_argument("-o", "--out", "--output", dest="out", default="neurogeom-demo",
                   help="folder for the demo's files (default ./neurogeom-demo)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes (under a minute; what the tests run)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


@dataclass
class Sizes:
    """How big each part of the demo is (``--quick`` or full)."""

    n_exemplars: int
    positions: tuple
    scales: tuple
    n_repetitions: int
    n_units: int
    n_t: int
    n_splits: int
    hd_duration: float
    hd_units: int
    nce_epochs: int

    @classmethod
    def make(cls, quick: bool) -> "Sizes":
        if quick:
            return cls(n_exemplars=3, positions=((0, 4), (4, 4), (8, 4)), scales=(1.0, 1.5),
                       n_repetitions=4, n_units=60, n_t=60, n_splits=3, hd_duration=1000.0,
                       hd_units=90, nce_epochs=100)
        return cls(n_exemplars=5, positions=((0, 0), (8, 0), (4, 4), (0, 8), (8, 8)),
                   scales=(1.0, 1.5), n_repetitions=6, n_units=120, n_t=200, n_splits=10,
                   hd_duration=1000.0, hd_units=90, nce_epochs=100)


@dataclass
class State:
    """What the steps hand each other: paths, assemblies, results and the planted truths."""

    out: Path
    sizes: Sizes
    seed: int
    paths: dict = field(default_factory=dict)
    assemblies: dict = field(default_factory=dict)
    activations: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)   # file stem -> Dataset, in report order
    checks: list = field(default_factory=list)    # (description, passed, detail)


class _Steps:
    """Numbered, timed step headers so a user sees progress on the longer steps."""

    def __init__(self):
        self.n = 0
        self.t0 = time.perf_counter()

    def __call__(self, title: str) -> None:
        self.n += 1
        print(f"\n[{self.n}] {title}  (t = {time.perf_counter() - self.t0:.1f} s)", flush=True)


def run(args) -> int:
    from neurogeom import io
    from neurogeom.errors import StorageError

    out = Path(args.out)
    print(out.resolve(), flush=True)
    if out.exists() and not out.is_dir():
        raise StorageError(f"--out {out} is a file; the demo writes its files into a folder")
    io.check_destination(out / "report.html")      # a folder we can create and write into
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the demo folder {out}: {exc.strerror or exc}") from exc
    state = State(out=out, sizes=Sizes.make(args.quick), seed=args.seed)
    step = _Steps()
    print("neurogeom demo: digits seen by a CNN and by a synthetic macaque V4/IT, a mouse "
          "two-photon session and head-direction cells")
    step("stimuli and the hidden brain: write three NWB sessions")
    write_sessions(state)
    step("load every session back with the loaders; validate")
    load_sessions(state)
    step("activations of the trained and untrained CNN for the same images")
    extract_activations(state)
    step("capacity and effective geometry by digit, per layer and region")
    capacity_per_layer_and_region(state)
    step("manifold alignment and decoding")
    alignment_and_decoding(state)
    step("model-to-brain: predictivity per layer and region, noise ceiling, spectral theory")
    model_to_brain(state)
    step("layer profile")
    layer_profile(state)
    step("mouse sessions: latent dimensionality (NCE vs RRR) and cvPCA")
    mouse_sessions(state)
    step("write results and report.html")
    write_results(state)
    step("checks of the planted truths")
    failed = report_checks(state)
    print(f"\ndone in {time.perf_counter() - step.t0:.1f} s; "
          f"{'all checks passed' if not failed else f'{failed} check(s) FAILED'}; "
          f"report: {out / 'report.html'}")
    print(out.resolve(), flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------
# step 1: stimuli, hidden brain, NWB files
# --------------------------------------------------------------------------------------------

def _zscore(x):
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)


def hidden_brain_rates(features: dict, n_units: int, seed: int):
    """Evoked rates (images × units, spikes/s) of the hidden V4 and IT.

    Each area reads out one layer: ``rate = 30 * softplus(x W / sqrt(d) + noise - 1)``, with
    ``x`` the z-scored layer features, ``W`` Gaussian weights and a fixed Gaussian image × unit
    noise of half the signal's sd (tuning no model layer explains); Poisson spiking and
    trial-to-trial gain noise are added when the session is written.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 18])
    blocks, regions = [], []
    for region, layer in (("V4", V4_LAYER), ("IT", IT_LAYER)):
        x = _zscore(features[layer])
        drive = _zscore(x @ rng.standard_normal((x.shape[1], n_units // 2)) / np.sqrt(x.shape[1]))
        drive = drive + 0.5 * rng.standard_normal(drive.shape)
        blocks.append(30.0 * np.logaddexp(0.0, drive - 1.0))
        regions += [region] * (n_units // 2)
    return np.concatenate(blocks, axis=1), np.array(regions)


def write_sessions(state: State) -> None:
    import numpy as np

    import loaders
    from loaders.synthetic import digits_convnet, translated_digits

    s = state.sizes
    images, meta = translated_digits(n_exemplars=s.n_exemplars, positions=s.positions,
                                     scales=s.scales, seed=state.seed)
    state.assemblies["images"], state.assemblies["meta"] = images, meta
    net = digits_convnet(seed=state.seed)
    feats = loaders.model_activations(net, images, list(LAYERS), metadata=meta, progress=False)
    features = {layer: np.asarray(a.values) for layer, a in feats.items()}
    rates, unit_regions = hidden_brain_rates(features, s.n_units, state.seed)
    print(f"  {len(images)} images: 10 digits x {s.n_exemplars} exemplars x "
          f"{len(s.positions)} positions x {len(s.scales)} scales ({images.shape[-1]} px)")
    print(f"  hidden brain: V4 <- {V4_LAYER}, IT <- {IT_LAYER} through a noisy softplus "
          f"readout; {s.n_units} units, {s.n_repetitions} repetitions, Poisson spikes")
    path = state.out / "macaque_rsvp.nwb"
    loaders.synthetic.write_macaque_rsvp(
        path, rates=rates, image_objects=meta["object_name"].to_numpy(),
        image_names=meta["stimulus_id"].to_numpy(), images=images[:, 0],
        unit_regions=unit_regions, n_repetitions=s.n_repetitions, background=2.0,
        trial_noise=0.1, seed=state.seed)
    state.paths["macaque_rsvp"] = path
    path = state.out / "mouse_2p.nwb"
    loaders.synthetic.write_mouse_2p(path, n_objects=6, n_images_per_object=8,
                                     n_repetitions=2, n_rois=40, seed=state.seed)
    state.paths["mouse_2p"] = path
    path = state.out / "mouse_head_direction.nwb"
    # von Mises tuning (k = 4, 80 spikes/s peak), a slowly turning head, 1,000 s binned at
    # 0.5 s below: enough spikes per bin and bins for the NCE to find the ring's two latents
    # through Poisson noise (measured for seeds 0-2: NCE 2, RRR 4; at 400-750 s the NCE
    # estimate wandered between 2 and 6)
    loaders.synthetic.write_head_direction(path, n_units=s.hd_units, duration=s.hd_duration,
                                           concentration=4.0, peak_rate=80.0, speed=0.5,
                                           seed=state.seed)
    state.paths["mouse_head_direction"] = path
    for name, p in state.paths.items():
        print(f"  {name}: {p} ({p.stat().st_size / 1e6:.1f} MB)")


# --------------------------------------------------------------------------------------------
# step 2: load back
# --------------------------------------------------------------------------------------------

def load_sessions(state: State) -> None:
    import loaders
    from neurogeom import assembly

    macaque = loaders.spike_responses(state.paths["macaque_rsvp"], intervals="trials",
                                      stimulus="stimulus_presented", window=(0.07, 0.17),
                                      exclude={"fixation_correct": False})
    assembly.validate(macaque)
    state.assemblies["macaque"] = macaque.drop_vars("fixation_correct", errors="ignore")
    print(f"  macaque RSVP: {dict(macaque.sizes)} {macaque.attrs['units']}, regions "
          f"{sorted(set(macaque['region'].values.tolist()))}")
    calcium = loaders.calcium_responses(state.paths["mouse_2p"],
                                        intervals="natural_scenes_presentations",
                                        stimulus="frame", window=(0.0, 0.5),
                                        exclude={"frame": -1.0})
    assembly.validate(calcium)
    state.assemblies["mouse_2p"] = calcium
    print(f"  mouse 2p: {dict(calcium.sizes)} {calcium.attrs.get('units', '')}")
    hd = loaders.binned_activity(state.paths["mouse_head_direction"], bin_size=0.5,
                                 covariates=["head_direction"])
    assembly.validate(hd)
    state.assemblies["mouse_head_direction"] = hd
    print(f"  head direction: {dict(hd.sizes)} {hd.attrs.get('units', '')}, covariate "
          f"head_direction")


# --------------------------------------------------------------------------------------------
# step 3: model activations
# --------------------------------------------------------------------------------------------

def extract_activations(state: State) -> None:
    import numpy as np
    import xarray as xr

    import loaders
    from loaders.synthetic import digits_convnet, untrained_convnet

    images, meta = state.assemblies["images"], state.assemblies["meta"]
    keep = [c for c in ("stimulus_id", "object_name") if c in meta]
    pixels = xr.DataArray(
        np.asarray(images, dtype=np.float64).reshape(len(images), -1),
        dims=("presentation", "neuroid"),
        coords={**{c: ("presentation", meta[c].to_numpy()) for c in keep},
                "neuroid_id": ("neuroid", [f"pixel/{i}" for i in range(images[0].size)]),
                "region": ("neuroid", np.full(images[0].size, "pixels"))})
    for label, net in (("trained", digits_convnet(seed=state.seed)),
                       ("untrained", untrained_convnet(seed=state.seed))):
        acts = loaders.model_activations(net, images, list(LAYERS), metadata=meta,
                                         progress=False)
        state.activations[label] = {"pixels": pixels, **acts}
        print(f"  {label:>9}: " + ", ".join(f"{k} {v.sizes['neuroid']}"
                                            for k, v in acts.items()))


# --------------------------------------------------------------------------------------------
# step 4: analyses
# --------------------------------------------------------------------------------------------

def _mean_responses(state: State):
    from neurogeom import assembly

    if "macaque_mean" not in state.assemblies:
        state.assemblies["macaque_mean"] = assembly.average_repetitions(state.assemblies["macaque"])
    return state.assemblies["macaque_mean"]


def _region(a, region):
    return a.isel(neuroid=a["region"].values == region)


def capacity_per_layer_and_region(state: State) -> None:
    import neurogeom as ng

    n_t = state.sizes.n_t
    caps = {}
    for label, layers in state.activations.items():
        row = []
        for layer, a in layers.items():
            result = ng.manifold_capacity(a, by="object_name", n_t=n_t, seed=state.seed)
            state.results[f"capacity_{label}_{layer}"] = result
            caps[(label, layer)] = float(result["capacity_overall"])
            row.append(f"{layer} {caps[(label, layer)]:.3f}")
        print(f"  {label:>9} CNN capacity by digit: " + ", ".join(row))
    mean = _mean_responses(state)
    for region in ("V4", "IT"):
        area = _region(mean, region)
        result = ng.manifold_capacity(area, by="object_name", n_t=n_t, seed=state.seed)
        state.results[f"capacity_{region}"] = result
        geometry = ng.effective_geometry(area, by="object_name", n_t=n_t, seed=state.seed)
        state.results[f"effective_geometry_{region}"] = geometry
        print(f"  {region:>9}: capacity {float(result['capacity_overall']):.3f}, radius "
              f"{float(result['radius_overall']):.2f}, dimension "
              f"{float(result['dimension_overall']):.2f}; effective capacity "
              f"{float(geometry['capacity_overall']):.3f}")
    layers = ["pixels", *LAYERS]
    trained = [caps[("trained", layer)] for layer in layers]
    untrained = [caps[("untrained", layer)] for layer in layers]
    # "rises with depth": the last layer at least doubles the pixels' capacity and tops every
    # earlier layer. Random conv + pooling and a random fully connected layer also separate
    # somewhat (a random expansion; Cohen et al. 2020 Fig. 3: untrained nets gain far less),
    # so "does not rise" is relative: the untrained net's last layer stays well below the
    # trained one's (measured: 0.154 vs 0.231 full, 0.210 vs 0.336 quick) and its gain over
    # the pixels is at most two thirds of the trained net's (measured 0.57 full, 0.35 quick).
    gain_trained, gain_untrained = trained[-1] - trained[0], untrained[-1] - untrained[0]
    rises = trained[-1] > 2.0 * trained[0] and trained[-1] == max(trained)
    state.checks.append(("capacity rises with depth in the trained CNN", rises,
                         ", ".join(f"{k} {c:.3f}" for k, c in zip(layers, trained))))
    flat = untrained[-1] < trained[-1] / 1.3 and gain_untrained < gain_trained * 2 / 3
    state.checks.append(("the untrained CNN gains much less with depth (last layer under "
                         "1/1.3 of the trained one's, gain under 2/3 of it)", flat,
                         ", ".join(f"{k} {c:.3f}" for k, c in zip(layers, untrained))
                         + f"; gains {gain_untrained:.3f} vs {gain_trained:.3f}"))


def alignment_and_decoding(state: State) -> None:
    """Manifold alignment and decoding by digit (Kuoch et al. 2024), per region and per
    trained-CNN layer, stored as ``alignment_<name>`` and ``decoding_<name>`` results."""
    import neurogeom as ng

    mean = _mean_responses(state)
    for name, a in (("V4", _region(mean, "V4")), ("IT", _region(mean, "IT")),
                    *((layer, state.activations["trained"][layer]) for layer in LAYERS)):
        al = ng.manifold_alignment(a, by="object_name")
        dec = ng.decoding_accuracy(a, by="object_name", seed=state.seed)
        state.results[f"alignment_{name}"] = al
        state.results[f"decoding_{name}"] = dec
        print(f"  {name:>12}: subspace alignment {float(al.subspace_alignment_mean):.3f}, "
              f"center alignment {float(al.center_alignment_mean):.3f}; decoding accuracy "
              f"{float(dec.accuracy):.3f} (chance {float(dec.chance):.3f})")


def model_to_brain(state: State) -> None:
    import numpy as np
    import xarray as xr

    import neurogeom as ng

    responses = state.assemblies["macaque"]
    scores = {}
    for region in ("V4", "IT"):
        target = _region(responses, region)
        row = []
        for layer in LAYERS:
            source = state.activations["trained"][layer]
            result = ng.neural_predictivity(source, target, n_splits=state.sizes.n_splits,
                                            seed=1)
            state.results[f"predictivity_{region}_{layer}"] = result
            scores[(region, layer)] = float(result["score"])
            row.append(f"{layer} {scores[(region, layer)]:.3f}")
        ceiling = float(result["ceiling"])
        print(f"  {region}: median r " + ", ".join(row) + f"; noise ceiling {ceiling:.3f}")
        # the region's results side by side along ``layer`` (the report draws each neuroid's r
        # per layer, the medians and the ceiling band); attrs that differ (the layer) dropped
        state.results[f"predictivity_{region}_by_layer"] = xr.concat(
            [state.results[f"predictivity_{region}_{layer}"] for layer in LAYERS], dim="layer",
            combine_attrs="drop_conflicts").assign_coords(layer=list(LAYERS))
        best = LAYERS[int(np.argmax([scores[(region, layer)] for layer in LAYERS]))]
        planted = IT_LAYER if region == "IT" else V4_LAYER
        state.checks.append((f"{region} is best predicted by {planted}", best == planted,
                             f"best layer {best}"))
        spec = ng.spectral_decomposition(state.activations["trained"][planted], target,
                                         seed=state.seed)
        state.results[f"spectral_{region}_{planted}"] = spec
        print(f"  spectral {region} <- {planted}: E_g(p={int(spec['p'][-1])}) theory "
              f"{float(spec['theory_error'][-1]):.3f}, empirical "
              f"{float(spec['empirical_error'][-1]):.3f}; "
              f"{100 * float(spec['power_outside_span']):.1f}% of the power outside the span")


def layer_profile(state: State) -> None:
    """``ng.layer_profile`` of the trained CNN's layers against V4 and IT (capacity, geometry,
    alignment, decoding, predictivity with ceilings): the papers' layer-by-region figure."""
    import neurogeom as ng

    responses = state.assemblies["macaque"]
    profile = ng.layer_profile(
        {layer: state.activations["trained"][layer] for layer in LAYERS},
        {region: _region(responses, region) for region in ("V4", "IT")}, by="object_name",
        analyses=("capacity", "alignment", "decoding", "predictivity"), n_t=state.sizes.n_t,
        n_splits=state.sizes.n_splits, seed=state.seed)
    state.results["layer_profile"] = profile
    for region in ("V4", "IT"):
        row = profile["predictivity"].sel(region=region).values
        print(f"  {region}: predictivity by layer " + ", ".join(
            f"{layer} {v:.3f}" for layer, v in zip(LAYERS, row)))


def _load_mouse_session(source):
    """``load`` of the mouse sessions for ``ng.map_recordings``: each file with its loader."""
    import loaders

    if "head_direction" in str(source):
        return loaders.binned_activity(source, bin_size=0.5)
    return loaders.calcium_responses(source, intervals="natural_scenes_presentations",
                                     stimulus="frame", window=(0.0, 0.5),
                                     exclude={"frame": -1.0})


def mouse_sessions(state: State) -> None:
    """The two mouse sessions: latent dimensionality of head-direction cells (a ring: NCE finds
    2 latents, RRR needs more) and the cvPCA spectrum of the two-photon responses.

    Both sessions also go through ``ng.map_recordings`` (their SVCA spectra, one row per
    recording), which the report draws as a batch summary."""
    import numpy as np

    import neurogeom as ng

    # the mouse sessions as a batch (ng.map_recordings: Dask's local scheduler, one task per
    # file): the shared-variance spectrum (SVCA) of each, one row per recording
    import functools

    sessions = ng.map_recordings([state.paths["mouse_2p"], state.paths["mouse_head_direction"]],
                                 functools.partial(ng.svca, seed=state.seed),
                                 _load_mouse_session, progress=False)
    state.results["svca_mouse_sessions"] = sessions
    for key in sessions["recording"].values:
        row = sessions.sel(recording=key)
        print(f"  batch {key}: {str(row['status'].values)} in {float(row['seconds']):.1f} s")
    state.checks.append(("mouse sessions through map_recordings all succeed",
                         bool((sessions["status"] == "ok").all()),
                         ", ".join(f"{k}: {str(v)}" for k, v in
                                   zip(sessions["recording"].values, sessions["status"].values))))
    hd = state.assemblies["mouse_head_direction"]
    s = state.sizes
    dims = range(1, 7)
    result = ng.latent_dimensionality(
        hd, dims=dims, n_splits=1, window=2, n_chunks=10, seed=state.seed,
        nce_params=dict(hidden=(64,), max_epochs=s.nce_epochs, n_threads=1), progress=False)
    state.results["latent_dimensionality_head_direction"] = result
    nce = float(result["dimension_of_mean"].sel({"method": "nce"}))
    rrr = float(result["dimension_of_mean"].sel({"method": "rrr"}))
    print(f"  head direction ({hd.sizes['neuroid']} units, {hd.sizes['time']} bins): latent "
          f"dimension NCE {nce:g}, RRR {rrr:g}")
    # a ring has 2 latents (measured here: NCE 2, RRR 4); one more is allowed for the NCE, whose
    # fits through Poisson noise can stall at one d, and the linear readout must need more
    state.checks.append(("head-direction ring: latent (NCE) dimension below the linear (RRR) "
                         "one",
                         bool(np.isfinite(nce) and nce <= 3 and (not np.isfinite(rrr) or rrr > nce)),
                         f"NCE {nce:g}, RRR {rrr:g} of {hd.sizes['neuroid']} units"))
    calcium = state.assemblies["mouse_2p"]
    spectrum = ng.cvpca(calcium, seed=state.seed)
    state.results["cvpca_mouse_2p"] = spectrum
    top = spectrum["cv_variance_normalized"].values[:5]
    print(f"  mouse 2p cvPCA: {spectrum.sizes['mode']} modes; the first five hold "
          f"{', '.join(f'{100 * v:.0f}%' for v in top)} of the cross-validated variance")


# --------------------------------------------------------------------------------------------
# step 5: files and checks
# --------------------------------------------------------------------------------------------

def write_results(state: State) -> None:
    from neurogeom import io, report

    folder = state.out / "results"
    for name, result in state.results.items():
        io.to_netcdf(result, folder / f"{name}.nc")
    print(f"  {len(state.results)} results in {folder}")
    path = report.html(state.results, state.out / "report.html", title="neurogeom demo")
    print(f"  {path} ({path.stat().st_size / 1e6:.1f} MB)")


def report_checks(state: State) -> int:
    failed = 0
    for description, passed, detail in state.checks:
        failed += not passed
        print(f"  {'PASS' if passed else 'FAIL'}  {description} ({detail})")
    return failed
