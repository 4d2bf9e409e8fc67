"""Maximum manifold capacity representations (MMCR): the objective, a training loop, the linear
probe and the augmentation manifolds it shapes.

Yerxa, Kuang, Simoncelli & Chung (NeurIPS 2023) turn manifold capacity into a self-supervised
objective. Each image ``i`` of a batch of ``B`` is seen under ``K`` random augmentations; the
network's embeddings ``z_ik ∈ R^F`` are normalized to the unit sphere, ``ẑ_ik = z_ik/‖z_ik‖``,
and averaged into the image's centroid ``c_i = (1/K) Σ_k ẑ_ik``. With ``C`` the ``B × F``
matrix of centroids and ``Z_i`` the ``K × F`` matrix of image ``i``'s views, the loss is

    L = −‖C‖_*  +  λ · (1/B) Σ_i ‖Z_i‖_*          (Yerxa et al. 2023, eq. 5)

where ``‖·‖_*`` is the nuclear norm (sum of singular values). Maximizing ``‖C‖_*`` spreads the
centroids over many directions while pushing each centroid's norm towards 1 — which, on the unit
sphere, means the views of one image collapse together: small, well-separated augmentation
manifolds, the geometry MFT capacity rewards (their §3 ties the two). ``λ > 0`` additionally
penalizes the spread of each image's own views.

The analysis side: :func:`augmentation_manifolds` returns each layer's responses to ``K`` views
of every image as an assembly with one manifold per image (``by="object_name"``), and
:func:`linear_probe` the standard evaluation (a logistic-regression readout of frozen features).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .._backend import torch_device
from .._blas import single_threaded_blas
from .._params import check_int, check_nonnegative, check_positive, check_seed
from .._results import build_result
from ..errors import AnalysisError, ConvergenceError
from ._responses import (as_images, capture, image_ids as _image_ids, layer_assemblies,
                         resolve_layers, run_layers, training_mode)

__all__ = ["MMCRLoss", "augmentation_manifolds", "linear_probe", "train_ssl"]

logger = logging.getLogger("neurogeom.models")


class MMCRLoss(torch.nn.Module):
    """The MMCR objective: minus the nuclear norm of the view centroids (+ λ × views' norms).

    ``forward(z)`` takes embeddings ``z`` shaped ``(images, views, features)`` and returns the
    scalar loss

        L = −‖C‖_* + λ · mean_i ‖Ẑ_i‖_*,   ẑ_ik = z_ik / ‖z_ik‖,   C_i = mean_k ẑ_ik,

    with nuclear norms from :func:`torch.linalg.svdvals` (gradients by autograd: the gradient
    of ``‖A‖_*`` is ``U Vᵀ`` of the thin SVD ``A = U S Vᵀ``, defined wherever ``A`` has full
    rank). The value is not divided by the batch size, so it is the nuclear norm itself;
    ``‖C‖_* ≤ √(min(B, F)) ‖C‖_F ≤ √(min(B, F) · B)``.

    Parameters
    ----------
    lmbda : float
        Weight λ ≥ 0 of the mean nuclear norm of each image's view matrix (0: the plain
        centroid objective of the paper's main experiments).
    eps : float
        Floor of the embedding norms in the normalization (keeps zero embeddings finite).

    Examples
    --------
    >>> loss = MMCRLoss()(torch.randn(8, 4, 16))
    >>> loss.ndim
    0

    References
    ----------
    .. [1] Yerxa, Kuang, Simoncelli & Chung (2023). Learning efficient coding of natural images
       with maximum manifold capacity representations. NeurIPS 36.
    """

    def __init__(self, lmbda: float = 0.0, eps: float = 1e-12):
        super().__init__()
        self.lmbda = check_nonnegative(lmbda, "lmbda")
        self.eps = check_positive(eps, "eps")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 3 or min(z.shape) < 1:
            raise AnalysisError(f"MMCRLoss takes embeddings shaped (images, views, features); "
                                f"got shape {tuple(z.shape)}")
        z = torch.nn.functional.normalize(z, dim=-1, eps=self.eps)
        loss = -torch.linalg.svdvals(z.mean(dim=1)).sum()
        if self.lmbda > 0:
            loss = loss + self.lmbda * torch.linalg.svdvals(z).sum(dim=-1).mean()
        return loss

    def extra_repr(self) -> str:
        return f"lmbda={self.lmbda}"


def _views(x: torch.Tensor, transform, n_views: int) -> torch.Tensor:
    """``n_views`` augmentations of each image, view-major: ``(n_views * n, ...)``."""
    out = transform(x.repeat((n_views,) + (1,) * (x.ndim - 1)))
    if not isinstance(out, torch.Tensor) or out.shape[0] != n_views * len(x):
        raise AnalysisError(
            f"transform must map a (batch, ...) tensor to a tensor with the same batch size; "
            f"it returned {type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))} for "
            f"a batch of {n_views * len(x)}")
    return out


def ssl_step(model, x, transform, n_views, objective, optimizer, layer=None):
    """One self-supervised update on the image batch ``x``: all views in one forward pass, the
    objective on the ``(images, views, features)`` embeddings, one optimizer step; the loss."""
    views = _views(x, transform, n_views)
    if layer is None:
        emb = model(views)
    else:
        with capture(model, [layer], detach=False) as store:
            model(views)
        emb = store[layer]
    emb = emb.reshape(n_views, len(x), -1).transpose(0, 1)      # (images, views, features)
    loss = objective(emb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_ssl(model: torch.nn.Module, images, transform, objective=None, *, n_views: int = 4,
              epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
              weight_decay: float = 0.0, layer: str | None = None, seed: int = 0, device=None,
              progress: bool | None = None) -> xr.Dataset:
    """Train ``model`` in place with a self-supervised multi-view objective (default MMCR).

    Each epoch shuffles the images (seeded) into batches of ``batch_size``; each batch is
    augmented ``n_views`` times by ``transform`` and passed through the model in one forward
    pass; the embeddings (the model's output, or the flattened output of ``layer``) are
    reshaped to ``(images, views, features)`` and handed to ``objective``; Adam takes one
    step. The mean loss of each epoch goes to the progress bar and to the
    ``neurogeom.models`` logger (level INFO).

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place and moved to ``device``; left in eval mode.
    images : numpy.ndarray or torch.Tensor
        ``(n_images, ...)`` training images (labels are never used).
    transform : callable
        Maps a ``(batch, ...)`` tensor to augmented images of the same batch size, drawing an
        independent augmentation per image from torch's global generator (e.g.
        :class:`neurogeom.models.RandomShift`).
    objective : callable, optional
        ``objective(z)`` on embeddings ``(images, views, features)`` → scalar loss to
        minimize. Default :class:`MMCRLoss` ``()``.
    n_views, epochs, batch_size : int
        Views per image (K ≥ 2), passes over the images, images per step.
    lr, weight_decay : float
        Adam's learning rate and weight decay.
    layer : str, optional
        Train on this layer's flattened output instead of the model's output.
    seed : int
        Seeds batch order and every draw of the transform (torch's global generator is
        forked, so the caller's stream is untouched).
    device : None, str or torch.device
        Where to train (None: the CPU); see :mod:`neurogeom._backend`.
    progress : bool or None
        Show a tqdm bar over epochs; None shows it only on a terminal.

    Returns
    -------
    xarray.Dataset
        ``loss`` on dim ``epoch`` (the mean objective over each epoch's batches), with the
        training options as attrs.

    Raises
    ------
    AnalysisError
        Bad options, fewer than 2 images, a transform that changes the batch size, an
        unknown ``layer``.
    ConvergenceError
        The loss became NaN or inf.

    References
    ----------
    .. [1] Yerxa, Kuang, Simoncelli & Chung (2023). Learning efficient coding of natural images
       with maximum manifold capacity representations. NeurIPS 36.
    """
    n_views = check_int(n_views, "n_views", minimum=2)
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    lr = check_positive(lr, "lr")
    weight_decay = check_nonnegative(weight_decay, "weight_decay")
    seed = check_seed(seed)
    if layer is not None:
        resolve_layers(model, [layer])
    dev = torch_device(device)
    objective = MMCRLoss() if objective is None else objective
    x = as_images(images, dev)
    n = len(x)
    if n < 2:
        raise AnalysisError(f"train_ssl needs at least 2 images, got {n}")
    model.to(dev)
    rng = np.random.default_rng(seed)
    losses = []
    forked = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        model.train()
        bar = tqdm(range(epochs), desc="train_ssl", leave=False,
                   disable=(None if progress is None else not progress))
        for epoch in bar:
            order = torch.from_numpy(rng.permutation(n)).to(dev)
            total, steps = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < 2:    # a single image has no centroid spread to measure
                    continue
                total += float(ssl_step(model, x[idx], transform, n_views, objective, optimizer,
                                        layer))
                steps += 1
            mean = total / steps
            if not np.isfinite(mean):
                model.eval()
                raise ConvergenceError(f"train_ssl diverged at epoch {epoch} (loss {mean}); "
                                       "lower lr")
            losses.append(mean)
            bar.set_postfix(loss=f"{mean:.4f}")
            logger.info("train_ssl epoch %d/%d: loss %.6g", epoch + 1, epochs, mean)
        bar.close()
    model.eval()
    return build_result(
        {"loss": ("epoch", np.asarray(losses))}, {"epoch": np.arange(epochs)},
        analysis="train_ssl",
        parameters={"objective": repr(objective), "transform": repr(transform),
                    "n_views": n_views, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                    "weight_decay": weight_decay, "layer": layer, "seed": seed,
                    "device": str(dev)},
        inputs={}, references=["mmcr"],
        details={"model": type(model).__name__, "n_images": n})


def augmentation_manifolds(model: torch.nn.Module, images, transform, *, n_views: int,
                           layers, seed: int = 0, image_ids=None, labels=None,
                           batch_size: int = 256, device=None) -> dict:
    """Each layer's responses to ``n_views`` augmentations of every image: one manifold each.

    The model runs in eval mode (restored afterwards) without gradients; the views are drawn
    by ``transform`` from torch's global generator, forked and seeded with ``seed``.

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``device``.
    images : numpy.ndarray or torch.Tensor
        ``(n_images, ...)``.
    transform : callable
        As for :func:`train_ssl`: a batch in, independently augmented images out.
    n_views : int
        Views per image (points per manifold).
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    seed : int
        Seeds the augmentations.
    image_ids : sequence of str, optional
        Unique ids (default ``img0``, …), the manifold labels.
    labels : sequence, optional
        Class label per image, kept as coord ``label`` (class manifolds by ``by="label"``).
    batch_size : int
        Images per forward pass (each with its ``n_views`` views).
    device : None, str or torch.device
        Where the model runs (None: the CPU).

    Returns
    -------
    dict of str to xarray.DataArray
        Per layer (request order) a ``(presentation, neuroid)`` assembly of ``n_images *
        n_views`` rows, image-major, with presentation coords ``stimulus_id``
        (``"<id>/view<k>"``), ``object_name`` (the image id: ``manifold_capacity(a,
        by="object_name")`` measures augmentation manifolds), ``view`` (and ``label``); neuroid
        coords ``neuroid_id``, ``layer``, ``region`` as in ``loaders.model_activations``.

    References
    ----------
    .. [1] Yerxa, Kuang, Simoncelli & Chung (2023). Learning efficient coding of natural images
       with maximum manifold capacity representations. NeurIPS 36.
    """
    n_views = check_int(n_views, "n_views")
    seed = check_seed(seed)
    batch_size = check_int(batch_size, "batch_size")
    layers = resolve_layers(model, layers)
    dev = torch_device(device)
    x = as_images(images, dev)
    ids = _image_ids(image_ids, len(x))
    if labels is not None and len(labels) != len(x):
        raise AnalysisError(f"labels has {len(labels)} entries for {len(x)} images")
    model.to(dev)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
            training_mode(model, False):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            with torch.no_grad():
                views = _views(batch, transform, n_views)
            # view-major from _views -> image-major rows
            order = torch.arange(len(views), device=dev).reshape(n_views, len(batch)).T.reshape(-1)
            rows = run_layers(model, views[order], layers, None)
            for name in layers:
                parts[name].append(rows[name])
    values = {name: np.concatenate(p) for name, p in parts.items()}
    presentation = {"stimulus_id": np.array([f"{i}/view{k}" for i in ids for k in range(n_views)]),
                    "object_name": np.repeat(ids, n_views),
                    "view": np.tile(np.arange(n_views), len(ids))}
    if labels is not None:
        presentation["label"] = np.repeat(np.asarray(labels), n_views)
    return layer_assemblies(values, presentation, model=model, source="augmentation_manifolds",
                            attrs={"n_views": n_views, "seed": seed, "transform": repr(transform),
                                   "device": str(dev)},
                            references=["mmcr"])


def linear_probe(features, labels, *, test_features=None, test_labels=None, n_splits: int = 5,
                 C: float = 1.0, seed: int = 0) -> xr.Dataset:
    """Accuracy of a linear (logistic-regression) readout of frozen features.

    Features are standardized (fit on the training part only) and read out by multinomial
    logistic regression (scikit-learn, L2 penalty ``1/C``): the standard evaluation of
    self-supervised representations. With ``test_features`` the probe is fit on all of
    ``features`` and scored on the test set; otherwise by stratified ``n_splits``-fold
    cross-validation (seeded shuffle).

    Parameters
    ----------
    features : array-like (n_samples, n_features), torch.Tensor or xarray.DataArray
        A ``(presentation, neuroid)`` assembly is accepted; then ``labels`` may name one of its
        presentation coords.
    labels : array-like (n_samples,) or str
        Class labels (or the coord holding them).
    test_features, test_labels : optional
        A held-out set, as ``features``/``labels``.
    n_splits : int
        Folds of the cross-validation.
    C : float
        Inverse regularization strength.
    seed : int
        Seeds the folds.

    Returns
    -------
    xarray.Dataset
        ``accuracy`` (mean over folds, or test accuracy), ``fold_accuracy`` on dim ``split``,
        ``chance`` (the frequency of the most common class in the scored samples).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros((10, 2)), np.ones((10, 2))]
    >>> float(linear_probe(x, [0] * 10 + [1] * 10).accuracy)
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n_splits = check_int(n_splits, "n_splits", minimum=2)
    C = check_positive(C, "C")
    seed = check_seed(seed)
    inputs = {"input": features} if isinstance(features, xr.DataArray) else {}
    x, y = _probe_arrays(features, labels, "features")

    def probe():
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))

    with single_threaded_blas():   # small problems: BLAS threads only add synchronization
        folds, scored = _probe_scores(probe, x, y, test_features, test_labels, labels, n_splits,
                                      seed)
    chance = np.unique(scored, return_counts=True)[1].max() / len(scored)
    return build_result(
        {"accuracy": ((), float(np.mean(folds))), "fold_accuracy": ("split", np.asarray(folds)),
         "chance": ((), float(chance))},
        analysis="linear_probe",
        parameters={"n_splits": n_splits if test_features is None else 1, "C": C, "seed": seed,
                    "evaluation": "cross-validation" if test_features is None else "test set"},
        inputs=inputs, references=["mmcr"],
        details={"n_samples": len(x), "n_features": x.shape[1],
                 "n_classes": len(np.unique(y))})


