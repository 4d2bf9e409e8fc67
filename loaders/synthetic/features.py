"""Synthetic model-layer activations for the stimuli of an assembly (random ReLU features)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurogeom import __version__


def random_features(responses: xr.DataArray, n_features: int = 200, *, noise: float = 0.0,
                    layer: str = "random_relu", seed: int = 0) -> xr.DataArray:
    """Activations of a random ReLU layer reading the repetition-averaged responses.

    ``features = max(0, z W + b)`` where ``z`` are the per-stimulus mean responses
    (standardized), ``W`` Gaussian and ``b`` uniform; ``noise`` adds Gaussian noise of that
    standard deviation to ``z`` first, so the layer carries only part of the neural signal.
    Useful as a stand-in model in examples and tests: a linear readout of it predicts the
    responses well but not perfectly.

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)`` with one presentation per ``stimulus_id`` (first-appearance
        order) and the stimulus coords of ``responses``; neuroid coords ``neuroid_id``,
        ``region`` (= ``layer``).
    """
    from neurogeom.assembly import average_repetitions

    rng = np.random.default_rng(seed)
    mean = average_repetitions(responses) if not _unique(responses) else responses
    z = np.asarray(mean.values, dtype=np.float64)
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    z = z + noise * rng.standard_normal(z.shape)
    W = rng.standard_normal((z.shape[1], n_features)) / np.sqrt(z.shape[1])
    b = rng.uniform(-0.5, 0.5, n_features)
    values = np.maximum(z @ W + b, 0.0)
    coords = {name: ("presentation", np.asarray(c.values)) for name, c in mean.coords.items()
              if c.dims == ("presentation",) and name != "n_repetitions"}
    coords["neuroid_id"] = ("neuroid", np.array([f"{layer}/{i}" for i in range(n_features)]))
    coords["region"] = ("neuroid", np.full(n_features, layer))
    return xr.DataArray(values, dims=("presentation", "neuroid"), coords=coords, name="features",
                        attrs={"source": "loaders.synthetic.random_features", "layer": layer,
                               "noise": float(noise), "seed": int(seed),
                               "neurogeom_version": __version__})


def _unique(a: xr.DataArray) -> bool:
    ids = np.asarray(a["stimulus_id"].values)
    return len(np.unique(ids)) == len(ids)
