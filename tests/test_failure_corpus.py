"""The failure corpus: the ``neurogeom`` command over bad files, flags, outputs and signals.

Every case runs the real command in a subprocess, inside a fresh work folder, and must end
the way a careful user expects (issue 12): exit code 2 (130 for SIGINT, 143 for SIGTERM, 141
and silence for a stdout closed early, as ``| head -1`` does), at most 3 lines on stderr, no
traceback anywhere, nothing secret on stderr, no file left behind in the work folder (no
temporary, no output; whatever the case put there beforehand unchanged) and every input
byte-identical. Adding a case is one line in :data:`CASES`: placeholders ``{in}`` (the folder
of shared inputs, built once; ``{in_name}`` its name) and ``{w}`` (the case's work folder,
also its cwd).

``NEUROGEOM_CORPUS_TABLE=FILE`` writes the cases and their outcomes (exit code, stderr) to FILE
as a markdown table; ``NEUROGEOM_CORPUS_TIMES=1`` prints each case's time.
"""

import os
import shlex
import shutil
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_runs import run_cli, snapshot, temps
from nwb_files import write_plain_units
from test_remote_timeouts import StallServer
from test_zarr_safety import pickled_store

import loaders
from loaders.synthetic import nwb as syn
from neurogeom import io as ngio
from neurogeom import manifold_capacity

MAC = "--spikes --intervals trials --stimulus stimulus_presented --window 0.07 0.17"


# --------------------------------------------------------------------------------------------
# what a case may put in its work folder first
# --------------------------------------------------------------------------------------------

def symlink(name, to):
    return lambda w, i: (w / name).symlink_to(i / to)


def hardlink(name, to):
    return lambda w, i: os.link(i / to, w / name)


def folder(name):
    return lambda w, i: (w / name).mkdir()


def copy(name, of):
    return lambda w, i: shutil.copy(i / of, w / name)


def text(name, content="not a folder"):
    return lambda w, i: (w / name).write_text(content)


@dataclass
class Case:
    id: str
    args: str                               # shell words; {in} inputs, {w} work folder
    says: str = ""                          # expected (lower-case) in stderr
    setup: Callable | None = None        # setup(work, inputs) before the run
    fsize: int | None = None             # RLIMIT_FSIZE: a disk that fills up
    send: int | None = None              # a signal ...
    at: float | str | None = None      # ... seconds after the start, or "write"
    expect: int = 2
    env: dict | None = None              # extra environment variables
    never: tuple = ()                    # never on stderr (secrets)
    closed_stdout: bool = False          # stdout a pipe whose reader has gone (| head -1)


SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
CASES = [
    # ---- bad files --------------------------------------------------------------------
    Case("inspect-missing", "inspect {in}/missing.nc", "no such file"),
    Case("inspect-garbage-nc", "inspect {in}/garbage.nc", "not a readable netcdf"),
    Case("inspect-empty-nc", "inspect {in}/empty.nc", "not a readable netcdf"),
    Case("inspect-truncated-nc", "inspect {in}/truncated.nc", "not a readable netcdf"),
    Case("inspect-text-nc", "inspect {in}/text.nc", "not a readable netcdf"),
    Case("inspect-garbage-nwb", "inspect {in}/garbage.nwb", "garbage.nwb"),
    Case("inspect-empty-nwb", "inspect {in}/empty.nwb", "empty.nwb"),
    Case("inspect-truncated-nwb", "inspect {in}/truncated.nwb", "truncated.nwb"),
    Case("load-missing", "load {in}/missing.nwb " + MAC + " -o out.nc", "missing.nwb"),
    Case("load-garbage-nwb", "load {in}/garbage.nwb " + MAC + " -o out.nc", "garbage.nwb"),
    Case("load-empty-nwb", "load {in}/empty.nwb " + MAC + " -o out.nc", "empty.nwb"),
    Case("load-truncated-nwb", "load {in}/truncated.nwb " + MAC + " -o out.nc", "truncated.nwb"),
    Case("load-nc-as-nwb", "load {in}/good.nc " + MAC + " -o out.nc", "good.nc"),
    Case("load-no-trials-table", "load {in}/plain.nwb " + MAC + " -o out.nc", "trials"),
    Case("load-unknown-intervals", "load {in}/mac.nwb --spikes --intervals nope --stimulus "
         "stimulus_presented --window 0.07 0.17 -o out.nc", "nope"),
    Case("load-unknown-column", "load {in}/mac.nwb --spikes --intervals trials --stimulus nope "
         "--window 0.07 0.17 -o out.nc", "nope"),
    Case("load-unknown-region", "load {in}/mac.nwb " + MAC + " --region V9 -o out.nc", "v9"),
    Case("load-calcium-on-spikes", "load {in}/mac.nwb --calcium --intervals trials --stimulus "
         "stimulus_presented --window 0.07 0.17 -o out.nc", "mac.nwb"),
    Case("capacity-missing", "capacity {in}/missing.nc --by object_name", "no such file"),
    Case("capacity-garbage", "capacity {in}/garbage.nc --by object_name", "garbage.nc"),
    Case("capacity-empty", "capacity {in}/empty.nc --by object_name -o out.nc", "empty.nc"),
    Case("capacity-truncated", "capacity {in}/truncated.nc --by object_name", "truncated.nc"),
    Case("capacity-nwb-input", "capacity {in}/mac.nwb --by object_name", "an nwb recording"),
    Case("latents-nwb-input", "latents {in}/mac.nwb -o out.nc", "an nwb recording"),
    Case("capacity-on-result", "capacity {in}/result.nc --by object_name", "result dataset"),
    Case("capacity-unknown-coord", "capacity {in}/good.nc --by colour", "colour"),
    Case("compare-garbage-model", "compare {in}/garbage.nc {in}/good.nc -o out.nc", "garbage"),
    Case("compare-missing-neural", "compare {in}/model.nc {in}/missing.nc -o out.nc", "missing"),
    Case("compare-on-result", "compare {in}/result.nc {in}/good.nc -o out.nc", "result"),
    Case("compare-unknown-stratify", "compare {in}/model.nc {in}/good.nc --stratify-by colour "
         "-o out.nc", "colour"),
    Case("latents-garbage", "latents {in}/garbage.nc -o out.nc", "garbage.nc"),
    Case("latents-on-result", "latents {in}/result.nc -o out.nc", "result.nc"),
    # ---- bad flags and parameters -----------------------------------------------------
    Case("unknown-command", "frobnicate", "invalid choice"),
    Case("capacity-no-by", "capacity {in}/good.nc", "--by"),
    Case("capacity-bad-method", "capacity {in}/good.nc --by object_name --method magic", "magic"),
    Case("capacity-n-t-not-int", "capacity {in}/good.nc --by object_name --n-t many", "many"),
    Case("load-two-kinds", "load {in}/mac.nwb --spikes --calcium -o out.nc", "--calcium"),
    Case("load-window-not-number", "load {in}/mac.nwb --spikes --intervals trials --stimulus "
         "stimulus_presented --window a b -o out.nc", "'a'"),
    Case("load-spikes-no-window", "load {in}/mac.nwb --spikes --intervals trials --stimulus "
         "stimulus_presented -o out.nc", "--window"),
    Case("load-binned-no-bin-size", "load {in}/mac.nwb --binned -o out.nc", "--bin-size"),
    Case("load-bad-exclude", "load {in}/mac.nwb " + MAC + " --exclude frame -o out.nc",
         "column=value"),
    Case("latents-bad-dims", "latents {in}/good.nc --dims a:b -o out.nc", "--dims"),
    Case("latents-empty-dims", "latents {in}/good.nc --dims 5:1 -o out.nc", "no dimension"),
    Case("latents-bad-hidden", "latents {in}/good.nc --hidden 5,x -o out.nc", "--hidden"),
    Case("latents-no-output", "latents {in}/good.nc", "--output"),
    Case("capacity-seed-negative", "capacity {in}/good.nc --by object_name --seed -1", "seed"),
    Case("compare-seed-negative", "compare {in}/model.nc {in}/good.nc --seed -1 -o out.nc",
         "seed"),
    Case("latents-seed-negative", "latents {in}/good.nc --seed -1 -o out.nc", "seed"),
    Case("latents-source-fraction-nan", "latents {in}/good.nc --source-fraction nan -o out.nc",
         "source_fraction"),
    Case("latents-max-epochs-0", "latents {in}/good.nc --dims 1:2 --max-epochs 0 -o out.nc",
         "max_epochs"),
    Case("latents-batch-size-0", "latents {in}/good.nc --dims 1:2 --batch-size 0 -o out.nc",
         "batch_size"),
    Case("latents-lr-negative", "latents {in}/good.nc --dims 1:2 --lr -1 -o out.nc", "lr"),
    Case("latents-lr-nan", "latents {in}/good.nc --dims 1:2 --lr nan -o out.nc", "lr"),
    Case("latents-device-bogus", "latents {in}/good.nc --dims 1:2 --device bogus -o out.nc",
         "bogus"),
    Case("latents-device-cuda-without-gpu", "latents {in}/good.nc --dims 1:2 --device cuda "
         "-o out.nc", "not usable", env={"CUDA_VISIBLE_DEVICES": ""}),
    Case("latents-hidden-0", "latents {in}/good.nc --dims 1:2 --hidden 0 -o out.nc", "hidden"),
    Case("capacity-n-t-huge", "capacity {in}/good.nc --by object_name --n-t 1000000000",
         "gib"),
    Case("capacity-zero-neuroids", "capacity {in}/no_neuroids.nc --by object_name", "neuroid"),
    Case("compare-zero-neuroids", "compare {in}/model.nc {in}/no_neuroids.nc -o out.nc",
         "neuroid"),
    Case("latents-zero-presentations", "latents {in}/no_presentations.nc -o out.nc",
         "presentation"),
    # ---- outputs ----------------------------------------------------------------------
    Case("load-output-is-input", "load {in}/mac.nwb " + MAC + " -o {in}/mac.nwb", "is the input"),
    Case("capacity-output-is-input", "capacity {in}/good.nc --by object_name -o {in}/good.nc",
         "is the input"),
    Case("capacity-output-symlink-to-input", "capacity {in}/good.nc --by object_name -o link.nc",
         "is the input", setup=symlink("link.nc", "good.nc")),
    Case("capacity-output-hardlink-to-input", "capacity {in}/good.nc --by object_name "
         "-o hard.nc", "is the input", setup=hardlink("hard.nc", "good.nc")),
    Case("compare-output-is-neural", "compare {in}/model.nc {in}/good.nc -o {in}/../{in_name}/good.nc",
         "is the input"),
    Case("latents-output-is-input", "latents {in}/good.nc -o {in}/good.nc", "is the input"),
    Case("load-output-existing-folder", "load {in}/mac.nwb " + MAC + " -o outdir",
         "is a directory", setup=folder("outdir")),
    Case("load-output-dot", "load {in}/mac.nwb " + MAC + " -o .", "is a directory"),
    Case("capacity-output-under-file", "capacity {in}/good.nc --by object_name -o file/out.nc",
         "not a directory", setup=text("file")),
    Case("capacity-output-empty", "capacity {in}/good.nc --by object_name -o ''", "empty"),
    Case("latents-output-unwritable", "latents {in}/good.nc -o /sys/out.nc", "cannot write"),
    Case("load-output-device", "load {in}/mac.nwb " + MAC + " -o /dev/null", "not a regular"),
    Case("demo-output-is-file", "demo -o file", "is a file", setup=text("file")),
    # ---- a disk that fills up during the write ----------------------------------------
    Case("capacity-disk-full", "capacity {in}/good.nc --by object_name --n-t 20 -o out.nc",
         "no space left writing out.nc", setup=copy("out.nc", "good.nc"), fsize=6000),
    Case("load-disk-full", "load {in}/mac.nwb " + MAC + " -o out.nc", "no space left",
         fsize=20000),
    # ---- signals ----------------------------------------------------------------------
    Case("sigint-at-startup", "capacity {in}/good.nc --by object_name -o out.nc",
         "interrupted", send=SIGINT, at=0.3, expect=130),
    Case("sigterm-at-startup", "capacity {in}/good.nc --by object_name -o out.nc",
         "terminated", send=SIGTERM, at=0.3, expect=143),
    Case("sigint-while-computing", "latents {in}/good.nc --dims 1:2 --max-epochs 100000 "
         "--quiet -o out.nc", "interrupted", send=SIGINT, at=3.0, expect=130),
    Case("sigterm-while-writing", "load {in}/mac.nwb " + MAC + " --bins 2000 -o out.nc",
         "terminated", setup=copy("out.nc", "good.nc"), send=SIGTERM, at="write", expect=143),
    Case("sigint-while-writing", "load {in}/mac.nwb " + MAC + " --bins 2000 -o out.nc",
         "interrupted", send=SIGINT, at="write", expect=130),
]

