"""Writing results safely (issue 12, items 2-5, 9, 14): outputs never replace inputs, bad
destinations are refused before the work, a full disk or a signal leaves no temporary and the
old file intact, a closed pipe or Ctrl-C is quiet, and files get the umask's or the replaced
file's mode. The command runs in real subprocesses; the storage functions are called directly.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from cli_runs import env, limit_file_size, run_cli, sha256, temps

import loaders
from loaders.synthetic import nwb as syn
from neurogeom import io as ngio
from neurogeom.errors import NeurogeomError, StorageError

MAC = ["--spikes", "--intervals", "trials", "--stimulus", "stimulus_presented",
       "--window", "0.07", "0.17"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    syn.write_macaque_rsvp(d / "mac.nwb", n_objects=4, n_images_per_object=4, seed=1)
    a = loaders.synthetic.object_manifolds(n_objects=4, n_images=8, n_neuroids=30,
                                           n_repetitions=2, seed=3)
    ngio.to_netcdf(a, d / "good.nc")
    return d


def small():
    return xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("presentation", "neuroid"),
                        name="x")


# --------------------------------------------------------------------------------------------
# 2. an output that is an input is refused
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink"])
def test_check_destination_refuses_every_spelling_of_an_input(tmp_path, how):
    source = tmp_path / "in.nc"
    source.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    out = {"same": source, "dotdot": tmp_path / "sub" / ".." / "in.nc",
           "symlink": tmp_path / "link.nc", "hardlink": tmp_path / "hard.nc"}[how]
    if how == "symlink":
        out.symlink_to(source)
    if how == "hardlink":
        os.link(source, out)
    with pytest.raises(StorageError, match="is the input file"):
        ngio.check_destination(out, sources=[tmp_path / "x.nc", source])
    assert source.read_bytes() == b"data"


def test_check_destination_refuses_a_path_inside_an_input_store(tmp_path):
    store = tmp_path / "rec.nwb.zarr"
    store.mkdir()
    with pytest.raises(StorageError, match="inside the input store"):
        ngio.check_destination(store / "out.nc", sources=[store])
    ngio.check_destination(tmp_path / "out.nc", sources=[store, "http://host/f.nwb"])


@pytest.mark.parametrize("command", ["load", "capacity", "compare", "latents"])
def test_cli_refuses_to_overwrite_its_input(files, tmp_path, command):
    nc = files / "good.nc"
    args = {"load": ["load", files / "mac.nwb", *MAC, "-o", files / "mac.nwb"],
            "capacity": ["capacity", nc, "--by", "object_name", "-o", tmp_path / "l.nc"],
            "compare": ["compare", nc, nc, "-o", tmp_path / "h.nc"],
            "latents": ["latents", nc, "-o", files / ".." / files.name / "good.nc"]}[command]
    if command == "capacity":
        (tmp_path / "l.nc").symlink_to(nc)
    if command == "compare":
        os.link(nc, tmp_path / "h.nc")
    before = {p.name: sha256(p) for p in files.iterdir()}
    code, out, err = run_cli(args, cwd=tmp_path)
    assert code == 2 and "is the input file" in err and err.count("\n") == 1, err
    assert out == ""                                        # refused before any work
    assert {p.name: sha256(p) for p in files.iterdir()} == before


# --------------------------------------------------------------------------------------------
# 3. bad destinations are refused before the work
# --------------------------------------------------------------------------------------------

def test_check_destination_problems(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    for bad, says in [(tmp_path / "dir", "is a directory"), (".", "is a directory"),
                      (tmp_path / "file" / "out.nc", "is not a directory"),
                      (tmp_path / "file" / "a" / "b.nc", "is not a directory"),
                      ("", "empty"), ("/dev/null", "not a regular file")]:
        with pytest.raises(StorageError, match=says):
            ngio.check_destination(bad)
    # a folder still to be created is fine, and the check creates nothing
    assert ngio.check_destination(tmp_path / "new" / "deeper" / "out.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]


def test_check_destination_unwritable_folder(tmp_path):
    # permission bits do not stop root, so find a folder where creating a file really fails
    candidates = ["/sys", "/proc"]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        candidates.insert(0, str(locked))
    for folder in candidates:
        try:
            fd = os.open(os.path.join(folder, ".neurogeom-probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except OSError:
            break
        os.close(fd)
        os.unlink(os.path.join(folder, ".neurogeom-probe"))
    else:
        pytest.skip("no folder here refuses new files (no /sys, /proc, or running as root)")
    with pytest.raises(StorageError, match="cannot create files in"):
        ngio.check_destination(os.path.join(folder, "out.nc"))
    with pytest.raises(StorageError, match="cannot"):
        ngio.to_netcdf(small(), os.path.join(folder, "out.nc"))


def test_atomic_write_refuses_a_directory_with_a_one_line_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(StorageError, match="is a directory"):
        ngio.to_netcdf(small(), tmp_path / "d")
    assert isinstance(StorageError("x"), (NeurogeomError, OSError))


def test_cli_output_folder_is_refused_before_the_work(files, tmp_path):
    (tmp_path / "outdir").mkdir()
    code, out, err = run_cli(["capacity", files / "good.nc", "--by", "object_name",
                              "-o", "outdir"], cwd=tmp_path)
    # the capacity summary is printed after the computation: refused before it
    assert code == 2 and out == "" and "outdir: it is a directory" in err
    assert err.count("\n") == 1 and list((tmp_path / "outdir").iterdir()) == []


# --------------------------------------------------------------------------------------------
# 4. a full disk
# --------------------------------------------------------------------------------------------

def test_full_disk_is_one_line_and_keeps_the_old_file(files, tmp_path):
    old = tmp_path / "out.nc"
    old.write_bytes((files / "good.nc").read_bytes())
    old.chmod(0o640)
    before = sha256(old)
    code, _out, err = run_cli(["capacity", files / "good.nc", "--by", "object_name", "--n-t",
                              "20", "-o", "out.nc"], cwd=tmp_path, fsize=6000)
    assert code == 2, err        # not -11: HDF5 no longer crashes the interpreter at exit
    assert err.strip().splitlines() == [
        ("neurogeom capacity: error: no space left writing out.nc (File too large); any "
        "previous file there is unchanged")]
    assert sha256(old) == before and stat.S_IMODE(old.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def test_full_disk_in_the_library_raises_storage_error(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy as np, xarray as xr
        from neurogeom import io
        from neurogeom.errors import StorageError
        a = xr.DataArray(np.ones((200, 100)), dims=("presentation", "neuroid"))
        try:
            io.to_netcdf(a, "big.nc")
        except StorageError as exc:
            print("StorageError:", exc)
    """)
    out = subprocess.run(limit_file_size(20000, [sys.executable, "-c", script]), cwd=tmp_path,
                         env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.startswith("StorageError: no space left writing big.nc")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 5. signals during a write; stale temporaries of killed runs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code,says", [(signal.SIGTERM, 143, "terminated"),
                                           (signal.SIGINT, 130, "interrupted")])
