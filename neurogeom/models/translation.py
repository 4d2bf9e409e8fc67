"""Translation manifolds: each image under a grid of spatial shifts (and random shifts as an
augmentation), for the retinal-wave style analysis of Ligeralde et al. (2023).

Ligeralde, Kuang, Yerxa, Pitcher, Feller & Chung (2023) compare networks pre-trained on retinal
waves with random networks by the MFT capacity of *translation manifolds*: the responses to
one image shifted over a set of spatial offsets form one manifold, and a representation that
separates those manifolds well is one in which object identity is linearly readable across
positions. :func:`translation_manifolds` builds the stimuli; run any model over them
(``loaders.model_activations(model, images, layers, metadata=table)``) and measure
``manifold_capacity(..., by="object_name")``.

Shifts move the content: a shift ``(dx, dy)`` sends pixel ``(y, x)`` to ``(y + dy, x + dx)``;
pixels shifted in from outside take ``fill`` (``mode="fill"``, a blank background as on the
digits canvas) or wrap around (``mode="wrap"``, a circular shift).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import AnalysisError
from ._responses import as_images, image_ids as _image_ids

__all__ = ["RandomShift", "shift_images", "translation_manifolds"]

MODES = ("fill", "wrap")


def shift_images(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, *,
                 fill: float = 0.0, mode: str = "fill") -> torch.Tensor:
    """Shift each image ``(n, C, H, W)`` by its own integer ``(dx[i], dy[i])``, in one gather.

    ``out[i, :, y, x] = images[i, :, y - dy[i], x - dx[i]]``, where a source pixel outside the
    image is ``fill`` (``mode="fill"``) or taken modulo the size (``mode="wrap"``).
    """
    if mode not in MODES:
        raise AnalysisError(f"mode must be one of {MODES}, got {mode!r}")
    if images.ndim != 4:
        raise AnalysisError(f"images must be (n_images, channels, height, width); got shape "
                            f"{tuple(images.shape)}")
    n, c, h, w = images.shape
    dx = torch.as_tensor(dx, device=images.device).long().reshape(n)
    dy = torch.as_tensor(dy, device=images.device).long().reshape(n)
    rows = torch.arange(h, device=images.device)[None, :] - dy[:, None]     # (n, H) source rows
    cols = torch.arange(w, device=images.device)[None, :] - dx[:, None]     # (n, W) source cols
    if mode == "wrap":
        return images[torch.arange(n, device=images.device)[:, None, None, None],
                      torch.arange(c, device=images.device)[None, :, None, None],
                      (rows % h)[:, None, :, None], (cols % w)[:, None, None, :]]
    inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
    out = images[torch.arange(n, device=images.device)[:, None, None, None],
                 torch.arange(c, device=images.device)[None, :, None, None],
                 rows.clamp(0, h - 1)[:, None, :, None], cols.clamp(0, w - 1)[:, None, None, :]]
    return torch.where(inside[:, None], out, torch.full_like(out, fill))


def _shift_grid(shifts) -> list[tuple[int, int]]:
    if isinstance(shifts, (int, np.integer)) and not isinstance(shifts, bool):
        if shifts < 0:
            raise AnalysisError(f"shifts as an int is the largest shift k >= 0 of the grid "
                                f"{{-k..k}}^2; got {shifts}")
        grid = range(-int(shifts), int(shifts) + 1)
        return [(dx, dy) for dy in grid for dx in grid]
    try:
        out = [(int(dx), int(dy)) for dx, dy in shifts]
        ok = all(float(dx) == int(dx) and float(dy) == int(dy) for dx, dy in shifts)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"shifts must be an int k (the grid {{-k..k}}^2) or a sequence of "
                            f"integer (dx, dy) pairs; got {shifts!r}") from exc
    if not out or not ok:
        raise AnalysisError(f"shifts must be a non-empty sequence of integer (dx, dy) pairs; "
                            f"got {shifts!r}")
    if len(set(out)) != len(out):
        raise AnalysisError(f"shifts repeat a shift: {out}")
    return out


def translation_manifolds(images, shifts, *, image_ids=None, labels=None, fill: float = 0.0,
                          mode: str = "fill"):
    """Each image under a grid of spatial shifts: the stimuli of translation manifolds.

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor
        ``(n_images, channels, height, width)``.
    shifts : int or sequence of (dx, dy)
        Integer pixel shifts; an int ``k`` is the grid ``{-k, …, k}²`` (``(2k+1)²`` shifts).
    image_ids : sequence of str, optional
        One unique id per image (default ``img0``, ``img1``, …); it becomes ``object_name``.
    labels : sequence, optional
        A class label per image, kept as the ``label`` column (class manifolds).
    fill : float
        Value of pixels shifted in from outside (``mode="fill"``).
    mode : {"fill", "wrap"}
        Blank the uncovered border, or shift circularly.

    Returns
    -------
    shifted : same type as ``images``
        ``(n_images * n_shifts, channels, height, width)``, image-major (all shifts of image 0
        first).
    metadata : pandas.DataFrame
        One row per shifted image: ``stimulus_id`` (``"<id>/dx<dx>_dy<dy>"``), ``object_name``
        (the image id: one translation manifold per image), ``shift_x``, ``shift_y``
        (and ``label``), ready as presentation coords (``metadata=`` of
        ``loaders.model_activations``).

    Examples
    --------
    >>> import numpy as np
    >>> imgs, table = translation_manifolds(np.zeros((2, 1, 8, 8), np.float32), 1)
    >>> imgs.shape, table["object_name"].nunique()
    ((18, 1, 8, 8), 2)

    References
    ----------
    .. [1] Ligeralde, Kuang, Yerxa, Pitcher, Feller & Chung (2023). Unsupervised learning on
       spontaneous retinal activity leads to efficient neural representation geometry.
       UniReps workshop (PMLR 243); arXiv:2312.02791.
    """
    was_numpy = isinstance(images, np.ndarray)
    x = as_images(images, "cpu" if was_numpy else images.device)
    grid = _shift_grid(shifts)
    ids = _image_ids(image_ids, len(x))
    if labels is not None and len(labels) != len(x):
        raise AnalysisError(f"labels has {len(labels)} entries for {len(x)} images")
    n, k = len(x), len(grid)
    dx = torch.tensor([g[0] for g in grid] * n)
    dy = torch.tensor([g[1] for g in grid] * n)
    shifted = shift_images(x.repeat_interleave(k, 0), dx, dy, fill=fill, mode=mode)
    table = pd.DataFrame({
        "stimulus_id": [f"{i}/dx{a}_dy{b}" for i in ids for a, b in grid],
        "object_name": np.repeat(ids, k),
        "shift_x": dx.numpy(), "shift_y": dy.numpy()})
    if labels is not None:
        table["label"] = np.repeat(np.asarray(labels), k)
    return (shifted.numpy() if was_numpy else shifted), table


class RandomShift:
    """An augmentation: shift every image by its own random integer offset in
    ``[-max_shift, max_shift]²`` (and add Gaussian pixel noise of std ``noise``), batched.

    Called on a ``(batch, C, H, W)`` tensor; it draws from torch's global generator, so the
    seeded loops of :mod:`neurogeom.models` (which fork and seed it) make it reproducible.
    Each image of the batch gets an independent draw, which MMCR needs (a transform that
    applies one draw to the whole batch would make every image's views identical up to the
    same shift).

    Parameters
    ----------
    max_shift : int
        Largest shift in pixels along each axis.
    noise : float
        Standard deviation of additive Gaussian pixel noise (0: none).
    fill : float
        Value of the uncovered border.
    clip : (float, float) or None
        Clamp the result to this pixel range (None: no clamp).
    """

    def __init__(self, max_shift: int, *, noise: float = 0.0, fill: float = 0.0,
                 clip=(0.0, 1.0)):
        if int(max_shift) < 0 or noise < 0:
            raise AnalysisError(f"RandomShift needs max_shift >= 0 and noise >= 0, got "
                                f"{max_shift}, {noise}")
        self.max_shift, self.noise, self.fill, self.clip = int(max_shift), float(noise), fill, clip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        d = torch.randint(-self.max_shift, self.max_shift + 1, (2, n)).to(x.device)
        out = shift_images(x, d[0], d[1], fill=self.fill)
        if self.noise > 0:
            out = out + self.noise * torch.randn(out.shape).to(x.device)
        if self.clip is not None:
            out = out.clamp(*self.clip)
        return out

    def __repr__(self):
        return (f"RandomShift(max_shift={self.max_shift}, noise={self.noise}, fill={self.fill}, "
                f"clip={self.clip})")
