"""binned_activity: bins tile each epoch exactly, and every spike in it is counted once.

Issue 16 item 1: ``bin_end`` used to be ``bin_start + bin_size``, a few ulps away from the next
bin's start for bin sizes that are not binary fractions (0.1 s, 0.033 s), so spikes lying
exactly on a boundary (spike times stored on a 0.1 ms grid do) were lost or counted twice.
"""

import numpy as np
import pytest

import loaders
from nwb_files import write_plain_units

pytestmark = pytest.mark.filterwarnings("ignore:.*no brain area found:UserWarning")


def edge_trains(a, b, bin_size):
    """Spike trains placed where float rounding bites: on every edge ``a + k * bin_size`` and
    one ulp either side of it, on the epoch's bounds, and on the 0.1 ms grid of the epoch."""
    n = int(round((b - a) / bin_size))
    edges = a + np.arange(n + 1) * bin_size
    # the same edges computed the other natural ways (a + k*h and cumulative sums differ
    # from each other by ulps for h = 0.1)
    other = np.concatenate([a + np.cumsum(np.full(n, bin_size)), np.linspace(a, b, n + 1)])
    on = np.unique(np.concatenate([edges, other, [a, b]]))
    below, above = np.nextafter(on, -np.inf), np.nextafter(on, np.inf)
    # the 0.1 ms grid spike sorters store times on, around every edge
    ticks = np.round(edges * 1e4)[:, None] + np.arange(-3, 4)
    grid = np.unique(ticks[(ticks >= a * 1e4) & (ticks <= b * 1e4)]) / 1e4
    return [np.sort(on), np.sort(np.concatenate([below, above])), grid,
            np.sort(np.concatenate([on, below, above, grid]))]


@pytest.mark.parametrize("bin_size", [0.1, 0.033, 1 / 3, 0.25])
def test_bins_tile_the_epoch_and_count_every_spike_once(tmp_path, bin_size):
    a = 7.3
    n_bins = 91
    b = a + n_bins * bin_size
    trains = edge_trains(a, b, bin_size)
    # spikes well outside the epoch make sure the extent is not the problem
    trains = [np.concatenate([[0.5], t, [b + 5.0]]) for t in trains]
    path = write_plain_units(tmp_path / "edges.nwb", trains, [1.0], with_trials=False)
    act = loaders.binned_activity(path, bin_size, epoch=(a, b), rate=False)
    start, end = act["bin_start"].values, act["bin_end"].values
    assert start.size == n_bins
    # one edges array: each bin ends exactly where the next begins, the last at the epoch's stop
    assert np.array_equal(end[:-1], start[1:])
    assert start[0] == a and end[-1] == b
    # every spike of the epoch [a, b) counted exactly once (brute force over the whole epoch)
    totals = act.values.sum(axis=0)
    expected_totals = [np.count_nonzero((t >= a) & (t < b)) for t in trains]
    np.testing.assert_array_equal(totals, expected_totals)
    # and each bin's count is the brute-force count over its own [bin_start, bin_end)
    brute = np.array([[np.count_nonzero((t >= s) & (t < e)) for t in trains]
                      for s, e in zip(start, end)])
    np.testing.assert_array_equal(act.values, brute)


def test_abutting_epochs_share_their_boundary(tmp_path):
    """Two epochs that meet (sleep 0–6 s, wake 6–12 s): no spike counted in both or neither."""
    bin_size = 0.1
    trains = edge_trains(0.0, 12.0, bin_size)
    path = write_plain_units(tmp_path / "abut.nwb", trains, [1.0], with_trials=False)
    act = loaders.binned_activity(path, bin_size, epoch=[(0.0, 6.0), (6.0, 12.0)], rate=False)
    assert act.sizes["time"] == 120
    np.testing.assert_array_equal(act["epoch_index"].values, np.repeat([0, 1], 60))
    assert np.array_equal(act["bin_end"].values[:-1], act["bin_start"].values[1:])
    np.testing.assert_array_equal(
        act.values.sum(axis=0), [np.count_nonzero((t >= 0.0) & (t < 12.0)) for t in trains])


def test_calcium_bins_share_edges(tmp_path):
    """Calcium bins use the same edges: a frame exactly on a boundary is averaged into one bin."""
    from loaders.synthetic import nwb as syn

    rec = syn.write_mouse_2p(tmp_path / "ca.nwb", seed=5)
    act = loaders.binned_activity(rec.path, 0.1, epoch=(1.0, 4.0))
    start, end = act["bin_start"].values, act["bin_end"].values
    assert np.array_equal(end[:-1], start[1:]) and end[-1] == 4.0
    dff, times = rec.extra["dff"], rec.extra["times"]
    # a frame within 1e-6 frame periods below an edge counts as on it (float rounding)
    tol = 1e-6 / rec.extra["frame_rate"]
    expected = np.array([dff[(times >= s - tol) & (times < e - tol)].mean(axis=0)
                         for s, e in zip(start, end)])
    np.testing.assert_allclose(act.values, expected, atol=1e-9, rtol=0)
