"""``neurogeom.map_recordings`` and ``neurogeom batch`` on real Dask: a 2-process LocalCluster on
127.0.0.1, real NWB files (one truncated), HTTP URLs from a local range server, a worker killed
mid-task, store + resume. Nothing is mocked: each result is checked against a serial loop of the
same load and analysis in this process.
"""

import functools
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import loaders
import neurogeom as ng
from loaders.synthetic import nwb as syn
from neurogeom.errors import AnalysisError, LoaderError
from neurogeom_cli import main
from nwb_files import RangeServer

N_T = 40
LOAD = loaders.from_spec({"kind": "spikes", "intervals": "trials",
                          "stimulus": "stimulus_presented", "window": (0.07, 0.17)})
CAPACITY = functools.partial(ng.manifold_capacity, by="object_name", n_t=N_T, seed=0)
TRUNCATED = "s3"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Six small macaque sessions; s1 has 4 objects (the others 3), s3 is cut in half."""
    folder = tmp_path_factory.mktemp("sessions")
    paths = []
    for i in range(6):
        path = folder / f"s{i}.nwb"
        syn.write_macaque_rsvp(path, n_objects=4 if i == 1 else 3, n_images_per_object=3,
                               n_repetitions=2, n_units=12, images_per_trial=6, seed=10 + i)
        paths.append(path)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) // 2])
    return folder, paths


@pytest.fixture(scope="module")
def client():
    """One real LocalCluster (2 single-threaded worker processes on 127.0.0.1) per module,
    as map_recordings(workers=2) starts it."""
    with ng.parallel.local_cluster(2) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        yield c


@pytest.fixture(scope="module")
def expected(recordings):
    """The reference: load + analyze one recording after the other, in this process."""
    return {p.stem: CAPACITY(LOAD(str(p))) for p in recordings[1] if p.stem != TRUNCATED}


def check_against_serial(result, expected, source_of):
    assert list(result["recording"].values) == [f"s{i}" for i in range(6)]
    assert list(result["status"].values) == ["ok"] * 3 + ["failed"] + ["ok"] * 2
    for key, ref in expected.items():
        row = result.sel(recording=key)
        assert row["error"].item() == ""
        assert row["source"].item() == source_of(key)
        for name, var in ref.data_vars.items():
            got = row[name].sel({d: var[d] for d in var.dims}) if var.dims else row[name]
            # the same kernels on the same data: only the BLAS thread count differs (workers
            # run one thread, this process two), which can reorder float sums: 1e-12 relative
            np.testing.assert_allclose(got.values.astype(float), var.values.astype(float),
                                       rtol=1e-12, atol=0, err_msg=f"{key} {name}")
        assert row["n_units"].item() == 12 and row["species"].item() == "Macaca mulatta"
    # s1's fourth object is outer-joined: NaN for every other recording, a number for s1
    assert np.isfinite(result["capacity"].sel(recording="s1", manifold="object_03"))
    assert np.isnan(result["capacity"].sel(recording="s0", manifold="object_03"))
    bad = result.sel(recording=TRUNCATED)
    assert bad["error"].item().startswith("LoaderError: ") and "s3.nwb" in bad["error"].item()
    assert "truncated" in bad["error"].item()
    assert np.isnan(bad["capacity"]).all() and np.isnan(bad["capacity_overall"])
    assert np.isnan(bad["n_units"]) and bad["species"].item() == ""
    assert result.attrs["analysis"] == "map_recordings"
    assert result.attrs["recording_analysis"] == "manifold_capacity"
    assert result.attrs["n_failed"] == 1 and result.attrs["failed_recordings"] == [TRUNCATED]


def test_local_cluster_matches_a_serial_loop_and_reports_the_truncated_file(
        recordings, client, expected, tmp_path):
    folder, paths = recordings
    result = ng.map_recordings(str(folder / "s*.nwb"), CAPACITY, LOAD, client=client,
                               progress=False)
    check_against_serial(result, expected, lambda key: str(folder / f"{key}.nwb"))
    assert "LocalCluster" not in result.attrs["scheduler"]       # the given client, used as is
    assert (result["seconds"] > 0).all()
    # the combined Dataset, strings and NaN rows included, round-trips through netCDF
    back = ng.io.open(ng.io.to_netcdf(result, tmp_path / "all.nc"))
    xr.testing.assert_identical(back, result)


# ~9 s on 2 contended cores (the range server process and 6 remote loads): under the ~30 s
# of the slow marker, so it runs by default
def test_http_urls_on_the_cluster(recordings, client, expected):
    folder, paths = recordings
    with RangeServer(folder) as server:
        host = server.url.replace("http://", "http://reader:hunter2@")
        urls = [f"{host}/{p.name}?token=abc" for p in paths]
        result = ng.map_recordings(urls, CAPACITY, LOAD, client=client.scheduler.address,
                                   progress=False)
    check_against_serial(result, expected,
                         lambda key: f"{server.url}/{key}.nwb?REDACTED")
    # credentials reach neither the coords, the errors nor the attrs
    text = str(result.to_dict(data="list"))
    assert "hunter2" not in text and "abc" not in text.replace("abcd", "")


class DieOnce:
    """A capacity analysis whose first call kills its worker process (SIGKILL, no cleanup)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __call__(self, a):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return CAPACITY(a)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_retried_and_the_result_is_complete(recordings, client, expected,
                                                               tmp_path):
    folder, paths = recordings
    good = [p for p in paths if p.stem != TRUNCATED][:2]
    # by address: map_recordings connects its own client, and closes it
    result = ng.map_recordings([str(p) for p in good], DieOnce(tmp_path / "died"), LOAD,
                               client=client.scheduler.address, retries=0, progress=False)
    assert (tmp_path / "died").exists()              # a worker did die
    assert list(result["status"].values) == ["ok", "ok"]
    for key in ("s0", "s1"):
        ref = expected[key]
        np.testing.assert_allclose(result["capacity"].sel(recording=key).dropna("manifold"),
                                   ref["capacity"], rtol=1e-12)
    client.wait_for_workers(2, timeout=60)           # the nanny restarted it, for the next test


