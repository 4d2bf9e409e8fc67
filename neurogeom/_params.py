"""Checks of analysis parameters at the door: one function per kind of option.

Every analysis validates its scalar options here before touching data, so a bad value fails
with the same :class:`~neurogeom.errors.AnalysisError` wording everywhere: the parameter's
name, the value that arrived and what is allowed. Also home of the up-front memory estimate
(:func:`check_memory`) and of the overflow-safe power-of-two rescaling (:func:`unit_scale`)
that scale-free analyses apply before squaring anything.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from .errors import AnalysisError

#: Seeds must fit numpy's legacy ``RandomState`` (which scikit-learn's ``random_state`` uses).
MAX_SEED = 2**32 - 1


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_seed(value, name: str = "seed", maximum: int = MAX_SEED) -> int:
    """``value`` as an int in [0, maximum] (default 2**32 - 1); AnalysisError otherwise."""
    if not _is_int(value) or not 0 <= value <= maximum:
        raise AnalysisError(f"{name} must be an integer in [0, {maximum}], got {value!r}")
    return int(value)


#: The ridge penalties tried by default wherever an analysis selects one (``alphas=`` of ridge
#: regression, ``neural_predictivity``, reduced-rank regression, the NCE's RRR comparison and
#: ``latent_dimensionality``): Brain-Score's RidgeCV range 0.01 … 1e7 (Schrimpf et al. 2018),
#: thinned to 20 log-spaced values (about two per decade).
DEFAULT_ALPHAS = tuple(np.logspace(-2, 7, 20).tolist())


def check_alphas(alphas, *, allow_zero: bool = False) -> np.ndarray:
    """``alphas`` as a non-empty 1-d float array of finite penalties, each > 0 (or >= 0 with
    ``allow_zero``: reduced-rank regression accepts the unpenalized fit); AnalysisError
    otherwise."""
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise AnalysisError(f"alphas must be a non-empty 1-d sequence, got {alphas!r}")
    if not np.isfinite(a).all() or (a < 0).any() or (not allow_zero and (a == 0).any()):
        bound = ">= 0" if allow_zero else "> 0"
        raise AnalysisError(f"alphas must be finite and {bound}, got {a.tolist()}")
    return a


def check_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; AnalysisError otherwise."""
    integral = _is_int(value) or (isinstance(value, (float, np.floating))
                                  and math.isfinite(value) and value == int(value))
    if (not integral or value < minimum or (maximum is not None and value > maximum)):
        allowed = (f"an integer >= {minimum}" if maximum is None
                   else f"an integer in [{minimum}, {maximum}]")
        raise AnalysisError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _real(value, name: str, allowed: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise AnalysisError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def check_positive(value, name: str) -> float:
    """A finite float > 0 (learning rates, tolerances); AnalysisError otherwise."""
    allowed = "a finite number > 0"
    x = _real(value, name, allowed)
    if not math.isfinite(x) or x <= 0:
        raise AnalysisError(f"{name} must be {allowed}, got {value!r}")
    return x


def check_nonnegative(value, name: str) -> float:
    """A finite float >= 0 (margins, penalties, noise levels); AnalysisError otherwise."""
    allowed = "a finite number >= 0"
    x = _real(value, name, allowed)
    if not math.isfinite(x) or x < 0:
        raise AnalysisError(f"{name} must be {allowed}, got {value!r}")
    return x


def check_fraction(value, name: str, *, include_one: bool = True) -> float:
    """A float in (0, 1] (or (0, 1) with ``include_one=False``); AnalysisError otherwise."""
    allowed = f"a number in (0, 1{']' if include_one else ')'}"
    x = _real(value, name, allowed)
    if not (0 < x < 1 or (include_one and x == 1)):   # NaN fails both comparisons
        raise AnalysisError(f"{name} must be {allowed}, got {value!r}")
    return x


def available_memory() -> int | None:
    """Bytes of memory available to this process now (psutil, else /proc/meminfo's
    MemAvailable, else free pages from sysconf), or None."""
    try:
        import psutil  # optional
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:   # Linux: free memory plus the page cache the kernel would give back (not free alone)
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_memory(n_bytes: float, what: str, hint: str) -> None:
    """Fail before allocating when ``what`` needs more than the memory available.

    ``n_bytes`` is the caller's estimate of what the computation must hold at once; ``hint``
    says which parameter to lower.
    """
    available = available_memory()
    if available is not None and n_bytes > available:
        raise AnalysisError(f"{what} needs about {_gib(n_bytes)} of memory but only "
                            f"{_gib(available)} is available; {hint}")


def unit_scale(values: np.ndarray, *, keep_within: int = 0) -> tuple[np.ndarray, int]:
    """``values / 2**e`` with ``e`` chosen so the largest magnitude is in [0.5, 1), and ``e``.

    With ``keep_within=k``, values whose ``|e| <= k`` are returned as they are (``e = 0``): for
    callers whose squares and sums stay far inside the float range there (k = 200 for float64,
    24 for float32, is safe for sums of up to 2**20 squares), so no scaled copy is made.

    For analyses whose result does not depend on the data's overall scale (capacity, radius,
    dimension, correlations): dividing by a power of two is exact in binary floating point, so
    data of ordinary scale give bit-identical results, while data near the overflow (1e200) or
    underflow (1e-200) limits no longer overflow to inf or lose digits when squared. The scale
    comes from the maximum magnitude, which needs no squares and so cannot itself overflow.
    """
    exponent = scale_exponent(values)
    if abs(exponent) <= keep_within:
        exponent = 0
    return (np.ldexp(values, -exponent) if exponent else values), exponent


def scale_exponent(*arrays) -> int:
    """The ``e`` of :func:`unit_scale` for the largest magnitude over ``arrays`` (0 when they are
    empty, all zero or not finite). Found from each array's max and min, so no temporary of
    the data's size is made."""
    peak = 0.0
    for values in arrays:
        if values.size:
            peak = max(peak, float(np.max(values)), -float(np.min(values)))
    if not (peak > 0 and math.isfinite(peak)):
        return 0
    return math.frexp(peak)[1]


def check_finite(value, what: str, cause: str = "") -> None:
    """AnalysisError naming the intermediate result ``what`` when ``value`` is not all finite."""
    if not np.all(np.isfinite(value)):
        raise AnalysisError(f"{what} became non-finite (NaN or inf) during the computation"
                            + (f": {cause}" if cause else ""))
