"""Benchmark: the cost of PGD attacks and of an MMCR training step against their baselines.

Claims (issue 17):

- PGD: an attack of ``steps`` steps costs at most 1.2× ``steps`` forward+backward passes of the
  same batch (all images and random starts in one batched graph, no per-image loops). The
  baseline pass is the least any gradient attack does per step: a forward pass, the summed
  cross-entropy and its gradient with respect to the input (``torch.autograd.grad``), on the
  same ``n_images × n_samples`` batch at the attack's random start (perturbed images: the
  clean digits' blank canvas runs measurably faster through the same convolutions). The attack adds the random start, the sign/normalized
  step, the projection onto the ε-ball and the clamp to the pixel range.
- MMCR: one training step (``neurogeom.models.mmcr.ssl_step``: augment ``views`` times, one
  forward pass over all views, the objective, backward, Adam) with :class:`MMCRLoss` costs at
  most 1.3× the same step with a plain cross-entropy loss on the same views and labels, at
  batch 256 × 4 views.

Timing: the measured function and its baseline run interleaved for ``--repeats`` rounds (so
drifting load from other jobs hits both alike); the best process CPU time and the best wall
time of each are kept (torch runs on ``--threads`` threads, 1 by default, so CPU time is what
the run consumed even when other jobs share the machine); the ratios are measured/baseline.
Peak memory: each workload's first run in its own fresh process, after its model and inputs are
built: RSS sampled every 2 ms, above the RSS just before the run (on CUDA:
``torch.cuda.max_memory_allocated`` above the allocation before it).

Usage: ``python benchmarks/model_geometry.py [--n-images 64 --n-samples 8 --steps 10
--batch 256 --views 4 --device cpu]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from loaders.synthetic import translated_digits, untrained_convnet  # noqa: E402
from neurogeom.models import MMCRLoss, RandomShift, pgd_attack  # noqa: E402
from neurogeom.models.mmcr import ssl_step  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    c, w = time.process_time(), time.perf_counter()
    fn()
    sync(device)
    return time.process_time() - c, time.perf_counter() - w


def peak_memory(fn, device) -> int:
    """Peak memory of one run of ``fn`` above what was in use just before it (bytes)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    base = rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    fn()
    stop.set()
    sampler.join()
    return peak[0] - base


def workloads(args, device):
    """The four measured callables: ``pgd`` and its baseline ``passes``; ``mmcr`` and its
    baseline ``ce`` (one training step each)."""
    torch.manual_seed(0)
    images, meta = translated_digits(n_exemplars=max(1, -(-args.n_images // 90)))
    x = torch.from_numpy(images[:args.n_images]).to(device)
    y = torch.from_numpy(meta.digit.values[:args.n_images].copy()).to(device)
    xb = x.repeat_interleave(args.n_samples, 0)
    yb = y.repeat_interleave(args.n_samples, 0)
    net = untrained_convnet(width=args.width).to(device).eval()

    def pgd():
        pgd_attack(net, xb, yb, eps=0.05, norm=args.norm, steps=args.steps, seed=0)

    # the baseline runs on the attack's random-start images, not the clean ones: the network's
    # own cost depends on the input values (the blank canvas' exact zeros make the clean batch
    # ≈ 9% faster through the same convolutions), and the attack never sees the clean batch
    start = pgd_attack(net, xb, yb, eps=0.05, norm=args.norm, steps=0, seed=0)

    def passes():
        for _ in range(args.steps):
            inp = start.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(net(inp), yb, reduction="sum")
            torch.autograd.grad(loss, inp)

    rng = np.random.default_rng(0)
    big, big_meta = translated_digits(n_exemplars=max(1, -(-args.batch // 90)))
    pick = rng.choice(len(big), size=args.batch, replace=len(big) < args.batch)
    xs = torch.from_numpy(big[pick]).to(device)
    labels = torch.from_numpy(big_meta.digit.values[pick].copy()).to(device)
    model = untrained_convnet(width=args.width).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    augment = RandomShift(2, noise=0.05)
    mmcr = MMCRLoss()

    def cross_entropy(z):   # the same (images, views, classes) embeddings, each view labelled
        return torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]),
                                                 labels.repeat_interleave(z.shape[1]))

    return {"pgd": pgd, "passes": passes,
            "mmcr": lambda: ssl_step(model, xs, augment, args.views, mmcr, opt),
            "ce": lambda: ssl_step(model, xs, augment, args.views, cross_entropy, opt)}


def child_memory(args):
    """One workload's first run in a fresh process (inputs and model built, nothing run yet):
    its peak memory above that point, in bytes, on stdout."""
    device = torch.device(args.device)
    fn = workloads(args, device)[args.memory_of]
    print(peak_memory(fn, device))


def memory_in_child(args, name) -> int:
    cmd = [sys.executable, __file__, f"--memory-of={name}"] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
        if k not in ("memory_of", "repeats")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return int(out.stdout.strip().splitlines()[-1])


def compare(title, args, measured, baseline, fns, device, claim):
    print(title)
    fns[measured](), fns[baseline]()   # warm-up: kernels, allocator
    best = {key: [np.inf, np.inf] for key in (measured, baseline)}
    for _ in range(args.repeats):
        for key in (measured, baseline):
            cpu, wall = timed(fns[key], device)
            best[key] = [min(best[key][0], cpu), min(best[key][1], wall)]
    mem = {key: memory_in_child(args, key) for key in (measured, baseline)}
    ratio_cpu = best[measured][0] / best[baseline][0]
    ratio_wall = best[measured][1] / best[baseline][1]
    print(f"  {measured}: {best[measured][1]:.4f} s wall ({best[measured][0]:.4f} s CPU); "
          f"{baseline}: {best[baseline][1]:.4f} s wall ({best[baseline][0]:.4f} s CPU)")
    print(f"  ratio {ratio_wall:.3f} wall, {ratio_cpu:.3f} CPU (claim <= {claim}: "
          f"{'met' if ratio_cpu <= claim else 'NOT met'} by CPU time)")
    print(f"  peak memory of the first run (fresh process): {measured} "
          f"{mem[measured] / 2**20:.1f} MiB, {baseline} {mem[baseline] / 2**20:.1f} MiB")
    return ratio_wall, ratio_cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-images", type=int, default=64)
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--width", type=int, default=8, help="channels of SmallConvNet's first block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_of:
        return child_memory(args)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s)")
    fns = workloads(args, device)
    compare(f"\nPGD ({args.norm}), {args.n_images} images x {args.n_samples} random starts = "
            f"{args.n_images * args.n_samples} in one batch, {args.steps} steps, vs {args.steps} "
            "forward+backward passes", args, "pgd", "passes", fns, device, 1.2)
    compare(f"\nOne training step at batch {args.batch} x {args.views} views: MMCR vs "
            "cross-entropy", args, "mmcr", "ce", fns, device, 1.3)


if __name__ == "__main__":
    main()
