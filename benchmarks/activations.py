"""Benchmark: model_activations throughput and memory against a bare forward pass.

Claims (issue 4): extraction throughput >= 90% of a bare forward pass of the same model over
the same batches (hook and bookkeeping overhead <= 10%); peak memory <= model + one batch +
output (or the spill budget when streaming to zarr).

Modes, all over the same batches:

- ``bare``: the forward pass only, outputs discarded (the issue's baseline).
- ``manual``: the least any extraction can do: hand-written forward hooks copying each layer's
  output into a preallocated numpy array. Writing N x D floats into fresh memory costs time
  that ``bare`` never spends; this mode measures it.
- ``memory``: ``model_activations`` with everything in RAM.
- ``spill``: ``model_activations`` with a per-layer budget that streams large layers to zarr.

Two scenarios: ``full`` (unreduced conv maps, 288 KB of output per stimulus) and ``gap``
(``reduce="gap"``: a few hundred floats per stimulus, so the ratio isolates hook and
bookkeeping overhead).

Timing: one subprocess runs the modes interleaved for ``--repeats`` rounds (so drifting load
from other jobs hits every mode alike) and keeps each mode's best process CPU time (torch runs
on ``--threads`` threads, 1 by default, so CPU time is what the run consumed even when other
jobs share the machine) and best wall time; ratios are ``t_bare / t_mode`` and
``t_manual / t_mode``. Memory: each mode once more in its own fresh subprocess: peak RSS during
the run (sampled every 2 ms) above the RSS just before it, and the tracemalloc peak of a second
run (numpy/Python allocations, where the output lives; torch's own allocations are not traced).

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


def make_runner(mode, args, model, x, spill):
    """A function running one extraction in ``mode``; returns (output bytes, spilled layers)."""
    import loaders

    reduce = "gap" if args.scenario == "gap" else None

    def bare():
        with torch.no_grad():
            for start in range(0, len(x), args.batch_size):
                model(x[start:start + args.batch_size])
        return 0, []

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
        return sum(a.nbytes for a in out.values()), []

    def extract():
        budget = args.budget if mode == "spill" else None
        acts = loaders.model_activations(model, x, LAYERS, batch_size=args.batch_size,
                                         progress=False, memory_budget=budget, spill_dir=spill,
                                         reduce=reduce)
        return (sum(a.size * a.dtype.itemsize for a in acts.values()),
                [k for k, a in acts.items() if a.attrs["spilled"]])
    return {"bare": bare, "manual": manual}.get(mode, extract)


def setup(args):
    torch.set_num_threads(args.threads)
    model = make_model()
    x = torch.rand(args.n_stimuli, 3, args.image_size, args.image_size,
                   generator=torch.Generator().manual_seed(0))
    return model, x, tempfile.mkdtemp(prefix="bench-activations-")


def child_time(args):
    """All modes interleaved; prints a JSON line of best CPU and wall times per mode."""
    import gc

    model, x, spill = setup(args)
    runners = {m: make_runner(m, args, model, x, spill) for m in MODES}
    for run in runners.values():  # warm-up: allocator, kernels, lazy imports
        run()
    best = {m: {"cpu": float("inf"), "wall": float("inf")} for m in MODES}
    for _ in range(args.repeats):
        for mode, run in runners.items():
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            best[mode]["cpu"] = min(best[mode]["cpu"], time.process_time() - c0)
            best[mode]["wall"] = min(best[mode]["wall"], time.perf_counter() - t0)
    print(json.dumps(best))


def child_memory(args):
    """One mode in a fresh process; prints a JSON line of its memory figures."""
    import gc
    import threading

    model, x, spill = setup(args)
    run = make_runner(args.mode, args, model, x, spill)
    if args.mode == "bare":  # warm-up on one batch (kernels); the others warm up their imports
        with torch.no_grad():
            model(x[:args.batch_size])
    else:
        small = argparse.Namespace(**{**vars(args), "n_stimuli": args.batch_size})
        make_runner(args.mode, small, model, x[:args.batch_size], spill)()
    gc.collect()
    base_rss = rss_bytes()
    peak_rss = [base_rss]
    stop = threading.Event()

    def sample():  # ru_maxrss includes start-up transients; sample RSS during the run instead
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], rss_bytes())
            time.sleep(0.002)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_bytes, spilled = run()
    stop.set()
    sampler.join()
    gc.collect()
    tracemalloc.start()
    run()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"peak_above_start": peak_rss[0] - base_rss, "traced_peak": traced_peak,
                      "out_bytes": out_bytes, "model_bytes": model_bytes,
                      "batch_bytes": x[:args.batch_size].numel() * 4, "spilled": spilled}))


MODES = ("bare", "manual", "memory", "spill")


def call(args, **override):
    opts = {**vars(args), **override}
    cmd = [sys.executable, __file__] + [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()
                                        if v is not None and k != "scenarios"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-stimuli", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 keeps timings stable on a shared machine)")
    p.add_argument("--budget", type=int, default=8 * 1024 ** 2,
                   help="per-layer memory budget (bytes) for the spill mode")
    p.add_argument("--scenarios", default="full,gap", help="comma-separated: full, gap")
    p.add_argument("--mode", choices=MODES + ("time",), help=argparse.SUPPRESS)
    p.add_argument("--scenario", choices=["full", "gap"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode == "time":
        return child_time(args)
    if args.mode:
        return child_memory(args)

    mb = 1024 ** 2
    print(f"model_activations benchmark: {args.n_stimuli} stimuli 3x{args.image_size}x"
          f"{args.image_size}, batch {args.batch_size}, layers {LAYERS}, torch threads "
          f"{args.threads}, best of {args.repeats} interleaved rounds; spill budget "
          f"{args.budget / mb:.1f} MB/layer")
    for scenario in args.scenarios.split(","):
        times = call(args, mode="time", scenario=scenario)
        mem = {m: call(args, mode=m, scenario=scenario) for m in MODES}
        bare, manual = times["bare"], times["manual"]
        print(f"\nscenario {scenario!r}: model {mem['bare']['model_bytes'] / mb:.2f} MB, one input "
              f"batch {mem['bare']['batch_bytes'] / mb:.2f} MB, output "
              f"{mem['memory']['out_bytes'] / mb:.2f} MB")
        print(f"{'mode':7s} {'cpu s':>7s} {'wall s':>7s} {'cpu: bare/mode':>15s} "
              f"{'cpu: manual/mode':>17s} {'wall: bare/mode':>16s} {'peak RSS +MB':>13s} "
              f"{'traced MB':>10s}  spilled")
        for mode in MODES:
            t, m = times[mode], mem[mode]
            print(f"{mode:7s} {t['cpu']:7.3f} {t['wall']:7.3f} {bare['cpu'] / t['cpu']:15.3f} "
                  f"{manual['cpu'] / t['cpu']:17.3f} {bare['wall'] / t['wall']:16.3f} "
                  f"{m['peak_above_start'] / mb:13.1f} {m['traced_peak'] / mb:10.1f}  "
                  f"{','.join(m['spilled']) or '-'}")
        m, s = mem["memory"], mem["spill"]
        print(f"summary {scenario}: throughput (cpu) vs bare {bare['cpu'] / times['memory']['cpu']:.3f} "
              f"(claim >= 0.9), vs manual hooks {manual['cpu'] / times['memory']['cpu']:.3f}; "
              f"in-memory peak RSS {m['peak_above_start'] / mb:.1f} MB vs model+batch+output "
              f"{(m['model_bytes'] + m['batch_bytes'] + m['out_bytes']) / mb:.1f} MB; spill peak "
              f"RSS {s['peak_above_start'] / mb:.1f} MB, traced {s['traced_peak'] / mb:.1f} MB "
              f"(budget {args.budget / mb:.1f} MB/layer)")


if __name__ == "__main__":
    main()
