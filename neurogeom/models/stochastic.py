"""Stochastic manifolds: repeated passes of each image through a network whose stochastic parts
are active, one manifold per image (Dapello et al. 2021), and the Poisson-like noise module.

Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung (NeurIPS 2021) add Poisson-like
neuronal noise to a network's early layer and show that the noise shapes the geometry of the
representation (the manifolds formed by repeated noisy responses to one image, and by
adversarial perturbations of it) in a way that supports robustness. :class:`PoissonNoise` is
that noise; :func:`stochastic_manifolds` collects ``n_repeats`` responses per image with every
dropout and :class:`PoissonNoise` module active and the rest of the network in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch

from .._backend import torch_device
from .._params import check_int, check_positive, check_seed
from ..errors import AnalysisError
from ._responses import (as_images, image_ids as _image_ids, layer_assemblies, resolve_layers,
                         run_layers, stochastic_modules, training_mode)

__all__ = ["PoissonNoise", "stochastic_manifolds"]


class PoissonNoise(torch.nn.Module):
    """Poisson-like neuronal noise: the rectified input is a firing rate, the output a noisy
    spike count divided by ``gain``.

    With rate ``r = max(x, 0)`` and ``g = gain`` (expected spikes per unit of activation), the
    count is ``n ~ Poisson(g r)`` and the output ``n / g``: its mean is ``r`` and its variance
    ``r / g`` (Fano factor 1 in count units). Two samplers:

    - ``exact=False`` (default): the Gaussian approximation ``r + √(r/g) · ξ``, ``ξ ~ N(0, 1)``,
      reparameterized so gradients flow through the noise (as in Dapello et al.'s VOneNet);
    - ``exact=True``: true Poisson counts, with a straight-through gradient (that of ``r``).

    Active in training mode only (``module.train()``); in eval mode the output is the mean
    ``r``. Place it after a ReLU (then eval mode is the identity). ``stochastic = True`` marks
    it for :func:`stochastic_manifolds`.

    Parameters
    ----------
    gain : float
        Expected spikes per unit of activation; higher gain, relatively less noise.
    exact : bool
        Sample Poisson counts instead of the Gaussian approximation.

    References
    ----------
    .. [1] Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung (2021). Neural
       population geometry reveals the role of stochasticity in robust perception. NeurIPS 34.
    """

    stochastic = True

    def __init__(self, gain: float = 1.0, exact: bool = False):
        super().__init__()
        self.gain = check_positive(gain, "gain")
        self.exact = bool(exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rate = torch.relu(x)
        if not self.training:
            return rate
        if self.exact:
            counts = torch.poisson(rate.detach() * self.gain) / self.gain
            return rate + (counts - rate).detach()
        return rate + torch.sqrt(rate / self.gain) * torch.randn_like(rate)

    def extra_repr(self) -> str:
        return f"gain={self.gain}, exact={self.exact}"


def stochastic_manifolds(model: torch.nn.Module, images, *, n_repeats: int, layers,
                         seed: int = 0, image_ids=None, labels=None,
                         batch_size: int | None = None, device=None) -> dict:
    """Each layer's responses to ``n_repeats`` passes of every image with the noise active.

    The model runs in eval mode except its stochastic modules (every ``Dropout`` variant and
    :class:`PoissonNoise`), which are put in training mode; all modes are restored afterwards.
    Each batch holds every image ``n_repeats`` times, so one forward pass draws all repeats;
    torch's global generator is forked and seeded with ``seed``. A network without stochastic
    modules gives ``n_repeats`` identical responses: each manifold is a point (radius 0; the
    attr ``stochastic_modules`` is then empty).

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``device``.
    images : numpy.ndarray or torch.Tensor
        ``(n_images, ...)``.
    n_repeats : int
        Passes per image (points per manifold).
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    seed : int
        Seeds the noise.
    image_ids : sequence of str, optional
        Unique ids (default ``img0``, …), the manifold labels.
    labels : sequence, optional
        Class label per image, kept as coord ``label``.
    batch_size : int, optional
        Images per forward pass (each with its repeats); None: all at once.
    device : None, str or torch.device
        Where the model runs (None: the CPU).

    Returns
    -------
    dict of str to xarray.DataArray
        Per layer (request order) a ``(presentation, neuroid)`` assembly of ``n_images *
        n_repeats`` rows, image-major: presentation coords ``stimulus_id`` (the image id,
        repeated), ``repetition`` (0 … n_repeats-1), ``object_name`` (the image id: one
        manifold per image) and ``label``; attrs ``n_repeats``, ``seed``,
        ``stochastic_modules``.

    References
    ----------
    .. [1] Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung (2021). Neural
       population geometry reveals the role of stochasticity in robust perception. NeurIPS 34.
    """
    n_repeats = check_int(n_repeats, "n_repeats")
    seed = check_seed(seed)
    layers = resolve_layers(model, layers)
    dev = torch_device(device)
    x = as_images(images, dev)
    ids = _image_ids(image_ids, len(x))
    if labels is not None and len(labels) != len(x):
        raise AnalysisError(f"labels has {len(labels)} entries for {len(x)} images")
    step = len(x) if batch_size is None else check_int(batch_size, "batch_size")
    model.to(dev)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
            training_mode(model, False, stochastic=True):
        torch.manual_seed(seed)
        for start in range(0, len(x), step):
            rows = run_layers(model, x[start:start + step].repeat_interleave(n_repeats, 0),
                              layers, None)
            for name in layers:
                parts[name].append(rows[name])
    presentation = {"stimulus_id": np.repeat(ids, n_repeats),
                    "repetition": np.tile(np.arange(n_repeats), len(ids)),
                    "object_name": np.repeat(ids, n_repeats)}
    if labels is not None:
        presentation["label"] = np.repeat(np.asarray(labels), n_repeats)
    return layer_assemblies({k: np.concatenate(v) for k, v in parts.items()}, presentation,
                            model=model, source="stochastic_manifolds",
                            attrs={"n_repeats": n_repeats, "seed": seed, "device": str(dev),
                                   "stochastic_modules": stochastic_modules(model)},
                            references=["adversarial_geometry"])
