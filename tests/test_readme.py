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
