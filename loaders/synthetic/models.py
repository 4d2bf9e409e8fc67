"""Small torch models and image sets for the demo and tests, built without any download.

- :func:`untrained_convnet`: a seeded, randomly initialised :class:`SmallConvNet`.
- :func:`digits_convnet`: the same net trained in seconds on scikit-learn's bundled 8x8 digits,
  pasted at random positions on a larger canvas (so it learns some translation tolerance);
  the weights are cached under the user cache dir.
- :func:`translated_digits`: images of digits with controlled identity, exemplar and position,
  with per-image metadata (``stimulus_id``, ``object_name``, ``position_x``, ``position_y``…)
  ready to become presentation coords.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from neurogeom.io import atomic_write
from neurogeom.errors import LoaderError

__all__ = ["SmallConvNet", "untrained_convnet", "digits_convnet", "translated_digits",
           "cache_dir", "CACHE_ENV"]

#: Environment variable that overrides the cache folder of trained models.
CACHE_ENV = "NEUROGEOM_CACHE_DIR"

#: Bump when the architecture or training recipe changes, so stale caches are not reused.
_DIGITS_RECIPE = "v2"

#: sklearn digits: images [0, 1000) train :func:`digits_convnet`; the rest make test image sets.
_N_TRAIN = 1000


class SmallConvNet(nn.Module):
    """Two conv blocks and a linear readout; hookable layers have dotted names.

    Layers: ``block1.conv``, ``block1.relu``, ``block1.pool``, ``block2.conv``, ``block2.relu``,
    ``block2.pool``, ``avgpool`` (adaptive, to 2x2 so any input size works), ``fc``.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 8):
        super().__init__()
        self.block1 = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_channels, width, 3, padding=1), relu=nn.ReLU(),
            pool=nn.MaxPool2d(2)))
        self.block2 = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(width, 2 * width, 3, padding=1), relu=nn.ReLU(),
            pool=nn.MaxPool2d(2)))
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(2 * width * 4, n_classes)

    def forward(self, x):
        x = self.avgpool(self.block2(self.block1(x)))
        return self.fc(torch.flatten(x, 1))


def untrained_convnet(*, in_channels: int = 1, n_classes: int = 10, width: int = 8,
                      seed: int = 0) -> SmallConvNet:
    """A randomly initialised :class:`SmallConvNet`; the same ``seed`` gives the same weights.

    The global torch RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallConvNet(in_channels, n_classes, width)
    return net.eval()


def cache_dir() -> Path:
    """Folder for cached model weights: ``$NEUROGEOM_CACHE_DIR``, else the user cache dir."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("neurogeom"))
    except ImportError:  # platformdirs is optional; fall back to the XDG default
        return Path.home() / ".cache" / "neurogeom"


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _paste(digits: np.ndarray, xs, ys, canvas: int) -> np.ndarray:
    """Place 8x8 digits with their top-left corner at (x, y) on a blank ``canvas``-square image."""
    out = np.zeros((len(digits), 1, canvas, canvas), dtype=np.float32)
    for i, (img, x, y) in enumerate(zip(digits, xs, ys)):
        out[i, 0, y:y + 8, x:x + 8] = img
    return out


def digits_convnet(*, seed: int = 0, canvas: int = 16, epochs: int = 50, cache: bool = True,
                   return_accuracy: bool = False):
    """A :class:`SmallConvNet` trained on sklearn's digits pasted at random canvas positions.

    Training uses the first 1000 digit images (each epoch at fresh random positions), Adam,
    batch 64, all seeded; held-out accuracy is measured on the remaining 797 digits at random
    positions. It takes a few seconds on one CPU core. The trained weights are cached as
    ``digits_convnet-<recipe>-seed<seed>-canvas<canvas>-epochs<epochs>.pt`` under
    :func:`cache_dir` (written atomically, loaded with ``weights_only=True``).

    Parameters
    ----------
    seed : int
        Seeds initialisation, positions and batch order.
    canvas : int
        Side of the square input images (>= 8).
    epochs : int
        Training epochs.
    cache : bool
        Read and write the weight cache.
    return_accuracy : bool
        Also return the held-out accuracy.

    Returns
    -------
    SmallConvNet or (SmallConvNet, float)
        The trained net in eval mode (and its held-out accuracy).
    """
    if canvas < 8:
        raise LoaderError(f"canvas must be >= 8 (digits are 8x8), got {canvas}")
    path = cache_dir() / f"digits_convnet-{_DIGITS_RECIPE}-seed{seed}-canvas{canvas}-epochs{epochs}.pt"
    net = untrained_convnet(seed=seed)
    if cache and path.exists():
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            net.load_state_dict(state["state_dict"])
            accuracy = float(state["test_accuracy"])
            return (net.eval(), accuracy) if return_accuracy else net.eval()
        except Exception:  # a corrupt or foreign cache file: retrain and overwrite it
            net = untrained_convnet(seed=seed)

    images, labels = _digits()
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    # one thread: as fast for a net this small, immune to oversubscribed machines, and the
    # float reduction order (so the trained weights) does not depend on the core count
    torch.set_num_threads(1)
    try:
        net = _train(net, images, labels, rng, seed, canvas, epochs)
    finally:
        torch.set_num_threads(threads)
    net.eval()
    xs, ys = rng.integers(0, canvas - 7, size=(2, len(images) - _N_TRAIN))
    x_test = torch.from_numpy(_paste(images[_N_TRAIN:], xs, ys, canvas))
    with torch.no_grad():
        pred = net(x_test).argmax(1).numpy()
    accuracy = float((pred == labels[_N_TRAIN:]).mean())
    if cache:
        state = {"state_dict": net.state_dict(), "test_accuracy": accuracy}
        try:
            atomic_write(path, lambda tmp: torch.save(state, tmp))
        except OSError:  # read-only cache dir: the model is still usable
            pass
    return (net, accuracy) if return_accuracy else net


