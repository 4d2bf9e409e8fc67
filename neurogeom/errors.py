"""Exceptions raised by neurogeom and its loaders; the CLI turns them into one-line messages."""

from __future__ import annotations


class NeurogeomError(Exception):
    """Base class of every error neurogeom raises on purpose.

    Messages name the file, table, column or coordinate at fault and list what was available,
    so the one-line form the CLI prints is enough to fix the input.
    """


class AssemblyError(NeurogeomError, ValueError):
    """An assembly does not satisfy the data contract (dims, coords, values, attrs)."""


class LoaderError(NeurogeomError, ValueError):
    """A file, URL, table or column could not be read into an assembly."""


class AnalysisError(NeurogeomError, ValueError):
    """An analysis cannot run on the given data or parameters."""


class AlignmentError(AssemblyError):
    """Two assemblies cannot be aligned on their stimuli."""


class ConvergenceError(AnalysisError):
    """An iterative solver did not reach its tolerance."""


class StorageError(NeurogeomError, OSError):
    """An output cannot be written: a bad destination, a full disk, or the output is an input.

    Raised before any temporary file is left behind; an existing file at the destination is
    unchanged. It is an ``OSError`` too, so code that caught the raw error keeps working.
    """


def format_list(items, limit: int = 10) -> str:
    """Render ``items`` as ``'a', 'b', … (N in all)`` showing at most ``limit`` entries."""
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    if len(items) > limit:
        return f"{shown}, … ({len(items)} in all)"
    return shown if items else "(none)"
