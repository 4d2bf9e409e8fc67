"""NWB recordings into assemblies: open (local, http(s), zarr), spikes, calcium, behaviour, summary.

One module per job: :mod:`.source` opens files read-only, :mod:`.tables` reads dynamic tables
column by column (raw HDF5 or pynwb objects), :mod:`.presentations` turns intervals tables into
presentation coords, :mod:`.regions` finds brain areas, :mod:`.spikes` counts spikes
around stimuli (the counting kernel, shared with binning, is :mod:`.counting`), :mod:`.calcium` averages imaging traces, :mod:`.binned` bins continuous activity
with behavioural covariates (found and interpolated by :mod:`.behaviour`), :mod:`.build`
assembles validated assemblies, :mod:`.summary` describes a file.
"""

from .source import NWBSource, open_nwb
from .spikes import spike_responses
from .calcium import calcium_responses
from .binned import binned_activity
from .summary import nwb_summary

__all__ = ["NWBSource", "open_nwb", "spike_responses", "calcium_responses", "binned_activity",
           "nwb_summary"]
