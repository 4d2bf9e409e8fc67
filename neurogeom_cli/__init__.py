"""The ``neurogeom`` command: argument parsing, subcommand registry and error reporting.

Each subcommand lives in its own module in this package and defines ``add_parser(subparsers)``,
which registers a parser whose ``func(args) -> int`` runs the command. Add a module name to
:data:`SUBCOMMANDS` to register a new one. A :class:`~neurogeom.errors.NeurogeomError` becomes a
one-line message on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from neurogeom import __version__
from neurogeom.errors import NeurogeomError

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("inspect", "load", "capacity", "compare", "latents", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurogeom",
        description="Neural population geometry: load recordings and model activations into "
                    "labeled assemblies and measure capacity, alignment, predictivity and "
                    "dimensionality.")
    parser.add_argument("--version", action="version", version=f"neurogeom {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of errors instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NeurogeomError as exc:
        if args.debug:
            raise
        print(f"neurogeom {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurogeom: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
