"""The README's quickstart runs as written (it is the first code a user copies)."""

import os
import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Quickstart"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)
    assert 0 < float(namespace["cap"].capacity_overall) < 2
    assert os.path.exists(tmp_path / "capacity.nc")


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_opens_with_the_two_commands_and_what_the_demo_leaves():
    text = README.read_text()
    opening = text[:text.index("\n## ")]          # before the first section
    first_block = re.search(r"```bash\n(.*?)```", opening, re.S)
    assert first_block and opening.index("```bash") < opening.index("neurogeom-demo")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    # what `make demo` leaves, the report first, then the files the demo writes
    listed = re.findall(r"^- `([^`]+)`", opening, re.M)
    assert listed[0] == "report.html"
    leaves = opening[opening.index("`make demo` leaves"):]
    for name in ("macaque_rsvp.nwb", "mouse_2p.nwb", "mouse_head_direction.nwb", "results/*.nc",
                 "PASS/FAIL"):
        assert name in leaves, name


def test_how_to_cite_lists_every_paper_the_results_cite():
    """Each paper a result's ``references`` attr can name (neurogeom._results.REFERENCES) is in
    "How to cite" by its first author and year."""
    from neurogeom._results import REFERENCES

    text = README.read_text()
    section = text[text.index("## How to cite"):]
    for key, citation in REFERENCES.items():
        for part in citation.split("; "):           # Spearman (1910); Brown (1910)
            if not re.search(r"\(\d{4}\)", part):
                continue                             # "...; arXiv:2312.02791."
            match = re.match(r"([^,(&]+?)[, &(].*?\((\d{4})\)", part)
            assert match, (key, part)
            author, year = match.group(1).strip(), match.group(2)
            assert re.search(rf"{re.escape(author)}\b[^()]*\({year}\)", section), (key, author,
                                                                                  year)


def test_make_demo_runs_the_demo_into_the_default_folder_silently():
    """`make demo` runs `neurogeom demo` with its default folder (./neurogeom-demo) and does not
    echo the command, so the folder's path is the first line printed (and the last)."""
    from neurogeom_cli import demo

    makefile = (README.parent / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert recipe.strip() == "@$(VENV)/bin/neurogeom demo"
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_parser(parser.add_subparsers())
    assert parser.parse_args(["demo"]).out == "neurogeom-demo"
    assert ".neurogeom-demo" not in makefile and "neurogeom-demo/" in (
        README.parent / ".gitignore").read_text()
