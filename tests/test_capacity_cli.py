"""``neurogeom capacity``: runs MFT on an assembly file, writes a result, one-line errors."""

import subprocess
import sys

import numpy as np

import loaders
from neurogeom import assembly as asm
from neurogeom import io as ngio
from neurogeom.capacity import manifold_capacity
from neurogeom_cli import main


def make_file(tmp_path):
    a = loaders.synthetic.object_manifolds(n_objects=5, n_images=12, n_neuroids=40,
                                           n_repetitions=2, seed=3)
    return a, ngio.to_netcdf(a, tmp_path / "responses.nc")


def test_capacity_mft_writes_result(tmp_path, capsys):
    a, path = make_file(tmp_path)
    before = path.read_bytes()
    out = tmp_path / "cap.nc"
    assert main(["capacity", str(path), "--by", "object_name", "--average-repetitions",
                 "--n-t", "50", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "capacity_overall" in printed and "object_00" in printed
    res = ngio.open(out)
    direct = manifold_capacity(asm.average_repetitions(a), by="object_name", n_t=50)
    assert np.allclose(res.capacity, direct.capacity, rtol=1e-10)
    assert res.attrs["kappa"] == 0.0 and res.attrs["input_file"] == str(path)
    assert path.read_bytes() == before          # the input file is never modified


def test_capacity_bad_coord_is_one_line(tmp_path):
    _, path = make_file(tmp_path)
    out = subprocess.run([sys.executable, "-m", "neurogeom_cli", "capacity", str(path), "--by",
                          "colour"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "colour" in out.stderr and "object_name" in out.stderr   # names the available coords


def test_capacity_missing_file(tmp_path, capsys):
    assert main(["capacity", str(tmp_path / "nope.nc"), "--by", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
