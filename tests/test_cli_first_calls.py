"""The CLI's first calls on files from other tools (issue 16 items 3-4): errors in flags, not
Python arguments; explicit epochs; calcium without an intervals table (--binned, --onsets)."""

import numpy as np
import pytest

from neurogeom import io as ngio
from neurogeom_cli import main

from nwb_files import write_roi_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Spikes inside 0.2–9.7 s, the file's epochs 0–5 s and 5–10 s; one Fluorescence series."""
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0.2, 9.7, 200)) for _ in range(3)]
    path, data, times = write_roi_series(
        tmp_path_factory.mktemp("cli") / "s.nwb", {"Fluorescence": "Fluorescence"}, rate=10.0,
        n_frames=100, units=trains, intervals={"epochs": [(0.0, 5.0), (5.0, 10.0)]})
    return path, trains, data, times


def test_epoch_errors_name_cli_flags(session, tmp_path, capsys):
    path, *_ = session
    out = tmp_path / "b.nc"
    code = main(["load", path, "--binned", "--bin-size", "0.5", "--epoch", "0:5,8:12",
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "epoch row(s) 1" in err and "--epoch 0:5" in err
    assert "epoch=" not in err and not out.exists()


def test_explicit_and_table_epochs_from_the_cli(session, tmp_path, capsys):
    path, trains, *_ = session
    out = tmp_path / "b.nc"
    assert main(["load", path, "--binned", "--bin-size", "0.5", "--epoch", "epochs", "--counts",
                 "-o", str(out)]) == 0
    act = ngio.open(out)
    # the file's epochs reach 0 s and 10 s although its spikes span 0.2-9.7 s
    assert act.sizes["time"] == 20
    np.testing.assert_array_equal(act.values.sum(axis=0), [t.size for t in trains])
    out2 = tmp_path / "c.nc"
    assert main(["load", path, "--binned", "--bin-size", "0.5", "--epoch", "0:2,5:6",
                 "--counts", "-o", str(out2)]) == 0
    assert ngio.open(out2).sizes["time"] == 6


def test_calcium_from_an_onsets_csv(session, tmp_path, capsys):
    path, _, data, times = session
    csv = tmp_path / "onsets.csv"
    onsets = np.array([1.0, 2.0, 3.0, 4.0])
    csv.write_text("start_time,image\n" + "".join(f"{t},img{i % 2}\n"
                                                   for i, t in enumerate(onsets)))
    out = tmp_path / "ca.nc"
    assert main(["load", path, "--calcium", "--series", "Fluorescence", "--onsets", str(csv),
                 "--stimulus", "image", "--window", "0", "0.5", "-o", str(out)]) == 0
    resp = ngio.open(out)
    expected = np.array([data["Fluorescence"][(times >= t) & (times < t + 0.5)].mean(axis=0)
                         for t in onsets])
    np.testing.assert_allclose(resp.values, expected, atol=1e-12)
    code = main(["load", path, "--calcium", "--onsets", str(tmp_path / "missing.csv"),
                 "--stimulus", "image", "--window", "0", "0.5", "-o", str(tmp_path / "x.nc")])
    assert code == 2 and "--onsets" in capsys.readouterr().err


def test_series_error_names_the_flag(tmp_path, capsys):
    path, _, _ = write_roi_series(tmp_path / "two.nwb", {"a": "DfOverF", "b": "DfOverF"})
    code = main(["load", path, "--binned", "--bin-size", "0.5", "-o", str(tmp_path / "o.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "--series" in err and "series=" not in err


def test_warnings_are_one_line_in_flags(tmp_path, capsys):
    """suite2p's layout: the default series is announced in CLI words."""
    import warnings

    path, _, _ = write_roi_series(tmp_path / "s2p.nwb", {"Fluorescence": "Fluorescence",
                                                         "Neuropil": "Fluorescence"})
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["load", path, "--binned", "--bin-size", "0.5", "-o",
                     str(tmp_path / "o.nc")]) == 0
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if "RoiResponseSeries" in x]
    assert line and line[0].startswith("neurogeom load: warning: ")
    assert "(choose with --series)" in line[0] and "series=" not in line[0]


def test_empty_bins_error_names_the_flag(tmp_path, capsys):
    """Bins narrower than the frame period: the advice is a --bin-size, not a bin_size."""
    path, _, _ = write_roi_series(tmp_path / "f.nwb", {"Fluorescence": "Fluorescence"})
    code = main(["load", path, "--binned", "--bin-size", "0.05", "-o", str(tmp_path / "o.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "hold no sample" in err
    assert "--bin-size 0.2 s or more (two frame periods)" in err and "bin_size" not in err