# --------------------------------------------------------------------------------------------
# the default (local threaded) scheduler, the store and resume
# --------------------------------------------------------------------------------------------

CALLS: list = []
_CALLS_LOCK = threading.Lock()


class Counting:
    """Capacity that records the recordings it analyzed and raises on ``fail_on``."""

    def __init__(self, fail_on=None):
        self.fail_on = fail_on

    def __call__(self, a):
        with _CALLS_LOCK:
            CALLS.append(a.attrs["session_key"])
        if a.attrs["session_key"] == self.fail_on:
            raise RuntimeError(f"interrupted at {self.fail_on}")
        return CAPACITY(a)


def assemblies(paths):
    out = []
    for p in paths:
        if p.stem != TRUNCATED:
            a = LOAD(str(p))
            a.attrs["session_key"] = p.stem
            a.name = p.stem
            out.append(a)
    return out


def test_store_and_resume_recompute_nothing_finished(recordings, tmp_path):
    _, paths = recordings
    data = assemblies(paths)                                 # 5 recordings, in memory
    store = tmp_path / "store"
    CALLS.clear()
    import dask

    scheduler = dask.config.get("scheduler", None)
    first = ng.map_recordings(data, Counting(fail_on="s2"), store=store, retries=0,
                              progress=False)
    # the store's writes ran in threads at once; the scheduler setting they share is restored
    assert dask.config.get("scheduler", None) == scheduler
    assert sorted(CALLS) == ["s0", "s1", "s2", "s4", "s5"]
    assert first.sel(recording="s2")["error"].item() == "RuntimeError: interrupted at s2"
    assert sorted(p.name for p in store.glob("*.nc")) == [
        "map_recordings.nc", "s0.nc", "s1.nc", "s4.nc", "s5.nc"]   # the failure is not stored
    CALLS.clear()
    resumed = ng.map_recordings(data, Counting(), store=store, resume=True, progress=False)
    assert CALLS == ["s2"]                                   # only the unfinished one ran
    assert resumed.attrs["resumed"] == 4
    CALLS.clear()
    fresh = ng.map_recordings(data, Counting(), progress=False)
    assert sorted(CALLS) == ["s0", "s1", "s2", "s4", "s5"]
    assert (resumed["status"] == "ok").all()
    def comparable(ds):     # the wall times and the run's own bookkeeping differ, nothing else
        ds = ds.drop_vars("seconds")
        ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("store", "resumed")}
        return ds

    xr.testing.assert_identical(comparable(resumed), comparable(fresh))
    stored = ng.io.open(store / "map_recordings.nc")
    xr.testing.assert_identical(stored, resumed)


