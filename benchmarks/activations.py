"""Benchmark: model_activations throughput and memory against a bare forward pass.

Claims (issue 4): extraction throughput >= 90% of a bare forward pass of the same model over
the same batches (hook and bookkeeping overhead <= 10%); peak memory <= model + one batch +
output (or the spill budget when streaming to zarr).

Modes, each in a fresh subprocess so its memory belongs to it alone, over the same batches:

- ``bare``: the forward pass only, outputs discarded (the issue's baseline).
- ``manual``: the least any extraction can do: hand-written forward hooks copying each layer's
  output into a preallocated numpy array. Writing N x D floats into fresh memory costs time
  that ``bare`` never spends; this mode measures it.
- ``memory``: ``model_activations`` with everything in RAM.
- ``spill``: ``model_activations`` with a per-layer budget that streams large layers to zarr.

Two scenarios: ``full`` (unreduced conv maps, 288 KB of output per stimulus) and ``gap``
(``reduce="gap"``: a few hundred floats per stimulus, so the ratio isolates hook and
bookkeeping overhead).

Reported: best-of-``--repeats`` process CPU time (torch runs on ``--threads`` threads, 1 by
default, so CPU time is what the run itself consumed even when other jobs share the machine)
and wall time; throughput ratios ``t_bare / t_mode`` and ``t_manual / t_mode``; peak RSS during
the timed runs (sampled every 2 ms) above the RSS just before them; the tracemalloc peak of
one extra run (numpy/Python allocations, where the output lives; torch's own allocations are
not traced).

Usage: ``python benchmarks/activations.py [--n-stimuli 512 --batch-size 64 --image-size 64]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

LAYERS = ["features.conv2", "features.conv4", "fc"]


def make_model(seed=0):
    """A small AlexNet-shaped CNN (about 0.3 M parameters) for 3-channel images."""
    torch.manual_seed(seed)
    features = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 32, 5, stride=2, padding=2), relu1=nn.ReLU(),
        conv2=nn.Conv2d(32, 64, 3, padding=1), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        conv3=nn.Conv2d(64, 128, 3, padding=1), relu3=nn.ReLU(), pool3=nn.MaxPool2d(2),
        conv4=nn.Conv2d(128, 128, 3, padding=1), relu4=nn.ReLU()))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(128, 100)

        def forward(self, x):
            return self.fc(torch.flatten(self.gap(self.features(x)), 1))
    return Net().eval()


def rss_bytes():
    """Current resident set size (Linux /proc), in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args):
    """One measurement; prints a JSON line."""
    import loaders

    torch.set_num_threads(args.threads)
    model = make_model()
    x = torch.rand(args.n_stimuli, 3, args.image_size, args.image_size,
                   generator=torch.Generator().manual_seed(0))
    spill = tempfile.mkdtemp(prefix="bench-activations-")
    reduce = "gap" if args.scenario == "gap" else None

    def bare():
        with torch.no_grad():
            for start in range(0, len(x), args.batch_size):
                model(x[start:start + args.batch_size])

    def manual():
        modules = dict(model.named_modules())
        out, pos = {}, [0]

        def hook_for(name):
            def hook(module, inputs, output):
                flat = output.mean(dim=(2, 3)) if reduce == "gap" and output.ndim == 4 \
                    else output.reshape(len(output), -1)
                if name not in out:
                    out[name] = np.empty((len(x), flat.shape[1]), np.float32)
                out[name][pos[0]:pos[0] + len(flat)] = flat.numpy()
            return hook
        handles = [modules[n].register_forward_hook(hook_for(n)) for n in LAYERS]
        try:
            with torch.no_grad():
                for start in range(0, len(x), args.batch_size):
                    pos[0] = start
                    model(x[start:start + args.batch_size])
        finally:
            for h in handles:
                h.remove()
        return out

    def run():
        if args.mode == "bare":
            bare()
            return 0, []
        if args.mode == "manual":
            out = manual()
            return sum(a.nbytes for a in out.values()), []
        budget = args.budget if args.mode == "spill" else None
        acts = loaders.model_activations(model, x, LAYERS, batch_size=args.batch_size,
                                         progress=False, memory_budget=budget, spill_dir=spill,
                                         reduce=reduce)
        return (sum(a.size * a.dtype.itemsize for a in acts.values()),
                [k for k, a in acts.items() if a.attrs["spilled"]])

    # warm-up (allocator, kernels, lazy imports), not timed
    run()
    import gc
    import threading

    gc.collect()
    base_rss = rss_bytes()
    peak_rss = [base_rss]
    stop = threading.Event()

    def sample():  # ru_maxrss includes start-up transients; sample RSS during the runs instead
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], rss_bytes())
            time.sleep(0.002)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times, cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out_bytes, spilled = run()
        cpu_times.append(time.process_time() - c0)
        times.append(time.perf_counter() - t0)
        gc.collect()
    stop.set()
    sampler.join()
    # one more run under tracemalloc (it slows Python allocations, so it is not timed)
    tracemalloc.start()
    run()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"mode": args.mode, "wall": min(times), "cpu": min(cpu_times),
                      "peak_above_start": peak_rss[0] - base_rss, "traced_peak": traced_peak,
                      "out_bytes": out_bytes, "model_bytes": model_bytes,
                      "batch_bytes": x[:args.batch_size].numel() * 4,
                      "spilled": spilled}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-stimuli", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 keeps timings stable on a shared machine)")
    p.add_argument("--budget", type=int, default=8 * 1024 ** 2,
                   help="per-layer memory budget (bytes) for the spill mode")
    p.add_argument("--scenarios", default="full,gap", help="comma-separated: full, gap")
    p.add_argument("--mode", choices=["bare", "manual", "memory", "spill"], help=argparse.SUPPRESS)
    p.add_argument("--scenario", choices=["full", "gap"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode:
        return child(args)

    mb = 1024 ** 2
    print(f"model_activations benchmark: {args.n_stimuli} stimuli 3x{args.image_size}x"
          f"{args.image_size}, batch {args.batch_size}, layers {LAYERS}, torch threads "
          f"{args.threads}, best of {args.repeats}; spill budget {args.budget / mb:.1f} MB/layer")
    for scenario in args.scenarios.split(","):
        results = {}
        for mode in ("bare", "manual", "memory", "spill"):
            cmd = [sys.executable, __file__, "--mode", mode, "--scenario", scenario] + [
                f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                if k not in ("mode", "scenario", "scenarios")]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        bare, manual, mem = results["bare"], results["manual"], results["memory"]
        print(f"\nscenario {scenario!r}: model {bare['model_bytes'] / mb:.2f} MB, one input batch "
              f"{bare['batch_bytes'] / mb:.2f} MB, output {mem['out_bytes'] / mb:.2f} MB")
        print(f"{'mode':7s} {'cpu s':>7s} {'wall s':>7s} {'cpu: bare/mode':>15s} "
              f"{'cpu: manual/mode':>17s} {'wall: bare/mode':>16s} {'peak RSS +MB':>13s} "
              f"{'traced MB':>10s}  spilled")
        for mode, r in results.items():
            print(f"{mode:7s} {r['cpu']:7.3f} {r['wall']:7.3f} {bare['cpu'] / r['cpu']:15.3f} "
                  f"{manual['cpu'] / r['cpu']:17.3f} {bare['wall'] / r['wall']:16.3f} "
                  f"{r['peak_above_start'] / mb:13.1f} {r['traced_peak'] / mb:10.1f}  "
                  f"{','.join(r['spilled']) or '-'}")
        sp = results["spill"]
        print(f"summary {scenario}: throughput vs bare {bare['cpu'] / mem['cpu']:.3f} (claim >= 0.9), "
              f"vs manual hooks {manual['cpu'] / mem['cpu']:.3f}; in-memory peak RSS "
              f"{mem['peak_above_start'] / mb:.1f} MB vs model+batch+output "
              f"{(bare['model_bytes'] + bare['batch_bytes'] + mem['out_bytes']) / mb:.1f} MB; "
              f"spill peak RSS {sp['peak_above_start'] / mb:.1f} MB, traced "
              f"{sp['traced_peak'] / mb:.1f} MB")


if __name__ == "__main__":
    main()
