"""Adversarial manifolds: the responses to projected-gradient-descent (PGD) perturbations of
each image, one manifold per clean image (Dapello et al. 2021).

PGD (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018) looks for the perturbation δ within
the ε-ball ``‖δ‖ ≤ ε`` (L∞ or L2) that maximizes the classification loss ℓ(f(x + δ), y). From a
random start δ₀ drawn uniformly in the ball, each step ascends the loss and projects back:

    L∞:  δ ← Π( δ + α · sign(∇ₓℓ) ),          Π clamps each pixel of δ to [−ε, ε]
    L2:  δ ← Π( δ + α · ∇ₓℓ / ‖∇ₓℓ‖₂ ),       Π rescales δ to norm ε when it is longer

and then clamps ``x + δ`` to the valid pixel range. Clamping to the box after projecting onto
the ball keeps both constraints: ``x`` lies in the box, so clamping only moves each pixel of
``x + δ`` towards ``x``, which shrinks every ``|δ_i|`` and hence both norms. All images and all
random starts go through the network as one batch, so an attack of ``steps`` steps costs
``steps`` forward and backward passes of that batch.

Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung (NeurIPS 2021) measure the
geometry (MFT capacity, radius and dimension) of the manifold formed by many such perturbations
of one image, layer by layer, and compare standard, adversarially trained and stochastic
networks: :func:`adversarial_manifolds` returns those manifolds as assemblies for
``manifold_capacity(..., by="object_name")``.
"""

from __future__ import annotations

import numpy as np
import torch

from .._backend import torch_device
from .._params import check_int, check_nonnegative, check_seed
from ..errors import AnalysisError
from ._responses import (as_images, image_ids as _image_ids, layer_assemblies, resolve_layers,
                         run_layers, training_mode)

__all__ = ["NORMS", "adversarial_manifolds", "pgd_attack"]

NORMS = ("linf", "l2")


