"""Running the ``neurogeom`` command in real subprocesses: signals, file-size limits, hashes.

Shared by the CLI reliability tests and the failure corpus. The child imports this checkout
(PYTHONPATH), whatever its working directory, so a test can run it inside a scratch folder and
see every file it leaves there.
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: our temporaries: ``.NAME.XXXXXXXX.SUFFIX`` (neurogeom.io.atomic_write, atomic_write_dir)
TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+")


def env(**extra):
    out = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), **extra}
    out.pop("COLUMNS", None)
    return out


def limit_file_size(nbytes, command):
    """``command`` run with writes past ``nbytes`` failing with EFBIG, which is how a full disk
    is simulated (SIGXFSZ, which would kill the process, is ignored: a full disk does not
    signal). A small launcher sets the limit and execs ``command``; both survive the exec, and
    no ``preexec_fn`` is needed (unsafe with the corpus's threads)."""
    launcher = ("import os, resource, signal, sys; n = int(sys.argv[1]); "
                "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
                "os.execv(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", launcher, str(nbytes), *command]


def temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if TEMP.fullmatch(p.name))


def run_cli(args, *, cwd=None, fsize=None, send=None, at=None, timeout=240, stdout=None,
            extra_env=None):
    """Run ``neurogeom ARGS``; return ``(returncode, stdout, stderr)``.

    ``send`` (a signal) is sent ``at`` seconds after the command has installed its signal
    handlers, or, with ``at="write"``, as soon as a temporary file of ours exists in ``cwd``
    (the write is under way).
    """
    command = [sys.executable, "-m", "neurogeom_cli", *map(str, args)]
    if fsize:
        command = limit_file_size(fsize, command)
    proc = subprocess.Popen(command, cwd=cwd, env=env(**(extra_env or {})), text=True,
                            stdout=subprocess.PIPE if stdout is None else stdout,
                            stderr=subprocess.PIPE)
    if send is not None:
        _signal_when(proc, send, at, cwd)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out or "", err or ""


def _handlers_installed(pid) -> bool:
    """Whether the command has installed its own handlers: Python catches SIGINT from the
    start, SIGTERM only once ``neurogeom_cli.main`` runs (Linux: SigCgt in /proc/PID/status).
    Before that the interpreter is still starting, where no program can catch a signal."""
    try:
        with open(f"/proc/{pid}/status") as status:
            caught = next(int(line.split()[1], 16) for line in status
                          if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return True     # not Linux, or already gone: nothing to wait for
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _signal_when(proc, sig, at, cwd):
    deadline = time.monotonic() + 60
    while proc.poll() is None and not _handlers_installed(proc.pid):
        if time.monotonic() > deadline:
            raise AssertionError("the command never installed its signal handlers")
        time.sleep(0.002)
    if at == "write":
        _signal_mid_write(proc, sig, cwd)
        return
    time.sleep(at)
    if proc.poll() is None:
        proc.send_signal(sig)


def _signal_mid_write(proc, sig, cwd):
    """Send ``sig`` while a temporary of ours exists (the write is under way) and has not been
    renamed into place.

    Seeing the temporary and signalling are two steps; on a loaded machine the write could end
    between them, and the signal would land after the rename. So the command is frozen
    (SIGSTOP) once data is seen, the temporary is checked again while nothing can move, and only
    then is ``sig`` sent and the command resumed: the signal is pending before the write can
    finish, whatever the machine's load.
    """
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _write_temps(cwd):       # the temporary exists: the write is under way
            proc.send_signal(signal.SIGSTOP)
            _wait_stopped(proc.pid)
            if _write_temps(cwd):
                proc.send_signal(sig)
                proc.send_signal(signal.SIGCONT)
                return
            proc.send_signal(signal.SIGCONT)
            raise AssertionError("the write finished between seeing its temporary and freezing "
                                 "the command: write more data so the write lasts longer")
        time.sleep(0.001)
    raise AssertionError("the command ended (or stalled) before writing a temporary")


def _wait_stopped(pid):
    """Until ``pid`` is stopped ('T' in /proc/PID/stat); SIGSTOP is asynchronous."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X"):
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.0005)


def _safe_temps(folder):
    try:
        return temps(folder)
    except FileNotFoundError:
        return []


def _write_temps(folder):
    """Our temporaries of a write (``.tmp``; not the destination check's ``.probe``)."""
    return [name for name in _safe_temps(folder) if name.endswith(".tmp")]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder):
    """Every file under ``folder`` (names relative to it) with its hash; symlinks as links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            rel = str(p.relative_to(folder))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else sha256(p)
        for d in dirnames:
            out.setdefault(str(Path(dirpath, d).relative_to(folder)) + "/", "dir")
    return out
