"""In-memory assemblies with object manifolds of controlled radius and dimension."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurogeom import __version__


def object_manifolds(n_objects: int = 8, n_images: int = 20, n_neuroids: int = 100, *,
                     n_repetitions: int = 4, radius: float = 0.5, dimension: int = 5,
                     noise: float = 0.2, baseline: float = 10.0, gain: float = 5.0,
                     region: str = "IT", seed: int = 0) -> xr.DataArray:
    """Responses of a neural population to images of objects, repeated with trial noise.

    Each object is a manifold: a random unit center plus ``radius`` times a random point of a
    ``dimension``-dim unit ball in a random subspace. Responses are ``baseline + gain * x`` plus
    Gaussian trial noise of standard deviation ``noise * gain``, in spikes/s.

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)`` with ``n_objects * n_images * n_repetitions`` presentations;
        presentation coords ``stimulus_id``, ``object_name``, ``image_index``, ``repetition``;
        neuroid coords ``neuroid_id``, ``region``, ``subject``, ``session``.
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_objects, n_neuroids)) / np.sqrt(n_neuroids)
    points = []
    for _ in range(n_objects):
        basis = np.linalg.qr(rng.standard_normal((n_neuroids, dimension)))[0]
        direction = rng.standard_normal((n_images, dimension))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        r = rng.uniform(size=(n_images, 1)) ** (1.0 / dimension)
        points.append((radius * r * direction) @ basis.T)
    clean = np.concatenate([c + p for c, p in zip(centers, points)])  # (objects*images, neuroids)
    clean = baseline + gain * clean * np.sqrt(n_neuroids)
    n_stim = n_objects * n_images
    reps = np.repeat(np.arange(n_repetitions), n_stim)
    values = np.tile(clean, (n_repetitions, 1))
    values = values + noise * gain * rng.standard_normal(values.shape)

    objects = np.repeat([f"object_{o:02d}" for o in range(n_objects)], n_images)
    image = np.tile(np.arange(n_images), n_objects)
    stim = np.array([f"{o}/image_{i:03d}" for o, i in zip(objects, image)])
    return xr.DataArray(
        values,
        dims=("presentation", "neuroid"),
        coords={
            "stimulus_id": ("presentation", np.tile(stim, n_repetitions)),
            "object_name": ("presentation", np.tile(objects, n_repetitions)),
            "image_index": ("presentation", np.tile(image, n_repetitions)),
            "repetition": ("presentation", reps),
            "neuroid_id": ("neuroid", np.array([f"synthetic/{region}/{i}" for i in range(n_neuroids)])),
            "region": ("neuroid", np.full(n_neuroids, region)),
            "subject": ("neuroid", np.full(n_neuroids, "synthetic_monkey")),
            "session": ("neuroid", np.full(n_neuroids, "session_0")),
        },
        attrs={"units": "spikes/s", "source": "loaders.synthetic.object_manifolds",
               "species": "synthetic", "radius": float(radius), "dimension": int(dimension),
               "seed": int(seed), "neurogeom_version": __version__},
        name="responses",
    )