def _probe_scores(probe, x, y, test_features, test_labels, labels, n_splits, seed):
    """Accuracy per fold (or on the test set) and the labels scored."""
    from sklearn.model_selection import StratifiedKFold

    if test_features is not None:
        xt, yt = _probe_arrays(test_features, labels if test_labels is None else test_labels,
                               "test_features")
        if xt.shape[1] != x.shape[1]:
            raise AnalysisError(f"test_features have {xt.shape[1]} features, features "
                                f"{x.shape[1]}")
        folds = [float(probe().fit(x, y).score(xt, yt))]
        scored = yt
    else:
        counts = np.unique(y, return_counts=True)[1]
        if counts.min() < n_splits:
            raise AnalysisError(f"the rarest class has {counts.min()} samples, fewer than "
                                f"n_splits={n_splits}; lower n_splits or pass test_features")
        cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        folds = [float(probe().fit(x[tr], y[tr]).score(x[te], y[te])) for tr, te in cv.split(x, y)]
        scored = y
    return folds, scored


def _probe_arrays(features, labels, name):
    if isinstance(features, xr.DataArray):
        if isinstance(labels, str):
            if labels not in features.coords:
                raise AnalysisError(f"labels={labels!r} is not a coord of {name}; coords: "
                                    f"{sorted(map(str, features.coords))}")
            labels = features[labels].values
        features = features.transpose(features.dims[0], ...).values
    elif isinstance(labels, str):
        raise AnalysisError(f"labels={labels!r} names a coord, but {name} is not an assembly")
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    y = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
    if x.ndim != 2 or len(x) != len(y):
        raise AnalysisError(f"{name} has shape {x.shape} for {len(y)} labels; expected "
                            "(n_samples, n_features) with one label per sample")
    if not np.isfinite(x).all():
        raise AnalysisError(f"{name} contain NaN or inf values")
    if len(np.unique(y)) < 2:
        raise AnalysisError(f"labels have {len(np.unique(y))} class; a probe needs at least 2")
    return x, y