def test_signal_during_the_write_cleans_up(files, tmp_path, sig, code, says):
    old = tmp_path / "out.nc"
    old.write_bytes(b"previous result")
    got, _out, err = run_cli(["load", files / "mac.nwb", *MAC, "--bins", "2000", "-o", "out.nc"],
                            cwd=tmp_path, send=sig, at="write")
    assert got == code and err.strip() == f"neurogeom: {says}", err
    assert old.read_bytes() == b"previous result" and temps(tmp_path) == []


def test_a_killed_write_leaves_a_temporary_that_the_next_write_sweeps(files, tmp_path):
    args = ["load", files / "mac.nwb", *MAC, "--bins", "2000", "-o", "out.nc"]
    code, _, _ = run_cli(args, cwd=tmp_path, send=signal.SIGKILL, at="write")
    assert code == -signal.SIGKILL
    left = temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.nc.")
    (tmp_path / ".other.nc.abcd1234.tmp").write_text("another file's temporary")
    (tmp_path / ".out.nc.partial").write_text("not our pattern")
    code, _out, err = run_cli(args, cwd=tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.nc.abcd1234.tmp", ".out.nc.partial", "out.nc"]


def test_sweep_keeps_fresh_temporaries_and_removes_old_ones(tmp_path):
    old_file = tmp_path / ".r.nc.old_1234.tmp"
    old_store = tmp_path / ".r.nc.0badf00d.tmp"
    fresh = tmp_path / ".r.nc.fresh_12.tmp"
    old_file.write_text("x")
    old_store.mkdir()
    (old_store / "chunk").write_text("x")
    fresh.write_text("x")
    past = ngio._PROCESS_START - 60
    for p in (old_file, old_store):
        os.utime(p, (past, past))
    ngio.to_netcdf(small(), tmp_path / "r.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.nc.fresh_12.tmp", "r.nc"]


# --------------------------------------------------------------------------------------------
# 9. broken pipe and early Ctrl-C
# --------------------------------------------------------------------------------------------

def test_closed_stdout_is_quiet(files, tmp_path):
    read, write = os.pipe()
    os.close(read)                  # like `| head -1` having exited: every write fails
    try:
        code, _, err = run_cli(["inspect", files / "good.nc"], cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert code == 141 and err == "", err


@pytest.mark.parametrize("at", [0.15, 0.4, 0.8])
def test_early_ctrl_c_is_one_line(files, tmp_path, at):
    code, _, err = run_cli(["capacity", files / "good.nc", "--by", "object_name"],
                           cwd=tmp_path, send=signal.SIGINT, at=at)
    assert code == 130 and err.strip() == "neurogeom: interrupted", err


# --------------------------------------------------------------------------------------------
# 14. file modes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = ngio.to_netcdf(small(), tmp_path / "new.nc")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "r.nc"
    path.write_text("old")
    path.chmod(0o640)
    ngio.to_netcdf(small(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert float(ngio.open(path).sum()) == 15.0


def test_replacing_a_store_keeps_its_mode(tmp_path):
    store = tmp_path / "s.zarr"
    store.mkdir()
    store.chmod(0o750)

    def write(tmp):
        os.mkdir(tmp)
        (tmp / "a").write_text("new store")

    ngio.atomic_write_dir(store, write)
    assert stat.S_IMODE(store.stat().st_mode) == 0o750 and (store / "a").exists()


def test_ctrl_c_landing_in_a_weakref_callback_still_interrupts(tmp_path):
    # Python prints and drops an exception raised inside a weakref callback or __del__; the
    # command's handler must not lose Ctrl-C there (seen as "Exception ignored in:
    # WeakValueDictionary...remove" and a run that went on)
    script = textwrap.dedent("""
        import os, signal, weakref
        from neurogeom_cli import _Signals, _install_signal_handlers
        restore = _install_signal_handlers(_Signals())

        class Thing:
            pass

        def callback(ref):
            os.kill(os.getpid(), signal.SIGINT)     # the handler runs in here
            sum(range(1000))

        thing = Thing()
        ref = weakref.ref(thing, callback)
        try:
            del thing
            for _ in range(10**7):
                pass
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip() == "interrupted" and out.stderr == "", out.stderr
