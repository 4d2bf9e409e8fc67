"""Training several Neural Cross-Encoders at once: one stacked model for a whole d sweep.

A latent-dimensionality sweep fits one NCE per bottleneck size d (Schmutz et al., NeurIPS
2025). The D encoders of a sweep are independent networks of equal hidden widths, so their
weights are stacked on a leading *model* axis and trained together with batched matrix
products: layer 1 is one GEMM for all models (``x @ W₁``, W₁ stored as (n_inputs, D, h₁), so the
shared input batch is read once), deeper layers ``torch.baddbmm`` over the model axis. The
bottleneck of every model is padded to d_max = max(d) with zero columns (and the decoder with
zero rows): a padded latent z_j ≡ 0 receives the gradient Σ_t g_t U_jt with U_j = 0, and U_j
receives Σ_b z_bj g_b = 0, so the padding stays exactly zero under Adam (whose update of a zero
gradient with zero moments is zero, and L2 decay of 0 is 0) and model k is exactly the NCE of
bottleneck d_k.

Shared across d: the standardized data and their device copy, the batch order, input noise and
crossed-repeat draws (one stream, so each model sees the batches a single-d fit with the same
seed sees), the validation data, and the warm-start RRR (one decomposition gives every rank).
Per model: initialization (seeded as the single-d estimator), Adam moments, learning rate
(reduced on a validation plateau), best checkpoint and early stopping. A model that stops is
removed from the stack, so later epochs only pay for the models still learning.

The loss summed over models has, for each model's parameters, exactly that model's gradient,
and Adam acts elementwise, so training D models stacked equals training them one by one (up to
float rounding of batched versus single products); ``tests/test_latent.py`` checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConvergenceError

# p is parametrized as exp(log p) and kept inside this range: p → 0 gives the step function,
# p = 1 a ReLU; the bounds keep x^p and its gradient finite.
LOG_P_RANGE = (math.log(0.02), math.log(5.0))
_CHUNK = 8192


class _Phi(torch.autograd.Function):
    """φ(x) = max(0, x)^p for a (models, batch, targets) drive and per-model p, with a
    hand-written backward: dφ/dx = p φ/x and dφ/dp = φ log x on x > 0, zero elsewhere. Fewer
    passes over the largest tensor of the model than autograd's ``where``/``pow`` graph."""

    @staticmethod
    def forward(ctx, drive, p):
        positive = drive > 0
        log_drive = torch.log(torch.where(positive, drive, torch.ones_like(drive)))
        out = torch.exp(log_drive * p) * positive
        ctx.save_for_backward(drive, p, out, log_drive)
        return out

    @staticmethod
    def backward(ctx, grad):
        drive, p, out, log_drive = ctx.saved_tensors
        g_out = grad * out                                   # zero where drive <= 0
        g_drive = g_out * p / torch.where(drive > 0, drive, torch.ones_like(drive))
        g_p = (g_out * log_drive).sum(dim=(1, 2), keepdim=True)
        return g_drive, g_p


