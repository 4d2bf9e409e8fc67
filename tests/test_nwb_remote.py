"""Loading NWB files through a local HTTP server on 127.0.0.1 (streamed, never downloaded
whole); NWB zarr stores are tested in test_nwb_zarr.py."""

import numpy as np
import pytest

import loaders
from neurogeom.errors import LoaderError

from nwb_files import RangeServer, brute_counts


@pytest.fixture(scope="module")
def server(nwb_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with RangeServer(nwb_dir) as srv:
            yield srv


def test_spikes_over_http_match_brute_force(server, macaque, allen):
    url = f"{server.url}/macaque.nwb"
    with loaders.open_nwb(url) as rec:
        assert rec.kind == "http"
        resp = loaders.spike_responses(rec, "trials", "stimulus_presented", window=(0.07, 0.17),
                                       rate=False)
    expected = brute_counts(macaque.spike_times, macaque.onsets, [0.07, 0.17])[..., 0]
    np.testing.assert_array_equal(resp.values, expected)
    np.testing.assert_array_equal(resp["stimulus_id"].values, macaque.stimulus_ids)
    assert resp.attrs["source"] == url
    a = loaders.spike_responses(f"{server.url}/allen.nwb", "natural_scenes_presentations",
                                "frame", window=(0.05, 0.25), rate=False)
    np.testing.assert_array_equal(
        a.values, brute_counts(allen.spike_times, allen.onsets, [0.05, 0.25])[..., 0])
    assert server.requests > 2  # range requests, not one whole-file GET


def test_calcium_binned_and_summary_over_http(server, twophoton):
    url = f"{server.url}/twophoton.nwb"
    local = loaders.calcium_responses(twophoton.path, "natural_scenes_presentations", "frame",
                                      window=(0.0, 0.5))
    remote = loaders.calcium_responses(url, "natural_scenes_presentations", "frame",
                                       window=(0.0, 0.5))
    np.testing.assert_array_equal(remote.values, local.values)
    act = loaders.binned_activity(url, 0.5, epoch=(1.0, 5.0), covariates="head_direction")
    assert act.sizes["time"] == 8
    summary = loaders.nwb_summary(url)
    assert summary["format"] == "NWB (HDF5, streamed over HTTP)"


def test_http_errors(server, nwb_dir):
    with pytest.raises(LoaderError, match="cannot read") as err:
        loaders.spike_responses(f"{server.url}/missing.nwb", "trials", "x", window=(0, 1))
    assert "missing.nwb" in str(err.value)
    (nwb_dir / "text.nwb").write_text("not an NWB file at all\n" * 100)
    with pytest.raises(LoaderError, match="not an HDF5/NWB file"):
        loaders.spike_responses(f"{server.url}/text.nwb", "trials", "x", window=(0, 1))
