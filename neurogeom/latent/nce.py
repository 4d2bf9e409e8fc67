"""The Neural Cross-Encoder: predict target neurons from source neurons through d latents.

Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (NeurIPS 2025). An MLP
encoder maps source activity (or a time window of it) to a d-dimensional bottleneck z; a single
decoder layer maps z to every target neuron, b̂ = φ_{p,c}(U z) + r with φ_{p,c}(x) = max(0, x+c)^p,
one exponent p shared by all neurons and per-neuron threshold c and baseline r. Because the
decoder is one layer, d is the number of latent variables the targets depend on. Without the
nonlinearities the model is reduced-rank regression (:mod:`neurogeom.latent.rrr`).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn
from tqdm.auto import tqdm

from .._backend import torch_device
from .._estimators import EstimatorNotFittedError, R2ScoreMixin, check_features
from .._params import check_int, check_nonnegative, check_positive, check_seed
from ..errors import AnalysisError
from . import _nce_stack as _stack
from .rrr import DEFAULT_ALPHAS, ReducedRankRegression
from .windows import crossed_pairs, time_window

__all__ = ["NeuralCrossEncoder", "NCEConvergenceWarning", "fit_models", "time_window",
           "crossed_pairs"]


class NCEConvergenceWarning(UserWarning):
    """An NCE fit stopped at ``max_epochs`` while its loss was still improving."""

_LOG_P_RANGE = _stack.LOG_P_RANGE


def check_options(est) -> None:
    """Validate a :class:`NeuralCrossEncoder`'s training options at the door of ``fit`` (one
    AnalysisError naming the option, its value and the allowed range). The device is resolved
    (and checked) by torch when training starts."""
    hidden = est.hidden
    try:
        widths = tuple(hidden)
    except TypeError:
        widths = None
    if widths is None or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool)
                                 and h >= 1 for h in widths):
        raise AnalysisError(f"hidden (encoder layer widths) must be a sequence of integers >= 1 "
                            f"(empty for a linear encoder), got {hidden!r}")
    check_int(est.max_epochs, "max_epochs")
    check_int(est.batch_size, "batch_size")
    check_int(est.patience, "patience")
    check_int(est.lr_patience, "lr_patience")
    factor = est.lr_factor
    if not (isinstance(factor, (int, float, np.number)) and not isinstance(factor, bool)
            and 0 < factor <= 1):
        raise AnalysisError(f"lr_factor must be a number in (0, 1], got {factor!r}")
    check_nonnegative(est.tol, "tol")
    if est.tol >= 1:
        raise AnalysisError(f"tol must be a number in [0, 1), got {est.tol!r}")
    check_int(est.distill_epochs, "distill_epochs", minimum=0)
    check_int(est.window, "window")
    check_positive(est.lr, "lr (learning rate)")
    check_nonnegative(est.weight_decay, "weight_decay")
    check_nonnegative(est.noise, "noise")
    check_seed(est.seed, maximum=2**63 - 1)   # torch.Generator.manual_seed's range
    betas = tuple(np.atleast_1d(est.betas)) if est.betas is not None else ()
    if len(betas) != 2 or not all(np.isfinite(b) and 0 <= b < 1 for b in betas):
        raise AnalysisError(f"betas (Adam) must be two numbers in [0, 1), got {est.betas!r}")


class _Decoder(nn.Module):
    """b̂ = max(0, U z + c)^p + r, with p shared and c, r per target neuron."""

    def __init__(self, n_latents: int, n_targets: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_targets, n_latents))
        self.threshold = nn.Parameter(torch.zeros(n_targets))
        self.baseline = nn.Parameter(torch.zeros(n_targets))
        self.log_exponent = nn.Parameter(torch.zeros(()))

    def exponent(self) -> torch.Tensor:
        return self.log_exponent.clamp(*_LOG_P_RANGE).exp()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        drive = z @ self.weight.T + self.threshold
        positive = drive > 0
        # x^p has an infinite slope at 0 for p < 1: evaluate the power only where x > 0
        safe = torch.where(positive, drive, torch.ones_like(drive))
        return torch.where(positive, safe ** self.exponent(), torch.zeros_like(drive)) + self.baseline


class _CrossEncoder(nn.Module):
    def __init__(self, n_inputs: int, hidden, n_latents: int, n_targets: int):
        super().__init__()
        layers, width = [], n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_latents))  # linear bottleneck
        self.encoder = nn.Sequential(*layers)
        self.decoder = _Decoder(n_latents, n_targets)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class NeuralCrossEncoder(TransformerMixin, R2ScoreMixin, BaseEstimator):
    """Neural Cross-Encoder: an MLP encoder to d latents and a one-layer nonlinear decoder.

    Parameters
    ----------
    n_latents : int
        Bottleneck dimension d.
    hidden : tuple of int
        Encoder hidden widths (ReLU). The paper's encoders are like (500, 250, 100); the
        default (256, 128) costs less than half as much per sample (the first layer dominates)
        and gave the same dimension estimates on the known-answer data.
    window : int
        Time bins of source activity fed to the encoder (continuous data only; see
        :func:`time_window`). ``fit``/``predict`` then take the full (time, neurons) series.
    max_epochs : int
        Upper bound on training epochs.
    lr, weight_decay, betas : float, float, (float, float)
        Adam settings. The paper's are 1e-3, 1e-5, (0.85, 0.95); the default lr here is larger
        and decays on plateaus (``lr_patience``, ``lr_factor``), which reached the same fits in
        a fraction of the epochs on the synthetic known-answer data (ring and random-feature
        latents: the known-answer tests of ``tests/test_latent.py``; the d = 1…16 sweep:
        ``benchmarks/README.md``).
    batch_size : int
        Samples per step. The paper trains on large datasets with large batches; on a few
        thousand samples small batches converge in far fewer epochs (more Adam steps).
    patience : int
        Stop after this many epochs without improving the validation loss (the training loss
        when no validation set is given) by ``tol``; the best checkpoint is restored.
    lr_patience, lr_factor : int, float
        Multiply the learning rate by ``lr_factor`` after ``lr_patience`` epochs without
        improvement (reduce on plateau; ``lr_factor=1`` keeps it constant).
    tol : float
        An epoch improves when the monitored loss falls by more than ``tol`` times the variance
        of the (standardized) monitored targets, i.e. when R² rises by more than ``tol``.
    warm_start : {"rrr", None, False}
        ``"rrr"`` first trains the network to reproduce a ridge reduced-rank regression of rank
        d (distillation, ``distill_epochs`` epochs), so training starts from the linear solution.
        Off by default: on the synthetic random-feature data it started the decoder in its
        linear regime and slowed convergence to the nonlinear solution.
    distill_epochs : int
        Epochs of distillation.
    alphas : sequence of float
        Ridge penalties for the warm-start RRR (default: the shared grid,
        ``neurogeom.regression.DEFAULT_ALPHAS``).
    noise : float
        Standard deviation of Gaussian noise added to the (standardized) sources in training.
    seed : int
        Seed of initialization, batching and noise.
    device : None, str or torch.device
        Where the network trains: None or ``"cpu"`` the CPU, ``"cuda:0"``… that GPU (the
        convention of :mod:`neurogeom._backend`; the NCE is torch-only, so there is no
        ``backend``). An unavailable device is an AnalysisError listing the available ones.
    progress : bool or None
        Show a tqdm progress bar; None shows it only on a terminal.
    n_threads : int, optional
        torch CPU threads while fitting (restored afterwards). Small networks train faster on
        one thread, especially on a shared machine; default leaves torch's setting.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (best checkpoint).
    exponent_ : float
        Learned p.
    n_features_in_ : int
        Number of source neurons seen by ``fit`` (before the time window).
    best_epoch_, n_epochs_ : int
        Epoch of the restored checkpoint and epochs run.
    train_loss_, validation_loss_ : ndarray
        Loss per epoch (standardized units; NaN-free; validation empty without validation).
    converged_ : bool
        Whether training stopped on ``patience`` before ``max_epochs`` (otherwise an
        :class:`NCEConvergenceWarning` is raised).

    Notes
    -----
    :func:`fit_models` fits several estimators that differ only in ``n_latents`` at once, as
    one stacked network (how :func:`~neurogeom.latent.latent_dimensionality` sweeps d); each
    ends as its own ``fit`` would leave it.

    Inputs are 2-d ``(samples, neurons)`` or 3-d ``(repeats, stimuli, neurons)``. With repeats
    the loss is crossed: sources of one repeat predict targets of another (the paper's). Sources
    are z-scored per neuron; targets are centered per neuron and divided by one global scale, so
    the loss stays proportional to the raw MSE that :meth:`score` measures. :meth:`score` is R²
    pooled over target neurons (``sklearn.metrics.r2_score`` with
    ``multioutput="variance_weighted"``), the quantity the latent-dimensionality curves compare
    with reduced-rank regression. "The paper" above is [1]_.

    References
    ----------
    .. [1] Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (2025). High-dimensional
       neuronal activity from low-dimensional latent dynamics: a solvable model. Advances in
       Neural Information Processing Systems (NeurIPS 2025).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((300, 2))
    >>> src = z @ rng.standard_normal((2, 20)); tgt = np.maximum(z @ rng.standard_normal((2, 30)), 0)
    >>> nce = NeuralCrossEncoder(2, hidden=(32,), max_epochs=5, progress=False).fit(src, tgt)
    >>> nce.transform(src).shape
    (300, 2)
    >>> nce.predict(src).shape
    (300, 30)
    """

    _r2_multioutput = "variance_weighted"

    def __init__(self, n_latents: int, hidden=(256, 128), window: int = 1,
                 max_epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-5,
                 betas=(0.85, 0.95), batch_size: int = 64, patience: int = 8,
                 lr_patience: int = 3, lr_factor: float = 0.5, tol: float = 1e-3,
                 warm_start: str | None = None, distill_epochs: int = 30,
                 alphas=DEFAULT_ALPHAS, noise: float = 0.0, seed: int = 0, device=None,
                 progress: bool | None = None, n_threads: int | None = None):
        self.n_latents = n_latents
        self.hidden = hidden
        self.window = window
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = betas
        self.batch_size = batch_size
        self.patience = patience
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.tol = tol
        self.warm_start = warm_start
        self.distill_epochs = distill_epochs
        self.alphas = alphas
        self.noise = noise
        self.seed = seed
        self.device = device
        self.progress = progress
        self.n_threads = n_threads

    # ---------------------------------------------------------------- input handling
    def _prepare(self, source, target=None, name="source", min_samples=1):
        """Validate shapes, apply the time window; return float arrays (a 1-d target becomes one
        column). After ``fit`` the number of source neurons must match the training data."""
        who = "NeuralCrossEncoder"
        if not scipy.sparse.issparse(source):
            source = np.asarray(source)
        if not scipy.sparse.issparse(source) and source.ndim == 3:
            x = source
            if np.iscomplexobj(x):
                raise AnalysisError(f"{who}: Complex data not supported ({name})")
            x = x.astype(np.float64)
            if not np.isfinite(x).all():
                raise AnalysisError(f"{name} contains NaN or infinite values")
        elif not scipy.sparse.issparse(source) and source.ndim > 3:
            raise AnalysisError(f"{name} must be (samples, neurons) or (repeats, stimuli, "
                                f"neurons), got shape {np.shape(source)}")
        else:
            x = check_features(source, who=who, name=name,
                               min_samples=min_samples).astype(np.float64, copy=False)
        if hasattr(self, "n_features_in_") and x.shape[-1] != self.n_features_in_:
            raise AnalysisError(f"X has {x.shape[-1]} features, but {who} is expecting "
                                f"{self.n_features_in_} features as input ({name} neurons it was "
                                "fitted with)")
        if self.window != 1:
            if x.ndim != 2:
                raise AnalysisError("a time window (window > 1) needs continuous (time, neurons) "
                                    f"data, got {name} of shape {x.shape}")
            x = time_window(x, self.window)
        y = None
        if target is not None:
            y = np.asarray(target)
            if np.iscomplexobj(y):
                raise AnalysisError(f"{who}: Complex data not supported (target)")
            y = y.astype(np.float64)
            if x.ndim == 2 and y.ndim == 1:
                y = y[:, None]
            tname = name.replace("source", "target")
            if y.ndim != x.ndim or y.shape[:-1] != x.shape[:-1]:
                raise AnalysisError(f"{name} has shape {np.shape(source)} but {tname} has "
                                    f"{np.shape(target)}: the sample (and repeat) axes must match")
            if not np.isfinite(y).all():
                raise AnalysisError(f"{tname} contains NaN or infinite values")
            if y.ndim == 3 and y.shape[0] < 2:
                raise AnalysisError(f"the crossed loss needs at least 2 repeats; {tname} has "
                                    f"{y.shape[0]} along its first axis (pass 2-d arrays for "
                                    "data without repeats)")
        return x, y

    def _x(self, x):
        return (x - self.source_mean_) / self.source_scale_

    def _y(self, y):
        return (y - self.target_mean_) / self.target_scale_

    def _tensor(self, a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device_)

    # ---------------------------------------------------------------- fitting
    def fit(self, X, Y, validation=None) -> "NeuralCrossEncoder":
        """Train the network to predict target neurons from source neurons.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_sources) or (n_repeats, n_stimuli, n_sources)
            Source activity; with a leading repeat axis the loss is crossed between repeats.
            With ``window > 1``, the continuous (time, neurons) series.
        Y : array-like of shape (n_samples,), (n_samples, n_targets) or (n_repeats, n_stimuli,
            n_targets)
            Target activity, with the same sample (and repeat) axes as ``X``.
        validation : (array-like, array-like), optional
            Held-out ``(sources, targets)``; its loss picks the checkpoint and stops training.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AnalysisError
            Bad input or parameters (``n_latents`` above the number of neurons, unknown
            ``warm_start``, fewer than 2 samples or repeats).
        ConvergenceError
            The loss became non-finite.
        """
        return self._fit(X, Y, validation)

    def _fit(self, source, target, validation):
        d = self.n_latents
        bar = tqdm(total=self.max_epochs, desc=f"NCE d={d}", leave=False,
                   disable=(None if self.progress is None else not self.progress))

        def report(epoch, training, r2, done):
            bar.update()
            bar.set_postfix_str(f"validation R2 {r2[0]:.4f}" if validation is not None
                                else f"training R2 {r2[0]:.4f}")
        try:
            fit_models([self], source, target, validation, report=report)
        finally:
            bar.close()
        if not self.converged_:
            warnings.warn(f"NCE d={d} did not converge within max_epochs={self.max_epochs}: the "
                          f"{'validation' if validation is not None else 'training'} loss was "
                          "still improving at the last epoch; raise max_epochs (or lr)",
                          NCEConvergenceWarning, stacklevel=3)
        return self

    def _distill_target(self, models, xs, ys, validation, device):
        """Warm start: a function giving, for a batch of inputs, every model's ridge-RRR
        prediction of rank d (one decomposition serves all d), and the inputs to distill on."""
        if xs.ndim == 3:
            fx, fy = crossed_pairs(xs, ys)
        else:
            fx, fy = xs, ys
        inputs = xs.reshape(-1, xs.shape[-1])
        if validation is not None and validation[0].ndim == 3:
            validation = crossed_pairs(*validation)
        top = min(max(m.n_latents for m in models), fx.shape[-1], fy.shape[-1], fx.shape[0] - 1)
        rrr = ReducedRankRegression(rank=top, alphas=self.alphas).fit(fx, fy, validation)
        for m in models:
            m.warm_start_alpha_ = rrr.alpha_
        axes = rrr.components_[:, :top]                                  # V (targets, top)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32,  # noqa: E731
                                      device=device)
        latent_map, back = t(rrr.coef_ridge_ @ axes), t(axes.T)
        x_mean, y_mean = t(rrr.x_mean_), t(rrr.y_mean_)
        ranks = torch.as_tensor([min(m.n_latents, top) for m in models], device=device)
        mask = (torch.arange(top, device=device)[None, :] < ranks[:, None]).float()[:, None, :]

        def target_fn(xb):   # (batch, sources) → (models, batch, targets)
            p = (xb - x_mean) @ latent_map
            return (p[None] * mask) @ back + y_mean
        return target_fn, inputs

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, part="all") -> torch.Tensor:
        self.module_.eval()
        flat = x.reshape(-1, x.shape[-1])
        fn = self.module_.encoder if part == "encoder" else self.module_
        out = torch.cat([fn(flat[i:i + 8192]) for i in range(0, flat.shape[0], 8192)])
        return out.reshape(*x.shape[:-1], out.shape[-1])


    # ---------------------------------------------------------------- inference
    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise EstimatorNotFittedError("this NeuralCrossEncoder is not fitted yet; call fit "
                                          "first")

    def transform(self, X) -> np.ndarray:
        """Latents z, shape ``X.shape[:-1] + (n_latents,)``."""
        self._check_fitted()
        x, _ = self._prepare(X)
        z = self._forward(self._tensor(self._x(x)), part="encoder")
        return z.cpu().numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """Predict target neurons from source neurons.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_sources) or (n_repeats, n_stimuli, n_sources)
            Source activity (the continuous series with ``window > 1``).

        Returns
        -------
        ndarray of shape ``X.shape[:-1] + (n_targets,)``
            Predictions in the targets' units; ``(n_samples,)`` after a fit on a 1-d target.

        Raises
        ------
        EstimatorNotFittedError
            Before ``fit``.
        AnalysisError
            Bad input, or a different number of source neurons than in training.
        """
        self._check_fitted()
        x, _ = self._prepare(X)
        pred = self._forward(self._tensor(self._x(x))).cpu().numpy().astype(np.float64)
        pred = pred * self.target_scale_ + self.target_mean_
        return pred[..., 0] if self._y_1d else pred

    def _score_pairs(self, X, y):
        """Predictions and targets for :meth:`score`; crossed between repeats for 3-d inputs,
        as in training."""
        self._check_fitted()
        _, target = self._prepare(X, y)
        pred = self.predict(X)
        if target.ndim == 3:
            return crossed_pairs(pred, target)[::-1]
        return y, pred


def _export(stack: _stack.Stack, k: int, d: int, n_src: int, hidden: tuple,
            n_tgt: int) -> _CrossEncoder:
    """Model ``k`` of a trained stack as a single-d :class:`_CrossEncoder` module."""
    module = _CrossEncoder(n_src, hidden, d, n_tgt)
    linears = [m for m in module.encoder if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, (lin, w, b) in enumerate(zip(linears, stack.weights, stack.biases)):
            width = lin.weight.shape[0]
            weight = w[:, k, :width] if layer == 0 else w[k, :, :width]
            lin.weight.copy_(weight.T)
            lin.bias.copy_(b[k, 0, :width])
        module.decoder.weight.copy_(stack.decoder[k, :d].T)
        module.decoder.threshold.copy_(stack.threshold[k, 0])
        module.decoder.baseline.copy_(stack.baseline[k, 0])
        module.decoder.log_exponent.copy_(stack.log_exponent[k, 0, 0])
    return module


def fit_models(models: list, source, target, validation=None, report=None) -> list:
    """Fit several :class:`NeuralCrossEncoder` that differ only in ``n_latents`` together.

    All models are trained at once as one stacked network (:mod:`._nce_stack`): the data are
    checked, standardized and copied to the device once, every model sees the same batches, and
    each stops on its own validation loss. Each model ends fitted exactly as its own ``fit``
    would leave it (``fit`` is this function with one model), except that no
    :class:`NCEConvergenceWarning` is raised here: read ``converged_``.

    Parameters
    ----------
    models : list of NeuralCrossEncoder
        Unfitted estimators with equal parameters except ``n_latents``.
    source, target, validation
        As for :meth:`NeuralCrossEncoder.fit`.
    report : callable, optional
        ``report(epoch, dims_training, r2, dims_done)`` after every epoch: ``r2`` is the
        validation R² (pooled over targets; training R² without validation) of each model still
        training.

    Returns
    -------
    list of NeuralCrossEncoder
        ``models``, fitted.
    """
    first = models[0]
    if target is None:
        raise AnalysisError("NeuralCrossEncoder requires y to be passed, but the target y is "
                            "None; call fit(X, Y) with the target neurons' activity")
    shared = {k: v for k, v in first.get_params().items() if k != "n_latents"}
    for m in models:
        m.__dict__.pop("n_features_in_", None)
        m.__dict__.pop("_y_1d", None)
        other = {k: v for k, v in m.get_params().items() if k != "n_latents"}
        if other.keys() != shared.keys() or any(
                not _same(other[k], shared[k]) for k in shared):
            raise AnalysisError("fit_models: the models must differ only in n_latents")
    check_options(first)
    x, y = first._prepare(source, target, min_samples=2)
    y_1d = np.asarray(target).ndim == 1
    n_src, n_tgt = x.shape[-1], y.shape[-1]
    dims = [m.n_latents for m in models]
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise AnalysisError(f"n_latents must be a positive integer, got {d!r}")
        if d > min(n_src, n_tgt):
            raise AnalysisError(f"more latents than neurons: n_latents={d} but there are "
                                f"{np.shape(source)[-1]} source and {n_tgt} target neurons")
    n_samples = x.shape[-2]
    if n_samples < 2:
        raise AnalysisError(f"need at least 2 training samples, got {n_samples}")
    if first.warm_start not in ("rrr", None, False):
        raise AnalysisError(f"warm_start must be 'rrr' or None (False), got "
                            f"{first.warm_start!r}")
    device = torch_device(first.device)
    flat_x, flat_y = x.reshape(-1, n_src), y.reshape(-1, n_tgt)
    scale = flat_x.std(axis=0)
    total = flat_y.var(axis=0).mean()
    if not total > 0:
        raise AnalysisError("the targets do not vary across samples")
    for m in models:
        m.device_ = device
        m.source_mean_ = flat_x.mean(axis=0)
        m.source_scale_ = np.where(scale > 0, scale, 1.0)
        m.target_mean_ = flat_y.mean(axis=0)
        m.target_scale_ = float(np.sqrt(total))
    xs, ys = first._x(x), first._y(y)

    val = None
    spread = float(ys.reshape(-1, n_tgt).var(axis=0).mean())   # of the standardized targets
    if validation is not None:
        vx, vy = first._prepare(validation[0], validation[1], name="validation source")
        if vx.shape[-1] != n_src or vy.shape[-1] != n_tgt:
            raise AnalysisError(f"validation has {vx.shape[-1]} source and {vy.shape[-1]} "
                                f"target neurons; training has {n_src} and {n_tgt}")
        vxs, vys = first._x(vx), first._y(vy)
        val = (first._tensor(vxs), first._tensor(vys))
        spread = float(vys.reshape(-1, n_tgt).var(axis=0).mean())

    options = _stack.Options(
        max_epochs=int(first.max_epochs), lr=float(first.lr), betas=tuple(first.betas),
        weight_decay=float(first.weight_decay), batch_size=int(first.batch_size),
        patience=int(first.patience), lr_patience=int(first.lr_patience),
        lr_factor=float(first.lr_factor), tol=float(first.tol) * spread,
        noise=float(first.noise))
    stack = _stack.init_stack(n_src, tuple(int(h) for h in first.hidden), dims, n_tgt,
                              int(first.seed), device)
    # one stream (seeded apart from the initialization) draws batches, crossed repeats, noise
    batch_seed = int(np.random.SeedSequence([int(first.seed), 1]).generate_state(1)[0])
    generator = torch.Generator().manual_seed(batch_seed)
    distill = None
    if first.warm_start == "rrr" and first.distill_epochs > 0:
        target_fn, inputs = first._distill_target(
            models, xs, ys, None if val is None else (vxs, vys), device)
        with torch.no_grad():   # the decoder starts in its linear regime: every neuron active
            stack.threshold.fill_(3.0)
            stack.baseline.fill_(-3.0)
        distill = (int(first.distill_epochs), target_fn, first._tensor(inputs))

    def relay(epoch, training, loss, done):
        if report is not None:
            report(epoch, training, 1.0 - np.asarray(loss) / max(spread, 1e-300), done)

    previous = torch.get_num_threads()
    if first.n_threads is not None:
        torch.set_num_threads(int(first.n_threads))
    try:
        outcome = _stack.train(stack, first._tensor(xs), first._tensor(ys), val, options,
                               generator, distill=distill, report=relay)
    finally:
        torch.set_num_threads(previous)
    hidden = tuple(int(h) for h in first.hidden)
    for k, m in enumerate(models):
        m.module_ = _export(outcome.stack, k, dims[k], n_src, hidden, n_tgt).to(device)
        m.converged_ = bool(outcome.converged[k])
        m.n_epochs_ = int(outcome.n_epochs[k])
        m.best_epoch_ = int(outcome.best_epoch[k])
        m.train_loss_ = outcome.train_loss[k]
        m.validation_loss_ = outcome.validation_loss[k]
        m.exponent_ = float(m.module_.decoder.exponent().detach().cpu())
        m.n_features_in_ = int(np.asarray(source).shape[-1])
        m._y_1d = y_1d
    return models


def _same(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(np.all(np.asarray(a, dtype=object) == np.asarray(b, dtype=object))) and (
            np.shape(a) == np.shape(b))
    except Exception:
        return a is b
