"""The Neural Cross-Encoder: predict target neurons from source neurons through d latents.

Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (NeurIPS 2025). An MLP
encoder maps source activity (or a time window of it) to a d-dimensional bottleneck z; a single
decoder layer maps z to every target neuron, b̂ = φ_{p,c}(U z) + r with φ_{p,c}(x) = max(0, x+c)^p,
one exponent p shared by all neurons and per-neuron threshold c and baseline r. Because the
decoder is one layer, d is the number of latent variables the targets depend on. Without the
nonlinearities the model is reduced-rank regression (:mod:`neurogeom.latent.rrr`).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._backend import torch_device
from .._params import check_int, check_nonnegative, check_positive, check_seed
from ..errors import AnalysisError, ConvergenceError
from .rrr import DEFAULT_ALPHAS, ReducedRankRegression, r2_score
from .windows import crossed_pairs, time_window

__all__ = ["NeuralCrossEncoder", "NCEConvergenceWarning", "time_window", "crossed_pairs"]


class NCEConvergenceWarning(UserWarning):
    """An NCE fit stopped at ``max_epochs`` while its loss was still improving."""

# p is parametrized as exp(log p) and kept inside this range: p → 0 gives the step function,
# p = 1 a ReLU; the bounds keep x^p and its gradient finite.
_LOG_P_RANGE = (math.log(0.02), math.log(5.0))


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


class NeuralCrossEncoder:
    """Neural Cross-Encoder: an MLP encoder to d latents and a one-layer nonlinear decoder.

    Parameters
    ----------
    n_latents : int
        Bottleneck dimension d.
    hidden : tuple of int
        Encoder hidden widths (ReLU).
    window : int
        Time bins of source activity fed to the encoder (continuous data only; see
        :func:`time_window`). ``fit``/``predict`` then take the full (time, neurons) series.
    max_epochs : int
        Upper bound on training epochs.
    lr, weight_decay, betas : float, float, (float, float)
        Adam settings (the paper's: 1e-3, 1e-5, (0.85, 0.95)).
    batch_size : int
        Samples per step. The paper trains on large datasets with large batches; on a few
        thousand samples small batches (32–64) converge in far fewer epochs (more Adam steps).
    patience : int
        Stop after this many epochs without improving the validation loss (the training loss
        when no validation set is given); the best checkpoint is restored.
    warm_start : {"rrr", None}
        ``"rrr"`` first trains the network to reproduce a ridge reduced-rank regression of rank
        d (distillation, ``distill_epochs`` epochs), so training starts from the linear solution.
        Off by default: on the synthetic random-feature data it started the decoder in its
        linear regime and slowed convergence to the nonlinear solution.
    distill_epochs : int
        Epochs of distillation.
    alphas : sequence of float
        Ridge penalties for the warm-start RRR.
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
    exponent_ : float
        Learned p.
    best_epoch_, n_epochs_ : int
        Epoch of the restored checkpoint and epochs run.
    train_loss_, validation_loss_ : ndarray
        Loss per epoch (standardized units; NaN-free; validation empty without validation).

    Notes
    -----
    Inputs are 2-d ``(samples, neurons)`` or 3-d ``(repeats, stimuli, neurons)``. With repeats
    the loss is crossed: sources of one repeat predict targets of another (the paper's). Sources
    are z-scored per neuron; targets are centered per neuron and divided by one global scale, so
    the loss stays proportional to the raw MSE that :meth:`score` measures.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((300, 2))
    >>> src = z @ rng.standard_normal((2, 20)); tgt = np.maximum(z @ rng.standard_normal((2, 30)), 0)
    >>> nce = NeuralCrossEncoder(2, hidden=(32,), max_epochs=5, progress=False).fit(src, tgt)
    >>> nce.transform(src).shape
    (300, 2)
    """

    def __init__(self, n_latents: int, hidden=(500, 250, 100), window: int = 1,
                 max_epochs: int = 300, lr: float = 1e-3, weight_decay: float = 1e-5,
                 betas=(0.85, 0.95), batch_size: int = 64, patience: int = 20,
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
        self.warm_start = warm_start
        self.distill_epochs = distill_epochs
        self.alphas = alphas
        self.noise = noise
        self.seed = seed
        self.device = device
        self.progress = progress
        self.n_threads = n_threads

    # ---------------------------------------------------------------- input handling
    def _prepare(self, source, target=None, name="source"):
        """Validate shapes, apply the time window; return float arrays."""
        x = np.asarray(source, dtype=np.float64)
        if x.ndim not in (2, 3):
            raise AnalysisError(f"{name} must be (samples, neurons) or (repeats, stimuli, "
                                f"neurons), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise AnalysisError(f"{name} contains NaN or infinite values")
        if self.window != 1:
            if x.ndim != 2:
                raise AnalysisError("a time window (window > 1) needs continuous (time, neurons) "
                                    f"data, got {name} of shape {x.shape}")
            x = time_window(x, self.window)
        y = None
        if target is not None:
            y = np.asarray(target, dtype=np.float64)
            tname = name.replace("source", "target")
            if y.ndim != x.ndim or y.shape[:-1] != x.shape[:-1]:
                raise AnalysisError(f"{name} has shape {np.shape(source)} but {tname} has "
                                    f"{y.shape}: the sample (and repeat) axes must match")
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
    def fit(self, source, target, validation=None) -> "NeuralCrossEncoder":
        """Train on ``source`` → ``target``; ``validation`` is an optional (source, target) pair.

        Returns
        -------
        self
        """
        if self.n_threads is None:
            return self._fit(source, target, validation)
        previous = torch.get_num_threads()
        torch.set_num_threads(int(self.n_threads))
        try:
            return self._fit(source, target, validation)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, source, target, validation):
        check_options(self)
        x, y = self._prepare(source, target)
        n_src, n_tgt = x.shape[-1], y.shape[-1]
        d = self.n_latents
        if not isinstance(d, (int, np.integer)) or d < 1:
            raise AnalysisError(f"n_latents must be a positive integer, got {d!r}")
        if d > min(n_src, n_tgt):
            raise AnalysisError(f"more latents than neurons: n_latents={d} but there are "
                                f"{np.shape(source)[-1]} source and {n_tgt} target neurons")
        n_samples = x.shape[-2]
        if n_samples < 2:
            raise AnalysisError(f"need at least 2 training samples, got {n_samples}")
        if self.warm_start not in ("rrr", None):
            raise AnalysisError(f"warm_start must be 'rrr' or None, got {self.warm_start!r}")
        self.device_ = torch_device(self.device)
        flat_x, flat_y = x.reshape(-1, n_src), y.reshape(-1, n_tgt)
        self.source_mean_ = flat_x.mean(axis=0)
        scale = flat_x.std(axis=0)
        self.source_scale_ = np.where(scale > 0, scale, 1.0)
        self.target_mean_ = flat_y.mean(axis=0)
        total = flat_y.var(axis=0).mean()
        if not total > 0:
            raise AnalysisError("the targets do not vary across samples")
        self.target_scale_ = float(np.sqrt(total))
        xs, ys = self._x(x), self._y(y)

        val = None
        if validation is not None:
            vx, vy = self._prepare(validation[0], validation[1], name="validation source")
            if vx.shape[-1] != n_src or vy.shape[-1] != n_tgt:
                raise AnalysisError(f"validation has {vx.shape[-1]} source and {vy.shape[-1]} "
                                    f"target neurons; training has {n_src} and {n_tgt}")
            val = (self._tensor(self._x(vx)), self._tensor(self._y(vy)))

        generator = torch.Generator().manual_seed(int(self.seed))
        torch_seed_state = torch.random.get_rng_state()
        self.module_ = _CrossEncoder(n_src, tuple(self.hidden), d, n_tgt)
        for m in self.module_.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.module_.decoder.weight, std=1.0 / math.sqrt(d), generator=generator)
        torch.random.set_rng_state(torch_seed_state)
        self.module_.to(self.device_)

        train_x, train_y = self._tensor(xs), self._tensor(ys)
        optimizer = torch.optim.Adam(self.module_.parameters(), lr=self.lr, betas=tuple(self.betas),
                                     weight_decay=self.weight_decay)
        if self.warm_start == "rrr" and self.distill_epochs > 0:
            self._distill(xs, ys, validation=None if val is None else (
                self._x(vx), self._y(vy)), optimizer=optimizer, generator=generator)

        best, best_state, stale = np.inf, None, 0
        train_loss, val_loss = [], []
        bar = tqdm(range(self.max_epochs), desc=f"NCE d={d}", leave=False,
                   disable=(None if self.progress is None else not self.progress))
        for epoch in bar:
            loss = self._epoch(train_x, train_y, optimizer, generator)
            train_loss.append(loss)
            monitored = loss
            if val is not None:
                monitored = self._loss(*val)
                val_loss.append(monitored)
            if not np.isfinite(monitored):
                raise ConvergenceError(f"NCE training diverged at epoch {epoch} (loss {monitored}); "
                                       "lower lr or standardize the data")
            if best_state is None or monitored < best - 1e-7 * abs(best):
                best, stale = monitored, 0
                best_state = copy.deepcopy(self.module_.state_dict())
                self.best_epoch_ = epoch
            else:
                stale += 1
            bar.set_postfix(loss=f"{monitored:.4f}", best=f"{best:.4f}")
            if stale >= self.patience:
                break
        bar.close()
        self.module_.load_state_dict(best_state)
        # converged: the monitored loss stopped improving for `patience` epochs before the cap
        self.converged_ = stale >= self.patience
        if not self.converged_:
            warnings.warn(f"NCE d={d} did not converge within max_epochs={self.max_epochs}: the "
                          f"{'validation' if val is not None else 'training'} loss was still "
                          f"improving at the last epoch; raise max_epochs (or lr)",
                          NCEConvergenceWarning, stacklevel=3)
        self.n_epochs_ = len(train_loss)
        self.train_loss_ = np.asarray(train_loss)
        self.validation_loss_ = np.asarray(val_loss)
        self.exponent_ = float(self.module_.decoder.exponent().detach().cpu())
        return self

    def _batches(self, n, generator):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, self.batch_size):
            yield order[start:start + self.batch_size]

    def _epoch(self, x, y, optimizer, generator, target_fn=None) -> float:
        """One pass of Adam steps; with repeats each stimulus is seen once per repeat as input,
        paired with a target of a different, randomly chosen repeat (crossed loss)."""
        self.module_.train()
        crossed = x.dim() == 3
        n_rep, n = (x.shape[0], x.shape[1]) if crossed else (1, x.shape[0])
        total, count = 0.0, 0
        for idx in self._batches(n * n_rep, generator):
            if crossed:
                rep, stim = idx // n, idx % n
                other = (rep + torch.randint(1, n_rep, rep.shape, generator=generator)) % n_rep
                xb = x[rep.to(x.device), stim.to(x.device)]
                yb = y[other.to(x.device), stim.to(x.device)]
            else:
                idx = idx.to(x.device)
                xb, yb = x[idx], y[idx]
            if self.noise:
                xb = xb + self.noise * torch.randn(xb.shape, generator=generator).to(xb.device)
            optimizer.zero_grad(set_to_none=True)
            pred = self.module_(xb)
            loss = torch.mean((pred - yb) ** 2)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / count

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, part="all") -> torch.Tensor:
        self.module_.eval()
        flat = x.reshape(-1, x.shape[-1])
        fn = self.module_.encoder if part == "encoder" else self.module_
        out = torch.cat([fn(flat[i:i + 8192]) for i in range(0, flat.shape[0], 8192)])
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _loss(self, x, y) -> float:
        pred = self._forward(x)
        if x.dim() == 3:
            n_rep = x.shape[0]
            errors = [torch.mean((pred[r] - y[q]) ** 2) for r in range(n_rep)
                      for q in range(n_rep) if q != r]
            return float(torch.stack(errors).mean().cpu())
        return float(torch.mean((pred - y) ** 2).cpu())

    def _distill(self, xs, ys, validation, optimizer, generator) -> None:
        """Warm start: fit the network to the predictions of ridge RRR of rank d."""
        if xs.ndim == 3:
            fx, fy = crossed_pairs(xs, ys)
            inputs = xs.reshape(-1, xs.shape[-1])
        else:
            fx, fy = xs, ys
            inputs = xs
        if validation is not None and validation[0].ndim == 3:
            validation = crossed_pairs(*validation)
        rank = min(self.n_latents, fx.shape[-1], fy.shape[-1], fx.shape[0] - 1)
        rrr = ReducedRankRegression(rank=rank, alphas=self.alphas).fit(fx, fy, validation)
        self.warm_start_alpha_ = rrr.alpha_
        # start the decoder in the linear regime of its ReLU: a threshold above the drive keeps
        # every neuron active, so φ(Uz) + r can match the linear RRR output from the first step
        with torch.no_grad():
            self.module_.decoder.threshold.fill_(3.0)
            self.module_.decoder.baseline.fill_(-3.0)
        tx = self._tensor(inputs)
        ty = self._tensor(rrr.predict(inputs))
        for _ in range(self.distill_epochs):
            self._epoch(tx, ty, optimizer, generator)

    # ---------------------------------------------------------------- inference
    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise AnalysisError("this NeuralCrossEncoder is not fitted yet; call fit first")

    def transform(self, source) -> np.ndarray:
        """Latents z, shape ``source.shape[:-1] + (n_latents,)``."""
        self._check_fitted()
        x, _ = self._prepare(source)
        z = self._forward(self._tensor(self._x(x)), part="encoder")
        return z.cpu().numpy().astype(np.float64)

    def predict(self, source) -> np.ndarray:
        """Predicted targets in the targets' units, shape ``source.shape[:-1] + (n_targets,)``."""
        self._check_fitted()
        x, _ = self._prepare(source)
        pred = self._forward(self._tensor(self._x(x))).cpu().numpy().astype(np.float64)
        return pred * self.target_scale_ + self.target_mean_

    def score(self, source, target) -> float:
        """R² of the prediction (pooled over target neurons; crossed between repeats for 3-d
        inputs, as in training)."""
        self._check_fitted()
        x, y = self._prepare(source, target)
        pred = self.predict(source)
        if y.ndim == 3:
            pred, y = crossed_pairs(pred, y)
        return r2_score(y, pred)