@dataclass
class Stack:
    """Parameters of D cross-encoders on a leading model axis (axis 1 for the first weight).

    ``weights[0]``: (n_inputs, D, w₁); ``weights[l]``: (D, w_l, w_{l+1}); ``biases[l]``:
    (D, 1, w_{l+1}); the last layer is the bottleneck, padded to d_max. ``decoder``:
    (D, d_max, n_targets); ``threshold``, ``baseline``: (D, 1, n_targets); ``log_exponent``:
    (D, 1, 1).
    """

    weights: list
    biases: list
    decoder: torch.Tensor
    threshold: torch.Tensor
    baseline: torch.Tensor
    log_exponent: torch.Tensor
    dims: list = field(default_factory=list)

    @property
    def params(self) -> list:
        return [*self.weights, *self.biases, self.decoder, self.threshold, self.baseline,
                self.log_exponent]

    @staticmethod
    def axes(n_params: int) -> list:
        return [1] + [0] * (n_params - 1)

    def set_params(self, values) -> None:
        n = (len(values) - 4) // 2
        self.weights = list(values[:n])
        self.biases = list(values[n:2 * n])
        self.decoder, self.threshold, self.baseline, self.log_exponent = values[2 * n:]

    @property
    def n_models(self) -> int:
        return self.decoder.shape[0]

    def forward(self, x: torch.Tensor, encoder_only: bool = False) -> torch.Tensor:
        """(batch, n_inputs) → (models, batch, n_targets) predictions (or latents)."""
        w0 = self.weights[0]
        h = (x @ w0.reshape(w0.shape[0], -1)).reshape(x.shape[0], w0.shape[1], w0.shape[2])
        h = h.transpose(0, 1) + self.biases[0]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = torch.relu(h)
            h = torch.baddbmm(b, h, w)
        if encoder_only:
            return h
        drive = torch.baddbmm(self.threshold, h, self.decoder)
        p = self.log_exponent.clamp(*LOG_P_RANGE).exp()
        return _Phi.apply(drive, p) + self.baseline

    def select(self, keep: torch.Tensor) -> None:
        """Keep the models at positions ``keep`` (of the current stack)."""
        params = self.params
        self.set_params([p.index_select(a, keep) for p, a in
                         zip(params, self.axes(len(params)))])
        self.dims = [self.dims[i] for i in keep.tolist()]


def init_stack(n_inputs: int, hidden: tuple, dims: list, n_targets: int, seed: int,
               device) -> Stack:
    """Kaiming-normal (ReLU gain) weights, zero biases, decoder N(0, 1/d), p = 1, each model
    drawn from its own generator seeded ``seed`` in the order of the single-d estimator."""
    d_max = max(dims)
    widths = (n_inputs, *hidden)
    n_models = len(dims)
    weights = [torch.zeros(n_inputs, n_models, (hidden + (d_max,))[0])]
    weights += [torch.zeros(n_models, a, b) for a, b in
                zip(hidden, (*hidden[1:], d_max))]
    biases = [torch.zeros(n_models, 1, w.shape[-1]) for w in weights]
    decoder = torch.zeros(n_models, d_max, n_targets)
    for k, d in enumerate(dims):
        g = torch.Generator().manual_seed(int(seed))
        outs = (*hidden, d)
        for layer, (fan_in, fan_out) in enumerate(zip(widths, outs)):
            w = torch.empty(fan_out, fan_in).normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
            if layer == 0:
                weights[0][:, k, :fan_out] = w.T
            else:
                weights[layer][k, :, :fan_out] = w.T
        u = torch.empty(n_targets, d).normal_(0.0, 1.0 / math.sqrt(d), generator=g)
        decoder[k, :d] = u.T
    zeros = torch.zeros(n_models, 1, n_targets)
    stack = Stack(weights, biases, decoder, zeros.clone(), zeros.clone(),
                  torch.zeros(n_models, 1, 1), dims=list(dims))
    stack.set_params([p.to(device) for p in stack.params])
    return stack


