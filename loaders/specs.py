"""Declarative loads: ``{"kind": "spikes", "intervals": "trials", ...}`` as a picklable callable.

:func:`neurogeom.map_recordings` takes ``load``, a callable turning one source into an assembly
inside a Dask task. A :class:`RecordingLoader` is that callable built from a small spec (the
options of one loader function), so it pickles to any worker by value of its options, names
itself in the result's attrs, and is checked here, before any task starts: an unknown kind or
option is a :class:`~neurogeom.errors.LoaderError` listing what exists.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

from neurogeom.errors import LoaderError, format_list

__all__ = ["KINDS", "RecordingLoader", "from_spec"]

#: Spec kinds and the loader function (``loaders.<name>``) each one calls.
KINDS = {"spikes": "spike_responses", "calcium": "calcium_responses",
         "binned": "binned_activity", "features": "read_features"}


def _function(kind: str):
    import loaders

    return getattr(loaders, KINDS[kind])


@dataclass(frozen=True)
class RecordingLoader:
    """``loader(source)`` calls ``loaders.<KINDS[kind]>(source, **options)``.

    Build it with :func:`from_spec`. Only the kind and plain option values are stored, so it
    pickles to a Dask worker, which opens the source itself.
    """

    kind: str
    options: tuple = ()

    def __call__(self, source):
        return _function(self.kind)(source, **dict(self.options))

    def describe(self) -> str:
        """The call in words, e.g. ``spike_responses(intervals='trials', ...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.options)
        return f"loaders.{KINDS[self.kind]}({args})"

    @property
    def spec(self) -> dict:
        """The spec this loader was built from."""
        return {"kind": self.kind, **dict(self.options)}


def from_spec(spec: Mapping | None = None, **options) -> RecordingLoader:
    """A picklable ``load(source)`` for :func:`neurogeom.map_recordings` from a declarative spec.

    Parameters
    ----------
    spec : mapping, optional
        ``{"kind": ..., <option>: <value>, ...}``. ``kind`` is one of :data:`KINDS`:
        ``"spikes"`` (:func:`loaders.spike_responses`), ``"calcium"``
        (:func:`loaders.calcium_responses`), ``"binned"`` (:func:`loaders.binned_activity`) or
        ``"features"`` (:func:`loaders.read_features`); the other entries are that function's
        keyword arguments (everything but the source).
    **options
        More entries, merged over ``spec``.

    Returns
    -------
    RecordingLoader

    Raises
    ------
    LoaderError
        No or an unknown ``kind``, or an option the loader does not take (the message lists the
        options it does take), or a required option missing.

    Examples
    --------
    >>> load = from_spec({"kind": "spikes", "intervals": "trials",
    ...                   "stimulus": "stimulus_presented", "window": (0.07, 0.17)})
    >>> load.describe()
    "loaders.spike_responses(intervals='trials', stimulus='stimulus_presented', window=(0.07, 0.17))"
    """
    merged = {**dict(spec or {}), **options}
    kind = merged.pop("kind", None)
    if kind not in KINDS:
        raise LoaderError(f"a load spec needs 'kind' among {format_list(KINDS)}, got {kind!r}")
    params = inspect.signature(_function(kind)).parameters
    names = list(params)[1:]            # the first parameter is the source
    unknown = [k for k in merged if k not in names]
    if unknown:
        raise LoaderError(f"{kind} loads ({KINDS[kind]}) take no option {format_list(unknown)}; "
                          f"options: {format_list(names)}")
    missing = [k for k in names if params[k].default is inspect.Parameter.empty
               and params[k].kind is not inspect.Parameter.VAR_KEYWORD and k not in merged]
    if missing:
        raise LoaderError(f"{kind} loads ({KINDS[kind]}) need {format_list(missing)}")
    options = tuple((k, merged[k]) for k in names if k in merged
                    and merged[k] is not None)
    return RecordingLoader(kind, options)
