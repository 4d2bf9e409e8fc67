"""Shared fixtures: small assemblies with known structure."""

import numpy as np
import pytest
import xarray as xr

# the synthetic NWB recordings (module-scoped fixtures) shared by the tests of loaders.nwb
from nwb_files import allen, macaque, nwb_dir, twophoton  # noqa: F401
# real NWB files from other tools, fetched once from the registry (tests/real_nwb.py)
from real_nwb import pynapple_files, pynwb_back_compat  # noqa: F401


def make_assembly(n_stim=6, n_rep=3, n_neuroids=4, seed=0):
    rng = np.random.default_rng(seed)
    stim = np.array([f"s{i}" for i in range(n_stim)])
    obj = np.array([f"o{i % 2}" for i in range(n_stim)])
    values = rng.standard_normal((n_stim * n_rep, n_neuroids))
    return xr.DataArray(
        values, dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", np.tile(stim, n_rep)),
                "object_name": ("presentation", np.tile(obj, n_rep)),
                "repetition": ("presentation", np.repeat(np.arange(n_rep), n_stim)),
                "start_time": ("presentation", np.arange(n_stim * n_rep) * 0.5),
                "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(n_neuroids)])),
                "region": ("neuroid", np.array(["V4", "V4", "IT", "IT"][:n_neuroids]))},
        attrs={"units": "spikes/s", "source": "test"})


@pytest.fixture
def assembly():
    return make_assembly()
