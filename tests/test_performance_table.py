"""The README's "Performance" section is the one benchmarks/performance_table.py generates
from benchmarks/README.md (a measured figure changed there must be regenerated here)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def generator():
    path = ROOT / "benchmarks" / "performance_table.py"
    spec = importlib.util.spec_from_file_location("performance_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_performance_section_is_up_to_date():
    gen = generator()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    benchmarks = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert gen.render(readme, benchmarks) == readme, (
        "README.md's performance section is stale: run python benchmarks/performance_table.py")
    # one README row per claim row of benchmarks/README.md, after the quickstart
    section = readme[readme.index(gen.START):readme.index(gen.END)]
    assert section.count("\n| `") == len(gen.claim_rows(benchmarks)) > 0
    assert readme.index("## Quickstart") < readme.index(gen.START)
    assert gen.main(["--check"]) == 0


def test_generator_rows_and_figures():
    gen = generator()
    table = ("| script | claim (issue) | result | claim met? |\n|---|---|---|---|\n"
             "| `a.py` | fast (#1) | ours 1 s (idle; warm) vs theirs 3 s → **3×**; peak 2 MiB | yes |\n"
             "| `b.py` | small (#2) | peak 5 MiB; more text | no |\n\n"
             "| script | figure | before |\n|---|---|---|\n| `a.py` | x | 1 s |\n")
    rows = gen.claim_rows(table)
    assert [r["script"] for r in rows] == ["`a.py`", "`b.py`"]    # the other table is skipped
    assert gen.measured(rows[0]["result"]) == "ours 1 s vs theirs 3 s → **3×**"
    assert gen.measured(rows[1]["result"]) == "peak 5 MiB"           # no bold: first clause
    readme = f"# x\n\n{gen.START}\nold\n{gen.END}\nrest\n"
    out = gen.render(readme, table)
    assert out.startswith(f"# x\n\n{gen.START}\n## Performance") and out.endswith(
        f"| `b.py` | small (#2) | peak 5 MiB | no |\n{gen.END}\nrest\n")
    assert gen.render(out, table) == out                            # idempotent
    with pytest.raises(SystemExit, match="performance:start"):
        gen.render("# no markers\n", table)


def test_an_escaped_pipe_stays_in_its_cell():
    # `capacity.py --analysis effective\|correlated` is one script cell, not two
    gen = generator()
    table = ("| script | claim (issue) | result | claim met? |\n|---|---|---|---|\n"
             "| `c.py --x a\\|b` | quick (#3) | **2 s** | yes |\n")
    (row,) = gen.claim_rows(table)
    assert row == {"script": "`c.py --x a\\|b`", "claim (issue)": "quick (#3)",
                   "result": "**2 s**", "claim met?": "yes"}
