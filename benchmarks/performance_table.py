"""Write the README's "Performance" section from the claims table of ``benchmarks/README.md``.

``python benchmarks/performance_table.py`` rewrites what lies between ``<!-- performance:start
-->`` and ``<!-- performance:end -->`` in ``README.md``: one row per measured claim, with the
claim, the measured figure (the bold figures of the benchmark's result cell, or its first clause
where none is bold) and whether the claim is met. ``--check`` writes nothing and exits 1 when the
section is out of date (``tests/test_performance_table.py`` runs the same comparison).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks" / "README.md"
README = ROOT / "README.md"
START, END = "<!-- performance:start -->", "<!-- performance:end -->"
#: the claims table of benchmarks/README.md has these columns (other tables compare trees)
COLUMNS = ("script", "claim (issue)", "result", "claim met?")
MAX_FIGURE = 120      # characters of a result without bold figures, before it is cut
MAX_CONTEXT = 70      # characters of the words kept before a bold figure


def _cells(line: str) -> list[str]:
    """A table row's cells; an escaped ``\\|`` (e.g. ``--analysis effective\\|correlated``) stays
    inside its cell."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def claim_rows(text: str) -> list[dict[str, str]]:
    """The rows of every markdown table in ``text`` whose header is :data:`COLUMNS`."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = tuple(cells)
        elif all(set(c) <= set("-: ") for c in cells):
            continue                                        # the |---|---| separator
        elif header == COLUMNS:
            rows.append(dict(zip(COLUMNS, cells)))
    if not rows:
        raise SystemExit(f"{BENCHMARKS}: no table with the columns {' | '.join(COLUMNS)}")
    return rows


def measured(result: str) -> str:
    """The headline of a result cell: its bold figures, each after the words that lead to it
    (parentheses dropped; back to the previous bold figure, '; ' or a sentence's end; at most
    :data:`MAX_CONTEXT` characters), or else its first clause (at most :data:`MAX_FIGURE`)."""
    text = result
    while re.search(r"\s*\([^()]*\)", text):                # innermost parentheses first
        text = re.sub(r"\s*\([^()]*\)", "", text)
    parts, last = [], 0
    for match in re.finditer(r"\*\*(.+?)\*\*", text):
        before = re.split(r"; |\. ", text[last:match.start()])[-1].strip(" ,:;")
        if len(before) > MAX_CONTEXT:
            before = "… " + before[-MAX_CONTEXT:].split(" ", 1)[-1]
        parts.append(f"{before} **{match.group(1)}**".strip())
        last = match.end()
    if parts:
        return "; ".join(parts)
    first = re.split(r"; |\. ", text)[0].strip()
    return first if len(first) <= MAX_FIGURE else first[:MAX_FIGURE].rsplit(" ", 1)[0] + " …"


def section(rows: list[dict[str, str]]) -> str:
    """The markdown between the markers (markers excluded)."""
    lines = ["## Performance", "",
             "Each claim below is measured by a script in `benchmarks/` against a baseline run in",
             "the same process (see `benchmarks/README.md` for the machine, the full figures and",
             "how to re-run them). This table is generated from that file by",
             "`python benchmarks/performance_table.py`; do not edit it here.", "",
             "| benchmark | claim (issue) | measured | met? |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['script']} | {row['claim (issue)']} | {measured(row['result'])} "
                     f"| {row['claim met?']} |")
    return "\n".join(lines)


def render(readme: str, benchmarks: str) -> str:
    """``readme`` with its performance section rebuilt from ``benchmarks``."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise SystemExit(f"{README}: needs exactly one {START} followed by one {END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{section(claim_rows(benchmarks))}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = render(old, BENCHMARKS.read_text(encoding="utf-8"))
    if args.check:
        print("README performance section is " + ("up to date" if new == old else "out of date"))
        return 0 if new == old else 1
    if new != old:
        README.write_text(new, encoding="utf-8")
    print(f"{README}: performance section {'rewritten' if new != old else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
