"""The neurogeom command: help, version, demo, inspect and one-line errors."""

import json
import subprocess
import sys


from neurogeom import __version__
from neurogeom import io as ngio
from neurogeom_cli import main

from conftest import make_assembly


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "neurogeom_cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("inspect", "demo"):
        assert cmd in out.stdout


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_bad_file_is_one_line_exit_2(tmp_path):
    out = run_cli("inspect", str(tmp_path / "missing.nc"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "no such file" in out.stderr and "Traceback" not in out.stderr
    junk = tmp_path / "junk.nc"
    junk.write_text("hello")
    out = run_cli("inspect", str(junk))
    assert out.returncode == 2 and "not a readable netCDF" in out.stderr
    assert "Traceback" not in out.stderr


def test_debug_shows_traceback(tmp_path):
    out = run_cli("--debug", "inspect", str(tmp_path / "missing.nc"))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_inspect_assembly_json(tmp_path, capsys):
    path = ngio.to_netcdf(make_assembly(), tmp_path / "a.nc")
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dims"] == {"presentation": 18, "neuroid": 4}
    assert summary["coords"]["stimulus_id"]["n_unique"] == 6
    assert main(["inspect", str(path)]) == 0
    assert "presentation: 18" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
