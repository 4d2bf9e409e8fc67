"""Real NWB files written by other tools, fetched from the package registry at test time.

pynapple's source distribution (MIT licence) ships its test data: NWB files written by
neurosuite (head-direction units in ADn and CA1, with epochs, position and sleep ripples), phy,
suite2p, CNMF-E (Inscopix and MATLAB) and minian exports, and a behaviour-only file. The sdist
is ~90 MB, too large to vendor, so the session fixture downloads it once with pip into
``.cache/real-nwb`` (or ``$NEUROGEOM_REAL_NWB_DIR``), keeps only the ``.nwb`` files and the
licence (~65 MB), and skips with the reason when the registry cannot be reached or
``NEUROGEOM_NO_DOWNLOAD=1``.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYNAPPLE = "pynapple==0.11.4"
#: file label -> path inside the sdist's tests/nwbfilestest folder
PYNAPPLE_FILES = {
    "neurosuite": "neurosuite/pynapplenwb/A2929-200711.nwb",
    "phy": "phy/pynapplenwb/A8604-211122.nwb",
    "suite2p": "suite2p/pynapplenwb/2022_08_08.nwb",
    "inscopix-cnmfe": "inscopix-cnmfe/pynapplenwb/A0634-210127.nwb",
    "matlab-cnmfe": "matlab-cnmfe/pynapplenwb/A6512-210915.nwb",
    "minian": "minian/pynapplenwb/demo_movies.nwb",
    "basic": "basic/pynapplenwb/A2929-200711.nwb",
}


def cache_dir() -> Path:
    return Path(os.environ.get("NEUROGEOM_REAL_NWB_DIR", ROOT / ".cache" / "real-nwb"))


def fetch_pynapple_files() -> dict:
    """``{label: path}`` of pynapple's test NWB files, downloading them once (see the module
    docstring); raises RuntimeError saying why when they cannot be had."""
    folder = cache_dir() / PYNAPPLE.replace("==", "-")
    paths = {k: folder / v for k, v in PYNAPPLE_FILES.items()}
    if all(p.is_file() for p in paths.values()):
        return {k: str(p) for k, p in paths.items()}
    if os.environ.get("NEUROGEOM_NO_DOWNLOAD"):
        raise RuntimeError(f"real NWB files not in {folder} and NEUROGEOM_NO_DOWNLOAD is set")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", PYNAPPLE, "--no-binary", ":all:",
               "--no-deps", "--disable-pip-version-check", "-q", "-d", tmp]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pip download {PYNAPPLE} timed out") from None
        sdists = list(Path(tmp).glob("pynapple-*.tar.gz"))
        if run.returncode or not sdists:
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no sdist"]
            raise RuntimeError(f"pip download {PYNAPPLE} failed: {tail[0]}")
        staged = Path(tmp) / "staged"
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[-1]
                if inner == "LICENSE" or (inner.startswith("tests/nwbfilestest/")
                                          and inner.endswith(".nwb")):
                    name = inner.removeprefix("tests/nwbfilestest/")
                    target = staged / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if folder.exists():
            shutil.rmtree(folder)
        staged.rename(folder)      # complete or absent: never half a data set
    return {k: str(p) for k, p in paths.items()}


@pytest.fixture(scope="session")
def pynapple_files():
    try:
        return fetch_pynapple_files()
    except RuntimeError as exc:
        pytest.skip(f"real NWB test files unavailable: {exc}")
