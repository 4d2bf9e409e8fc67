"""Real NWB files written by other tools, fetched from the package registry at test time.

pynapple's source distribution (MIT licence) ships its test data: NWB files written by
neurosuite (head-direction units in ADn and CA1, with epochs, position and sleep ripples), phy,
suite2p, CNMF-E (Inscopix and MATLAB) and minian exports, and a behaviour-only file. pynwb's
(BSD licence) ships 27 back-compatibility files (NWB 1.0.2 to 3.0: electrodes, LFP spectral
decompositions, fiber photometry, optogenetics…). The sdists (~90 and ~36 MB) are too large to
vendor, so the session fixtures download each once with pip into ``.cache/real-nwb`` (or
``$NEUROGEOM_REAL_NWB_DIR``), keep only the ``.nwb`` files and the licence (~70 MB in all), and
skip with the reason when the registry cannot be reached or ``NEUROGEOM_NO_DOWNLOAD=1``.
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
PYNWB = "pynwb==4.2.0"
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


def fetch_sdist_files(requirement: str, inner_prefix: str, licence: str) -> Path:
    """The folder holding the ``.nwb`` files under ``inner_prefix`` in the source distribution
    of ``requirement`` (and its ``licence`` file), downloading it once (see the module
    docstring); RuntimeError saying why when they cannot be had."""
    folder = cache_dir() / requirement.replace("==", "-")
    if (folder / licence).is_file():
        return folder
    if os.environ.get("NEUROGEOM_NO_DOWNLOAD"):
        raise RuntimeError(f"real NWB files not in {folder} and NEUROGEOM_NO_DOWNLOAD is set")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-binary", ":all:",
               "--no-deps", "--disable-pip-version-check", "-q", "-d", tmp]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pip download {requirement} timed out") from None
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if run.returncode or not sdists:
            tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no sdist"]
            raise RuntimeError(f"pip download {requirement} failed: {tail[0]}")
        staged = Path(tmp) / "staged"
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[-1]
                if inner == licence or (inner.startswith(inner_prefix)
                                        and inner.endswith(".nwb") and member.isfile()):
                    target = staged / inner.removeprefix(inner_prefix)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if folder.exists():
            shutil.rmtree(folder)
        staged.rename(folder)      # complete or absent: never half a data set
    return folder


def fetch_pynapple_files() -> dict:
    """``{label: path}`` of pynapple's test NWB files (:data:`PYNAPPLE_FILES`)."""
    folder = fetch_sdist_files(PYNAPPLE, "tests/nwbfilestest/", "LICENSE")
    return {k: str(folder / v) for k, v in PYNAPPLE_FILES.items()}


@pytest.fixture(scope="session")
def pynapple_files():
    try:
        return fetch_pynapple_files()
    except RuntimeError as exc:
        pytest.skip(f"real NWB test files unavailable: {exc}")


@pytest.fixture(scope="session")
def pynwb_back_compat():
    """``{file name: path}`` of pynwb's back-compatibility files."""
    try:
        folder = fetch_sdist_files(PYNWB, "tests/back_compat/", "license.txt")
    except RuntimeError as exc:
        pytest.skip(f"real NWB test files unavailable: {exc}")
    return {p.name: str(p) for p in sorted(folder.glob("*.nwb"))}
