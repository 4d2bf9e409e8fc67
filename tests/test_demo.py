"""``neurogeom demo --quick`` end to end, and its report.html rendered in headless Chromium.

The browser check is real: Chromium (Debian package ``chromium``; ``make test`` installs it
where apt-get is available) loads the report from disk with the network disabled, a probe
script added to a copy of the page records every ``<img>``'s decoded size and every resource
the page requested, and a screenshot is taken. Without Chromium the test is skipped and says so.
"""

import contextlib
import io as text_io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import neurogeom as ng
from neurogeom_cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "neurogeom-demo"
    stdout = text_io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--quick", "--out", str(out)])
    return out, code, stdout.getvalue()


def test_demo_quick_passes_its_planted_checks(demo):
    out, code, stdout = demo
    lines = stdout.strip().splitlines()
    assert lines[0] == lines[-1] == str(out.resolve())      # the folder, first and last
    checks = [line.strip() for line in lines if line.strip().startswith(("PASS", "FAIL"))]
    assert len(checks) == 6, stdout
    assert code == (1 if any(c.startswith("FAIL") for c in checks) else 0)
    assert code == 0, "\n".join(checks)
    for name in ("macaque_rsvp.nwb", "mouse_2p.nwb", "mouse_head_direction.nwb", "report.html"):
        assert (out / name).is_file()
    results = sorted((out / "results").glob("*.nc"))
    kinds = {ng.io.open(p).attrs["analysis"] for p in results}
    assert {"manifold_capacity", "effective_geometry", "neural_predictivity",
            "spectral_decomposition", "latent_dimensionality", "cvpca", "manifold_alignment",
            "decoding_accuracy", "layer_profile", "map_recordings"} <= kinds
    it = ng.io.open(out / "results" / "predictivity_IT_fc.nc")
    assert np.isfinite(float(it["score"])) and 0 < float(it["ceiling"]) <= 1
    by_layer = ng.io.open(out / "results" / "predictivity_IT_by_layer.nc")
    assert list(by_layer["layer"].values) == ["block1.pool", "block2.pool", "fc"]
    assert float(by_layer["score"].sel(layer="fc")) == float(it["score"])
    assert "source_layer" not in by_layer.attrs          # it differs between the layers
    text = (out / "report.html").read_text()
    assert text.count("<section") == len(results)


PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) {
    return [i.naturalWidth, i.naturalHeight, i.complete]; });
  var requested = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({imgs: imgs, requested: requested});
  document.body.appendChild(out);
});
</script>"""


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")


def test_report_renders_in_headless_chromium(demo, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; `make test` "
                    "installs it when apt-get is available): the browser check did not run")
    out, _, _ = demo
    page = (out / "report.html").read_text()
    n_images = len(re.findall(r"<img ", page))
    assert n_images >= 10
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking",
             # any request that leaves the page fails instead of reaching a network
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=120)
    match = re.search(r"<pre id=\"probe\">(.*?)</pre>", dom.stdout, re.S)
    assert match, f"the probe did not run; chromium said: {dom.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(probe["imgs"]) == n_images
    broken = [i for i, (w, h, complete) in enumerate(probe["imgs"])
              if not (complete and w > 0 and h > 0)]
    assert not broken, f"images {broken} did not decode"
    assert probe["requested"] == [], f"the page requested {probe['requested']}"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 10        # text and figures, not a blank or error page
