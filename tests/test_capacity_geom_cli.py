"""`neurogeom capacity --method glue|simulated` runs the geometry estimators end to end."""

import numpy as np
import pytest

from neurogeom import io as ngio
from neurogeom_cli import main

from geom_helpers import as_assembly, segments


@pytest.mark.parametrize("method,variable", [("glue", "radius_overall"),
                                             ("simulated", "n_star")])
def test_cli_methods_write_results(tmp_path, capsys, method, variable):
    rng = np.random.default_rng(0)
    pts, owner = segments(rng, 4, 12, 0.5, n_points=3)
    path = ngio.to_netcdf(as_assembly(pts, owner), tmp_path / "a.nc")
    out = tmp_path / f"{method}.nc"
    assert main(["capacity", str(path), "--by", "object_name", "--method", method,
                 "--n-t", "10", "-o", str(out)]) == 0
    assert "capacity_overall" in capsys.readouterr().out
    ds = ngio.open(out)
    assert variable in ds and ds.attrs["by"] == "object_name"
    assert np.isfinite(float(ds.capacity_overall))


def test_cli_bad_by_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    pts, owner = segments(rng, 3, 8, 0.5)
    path = ngio.to_netcdf(as_assembly(pts, owner), tmp_path / "a.nc")
    assert main(["capacity", str(path), "--by", "nope", "--method", "glue"]) == 2
    assert "unknown manifold coord --by 'nope'" in capsys.readouterr().err   # in the CLI's words
