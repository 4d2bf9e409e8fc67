"""Write realistic synthetic NWB recordings in the layouts labs and their tools produce.

Three layouts, each written with pynwb so the files are real NWB 2 files that pass pynwb
validation and nwbinspector without critical findings:

- :func:`write_macaque_rsvp` — a DiCarlo-lab style rapid serial visual presentation session:
  one ``trials`` row per image presentation, threshold-crossing units with an ``electrodes``
  column whose ``location`` is V4 / IT, images in ``/stimulus/presentation`` with
  ``order_of_images``.
- :func:`write_allen_neuropixels` — an Allen Visual Coding style session: ``*_presentations``
  interval tables with a float ``frame`` (``-1`` = blank), units with large ids and a
  ``peak_channel_id`` pointing into the electrodes table, running speed.
- :func:`write_mouse_2p` — a two-photon session: ``processing/ophys`` with a plane segmentation
  and dF/F traces made by convolving Poisson spikes with a calcium kernel, plus head direction
  (``CompassDirection``) and position (``Position``).

Responses are tuned: images belong to objects, and each object's mean responses form a
manifold of controlled ``radius`` and ``dimension`` (:func:`loaders.synthetic.object_manifolds`),
turned into Poisson spiking with multiplicative trial-to-trial gain noise. Options reproduce the
quirks of files written by other tools (``location`` on the units table, ROI traces stored
rois × time, explicit timestamps, behaviour in ``acquisition``, region only on the electrode
group). Every writer returns the ground truth the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from neurogeom import __version__
from neurogeom.io import atomic_write, atomic_write_dir

from .assemblies import object_manifolds

SESSION_START = datetime(2024, 1, 15, 10, 0, 0, tzinfo=timezone.utc)


@dataclass
class Truth:
    """What a synthetic writer put in the file, for tests to compare loaded data against.

    Attributes
    ----------
    path : str
        The file written.
    spike_times : list of ndarray
        Sorted spike times (s) of each unit, in units-table order (empty for 2-photon files).
    unit_ids : ndarray
        The units table ids.
    regions : ndarray of str
        The true brain area of each unit / ROI.
    onsets : ndarray
        Presentation onsets (s), in table order.
    stimulus_ids : ndarray of str
        The stimulus (image name or frame) of each presentation.
    object_names : ndarray of str
        The object each presented image belongs to.
    rates : ndarray
        Mean evoked rate (spikes/s above baseline) of each stimulus × unit.
    extra : dict
        Layout-specific ground truth (calcium traces, behaviour, …).
    """

    path: str
    spike_times: list = field(default_factory=list)
    unit_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    regions: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stimulus_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    object_names: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    rates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# shared generative pieces
# --------------------------------------------------------------------------------------------

def _tuned_rates(n_objects, n_images, n_units, *, radius, dimension, baseline, gain, seed):
    """Mean evoked rates (stimulus × unit, spikes/s) whose object groups are manifolds.

    The geometry is that of :func:`object_manifolds` without trial noise; rates are rectified at
    0.5 spikes/s because a Poisson rate cannot be negative.
    """
    clean = object_manifolds(n_objects, n_images, n_units, n_repetitions=1, radius=radius,
                             dimension=min(dimension, n_units), noise=0.0, baseline=baseline, gain=gain,
                             seed=seed)
    rates = np.maximum(np.asarray(clean.values, dtype=np.float64), 0.5)
    return rates, np.asarray(clean["object_name"].values).astype(str)


def _poisson_trains(onsets, evoked, background, *, latency, duration, t_stop, trial_noise, rng):
    """Sorted spike trains: homogeneous background plus evoked spikes after each onset.

    Parameters
    ----------
    onsets : (n_presentations,) array
    evoked : (n_presentations, n_units) array
        Evoked rate (above background) of each unit during ``[onset + latency,
        onset + latency + duration)``; multiplied by a lognormal gain per presentation and unit
        (sd ``trial_noise`` in log units), the trial-to-trial variability of real responses.
    background : (n_units,) array
        Spontaneous rates over ``[0, t_stop)``.
    """
    n_units = evoked.shape[1]
    gain = np.exp(trial_noise * rng.standard_normal(evoked.shape) - trial_noise ** 2 / 2)
    counts = rng.poisson(evoked * gain * duration)
    trains = []
    for u in range(n_units):
        n_bg = rng.poisson(background[u] * t_stop)
        bg = rng.uniform(0.0, t_stop, n_bg)
        start = np.repeat(onsets + latency, counts[:, u])
        ev = start + rng.uniform(0.0, duration, start.size)
        train = np.sort(np.concatenate([bg, ev]))
        trains.append(train[train < t_stop])
    return trains


def _new_file(identifier, description, species, subject_id, age, sex, *, lab, institution):
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description=description,
        identifier=identifier,
        session_start_time=SESSION_START,
        experimenter=["Synthetic, Data"],
        lab=lab,
        institution=institution,
        experiment_description=f"synthetic recording written by loaders.synthetic "
                               f"(neurogeom {__version__})",
        session_id=identifier,
        keywords=["synthetic", "neurogeom"],
        subject=Subject(subject_id=subject_id, species=species, age=age, sex=sex,
                        description="synthetic subject"),
    )


def _units_table(trains, ids, description, columns=(), electrodes=None, electrode_table=None):
    """A units table built from whole columns (one flat spike array + index), not row by row.

    ``columns`` are ``(name, description, values)`` triples; ``electrodes`` (one electrode row
    per unit) adds the ``electrodes`` DynamicTableRegion when given.
    """
    from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    flat = (np.concatenate(trains) if trains else np.zeros(0)).astype(np.float64)
    index = np.cumsum([len(t) for t in trains]).astype(np.int64)
    spike_times = VectorData(name="spike_times", description="the spike times for each unit in seconds",
                             data=flat)
    cols = [spike_times,
            VectorIndex(name="spike_times_index", data=index, target=spike_times)]
    for name, desc, values in columns:
        cols.append(VectorData(name=name, description=desc, data=np.asarray(values)))
    if electrodes is not None:
        region = DynamicTableRegion(name="electrodes", description="the electrode of each unit",
                                    data=np.asarray(electrodes, dtype=np.int64),
                                    table=electrode_table)
        # the units' electrodes column is ragged (a unit may span electrodes): one per unit here
        cols += [region, VectorIndex(name="electrodes_index", target=region,
                                     data=np.arange(1, len(electrodes) + 1, dtype=np.int64))]
    return Units(name="units", id=ElementIdentifiers(name="id", data=np.asarray(ids, dtype=np.int64)),
                 columns=cols, description=description, resolution=1.0 / 30000.0)


def _intervals_table(name, description, start, stop, columns):
    """A TimeIntervals table built from whole columns (``(name, description, values)``)."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.epoch import TimeIntervals

    cols = [VectorData(name="start_time", description="Start time of epoch, in seconds",
                       data=np.asarray(start, dtype=np.float64)),
            VectorData(name="stop_time", description="Stop time of epoch, in seconds",
                       data=np.asarray(stop, dtype=np.float64))]
    for cname, cdesc, values in columns:
        cols.append(VectorData(name=cname, description=cdesc, data=np.asarray(values)))
    return TimeIntervals(name=name, description=description,
                         id=ElementIdentifiers(name="id", data=np.arange(len(start))),
                         columns=cols)


