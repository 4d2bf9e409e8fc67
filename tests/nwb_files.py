"""Synthetic NWB files shared by the NWB loader tests (written once per test module)."""

import hashlib
from datetime import datetime, timezone

import numpy as np
import pytest

from loaders.synthetic import nwb as syn


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def brute_counts(trains, onsets, edges):
    """Spike counts in [onset + e_k, onset + e_k+1) by a direct loop: the independent reference."""
    out = np.zeros((len(onsets), len(trains), len(edges) - 1), dtype=np.int64)
    for p, onset in enumerate(onsets):
        for u, train in enumerate(trains):
            for k in range(len(edges) - 1):
                lo, hi = onset + edges[k], onset + edges[k + 1]
                out[p, u, k] = int(np.count_nonzero((train >= lo) & (train < hi)))
    return out


def write_plain_units(path, trains, onsets, *, stimulus=None, with_trials=True):
    """A minimal NWB file written by pynwb's row-by-row API (as many user scripts do): units
    with spike times only (no region information anywhere) and a trials table."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    f = NWBFile(session_description="plain", identifier="plain",
                session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
                subject=Subject(subject_id="s1", species="Mus musculus", age="P90D"))
    for train in trains:
        f.add_unit(spike_times=np.asarray(train, dtype=np.float64))
    if with_trials:
        f.add_trial_column("stimulus", "stimulus shown")
        stimulus = stimulus if stimulus is not None else [f"s{i % 3}" for i in range(len(onsets))]
        for onset, s in zip(onsets, stimulus):
            f.add_trial(start_time=float(onset), stop_time=float(onset) + 0.1, stimulus=s)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return str(path)


@pytest.fixture(scope="module")
def nwb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("nwb")


@pytest.fixture(scope="module")
def macaque(nwb_dir):
    return syn.write_macaque_rsvp(nwb_dir / "macaque.nwb", seed=1)


@pytest.fixture(scope="module")
def allen(nwb_dir):
    return syn.write_allen_neuropixels(nwb_dir / "allen.nwb", seed=2)


@pytest.fixture(scope="module")
def twophoton(nwb_dir):
    return syn.write_mouse_2p(nwb_dir / "twophoton.nwb", seed=3)