def test_default_scheduler_retries_and_argument_errors(recordings, expected, tmp_path):
    folder, paths = recordings
    # the local threaded scheduler on files: the same rows as on the cluster
    result = ng.map_recordings([str(p) for p in paths], CAPACITY, LOAD, progress=False)
    check_against_serial(result, expected, lambda key: str(folder / f"{key}.nwb"))
    assert result.attrs["scheduler"] == "dask threads (local)"

    flaky = Flaky(tmp_path / "tries")                         # fails on its first attempt
    ok = ng.map_recordings(assemblies(paths)[:1], flaky, retries=1, progress=False)
    assert ok["status"].item() == "ok" and (tmp_path / "tries").read_text() == "xx"
    no_retry = ng.map_recordings(assemblies(paths)[:1], Flaky(tmp_path / "t2"), retries=0,
                                 progress=False)
    assert no_retry["status"].item() == "failed"

    with pytest.raises(AnalysisError, match="loaders.from_spec"):
        ng.map_recordings(paths, CAPACITY, {"kind": "spikes"})
    with pytest.raises(AnalysisError, match="pass load="):
        ng.map_recordings([str(paths[0])], CAPACITY)
    with pytest.raises(AnalysisError, match="resume=True needs store="):
        ng.map_recordings(assemblies(paths)[:1], CAPACITY, resume=True)
    with pytest.raises(AnalysisError, match="not both"):
        ng.map_recordings(assemblies(paths)[:1], CAPACITY, client="tcp://127.0.0.1:1",
                          workers=2)
    with pytest.raises(LoaderError, match="matches no file"):
        ng.map_recordings(str(folder / "nothing*.nwb"), CAPACITY, LOAD)
    with pytest.raises(LoaderError, match="options: .*'window'"):
        loaders.from_spec({"kind": "spikes", "intervals": "trials", "stimulus": "x",
                           "windw": (0, 1)})
    assert ng.parallel.recording_keys(["a/x.nwb", "b/x.nwb", "http://h/x.nwb?sig=1",
                                       "map_recordings.nc"]) == [
        "x", "x-2", "x-3", "map_recordings-2"]


def labels_and_flags(a):
    """A result with string, bool and integer variables on a label dim that differs between
    recordings (each assembly's own objects)."""
    names = sorted(set(a["object_name"].values.tolist()))
    return xr.Dataset({"label": ("object", [f"{a.name}:{n}" for n in names]),
                       "big": ("object", [bool(i % 2) for i in range(len(names))]),
                       "count": ("object", np.arange(len(names))),
                       "note": ((), str(a.name))}, coords={"object": names})


def test_non_numeric_results_are_outer_joined_and_round_trip(tmp_path):
    from conftest import make_assembly

    a = make_assembly(n_stim=4, n_rep=1, seed=1)                    # objects o0, o1
    b = make_assembly(n_stim=6, n_rep=1, seed=2)
    b = b.assign_coords(object_name=("presentation", [f"o{i % 3}" for i in range(6)]))
    a.name, b.name = "rec_a", "rec_b"
    res = ng.map_recordings([a, b, a.rename("rec_c")], labels_and_flags, progress=False)
    assert list(res["object"].values) == ["o0", "o1", "o2"]
    assert list(res["label"].sel(recording="rec_a").values) == ["rec_a:o0", "rec_a:o1", ""]
    assert list(res["note"].values) == ["rec_a", "rec_b", "rec_c"]
    # bools and ints with a missing label become floats, NaN where missing: never a False or 0
    np.testing.assert_array_equal(res["big"].sel(recording="rec_b").values, [0.0, 1.0, 0.0])
    assert np.isnan(res["count"].sel(recording="rec_a", object="o2"))
    back = ng.io.open(ng.io.to_netcdf(res, tmp_path / "r.nc"))
    xr.testing.assert_identical(back, res)


class Flaky:
    """Raises on its first attempt (counted in a file), then runs capacity."""

    def __init__(self, path):
        self.path = Path(path)

    def __call__(self, a):
        tries = self.path.read_text() if self.path.exists() else ""
        self.path.write_text(tries + "x")
        if not tries:
            raise OSError("transient")
        return CAPACITY(a)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------

BATCH = ["batch", "--load", "spikes", "--intervals", "trials", "--stimulus",
         "stimulus_presented", "--window", "0.07", "0.17", "--analysis", "capacity",
         "--by", "object_name", "--n-t", str(N_T), "--quiet"]