def _train(net, images, labels, rng, seed, canvas, epochs):
    """Adam, batch 64, each epoch at fresh random positions; all randomness seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        y_train = torch.from_numpy(labels[:_N_TRAIN])
        net.train()
        for _ in range(epochs):
            xs, ys = rng.integers(0, canvas - 7, size=(2, _N_TRAIN))
            x_train = torch.from_numpy(_paste(images[:_N_TRAIN], xs, ys, canvas))
            perm = torch.from_numpy(rng.permutation(_N_TRAIN))
            for start in range(0, _N_TRAIN, 64):
                idx = perm[start:start + 64]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
    return net


def translated_digits(*, digits=tuple(range(10)), n_exemplars: int = 5, positions=None,
                      canvas: int = 16, scales=(1.0,), seed: int = 0):
    """Images of handwritten digits at controlled positions on a blank canvas.

    Every combination of digit (object identity), exemplar (a different handwritten instance,
    drawn from the held-out digits that :func:`digits_convnet` never trained on) and position
    is one image, so manifolds by ``object_name`` vary in exemplar and translation.

    Parameters
    ----------
    digits : sequence of int
        Digit classes (0–9) to include.
    n_exemplars : int
        Handwritten instances per digit.
    positions : sequence of (x, y), optional
        Top-left corners of the 8x8 digit on the canvas. Default: a 3x3 grid spanning the canvas.
    canvas : int
        Side of the square images.
    scales : sequence of float
        Digit sizes relative to 8 px (resized bilinearly, centred on the unscaled digit's
        centre); a ``scale`` column is added unless the only scale is 1.
    seed : int
        Seeds which exemplars are drawn.

    Returns
    -------
    images : numpy.ndarray
        ``(n_images, 1, canvas, canvas)`` float32 in [0, 1].
    metadata : pandas.DataFrame
        One row per image: ``stimulus_id``, ``object_name`` (``"digit<k>"``), ``digit``,
        ``exemplar``, ``source_index`` (row of ``sklearn.datasets.load_digits``),
        ``position_x``, ``position_y``, ``position`` (``"x,y"``).
    """
    if canvas < 8:
        raise LoaderError(f"canvas must be >= 8 (digits are 8x8), got {canvas}")
    if positions is None:
        grid = sorted({0, (canvas - 8) // 2, canvas - 8})
        positions = [(x, y) for y in grid for x in grid]
    positions = [(int(x), int(y)) for x, y in positions]
    bad = [p for p in positions if not (0 <= p[0] <= canvas - 8 and 0 <= p[1] <= canvas - 8)]
    if bad:
        raise LoaderError(f"positions {bad} put the 8x8 digit outside a {canvas}x{canvas} canvas "
                          f"(x and y must lie in [0, {canvas - 8}])")
    images, labels = _digits()
    rng = np.random.default_rng(seed)
    rows, chosen = [], []
    for d in digits:
        pool = np.flatnonzero(labels[_N_TRAIN:] == d) + _N_TRAIN
        if len(pool) == 0:
            raise LoaderError(f"unknown digit {d!r}; digits are 0-9")
        if n_exemplars > len(pool):
            raise LoaderError(f"digit {d} has only {len(pool)} held-out exemplars; "
                              f"n_exemplars={n_exemplars}")
        for e, src in enumerate(rng.choice(pool, size=n_exemplars, replace=False)):
            for scale in scales:
                for x, y in positions:
                    tag = "" if scale == 1.0 else f"_s{scale:g}"
                    rows.append({"stimulus_id": f"digit{d}_ex{e}_x{x}_y{y}{tag}",
                                 "object_name": f"digit{d}", "digit": int(d), "exemplar": e,
                                 "source_index": int(src), "position_x": x, "position_y": y,
                                 "position": f"{x},{y}", "scale": float(scale)})
                    chosen.append(src)
    meta = pd.DataFrame(rows)
    if tuple(scales) == (1.0,):
        out = _paste(images[np.asarray(chosen)], meta["position_x"], meta["position_y"], canvas)
        return out, meta.drop(columns="scale")
    out = np.zeros((len(meta), 1, canvas, canvas), dtype=np.float32)
    for i, (src, x, y, scale) in enumerate(zip(chosen, meta["position_x"], meta["position_y"],
                                               meta["scale"])):
        out[i, 0] = _scaled_paste(images[src], int(x), int(y), float(scale), canvas)
    return out, meta


def _scaled_paste(digit: np.ndarray, x: int, y: int, scale: float, canvas: int) -> np.ndarray:
    """One 8x8 digit resized by ``scale`` (bilinear) and centred where the unscaled digit's
    centre would be at top-left (x, y), clipped to the canvas."""
    from scipy.ndimage import zoom

    size = max(2, int(round(8 * scale)))
    img = np.clip(zoom(digit, size / 8.0, order=1), 0.0, 1.0)[:size, :size]
    size = img.shape[0]
    top = int(np.clip(round(y + 4 - size / 2), 0, canvas - size))
    left = int(np.clip(round(x + 4 - size / 2), 0, canvas - size))
    out = np.zeros((canvas, canvas), dtype=np.float32)
    out[top:top + size, left:left + size] = img[:canvas, :canvas]
    return out
