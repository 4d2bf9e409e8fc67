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


# --------------------------------------------------------------------------------------------
# a local HTTP server with Range support (remote files are read with HTTP range requests)
# --------------------------------------------------------------------------------------------

class RangeServer:
    """Serve a folder on 127.0.0.1 from a separate process, answering ``Range: bytes=a-b``
    with 206.

    ``requests`` counts the GETs and ``bytes_sent`` the payload, so a test can check that a
    file was streamed in parts rather than downloaded whole. A process, not a thread: a
    server thread in the test's process can block on h5py's global lock (a garbage-collected
    h5py object's finalizer takes it) while the test's own thread holds that lock inside a
    read that waits on this very server, which then never answers.
    """

    def __init__(self, folder):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._requests, self._bytes = ctx.Value("q", 0), ctx.Value("q", 0)
        self._port, self._ready = ctx.Value("i", 0), ctx.Event()
        self._process = ctx.Process(target=_serve_folder, daemon=True,
                                    args=(str(folder), self._requests, self._bytes, self._port,
                                          self._ready))

    @property
    def requests(self) -> int:
        return self._requests.value

    @property
    def bytes_sent(self) -> int:
        return self._bytes.value

    def __enter__(self):
        self._process.start()
        if not self._ready.wait(60):
            raise RuntimeError("the range server did not start")
        self.url = f"http://127.0.0.1:{self._port.value}"
        return self

    def __exit__(self, *exc):
        self._process.terminate()
        self._process.join(10)


def _serve_folder(folder, requests, bytes_sent, port, ready):
    """The body of :class:`RangeServer`'s process."""
    import http.server
    from pathlib import Path

    root = Path(folder)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            path = root / self.path.lstrip("/").split("?")[0]
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            rng = self.headers.get("Range")
            try:
                if rng and rng.startswith("bytes="):
                    a, b = rng[6:].split("-")
                    a, b = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
                    part = data[a:b + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
                else:
                    part = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                with requests.get_lock():
                    requests.value += 1
                self.wfile.write(part)
                if rng:
                    with bytes_sent.get_lock():
                        bytes_sent.value += len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a client that only wanted the headers hung up

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = httpd.server_address[1]
    ready.set()
    httpd.serve_forever()


def write_roi_series(path, containers, *, n_rois=5, n_frames=400, rate=10.0, jitter=0.0,
                     intervals=None, units=None, timeseries=None, seed=0):
    """An imaging file as segmentation pipelines write it: one PlaneSegmentation and one
    RoiResponseSeries per entry of ``containers`` (``{name: type}``, type ``"DfOverF"`` or
    ``"Fluorescence"``; suite2p writes Fluorescence containers named ``Fluorescence``,
    ``Neuropil`` and ``Deconvolved``), each named like its container. ``n_rois=1`` stores 1-d
    data (as writers do for a single ROI). ``jitter`` (s) moves each frame time by up to that
    much (explicit timestamps). ``intervals``: ``{table: [(start, stop), ...]}``; ``units``:
    spike trains; ``timeseries``: ``{name: timestamps}`` acquisition series (tracking).
    Returns ``(path, {container: data}, times)``."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    rng = np.random.default_rng(seed)
    f = NWBFile(session_description="rois", identifier="rois",
                session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    device = f.create_device(name="Microscope")
    plane = f.create_imaging_plane(
        name="ImagingPlane", optical_channel=OpticalChannel(name="green", description="g",
                                                            emission_lambda=510.0),
        imaging_rate=rate, description="plane", device=device, excitation_lambda=920.0,
        indicator="GCaMP6f", location="VISp")
    ophys = f.create_processing_module("ophys", "optical physiology")
    seg = ImageSegmentation(name="ImageSegmentation")
    ophys.add(seg)
    plane_seg = seg.create_plane_segmentation(name="PlaneSegmentation", description="rois",
                                              imaging_plane=plane)
    for _ in range(n_rois):
        plane_seg.add_roi(image_mask=rng.uniform(size=(8, 8)).astype(np.float32))
    times = np.arange(n_frames) / rate
    if jitter:
        times = times + rng.uniform(-jitter, jitter, n_frames)
        times[0] = 0.0
    time_kw = {"timestamps": times} if jitter else {"rate": rate, "starting_time": 0.0}
    data = {}
    for name, kind in containers.items():
        values = rng.standard_normal((n_frames, n_rois))
        data[name] = values
        traces = (DfOverF if kind == "DfOverF" else Fluorescence)(name=name)
        ophys.add(traces)
        traces.create_roi_response_series(
            name=name, data=values[:, 0] if n_rois == 1 else values, unit="a.u.",
            rois=plane_seg.create_roi_table_region(region=list(range(n_rois)), description="r"),
            **time_kw)
    for table, rows in (intervals or {}).items():
        from pynwb.epoch import TimeIntervals

        if table == "epochs":
            for a, b in rows:
                f.add_epoch(start_time=float(a), stop_time=float(b))
            continue
        t = TimeIntervals(name=table, description=table)
        for a, b in rows:
            t.add_interval(start_time=float(a), stop_time=float(b))
        f.add_time_intervals(t)
    for name, stamps in (timeseries or {}).items():
        from pynwb import TimeSeries

        f.add_acquisition(TimeSeries(name=name, data=np.zeros(len(stamps)), unit="m",
                                     timestamps=np.asarray(stamps, dtype=np.float64)))
    for train in units or []:
        f.add_unit(spike_times=np.asarray(train, dtype=np.float64))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    return str(path), data, times