def test_batch_command_table_and_exit_codes(recordings, expected, tmp_path, capsys):
    folder, paths = recordings
    out = tmp_path / "all.nc"
    code = main([*BATCH, str(folder / "s*.nwb"), "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 1                                          # one recording failed
    lines = printed.out.splitlines()
    assert lines[0].split()[:3] == ["recording", "status", "seconds"]
    rows = {line.split()[0]: line for line in lines[1:7]}
    result = ng.io.open(out)
    for key, ref in expected.items():
        assert rows[key].split()[1] == "ok"
        assert float(rows[key].split()[3]) == pytest.approx(
            float(ref["capacity_overall"]), rel=1e-3)          # printed with 4 digits
        assert float(result["capacity_overall"].sel(recording=key)) == pytest.approx(
            float(ref["capacity_overall"]), rel=1e-12)
    assert rows[TRUNCATED].split()[1] == "failed" and "LoaderError" in rows[TRUNCATED]
    assert "5 of 6 recordings succeeded" in printed.out

    good = tmp_path / "good.nc"
    assert main([*BATCH, *[str(p) for p in paths if p.stem != TRUNCATED], "-o", str(good),
                 "--store", str(tmp_path / "store")]) == 0
    assert len(list((tmp_path / "store").glob("s*.nc"))) == 5
    capsys.readouterr()
    no_by = [a for a in BATCH if a not in ("--by", "object_name")]
    assert main([*no_by, str(paths[0]), "-o", str(tmp_path / "x.nc")]) == 2
    assert "needs --by" in capsys.readouterr().err
    assert main([*BATCH, str(paths[0]), "-o", str(tmp_path / "x.nc"), "--resume"]) == 2
    assert not (tmp_path / "x.nc").exists()


# tiny data: a few neuroids are constant on 1-2 test stimuli, which the score reports and skips
@pytest.mark.filterwarnings("ignore:neural_predictivity.*undefined:UserWarning")
def test_batch_command_compare_against_a_features_file(tmp_path, capsys):
    """``--analysis compare``: the features file travels as a path and is read in the task;
    the score equals neural_predictivity run directly on the same load."""
    session = syn.write_macaque_rsvp(tmp_path / "s0.nwb", n_objects=4, n_images_per_object=5,
                                     n_repetitions=2, n_units=12, seed=3).path
    spec = {"kind": "spikes", "intervals": "trials", "stimulus": "stimulus_presented",
            "window": (0.07, 0.17), "exclude": {"fixation_correct": [0, 0.0]}}
    neural = loaders.from_spec(spec)(session)
    mean = ng.average_repetitions(neural)
    rng = np.random.default_rng(0)
    features = xr.DataArray(
        mean.values @ rng.standard_normal((12, 20)), dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", mean["stimulus_id"].values),
                "neuroid_id": ("neuroid", [f"f{i}" for i in range(20)])},
        attrs={"source": "a linear model of s0"})
    ng.io.to_netcdf(features, tmp_path / "features.nc")
    out = tmp_path / "cmp.nc"
    assert main(["batch", session, "--load", "spikes", "--intervals", "trials",
                 "--stimulus", "stimulus_presented", "--window", "0.07", "0.17", "--exclude",
                 "fixation_correct=0", "--analysis", "compare", "--features",
                 str(tmp_path / "features.nc"), "--stratify-by", "none", "--n-splits", "3",
                 "--quiet", "-o", str(out)]) == 0
    direct = ng.neural_predictivity(features, neural, n_splits=3, seed=0, stratify_by=None)
    got = ng.io.open(out)
    assert float(got["score"].sel(recording="s0")) == pytest.approx(float(direct["score"]),
                                                                     rel=1e-12)
    # the analysis' own `error` (the score's standard error) is kept, renamed
    assert got["error"].item() == "" and got.attrs["renamed_variables"] == \
        '{"error": "analysis_error"}'
    assert float(got["analysis_error"].sel(recording="s0")) == pytest.approx(
        float(direct["error"]), rel=1e-12)
    assert f"{float(direct['score']):.4g}" in capsys.readouterr().out


# ~14 s on 2 contended cores (a LocalCluster of its own): runs by default
def test_batch_command_on_its_own_local_cluster(recordings, expected, tmp_path):
    """``--workers 2``: the command starts a LocalCluster of its own and closes it."""
    folder, paths = recordings
    out = tmp_path / "all.nc"
    assert main([*BATCH, str(folder / "s*.nwb"), "-o", str(out), "--workers", "2"]) == 1
    result = ng.io.open(out)
    assert "LocalCluster (2 workers" in result.attrs["scheduler"]
    check_against_serial(result, expected, lambda key: str(folder / f"{key}.nwb"))


def test_unlabeled_dims_of_different_sizes_are_padded_by_position():
    # an analysis whose result has a dim without labels (here the neuroids of each recording,
    # 3 in one and 5 in the other): rows are joined by position, padding with NaN
    import xarray as xr

    def analysis(a):
        return xr.Dataset({"v": (("neuroid",), a.values.sum(axis=0))})

    sources = [xr.DataArray(np.ones((4, n)), dims=("presentation", "neuroid"),
                            name=f"rec{n}") for n in (3, 5)]
    res = ng.map_recordings(sources, analysis, progress=False)
    assert list(res["status"].values) == ["ok", "ok"]
    assert res["v"].shape == (2, 5)
    np.testing.assert_array_equal(res["v"].values[0], [4, 4, 4, np.nan, np.nan])
    np.testing.assert_array_equal(res["v"].values[1], [4] * 5)