CASES += [
    # ---- remote files: servers that stall ({stall_*}: one server per way of stalling, started
    # by the module), secrets in URLs, schemes we do not read ------------------------------
    Case("inspect-server-silent", "inspect {stall_silent}/f.nwb", "no response headers within",
         env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"}),
    Case("inspect-server-headers-then-silence", "inspect {stall_headers}/f.nwb", "stalled",
         env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"}),
    Case("inspect-server-trickle", "inspect {stall_trickle}/f.nwb", "within",
         env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"}),
    Case("load-server-stalls-mid-read", "load {stall_midread}/mac.nwb " + MAC + " -o out.nc",
         "stalled", env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"}),
    Case("inspect-closed-port", "inspect http://127.0.0.1:{closed_port}/f.nwb", "refused",
         env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"}),
    Case("inspect-timeout-not-a-number", "inspect {stall_silent}/f.nwb", "not a number",
         env={"NEUROGEOM_HTTP_TIMEOUT": "abc"}),
    Case("inspect-s3-url-with-secret", "inspect s3://user:pass@bucket/f.nwb?sig=SECRET",
         "sig=redacted", never=("pass", "SECRET")),
    Case("inspect-server-silent-url-with-secrets",
         "inspect {stall_silent_secret}/f.nwb?X-Amz-Signature=SECRET&X-Amz-Credential=KEY",
         "no response headers within", env={"NEUROGEOM_HTTP_TIMEOUT": "0.5"},
         never=("pass", "SECRET", "KEY")),
    # ---- corrupt stores and files we cannot read ---------------------------------------
    Case("inspect-corrupt-zarr-chunk", "inspect {in}/bad.nwb.zarr", "corrupt"),
    Case("load-corrupt-zarr-chunk", "load {in}/bad.nwb.zarr " + MAC + " -o out.nc", "corrupt"),
    Case("inspect-netcdf-cdf5", "inspect {in}/cdf5.nc", "cdf-5"),
    Case("inspect-netcdf3-truncated", "inspect {in}/cut3.nc", "truncated or corrupt"),
    Case("inspect-features-store-with-pickle", "inspect {in}/features.zarr", "read_features"),
    Case("load-features-store-with-pickle", "load {in}/features.zarr " + MAC + " -o out.nc",
         "read_features"),
    # ---- a reader that has gone: nothing on stderr, the exit code of SIGPIPE --------------
    Case("inspect-stdout-closed", "inspect {in}/mac.nwb", "", closed_stdout=True, expect=141),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    syn.write_macaque_rsvp(d / "mac.nwb", n_objects=4, n_images_per_object=4, seed=1)
    # larger than the first 256 KiB a "midread" server answers properly
    syn.write_macaque_rsvp(d / "big.nwb", seed=1)
    write_plain_units(d / "plain.nwb", [[0.1, 0.5, 1.2], [0.3, 0.9]], [0.0, 1.0, 2.0],
                      with_trials=False)
    a = loaders.synthetic.object_manifolds(n_objects=4, n_images=8, n_neuroids=30,
                                           n_repetitions=2, seed=3)
    ngio.to_netcdf(a, d / "good.nc")
    ngio.to_netcdf(loaders.synthetic.random_features(a, 40, seed=1), d / "model.nc")
    ngio.to_netcdf(manifold_capacity(a, by="object_name", n_t=20), d / "result.nc")
    ngio.to_netcdf(a.isel(neuroid=slice(0, 0)), d / "no_neuroids.nc")
    ngio.to_netcdf(a.isel(presentation=slice(0, 0)), d / "no_presentations.nc")
    rng = __import__("numpy").random.default_rng(0)
    for name in ("garbage.nc", "garbage.nwb"):
        (d / name).write_bytes(rng.bytes(4096))
    for name in ("empty.nc", "empty.nwb"):
        (d / name).write_bytes(b"")
    (d / "text.nc").write_text("hello, not netCDF\n")
    good, mac = (d / "good.nc").read_bytes(), (d / "mac.nwb").read_bytes()
    (d / "truncated.nc").write_bytes(good[: len(good) // 2])
    (d / "truncated.nwb").write_bytes(mac[: len(mac) // 2])
    store = syn.to_zarr(d / "mac.nwb", d / "bad.nwb.zarr")
    chunk = next(p for p in (Path(store) / "units" / "spike_times").iterdir()
                 if not p.name.startswith("."))
    raw = bytearray(chunk.read_bytes())     # the codec header kept, the data scrambled
    raw[16:] = bytes(b ^ 0x5A for b in raw[16:])
    chunk.write_bytes(bytes(raw))
    (d / "cdf5.nc").write_bytes(b"CDF\x05" + bytes(64))
    a.to_dataset(name="r").drop_vars(list(a.coords)).to_netcdf(d / "three.nc", engine="scipy")
    (d / "cut3.nc").write_bytes((d / "three.nc").read_bytes()[:200])
    (d / "three.nc").unlink()
    # a features store whose Pickle chunk would create {in}/ran, which the inputs' check sees
    pickled_store(d, d / "ran")
    return d


@pytest.fixture(scope="module")
def servers(inputs):
    """One stalling server per way of stalling (serving a macaque file), and a closed port."""
    made = {mode: StallServer(mode, data=(inputs / "big.nwb").read_bytes())
            for mode in ("silent", "headers", "trickle", "midread")}
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    yield {**{f"stall_{m}": server.url for m, server in made.items()}, "closed_port": port,
           "stall_silent_secret": made["silent"].url.replace("http://", "http://user:pass@")}
    for server in made.values():
        server.close()


@pytest.fixture(scope="module")
def outcomes(inputs, servers, tmp_path_factory):
    """Run every case (two at a time) and record what it did."""
    before = snapshot(inputs)
    root = tmp_path_factory.mktemp("work")

    def one(case):
        work = root / case.id
        work.mkdir()
        if case.setup:
            case.setup(work, inputs)
        placed = snapshot(work)
        fields = {"in": inputs, "in_name": inputs.name, "w": work, **servers}
        args = [a.format(**fields) for a in shlex.split(case.args)]
        start = time.perf_counter()
        read = write = None
        if case.closed_stdout:
            read, write = os.pipe()
            os.close(read)
        try:
            code, out, err = run_cli(args, cwd=work, fsize=case.fsize, send=case.send,
                                     at=case.at, extra_env=case.env, stdout=write)
        finally:
            if write is not None:
                os.close(write)
        return {"seconds": time.perf_counter() - start, "code": code, "out": out, "err": err, "placed": placed,
                "left": snapshot(work), "temps": temps(work), "inputs": snapshot(inputs)}

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip((c.id for c in CASES), pool.map(one, CASES)))
    if os.environ.get("NEUROGEOM_CORPUS_TIMES"):
        for cid, r in sorted(results.items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"{r['seconds']:6.2f} s  exit {r['code']:>3}  {cid}")
    if os.environ.get("NEUROGEOM_CORPUS_TABLE"):
        write_table(os.environ["NEUROGEOM_CORPUS_TABLE"], results, inputs)
    return before, results


def write_table(path, results, inputs):
    """The cases and what they did, as a markdown table (the shared inputs' folder as IN)."""
    def cell(text):
        text = " / ".join(text.strip().splitlines()) or "(nothing)"
        return text.replace(str(inputs), "IN").replace("|", "\\|")

    rows = ["| case | exit | stderr line |", "|---|---|---|"]
    rows += [f"| {c.id} | {results[c.id]['code']} | {cell(results[c.id]['err'])} |"
             for c in CASES]
    Path(path).write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, outcomes):
    before, results = outcomes
    r = results[case.id]
    shown = f"exit {r['code']}\nstderr:\n{r['err']}\nstdout:\n{r['out'][-2000:]}"
    assert r["code"] == case.expect, shown
    assert "Traceback" not in r["err"] + r["out"], shown
    assert len(r["err"].strip().splitlines()) <= 3, shown
    assert case.says.lower() in r["err"].lower(), shown
    assert not [word for word in case.never if word in r["err"]], shown
    if case.closed_stdout:
        assert r["err"] == "", shown
    assert not r["temps"], r["temps"]
    assert r["left"] == r["placed"], "files left behind or changed in the work folder"
    assert r["inputs"] == before, "an input file changed"


def test_corpus_is_large_and_unique():
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