def _write(nwbfile, path, after=None):
    """Write ``nwbfile`` atomically (temporary file renamed into place) so a crash never leaves a
    half-written recording at ``path``; ``after(h5py.File)`` may then edit the raw HDF5, which is
    how the quirks of other writers that pynwb refuses to produce are reproduced."""
    import h5py
    from pynwb import NWBHDF5IO

    def write(tmp):
        with NWBHDF5IO(tmp, "w") as io:
            io.write(nwbfile)
        if after is not None:
            with h5py.File(tmp, "r+") as f:
                after(f)

    return str(atomic_write(path, write, suffix=".nwb"))


def to_zarr(h5_path, zarr_path) -> str:
    """Export an NWB HDF5 file (one of this module's layouts) to an NWB zarr store.

    The HDF5 file is read with pynwb and exported with hdmf-zarr's ``ZarrIO.export``, object
    references encoded as JSON rather than hdmf-zarr's default Pickle codec (which readers must
    not decode from untrusted stores). The store is written into a temporary folder next to
    ``zarr_path`` and renamed into place on success, so a failed export never leaves a partial
    store; an existing store at ``zarr_path`` is replaced.

    Parameters
    ----------
    h5_path : str or path-like
        The NWB HDF5 file (opened read-only).
    zarr_path : str or path-like
        The store to write (conventionally ending in ``.nwb.zarr``).

    Returns
    -------
    str
        ``zarr_path``.
    """
    import warnings

    import numcodecs
    from hdmf_zarr.backend import ZarrIO
    from pynwb import NWBHDF5IO, get_manager

    def export(tmp):
        with warnings.catch_warnings():
            # the rois × time variant is mis-oriented on purpose; pynwb says so when reading it
            warnings.filterwarnings("ignore", message=".*oriented incorrectly.*")
            # NWBZarrIO does not pass object_codec_class on to ZarrIO; ZarrIO takes it
            with NWBHDF5IO(str(h5_path), "r") as read_io, ZarrIO(
                    str(tmp), mode="w", manager=get_manager(),
                    object_codec_class=numcodecs.JSON) as out:
                out.export(src_io=read_io, write_args={"link_data": False})

    return str(atomic_write_dir(zarr_path, export))


def _scene_sequence(rng, n_images: int, n_repetitions: int, p_blank: float) -> np.ndarray:
    """Allen-style natural-scene frames: every image ``n_repetitions`` times plus a fraction
    ``p_blank`` of blanks (``-1``), shuffled, as floats (the Allen files store ``frame`` so)."""
    n_blank = int(round(p_blank * n_images * n_repetitions))
    frames = np.concatenate([np.tile(np.arange(n_images), n_repetitions), np.full(n_blank, -1)])
    return frames[rng.permutation(frames.size)].astype(np.float64)


