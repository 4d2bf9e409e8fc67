"""Load NWB recordings into assemblies: macaque RSVP spikes, mouse calcium and behaviour.

A user story: "I have my lab's NWB files; what is in them, and how do I get responses per image
and per neuron?" The files here are synthetic (written by ``loaders.synthetic``) in the layouts
real conversions use; point the same calls at your own files or at an https:// URL.

Usage: python examples/02_load_nwb.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import loaders
from neurogeom import assembly
from neurogeom import io as ngio


def main(out: Path) -> dict:
    """Run the story; return what was loaded, beside the synthetic truth (the tests assert it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. a DiCarlo-style macaque session: one trials row per image presentation
    truth = loaders.synthetic.write_macaque_rsvp(out / "macaque_rsvp.nwb", seed=0)
    summary = loaders.nwb_summary(truth.path)          # what `neurogeom inspect FILE` prints
    print("units:", summary["units"]["count"], "in", summary["units"]["regions"])
    print("trials columns:", summary["intervals"]["trials"]["columns"])

    # 2. spike rates 70-170 ms after each image onset; image indices become image names
    resp = loaders.spike_responses(truth.path, intervals="trials", stimulus="stimulus_presented",
                                   window=(0.07, 0.17), exclude={"fixation_correct": False})
    print("responses:", dict(resp.sizes), resp.attrs["units"])
    avg = assembly.average_repetitions(resp, ignore=["stimulus_presented", "fixation_correct"])
    it = avg.sel(neuroid=avg["region"] == "IT")
    groups = assembly.manifolds(it, by="object_name")
    print(f"IT: {len(groups)} object manifolds of {len(groups[0][1])} images each")
    ngio.to_netcdf(avg, out / "macaque_it_v4.nc")

    # 3. a mouse two-photon session: dF/F around natural scenes, blanks dropped, baseline removed
    ophys = loaders.synthetic.write_mouse_2p(out / "mouse_2p.nwb", seed=0)
    dff = loaders.calcium_responses(ophys.path, "natural_scenes_presentations", "frame",
                                    window=(0.0, 0.5), baseline=(-0.2, 0.0), exclude={"frame": -1})
    print("calcium:", dict(dff.sizes), dff.attrs["units"], "from", dff.attrs["series"])

    # 4. continuous activity in 100 ms bins with head direction and position as coords
    act = loaders.binned_activity(ophys.path, bin_size=0.1, epoch=(1.0, 60.0),
                                  covariates=["head_direction", "position"])
    print("binned:", dict(act.sizes), "covariates:",
          [c for c in act.coords if c.startswith(("head", "position"))])
    print(f"wrote {out}")

    # the loaded rates against the rates the file was written with (ground truth of the writer):
    # each averaged response = the image's evoked rate + the unit's background rate + noise
    row = {name: i for i, name in enumerate(truth.extra["image_names"])}
    evoked = truth.rates[[row[s] for s in avg["stimulus_id"].values]]
    return {"units": summary["units"]["count"], "regions": summary["units"]["regions"],
            "responses": dict(resp.sizes),
            "fixation_correct": int(truth.extra["fixation_correct"].sum()),
            "it_manifolds": [len(points) for _, points in groups],
            "rate_correlation": float(np.corrcoef(avg.values.ravel(), evoked.ravel())[0, 1]),
            "mean_excess_rate": float(np.mean(avg.values - evoked)),
            "calcium": dict(dff.sizes), "binned": dict(act.sizes),
            "rois": len(ophys.regions), "scenes_shown": int(np.sum(ophys.stimulus_ids != "-1"))}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