def _per_image_norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.reshape(len(d), -1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The nearest point of the ε-ball: a clamp (L∞) or a rescaling of longer δ (L2)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    length = _per_image_norm(delta, "l2").reshape((-1,) + (1,) * (delta.ndim - 1))
    return delta * torch.clamp(eps / length.clamp_min(1e-30), max=1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator) -> torch.Tensor:
    """δ₀ uniform in the ε-ball: uniform per pixel (L∞); a uniform direction times ε·U^{1/d}
    (L2: the radius law of a uniform point in a d-ball)."""
    if eps == 0:
        return torch.zeros_like(x)
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
        return ((2 * u - 1) * eps).to(x.device)
    d = x[0].numel()
    g = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
    g = g / _per_image_norm(g, "l2").reshape((-1,) + (1,) * (x.ndim - 1))
    r = eps * torch.rand(len(x), generator=generator, dtype=x.dtype,
                         device=generator.device) ** (1.0 / d)
    return (g * r.reshape((-1,) + (1,) * (x.ndim - 1))).to(x.device)


def _check_attack(eps, norm, steps, step_size, pixel_range):
    eps = check_nonnegative(eps, "eps")
    if norm not in NORMS:
        raise AnalysisError(f"norm must be one of {NORMS}, got {norm!r}")
    steps = check_int(steps, "steps", minimum=0)
    # Madry et al.'s rule of thumb: 2.5 ε / steps lets a run cross the ball (2ε) with slack
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else \
        check_nonnegative(step_size, "step_size")
    if pixel_range is not None:
        lo, hi = (float(v) for v in pixel_range)
        if not lo < hi:
            raise AnalysisError(f"pixel_range must be (low, high) with low < high, got "
                                f"{pixel_range!r}")
        pixel_range = (lo, hi)
    return eps, steps, step_size, pixel_range


def pgd_attack(model: torch.nn.Module, images, labels, *, eps: float, norm: str = "linf",
               steps: int = 10, step_size: float | None = None, pixel_range=(0.0, 1.0),
               seed: int = 0, random_start: bool = True) -> torch.Tensor:
    """Untargeted PGD perturbations of a batch of images, maximizing the cross-entropy.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits ``(batch, n_classes)``; used as it is (call ``eval()``
        first for a deterministic attack) and never updated.
    images : torch.Tensor
        ``(batch, ...)`` clean images, inside ``pixel_range``, on the model's device.
    labels : torch.Tensor
        ``(batch,)`` true classes.
    eps : float
        Radius of the ball (in pixel units).
    norm : {"linf", "l2"}
        The ball's norm.
    steps : int
        Gradient steps (0: the random start alone).
    step_size : float, optional
        α; default 2.5 ε / steps.
    pixel_range : (float, float) or None
        Valid pixel values; None: unbounded.
    seed : int
        Seeds the random starts (a private generator: the global stream is untouched).
    random_start : bool
        Start from a uniform draw in the ball (True) or from the clean image.

    Returns
    -------
    torch.Tensor
        The perturbed images ``x + δ``, detached, with ``‖δ‖ ≤ ε`` and values in
        ``pixel_range``.
    """
    eps, steps, step_size, pixel_range = _check_attack(eps, norm, steps, step_size, pixel_range)
    x = images.detach()
    y = torch.as_tensor(labels, device=x.device).long()
    if y.shape != (len(x),):
        raise AnalysisError(f"labels have shape {tuple(y.shape)} for {len(x)} images")
    generator = torch.Generator(device=x.device).manual_seed(check_seed(seed))
    delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    # L∞: the ε-ball and the pixel box intersect in the box [max(x−ε, lo), min(x+ε, hi)], so
    # projecting onto the ball and clamping to the range is one clamp with per-pixel bounds
    if norm == "linf":
        lower, upper = x - eps, x + eps
        if pixel_range is not None:
            lower, upper = lower.clamp_min(pixel_range[0]), upper.clamp_max(pixel_range[1])
    adv = x + delta
    if pixel_range is not None:
        adv = adv.clamp(*pixel_range)
    view = (-1,) + (1,) * (x.ndim - 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        # summed loss: each image's gradient is that of its own loss (one graph for the batch)
        loss = torch.nn.functional.cross_entropy(model(adv), y, reduction="sum")
        grad, = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv.detach()
            if norm == "linf":
                adv.add_(grad.sign_(), alpha=step_size)
                adv = torch.max(torch.min(adv, upper), lower)
            else:
                scale = step_size / _per_image_norm(grad, "l2").clamp_min(1e-30)
                delta = adv.sub_(x).addcmul_(grad, scale.reshape(view))   # in place: adv is spent
                length = _per_image_norm(delta, "l2").clamp_min(1e-30)
                adv = delta.mul_(torch.clamp(eps / length, max=1.0).reshape(view)).add_(x)
                if pixel_range is not None:
                    adv.clamp_(*pixel_range)
    return adv.detach()


def adversarial_manifolds(model: torch.nn.Module, images, labels, *, eps: float,
                          norm: str = "linf", steps: int = 10, step_size: float | None = None,
                          n_samples: int = 8, layers, seed: int = 0, pixel_range=(0.0, 1.0),
                          image_ids=None, batch_size: int | None = None, device=None) -> dict:
    """Each layer's responses to ``n_samples`` PGD perturbations of every image.

    Every image is repeated ``n_samples`` times, each copy with its own random start, and all
    copies are attacked together (:func:`pgd_attack`; the model in eval mode, restored
    afterwards); the perturbed images then pass through the model once more with the
    ``layers`` hooked. Different random starts reach different points of the ball, which is
    what spreads each image's adversarial manifold.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits; moved to ``device``.
    images : numpy.ndarray or torch.Tensor
        ``(n_images, ...)`` clean images inside ``pixel_range``.
    labels : array-like of int
        True class per image (the attack increases its loss).
    eps, norm, steps, step_size, pixel_range
        The attack; see :func:`pgd_attack`. ``eps=0`` gives every sample the clean image.
    n_samples : int
        Perturbations per image (points per manifold).
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    seed : int
        Seeds the random starts.
    image_ids : sequence of str, optional
        Unique ids (default ``img0``, …), the manifold labels.
    batch_size : int, optional
        Clean images per attacked batch (each with its ``n_samples`` copies); None attacks all
        at once (one graph).
    device : None, str or torch.device
        Where the attack runs (None: the CPU).

    Returns
    -------
    dict of str to xarray.DataArray
        Per layer (request order) a ``(presentation, neuroid)`` assembly of ``n_images *
        n_samples`` rows, image-major. Presentation coords: ``stimulus_id``
        (``"<id>/adv<s>"``), ``object_name`` (the image id: one manifold per clean image),
        ``label`` (true class), ``sample``, ``predicted`` (the model's class for the perturbed
        image), ``attack_success`` (predicted ≠ label), ``perturbation_norm`` (‖δ‖ in the
        attack's norm). Attrs: the attack's options, ``attack_success_rate`` and
        ``clean_accuracy``.

    References
    ----------
    .. [1] Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung (2021). Neural
       population geometry reveals the role of stochasticity in robust perception. NeurIPS 34.
    .. [2] Madry, Makelov, Schmidt, Tsipras & Vladu (2018). Towards deep learning models
       resistant to adversarial attacks. ICLR.
    """
    eps, steps, step_size, pixel_range = _check_attack(eps, norm, steps, step_size, pixel_range)
    n_samples = check_int(n_samples, "n_samples")
    seed = check_seed(seed)
    layers = resolve_layers(model, layers)
    dev = torch_device(device)
    x = as_images(images, dev)
    y = torch.as_tensor(np.array(labels), device=dev).long()
    if y.shape != (len(x),):
        raise AnalysisError(f"labels have shape {tuple(y.shape)}; expected one label per image "
                            f"({len(x)})")
    if pixel_range is not None and ((x < pixel_range[0]).any() or (x > pixel_range[1]).any()):
        raise AnalysisError(f"images have values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
                            f", outside pixel_range={pixel_range}; rescale them or pass "
                            "pixel_range")
    ids = _image_ids(image_ids, len(x))
    step = len(x) if batch_size is None else check_int(batch_size, "batch_size")
    model.to(dev)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    preds, norms = [], []
    with training_mode(model, False):
        with torch.no_grad():
            clean_pred = model(x).argmax(1)
        for b, start in enumerate(range(0, len(x), step)):
            xb = x[start:start + step].repeat_interleave(n_samples, 0)
            yb = y[start:start + step].repeat_interleave(n_samples, 0)
            adv = pgd_attack(model, xb, yb, eps=eps, norm=norm, steps=steps,
                             step_size=step_size, pixel_range=pixel_range,
                             seed=(seed + 7919 * b) % 2**32)
            with torch.no_grad():
                preds.append(model(adv).argmax(1).cpu().numpy())
            norms.append(_per_image_norm(adv - xb, norm).cpu().numpy())
            rows = run_layers(model, adv, layers, None)
            for name in layers:
                parts[name].append(rows[name])
    predicted = np.concatenate(preds)
    true = np.repeat(y.cpu().numpy(), n_samples)
    success = predicted != true
    presentation = {
        "stimulus_id": np.array([f"{i}/adv{s}" for i in ids for s in range(n_samples)]),
        "object_name": np.repeat(ids, n_samples), "label": true,
        "sample": np.tile(np.arange(n_samples), len(ids)), "predicted": predicted,
        "attack_success": success, "perturbation_norm": np.concatenate(norms).astype(np.float64)}
    attrs = {"eps": eps, "norm": norm, "steps": steps, "step_size": step_size,
             "n_samples": n_samples, "seed": seed, "pixel_range": pixel_range,
             "attack_success_rate": float(success.mean()),
             "clean_accuracy": float((clean_pred.cpu().numpy() == y.cpu().numpy()).mean()),
             "device": str(dev)}
    return layer_assemblies({k: np.concatenate(v) for k, v in parts.items()}, presentation,
                            model=model, source="adversarial_manifolds", attrs=attrs,
                            references=["adversarial_geometry", "pgd"])