def _transpose_dataset(f, name):
    """Replace dataset ``name`` by its transpose, keeping its attributes (rois × time writers)."""
    data = f[name][()]
    attrs = dict(f[name].attrs)
    del f[name]
    new = f.create_dataset(name, data=data.T)
    for k, v in attrs.items():
        new.attrs[k] = v


def _random_walk_angle(n, dt, rng, speed=1.0):
    """Head direction (radians, wrapped to [-pi, pi)) as a smooth random walk."""
    steps = rng.standard_normal(n) * speed * np.sqrt(dt)
    kernel = np.exp(-np.arange(20) / 5.0)
    steps = np.convolve(steps, kernel / kernel.sum() * 3, mode="same")
    return (np.cumsum(steps) + np.pi) % (2 * np.pi) - np.pi


def _random_walk_position(n, dt, rng, arena=1.0):
    """2-d position (m) in a square arena, reflected at the walls."""
    vel = np.cumsum(rng.standard_normal((n, 2)) * 0.05 * np.sqrt(dt), axis=0)
    vel = vel - np.linspace(0, 1, n)[:, None] * vel[-1]
    pos = np.cumsum(vel * dt, axis=0) * 5 + arena / 2
    pos = np.abs(pos) % (2 * arena)
    return np.where(pos > arena, 2 * arena - pos, pos)


def _add_behaviour(nwbfile, times_or_rate, head_direction, position, where):
    """Head direction as CompassDirection and position as Position, in ``processing/behavior``
    (the convention) or in ``acquisition`` (what several conversion tools do)."""
    from pynwb.behavior import CompassDirection, Position, SpatialSeries

    kw = times_or_rate
    hd = SpatialSeries(name="head_direction", data=head_direction, unit="radians",
                       reference_frame="0 = east, counter-clockwise",
                       description="head direction of the mouse", **kw)
    pos = SpatialSeries(name="position", data=position, unit="meters",
                        reference_frame="(0, 0) = south-west corner of the arena",
                        description="x, y position of the mouse", **kw)
    compass = CompassDirection(name="CompassDirection", spatial_series=hd)
    place = Position(name="Position", spatial_series=pos)
    if where == "acquisition":
        nwbfile.add_acquisition(compass)
        nwbfile.add_acquisition(place)
    elif where == "processing":
        module = nwbfile.create_processing_module("behavior", "behavioural measurements")
        module.add(compass)
        module.add(place)
    else:
        raise ValueError(f"behaviour_in must be 'processing' or 'acquisition', got {where!r}")


# --------------------------------------------------------------------------------------------
# macaque RSVP (DiCarlo-lab conversions)
# --------------------------------------------------------------------------------------------