class Adam:
    """Adam with L2 weight decay (torch's ``Adam(weight_decay=...)``) and one learning rate per
    model, over stacked parameters; models can be dropped (:meth:`select`)."""

    def __init__(self, params, lr: float, betas, weight_decay: float, eps: float = 1e-8,
                 warmup: int = 0):
        self.warmup = int(warmup)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.betas = tuple(float(b) for b in betas)
        self.weight_decay = float(weight_decay)
        self.eps = eps
        self.steps = 0
        self.lr = torch.full((params[-1].shape[0],), float(lr), dtype=params[0].dtype,
                             device=params[0].device)

    def step(self, params, grads) -> None:
        """One Adam step, in place. With bias corrections c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ the update
        lr·(m/c₁)/(√(v/c₂) + ε) is written (√c₂/c₁)·m / ((√v + ε√c₂)/lr): eight passes over
        each parameter and one temporary (the learning rate is one number per model)."""
        self.steps += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        # linear warm-up: large first Adam steps at a high lr can silence every ReLU of a model
        c1 /= min(1.0, self.steps / self.warmup) if self.warmup else 1.0
        for p, g, m, v, axis in zip(params, grads, self.m, self.v, Stack.axes(len(params))):
            if self.weight_decay:
                g.add_(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            shape = [1] * p.dim()
            shape[axis] = -1
            denom = v.sqrt().add_(self.eps * math.sqrt(c2)).div_(self.lr.view(shape))
            p.addcdiv_(m, denom, value=-math.sqrt(c2) / c1)

    def select(self, keep: torch.Tensor) -> None:
        axes = Stack.axes(len(self.m))
        self.m = [t.index_select(a, keep) for t, a in zip(self.m, axes)]
        self.v = [t.index_select(a, keep) for t, a in zip(self.v, axes)]
        self.lr = self.lr[keep]


@dataclass
class Options:
    """Training options shared by the models of a stack (see :class:`NeuralCrossEncoder`)."""

    max_epochs: int
    lr: float
    betas: tuple
    weight_decay: float
    batch_size: int
    patience: int
    lr_patience: int
    lr_factor: float
    tol: float
    noise: float


@dataclass
class Outcome:
    """Per model of the stack: trained parameters (best checkpoint), epochs run, the epoch of
    the checkpoint, whether it stopped early, the loss histories."""

    stack: Stack
    n_epochs: list
    best_epoch: list
    converged: list
    train_loss: list
    validation_loss: list


def batches(n: int, batch_size: int, generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _pair(x, y, idx, generator):
    """Inputs and targets of a batch; with repeats (3-d) each input is paired with the target
    of a different, randomly chosen repeat of the same stimulus (the crossed loss)."""
    if x.dim() == 3:
        n_rep, n = x.shape[0], x.shape[1]
        rep, stim = idx // n, idx % n
        other = (rep + torch.randint(1, n_rep, rep.shape, generator=generator)) % n_rep
        return (x[rep.to(x.device), stim.to(x.device)],
                y[other.to(x.device), stim.to(x.device)] if y is not None else None, stim)
    idx_d = idx.to(x.device)
    return x[idx_d], (y[idx_d] if y is not None else None), idx


def run_epoch(stack: Stack, adam: Adam, x, y, options: Options, generator, target_fn=None):
    """One pass of Adam steps over the training samples; returns the mean loss per model."""
    n = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    total = torch.zeros(stack.n_models, dtype=torch.float64)
    params = stack.params
    for p in params:
        p.requires_grad_(True)
    for idx in batches(n, options.batch_size, generator):
        xb, yb, _ = _pair(x, y, idx, generator)
        if options.noise:
            xb = xb + options.noise * torch.randn(xb.shape, generator=generator).to(xb.device)
        if target_fn is not None:
            yb = target_fn(xb)
        pred = stack.forward(xb)
        per_model = torch.mean((pred - yb) ** 2, dim=(1, 2))
        grads = torch.autograd.grad(per_model.sum(), params)
        with torch.no_grad():
            adam.step(params, grads)
        total += per_model.detach().double().cpu() * len(idx)
    for p in params:
        p.requires_grad_(False)
    return (total / n).numpy()


@torch.no_grad()
def predict(stack: Stack, x: torch.Tensor, encoder_only: bool = False) -> torch.Tensor:
    """(…, n_inputs) → (models, …, outputs), in chunks of samples."""
    flat = x.reshape(-1, x.shape[-1])
    out = torch.cat([stack.forward(flat[i:i + _CHUNK], encoder_only)
                     for i in range(0, flat.shape[0], _CHUNK)], dim=1)
    return out.reshape(out.shape[0], *x.shape[:-1], out.shape[-1])


@torch.no_grad()
def losses(stack: Stack, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """MSE per model; crossed between repeats (every ordered pair r ≠ q) for 3-d data."""
    pred = predict(stack, x)
    if x.dim() == 3:
        n_rep = x.shape[0]
        err = [torch.mean((pred[:, r] - y[q]) ** 2, dim=(1, 2)) for r in range(n_rep)
               for q in range(n_rep) if q != r]
        return torch.stack(err).mean(dim=0).double().cpu().numpy()
    return torch.mean((pred - y) ** 2, dim=(1, 2)).double().cpu().numpy()


def train(stack: Stack, x, y, validation, options: Options, generator, *, distill=None,
          report=None) -> Outcome:
    """Train every model of ``stack`` until it stops improving (or ``max_epochs``).

    Each model monitors its validation loss (its training loss without validation). An epoch
    improves when the loss falls below ``best − tol`` (``tol`` in loss units). The learning rate
    rises linearly over the first epoch (warm-up); after ``lr_patience`` epochs
    without improvement the model's learning rate is multiplied by ``lr_factor`` (a
    reduce-on-plateau schedule), after ``patience`` it stops, and its best checkpoint is kept.

    ``distill``: ``(epochs, target_fn, inputs)`` — first train each model to reproduce
    ``target_fn(x_batch)`` (models, batch, targets) on ``inputs`` (warm start).
    ``report(epoch, dims_training, r2_or_loss, dims_done)`` is called after every epoch.
    """
    n_models = stack.n_models
    all_dims = list(stack.dims)
    n = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    adam = Adam(stack.params, options.lr, options.betas, options.weight_decay,
                warmup=math.ceil(n / options.batch_size))   # the first epoch
    if distill is not None:
        epochs, target_fn, inputs = distill
        for _ in range(epochs):
            run_epoch(stack, adam, inputs, None, options, generator, target_fn=target_fn)
    position = list(range(n_models))            # original index of each model still training
    best_params = [p.detach().clone() for p in stack.params]
    best = np.full(n_models, np.inf)
    stale = np.zeros(n_models, dtype=int)
    since_decay = np.zeros(n_models, dtype=int)
    n_epochs = [0] * n_models
    best_epoch = [0] * n_models
    converged = [False] * n_models
    train_hist = [[] for _ in range(n_models)]
    val_hist = [[] for _ in range(n_models)]
    axes = Stack.axes(len(best_params))
    for epoch in range(options.max_epochs):
        train_loss = run_epoch(stack, adam, x, y, options, generator)
        monitored = train_loss if validation is None else losses(stack, *validation)
        bad = ~np.isfinite(monitored)
        if bad.any():
            raise ConvergenceError(
                f"NCE training diverged at epoch {epoch} for d = "
                f"{[stack.dims[i] for i in np.flatnonzero(bad)]} (loss "
                f"{monitored[bad].tolist()}); lower lr or standardize the data")
        improved = np.zeros(len(position), dtype=bool)
        for i, k in enumerate(position):
            n_epochs[k] = epoch + 1
            train_hist[k].append(float(train_loss[i]))
            if validation is not None:
                val_hist[k].append(float(monitored[i]))
            if monitored[i] < best[k] - options.tol or not np.isfinite(best[k]):
                best[k], stale[k], since_decay[k], best_epoch[k] = monitored[i], 0, 0, epoch
                improved[i] = True
            else:
                stale[k] += 1
                since_decay[k] += 1
                if since_decay[k] >= options.lr_patience:
                    adam.lr[i] *= options.lr_factor
                    since_decay[k] = 0
        if improved.any():
            rows = torch.as_tensor(np.flatnonzero(improved), device=stack.decoder.device)
            targets = torch.as_tensor([position[i] for i in np.flatnonzero(improved)],
                                      device=stack.decoder.device)
            for b, p, a in zip(best_params, stack.params, axes):
                b.index_copy_(a, targets, p.detach().index_select(a, rows))
        done = [i for i, k in enumerate(position) if stale[k] >= options.patience]
        for i in done:
            converged[position[i]] = True
        if report is not None:
            report(epoch, [stack.dims[i] for i in range(len(position))], monitored,
                   [stack.dims[i] for i in done])
        if done:
            keep = torch.as_tensor([i for i in range(len(position)) if i not in done],
                                   device=stack.decoder.device, dtype=torch.long)
            stack.select(keep)
            adam.select(keep)
            position = [position[i] for i in keep.tolist()]
        if not position:
            break
    trained = Stack([], [], *([None] * 4), dims=[])
    trained.set_params(best_params)
    trained.dims = all_dims
    return Outcome(trained, n_epochs, best_epoch, converged,
                   [np.asarray(h) for h in train_hist], [np.asarray(h) for h in val_hist])