def write_macaque_rsvp(path, *, n_objects: int = 8, n_images_per_object: int = 8,
                       n_repetitions: int = 4, n_units: int = 48,
                       regions=("V4", "IT"), radius: float = 0.5, dimension: int = 5,
                       baseline: float = 20.0, gain: float = 8.0, background: float = 5.0,
                       latency: float = 0.07, response_duration: float = 0.1,
                       image_on: float = 0.1, image_off: float = 0.1,
                       images_per_trial: int = 8, trial_noise: float = 0.2,
                       p_fixation_break: float = 0.05, units_location: bool = False,
                       region_source: str = "electrodes", image_size: int = 8,
                       rates=None, image_objects=None, images=None, image_names=None,
                       unit_regions=None, seed: int = 0) -> Truth:
    """Write a macaque rapid-serial-visual-presentation session as the DiCarlo lab converts it.

    Each fixation trial shows ``images_per_trial`` images for ``image_on`` s separated by
    ``image_off`` s; every image is shown ``n_repetitions`` times in shuffled order. The
    ``trials`` table has one row per image presentation with ``stimulus_presented`` (an index
    into ``order_of_images``), ``trial_index``, ``stimulus_order_in_trial``,
    ``fixation_correct`` and ``object_name``. Images live in ``/stimulus/presentation/stimuli``
    under random hash-like names, so their alphabetical order (how pynwb reads them back) differs
    from ``order_of_images``. Units are threshold crossings, one per electrode, with an
    ``electrodes`` column; ``electrodes.location`` holds the area (``regions`` split evenly).

    Parameters
    ----------
    path : str or Path
        Output ``.nwb`` file (written atomically).
    n_objects, n_images_per_object : int
        Images are grouped into objects; each object's responses form a manifold.
    n_repetitions : int
        Presentations of each image.
    n_units : int
        Units (one per electrode).
    regions : sequence of str
        Brain areas, assigned to contiguous blocks of electrodes.
    radius, dimension : float, int
        Object-manifold radius (relative to the center norm) and dimension.
    baseline, gain, background : float
        Evoked-rate model (spikes/s): ``max(baseline + gain * x, 0.5)`` above a spontaneous
        ``background`` rate.
    latency, response_duration : float
        The evoked response occupies ``[onset + latency, onset + latency + duration)``.
    image_on, image_off, images_per_trial : float, float, int
        RSVP timing.
    trial_noise : float
        Lognormal trial-to-trial gain noise (sd in log units).
    p_fixation_break : float
        Fraction of trials with ``fixation_correct = False``.
    units_location : bool
        Also put a ``location`` column on the units table (what some conversions do).
    region_source : {"electrodes", "electrode_group"}
        ``"electrode_group"`` writes no ``electrodes`` column and ``"unknown"`` as electrode
        location, so the area is only in each unit's ``electrode_group.location``.
    image_size : int
        Side of the (random grayscale) stimulus images in pixels.
    rates : (n_images, n_units) array, optional
        Evoked rates (spikes/s above ``background``) to use instead of the generated tuning,
        e.g. a model's features through a readout (the demo's "hidden brain"); then
        ``image_objects`` (object of each image) is required and ``n_objects``,
        ``n_images_per_object``, ``n_units``, ``radius``, ``dimension``, ``baseline``, ``gain``
        are not used.
    image_objects : (n_images,) array of str, optional
        Object of each row of ``rates``.
    images : (n_images, height, width) array in [0, 1], optional
        The stimulus images to store (default: random ``image_size`` squares).
    image_names : (n_images,) array of str, optional
        Image names (default: random hash-like names).
    unit_regions : (n_units,) array of str, optional
        Area of each unit (default: ``regions`` in contiguous, equal blocks).
    seed : int
        Seed of every random draw.

    Returns
    -------
    Truth
        Spike trains, regions, onsets, image names and object names as written.
    """
    from pynwb.base import ImageReferences, Images
    from pynwb.image import GrayscaleImage

    rng = np.random.default_rng(seed)
    if rates is None:
        rates, image_objects = _tuned_rates(n_objects, n_images_per_object, n_units,
                                            radius=radius, dimension=dimension,
                                            baseline=baseline, gain=gain, seed=seed)
    else:
        rates = np.asarray(rates, dtype=np.float64)
        if image_objects is None or len(image_objects) != rates.shape[0] or rates.ndim != 2:
            raise ValueError("rates must be (n_images, n_units) with image_objects of length "
                             "n_images")
        if not (np.isfinite(rates).all() and (rates >= 0).all()):
            raise ValueError("rates must be finite and non-negative (spikes/s)")
        image_objects = np.asarray(image_objects).astype(str)
        n_units = rates.shape[1]
    n_images = rates.shape[0]
    names = []
    while len(names) < n_images:  # hash-like names, as in the DiCarlo stimulus sets
        name = rng.bytes(6).hex()
        if name not in names:
            names.append(name)
    names = np.array(names) if image_names is None else np.asarray(image_names).astype(str)

    order = np.concatenate([rng.permutation(n_images) for _ in range(n_repetitions)])
    n_pres = order.size
    trial_index = np.arange(n_pres) // images_per_trial
    order_in_trial = np.arange(n_pres) % images_per_trial
    n_trials = int(trial_index.max()) + 1
    # each trial: 0.3 s of fixation before the first image, 0.5 s inter-trial interval
    trial_start = np.arange(n_trials) * (0.3 + images_per_trial * (image_on + image_off) + 0.5)
    onsets = trial_start[trial_index] + 0.3 + order_in_trial * (image_on + image_off)
    fixation = rng.uniform(size=n_trials) >= p_fixation_break
    t_stop = float(onsets[-1] + 1.5)

    background_rates = background * rng.uniform(0.5, 1.5, n_units)
    trains = _poisson_trains(onsets, rates[order], background_rates, latency=latency,
                             duration=response_duration, t_stop=t_stop,
                             trial_noise=trial_noise, rng=rng)

    nwbfile = _new_file(f"synthetic-macaque-rsvp-{seed}", "macaque RSVP of object images",
                        "Macaca mulatta", "monkey_A", "P6Y", "M",
                        lab="DiCarlo (synthetic)", institution="MIT (synthetic)")
    device = nwbfile.create_device(name="UtahArray", description="96-channel Utah arrays")
    regions = list(regions)
    region_of = (np.array(regions)[np.arange(n_units) * len(regions) // n_units]
                 if unit_regions is None else np.asarray(unit_regions).astype(str))
    regions = list(dict.fromkeys(region_of.tolist()))
    groups = {}
    for r in regions:
        groups[r] = nwbfile.create_electrode_group(
            name=f"array_{r}", description=f"Utah array in {r}",
            location=r if region_source == "electrode_group" else f"array implanted in {r}",
            device=device)
    for u in range(n_units):
        nwbfile.add_electrode(group=groups[region_of[u]],
                              location="unknown" if region_source == "electrode_group"
                              else region_of[u], x=float(u % 10), y=float(u // 10), z=0.0)

    unit_cols = [("threshold_uV", "threshold of the crossing detector (microvolts)",
                  np.full(n_units, -40.0))]
    if units_location:
        unit_cols.append(("location", "brain area of the unit", region_of.astype(str)))
    electrodes = np.arange(n_units) if region_source == "electrodes" else None
    units = _units_table(trains, np.arange(n_units), "threshold crossings per electrode",
                         columns=unit_cols, electrodes=electrodes,
                         electrode_table=nwbfile.electrodes)
    if region_source == "electrode_group":
        units.add_column(name="electrode_group", description="electrode group of each unit",
                         data=[groups[region_of[u]] for u in range(n_units)])
    elif region_source != "electrodes":
        raise ValueError(f"region_source must be 'electrodes' or 'electrode_group', "
                         f"got {region_source!r}")
    nwbfile.units = units

    pixels = (rng.integers(0, 255, (n_images, image_size, image_size)) if images is None
              else np.round(np.clip(np.asarray(images, dtype=np.float64), 0, 1) * 255))
    images = [GrayscaleImage(name=str(n), data=pixels[i].astype(np.uint8),
                             description=f"image of {o}")
              for i, (n, o) in enumerate(zip(names, image_objects))]
    stimuli = Images(name="stimuli", images=images, description="stimulus set, in presentation-index order",
                     order_of_images=ImageReferences(name="order_of_images", data=images))
    nwbfile.add_stimulus(stimuli)

    trials = _intervals_table("trials", "one row per image presentation", onsets, onsets + image_on, [
        ("stimulus_presented", "index of the image in /stimulus/presentation/stimuli/order_of_images",
         order.astype(np.int64)),
        ("trial_index", "index of the fixation trial", trial_index.astype(np.int64)),
        ("stimulus_order_in_trial", "position of the image within its trial",
         order_in_trial.astype(np.int64)),
        ("fixation_correct", "whether fixation was held through the trial",
         fixation[trial_index]),
        ("object_name", "object shown in the image", image_objects[order].astype(str)),
    ])
    nwbfile.trials = trials
    out = _write(nwbfile, path)
    return Truth(path=out, spike_times=trains, unit_ids=np.arange(n_units), regions=region_of,
                 onsets=onsets, stimulus_ids=names[order], object_names=image_objects[order],
                 rates=rates, extra={"image_names": names, "order": order,
                                     "fixation_correct": fixation[trial_index]})


# --------------------------------------------------------------------------------------------
# Allen Visual Coding Neuropixels
# --------------------------------------------------------------------------------------------

ALLEN_AREAS = ("VISp", "VISl", "LGd", "CA1")


def write_allen_neuropixels(path, *, n_objects: int = 6, n_images_per_object: int = 6,
                            n_repetitions: int = 5, n_units: int = 40, p_blank: float = 0.1,
                            areas=ALLEN_AREAS, radius: float = 0.5, dimension: int = 4,
                            baseline: float = 15.0, gain: float = 6.0, background: float = 4.0,
                            latency: float = 0.05, response_duration: float = 0.2,
                            frame_duration: float = 0.25, trial_noise: float = 0.2,
                            n_flashes: int = 20, seed: int = 0) -> Truth:
    """Write a mouse Neuropixels session in the layout of the Allen Visual Coding NWB files.

    ``/intervals/natural_scenes_presentations`` has one row per ``frame_duration`` s frame, with a
    float ``frame`` (``-1.0`` = blank screen), ``stimulus_name`` and ``stimulus_block``;
    ``/intervals/flashes_presentations`` precedes it. Units have large ids, no ``electrodes``
    column, and a ``peak_channel_id`` equal to an ``electrodes`` id (also large); the area is in
    ``electrodes.location`` while the electrode group only says "See electrode locations".
    ``processing/running/running_speed`` holds the running speed. Scenes are grouped into
    objects (``object_name`` in the truth only: Allen tables carry no object labels).

    Returns
    -------
    Truth
        Spike trains, regions, onsets and frames of the natural-scene presentations;
        ``extra`` holds the flash onsets and the running speed.
    """
    from pynwb import TimeSeries

    rng = np.random.default_rng(seed)
    rates, image_objects = _tuned_rates(n_objects, n_images_per_object, n_units, radius=radius,
                                        dimension=dimension, baseline=baseline, gain=gain,
                                        seed=seed)
    n_images = n_objects * n_images_per_object
    frames = _scene_sequence(rng, n_images, n_repetitions, p_blank)
    flash_on = 1.0 + np.arange(n_flashes) * 2.0
    flash_color = np.where(np.arange(n_flashes) % 2 == 0, 1.0, -1.0)
    scenes_start = flash_on[-1] + 3.0 if n_flashes else 1.0
    onsets = scenes_start + np.arange(frames.size) * frame_duration
    t_stop = float(onsets[-1] + 2.0)

    evoked = np.zeros((frames.size, n_units))
    shown = frames >= 0
    evoked[shown] = rates[frames[shown].astype(int)]
    background_rates = background * rng.uniform(0.5, 1.5, n_units)
    trains = _poisson_trains(onsets, evoked, background_rates, latency=latency,
                             duration=response_duration, t_stop=t_stop, trial_noise=trial_noise,
                             rng=rng)

    nwbfile = _new_file(f"synthetic-allen-neuropixels-{seed}", "Allen-style visual coding session",
                        "Mus musculus", "mouse_712", "P110D", "F",
                        lab="Allen Institute (synthetic)", institution="Allen Institute (synthetic)")
    device = nwbfile.create_device(name="probeA", description="Neuropixels 1.0")
    group = nwbfile.create_electrode_group(name="probeA", description="Neuropixels probe A",
                                           location="See electrode locations", device=device)
    n_channels = max(2 * n_units, 8)
    channel_ids = 850_000_000 + np.arange(n_channels) * 3
    area_of_channel = np.array(areas)[np.arange(n_channels) * len(areas) // n_channels]
    for ch in range(n_channels):
        nwbfile.add_electrode(id=int(channel_ids[ch]), group=group,
                              location=str(area_of_channel[ch]),
                              x=0.0, y=float(ch * 20), z=0.0)
    peak = np.sort(rng.choice(n_channels, n_units, replace=False))
    unit_ids = 951_000_000 + np.sort(rng.choice(100_000, n_units, replace=False))
    nwbfile.units = _units_table(trains, unit_ids, "sorted units (Kilosort-style)", columns=[
        ("peak_channel_id", "id of the electrode with the largest waveform", channel_ids[peak]),
        ("quality", "curation label", np.full(n_units, "good")),
        ("firing_rate", "mean firing rate (Hz)",
         np.array([len(t) / t_stop for t in trains])),
    ])

    nwbfile.add_time_intervals(_intervals_table(
        "flashes_presentations", "full-field flashes", flash_on, flash_on + 0.25, [
            ("stimulus_name", "name of the stimulus", np.full(n_flashes, "flashes")),
            ("color", "flash polarity", flash_color),
            ("stimulus_block", "block index", np.full(n_flashes, 0.0))]))
    nwbfile.add_time_intervals(_intervals_table(
        "natural_scenes_presentations", "natural scenes", onsets, onsets + frame_duration, [
            ("stimulus_name", "name of the stimulus", np.full(frames.size, "natural_scenes")),
            ("frame", "scene index; -1 is a blank screen", frames),
            ("stimulus_block", "block index", np.full(frames.size, 1.0))]))

    rate_hz = 60.0
    n_samples = int(t_stop * rate_hz)
    speed = np.abs(np.cumsum(rng.standard_normal(n_samples)) * 0.5) % 40.0
    running = nwbfile.create_processing_module("running", "running speed")
    running.add(TimeSeries(name="running_speed", data=speed, unit="cm/s", rate=rate_hz,
                           starting_time=0.0, description="running wheel speed"))
    out = _write(nwbfile, path)
    stim_ids = np.where(shown, frames, -1).astype(int).astype(str)
    obj = np.where(shown, image_objects[np.maximum(frames, 0).astype(int)], "blank")
    return Truth(path=out, spike_times=trains, unit_ids=unit_ids,
                 regions=area_of_channel[peak], onsets=onsets, stimulus_ids=stim_ids,
                 object_names=obj, rates=rates,
                 extra={"frames": frames, "flash_onsets": flash_on, "running_speed": speed,
                        "running_rate": rate_hz, "t_stop": t_stop,
                        "peak_channel_id": channel_ids[peak]})


# --------------------------------------------------------------------------------------------
# mouse two-photon imaging
# --------------------------------------------------------------------------------------------

def calcium_kernel(rate: float, tau_rise: float = 0.05, tau_decay: float = 0.4,
                   duration: float = 2.0) -> np.ndarray:
    """A double-exponential calcium transient sampled at ``rate`` Hz, peak normalized to 1."""
    t = np.arange(0.0, duration, 1.0 / rate)
    k = np.exp(-t / tau_decay) - np.exp(-t / tau_rise)
    return k / k.max()


def write_mouse_2p(path, *, n_objects: int = 6, n_images_per_object: int = 6,
                   n_repetitions: int = 4, n_rois: int = 30, frame_rate: float = 30.0,
                   p_blank: float = 0.1, area: str = "VISp", radius: float = 0.5,
                   dimension: int = 4, baseline: float = 6.0, gain: float = 3.0,
                   background: float = 1.0, latency: float = 0.0,
                   response_duration: float = 0.25, frame_duration: float = 0.25,
                   gap: float = 0.5, amplitude: float = 0.15, noise: float = 0.02,
                   tau_rise: float = 0.05, tau_decay: float = 0.4,
                   container: str = "DfOverF", series_name: str = "RoiResponseSeries",
                   orientation: str = "time_by_rois", timestamps: bool = False,
                   behaviour_in: str = "processing", fluorescence: bool = True,
                   image_size: int = 32, seed: int = 0) -> Truth:
    """Write a mouse two-photon session with dF/F traces, a plane segmentation and behaviour.

    Each ROI fires Poisson spikes (background plus evoked by natural scenes shown for
    ``frame_duration`` s with ``gap`` s of grey between them); spikes binned at ``frame_rate``
    are convolved with a double-exponential calcium kernel (:func:`calcium_kernel`) times
    ``amplitude`` and Gaussian noise of sd ``noise`` is added: the dF/F trace.
    ``processing/ophys`` holds ``ImageSegmentation/PlaneSegmentation`` (image masks) and the
    ``RoiResponseSeries`` inside a ``container`` (``"DfOverF"``, ``"Fluorescence"`` or any other
    name, which is written as a DfOverF with that name, e.g. ``"dff"``); the imaging plane's
    ``location`` is ``area``. ``/intervals/natural_scenes_presentations`` has a float ``frame``
    (``-1`` = blank). Head direction (CompassDirection) and position (Position) are written to
    ``processing/behavior`` or, with ``behaviour_in="acquisition"``, to ``acquisition``.

    Other-tool variants: ``orientation="rois_by_time"`` stores the trace transposed;
    ``timestamps=True`` stores explicit (slightly jittered) timestamps instead of a rate.

    Returns
    -------
    Truth
        ``extra`` holds ``dff`` (time × rois, as generated), ``times`` (sample times),
        ``head_direction``, ``position`` and the spike trains of each ROI.
    """
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    rng = np.random.default_rng(seed)
    rates, image_objects = _tuned_rates(n_objects, n_images_per_object, n_rois, radius=radius,
                                        dimension=dimension, baseline=baseline, gain=gain,
                                        seed=seed)
    n_images = n_objects * n_images_per_object
    frames = _scene_sequence(rng, n_images, n_repetitions, p_blank)
    onsets = 2.0 + np.arange(frames.size) * (frame_duration + gap)
    t_stop = float(onsets[-1] + 3.0)

    evoked = np.zeros((frames.size, n_rois))
    shown = frames >= 0
    evoked[shown] = rates[frames[shown].astype(int)]
    background_rates = background * rng.uniform(0.5, 1.5, n_rois)
    trains = _poisson_trains(onsets, evoked, background_rates, latency=latency,
                             duration=response_duration, t_stop=t_stop, trial_noise=0.2, rng=rng)

    n_samples = int(t_stop * frame_rate)
    times = np.arange(n_samples) / frame_rate
    if timestamps:  # acquisition clocks drift: jitter each frame by up to 1 ms
        times = times + rng.uniform(-1e-3, 1e-3, n_samples)
        times[0] = 0.0
    edges = np.append(times, times[-1] + 1.0 / frame_rate)
    kernel = calcium_kernel(frame_rate, tau_rise, tau_decay)
    dff = np.empty((n_samples, n_rois))
    for r in range(n_rois):
        counts = np.histogram(trains[r], edges)[0].astype(np.float64)
        dff[:, r] = amplitude * np.convolve(counts, kernel)[:n_samples]
    dff += noise * rng.standard_normal(dff.shape)

    nwbfile = _new_file(f"synthetic-mouse-2p-{seed}", "two-photon imaging of visual cortex",
                        "Mus musculus", "mouse_2p_01", "P90D", "M",
                        lab="Synthetic imaging lab", institution="Synthetic institute")
    device = nwbfile.create_device(name="Microscope", description="two-photon microscope")
    channel = OpticalChannel(name="GreenChannel", description="GCaMP6f emission",
                             emission_lambda=510.0)
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, imaging_rate=frame_rate,
        description="layer 2/3", device=device, excitation_lambda=920.0,
        indicator="GCaMP6f", location=area, grid_spacing=[1e-6, 1e-6],
        grid_spacing_unit="meters", origin_coords=[0.0, 0.0, 0.0], origin_coords_unit="meters")
    ophys = nwbfile.create_processing_module("ophys", "optical physiology")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    ophys.add(segmentation)
    plane_seg = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="ROIs found by a synthetic segmentation",
        imaging_plane=plane)
    yy, xx = np.mgrid[:image_size, :image_size]
    for r in range(n_rois):
        cy, cx = rng.uniform(3, image_size - 3, 2)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) <= 4.0).astype(np.float32)
        plane_seg.add_roi(image_mask=mask)
    if orientation not in ("time_by_rois", "rois_by_time"):
        raise ValueError(f"orientation must be 'time_by_rois' or 'rois_by_time', got {orientation!r}")
    time_kw = {"timestamps": times} if timestamps else {"rate": frame_rate, "starting_time": 0.0}
    traces = (Fluorescence if container == "Fluorescence" else DfOverF)(name=container)
    ophys.add(traces)
    traces.create_roi_response_series(
        name=series_name, data=dff, unit="n.a.", description="dF/F",
        rois=plane_seg.create_roi_table_region(region=list(range(n_rois)), description="all ROIs"),
        **time_kw)
    if fluorescence and container != "Fluorescence":  # raw fluorescence too, as pipelines write
        raw = Fluorescence(name="Fluorescence")
        ophys.add(raw)
        raw.create_roi_response_series(
            name="RawFluorescence", data=(1.0 + dff) * 100.0, unit="a.u.",
            description="raw fluorescence", **time_kw,
            rois=plane_seg.create_roi_table_region(region=list(range(n_rois)),
                                                   description="all ROIs"))
    series_path = f"processing/ophys/{container}/{series_name}/data"

    nwbfile.add_time_intervals(_intervals_table(
        "natural_scenes_presentations", "natural scenes", onsets, onsets + frame_duration, [
            ("frame", "scene index; -1 is a blank screen", frames),
            ("stimulus_name", "name of the stimulus", np.full(frames.size, "natural_scenes"))]))

    behaviour_rate = 20.0
    behaviour_start = 0.5  # the tracking camera starts after the microscope, as it often does
    n_b = int((t_stop - behaviour_start) * behaviour_rate)
    head = _random_walk_angle(n_b, 1 / behaviour_rate, rng)
    position = _random_walk_position(n_b, 1 / behaviour_rate, rng)
    _add_behaviour(nwbfile, {"rate": behaviour_rate, "starting_time": behaviour_start}, head, position,
                   behaviour_in)
    # pynwb refuses to write rois x time; other tools (e.g. MATLAB writers) do: rewrite the dataset
    after = (lambda f: _transpose_dataset(f, series_path)) if orientation == "rois_by_time" else None
    out = _write(nwbfile, path, after=after)
    stim_ids = np.where(shown, frames, -1).astype(int).astype(str)
    obj = np.where(shown, image_objects[np.maximum(frames, 0).astype(int)], "blank")
    return Truth(path=out, spike_times=[], unit_ids=np.arange(n_rois),
                 regions=np.full(n_rois, area), onsets=onsets, stimulus_ids=stim_ids,
                 object_names=obj, rates=rates,
                 extra={"dff": dff, "times": times, "frames": frames, "roi_trains": trains,
                        "head_direction": head, "position": position,
                        "behaviour_times": behaviour_start + np.arange(n_b) / behaviour_rate,
                        "frame_rate": frame_rate})


# --------------------------------------------------------------------------------------------
# head-direction cells (a ring attractor's activity, recorded with spikes)
# --------------------------------------------------------------------------------------------

def write_head_direction(path, *, n_units: int = 60, duration: float = 300.0,
                         concentration: float = 2.0, peak_rate: float = 20.0,
                         background: float = 1.0, speed: float = 2.0, dt: float = 0.01,
                         region: str = "ADN", seed: int = 0) -> Truth:
    """Write a mouse session of head-direction cells: spikes driven by a one-dimensional
    circular latent (the head direction), with the behaviour in ``processing/behavior``.

    Unit ``i`` fires as an inhomogeneous Poisson process of rate ``background + peak_rate *
    exp(k (cos(θ(t) - φ_i) - 1))`` (a von Mises tuning curve of concentration ``k`` around a
    preferred direction ``φ_i`` evenly spread on the circle, Taube et al. 1990); ``θ(t)`` is a
    smooth random walk. The population activity therefore lies near a ring: two latent
    dimensions (cos θ, sin θ) through a nonlinear readout, while its linear dimension is larger.

    Returns
    -------
    Truth
        ``extra`` holds ``head_direction`` and ``behaviour_times`` (the latent), and
        ``preferred_direction`` (φ of each unit).
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration / dt))
    times = np.arange(n) * dt
    head = _random_walk_angle(n, dt, rng, speed=speed)
    preferred = np.linspace(-np.pi, np.pi, n_units, endpoint=False)
    rate = background + peak_rate * np.exp(
        concentration * (np.cos(head[:, None] - preferred[None, :]) - 1.0))
    counts = rng.poisson(rate * dt)
    trains = [np.sort(np.repeat(times, counts[:, u]) + rng.uniform(0, dt, counts[:, u].sum()))
              for u in range(n_units)]
    nwbfile = _new_file(f"synthetic-head-direction-{seed}", "head-direction cells during "
                        "free foraging", "Mus musculus", "mouse_hd_01", "P80D", "F",
                        lab="Synthetic navigation lab", institution="Synthetic institute")
    device = nwbfile.create_device(name="Silicon probe", description="64-channel probe")
    group = nwbfile.create_electrode_group(name="shank0", description="probe shank",
                                           location=region, device=device)
    for u in range(n_units):
        nwbfile.add_electrode(group=group, location=region, x=0.0, y=float(u), z=0.0)
    nwbfile.units = _units_table(trains, np.arange(n_units), "sorted units",
                                 electrodes=np.arange(n_units),
                                 electrode_table=nwbfile.electrodes)
    position = _random_walk_position(n, dt, rng)
    _add_behaviour(nwbfile, {"rate": 1.0 / dt, "starting_time": 0.0}, head, position,
                   "processing")
    nwbfile.add_epoch(0.0, float(duration), ["foraging"])
    out = _write(nwbfile, path)
    return Truth(path=out, spike_times=trains, unit_ids=np.arange(n_units),
                 regions=np.full(n_units, region), rates=rate,
                 extra={"head_direction": head, "behaviour_times": times,
                        "preferred_direction": preferred})
