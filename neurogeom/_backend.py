"""The one array namespace of neurogeom: numpy, torch on the CPU, or torch on a GPU.

Heavy kernels (the batched capacity QPs, ridge and PLS, the spectral theory of regression,
cvPCA and SVCA) are written once against :class:`Namespace`, himalaya-style: they use operators
(``@``, ``*``, ``.T``), positional reductions (``x.sum(0)``), integer indexing and the few
functions collected here, the common ground of numpy and torch. Results come back to numpy
through :meth:`Namespace.to_numpy`.

The convention
--------------
Every analysis with a torch path takes the same two keyword-only options (the regression
estimators take them as constructor parameters), resolved by :func:`resolve` and nowhere else:

``backend`` : ``None`` (default), ``"numpy"`` or ``"torch"``
    The array library. ``None`` picks numpy, unless ``device`` names a device other than the
    CPU, which only torch can use: then torch.
``device`` : ``None`` (default), ``"cpu"``, ``"cuda"``, ``"cuda:0"``, … or a ``torch.device``
    Where the arrays live. ``None`` means the CPU.

So ``device="cpu"`` alone runs numpy, ``backend="torch"`` alone runs torch on the CPU, and
``device="cuda:0"`` alone runs torch on that GPU. Errors (:class:`~neurogeom.errors.AnalysisError`,
before any computation): a ``backend`` other than the two; ``backend="numpy"`` with a device
other than the CPU (the message names both); a ``device`` string torch cannot parse, or a
device this machine does not have (the message names the device and lists the available ones).

The Neural Cross-Encoder is a torch network, so it takes ``device`` only, resolved by
:func:`torch_device` (the same rules with ``backend="torch"``). ``simulated_capacity`` takes
neither: its work is HiGHS linear programs, which run in scipy whatever the array library.
``effective_geometry`` and ``correlated_capacity`` have a torch path with ``solver="shared"``
only; their default active-set solver is scipy's, and refuses torch rather than ignore it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ._blas import single_threaded_blas
from .errors import AnalysisError, format_list

BACKENDS = ("numpy", "torch")
DTYPES = ("float64", "float32")

__all__ = [
    "BACKENDS",
    "DTYPES",
    "Namespace",
    "available_devices",
    "get_namespace",
    "resolve",
    "torch_device",
]


# --------------------------------------------------------------------------------------------
# the convention
# --------------------------------------------------------------------------------------------

def available_devices() -> list[str]:
    """The devices torch can use on this machine: ``"cpu"``, then ``"cuda:i"``, then ``"mps"``."""
    import torch

    out = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def _parse_device(device):
    """``device`` as ``"cpu"`` or a non-CPU ``torch.device`` (``None`` is the CPU), or an
    AnalysisError that lists the available devices. The CPU needs no torch, so numpy-only runs
    never import it."""
    if device is None or (isinstance(device, str) and device == "cpu"):
        return "cpu"
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise AnalysisError(
                f"device={device!r} is not a device name ({exc}); available on this machine: "
                f"{format_list(available_devices())}, or None for the CPU") from exc
    else:
        raise AnalysisError(f"device must be None, a string such as 'cpu' or 'cuda:0', or a "
                            f"torch.device; got {device!r} of type {type(device).__name__}")
    return "cpu" if dev.type == "cpu" else dev


def _check_available(dev, device):
    """Raise an AnalysisError naming ``device`` and the available ones unless torch can use
    ``dev`` (a non-CPU ``torch.device``)."""
    import torch

    # Creating a tensor is the only check that covers every device type (a CPU-only build
    # raises AssertionError for CUDA, a bad index a RuntimeError).
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise AnalysisError(
            f"device={device!r} is not usable here ({str(exc).splitlines()[0]}); available on "
            f"this machine: {format_list(available_devices())}") from exc


def resolve(backend=None, device=None):
    """Apply the module's convention: ``(backend name, device)``.

    Parameters
    ----------
    backend : {None, "numpy", "torch"}
        Array library; None chooses from ``device``.
    device : None, str or torch.device
        None is the CPU.

    Returns
    -------
    (str, str or torch.device)
        ``"numpy"`` or ``"torch"``, and ``"cpu"`` or the ``torch.device`` of a non-CPU device
        (torch on the CPU gets ``torch.device("cpu")``).

    Raises
    ------
    AnalysisError
        Unknown backend, numpy with a non-CPU device, an unparsable or unavailable device.
    """
    if backend is not None and backend not in BACKENDS:
        raise AnalysisError(f"backend must be one of {format_list(BACKENDS)} or None (numpy, "
                            f"or torch when device names a GPU); got {backend!r}")
    dev = _parse_device(device)
    on_cpu = isinstance(dev, str)
    if backend is None:
        backend = "numpy" if on_cpu else "torch"
    if backend == "numpy":
        if not on_cpu:
            raise AnalysisError(f"backend='numpy' runs on the CPU only, but device={device!r}; "
                                f"use backend='torch' (or backend=None) for {device!r}, or "
                                "device=None/'cpu' for numpy")
        return "numpy", "cpu"
    import torch

    if on_cpu:
        return "torch", torch.device("cpu")
    _check_available(dev, device)
    return "torch", dev


def torch_device(device=None):
    """The ``torch.device`` for ``device`` under the module's convention (None: the CPU); for
    torch-only code such as the Neural Cross-Encoder."""
    return resolve("torch", device)[1]


def get_namespace(backend=None, device=None, dtype: str = "float64") -> Namespace:
    """The :class:`Namespace` for ``backend`` and ``device`` (module convention) and ``dtype``.

    Parameters
    ----------
    backend : {None, "numpy", "torch"}
    device : None, str or torch.device
    dtype : {"float64", "float32"}
        Floating dtype of every array the kernels create.

    Examples
    --------
    >>> get_namespace().name, get_namespace(device="cpu").name
    ('numpy', 'numpy')
    >>> get_namespace(backend="torch").label
    'torch:cpu'
    """
    return Namespace(backend, device, dtype)


# --------------------------------------------------------------------------------------------
# the namespace
# --------------------------------------------------------------------------------------------

class Namespace:
    """Array operations on one backend, device and floating dtype.

    Construct it with :func:`get_namespace`. ``name`` is ``"numpy"`` or ``"torch"``,
    ``device`` is ``"cpu"`` (numpy) or a ``torch.device``, ``label`` is what results record
    (``"numpy"``, ``"torch:cpu"``, ``"torch:cuda:0"``).
    """

    def __init__(self, backend=None, device=None, dtype: str = "float64"):
        if str(dtype) not in DTYPES:
            raise AnalysisError(f"dtype must be one of {format_list(DTYPES)}, got {dtype!r}")
        self.name, self.device = resolve(backend, device)
        self.is_torch = self.name == "torch"
        self.dtype_name = str(dtype)
        if self.is_torch:
            import torch

            self.torch = torch
            self.dtype = getattr(torch, self.dtype_name)
        else:
            self.dtype = np.dtype(self.dtype_name)

    @property
    def label(self) -> str:
        return f"torch:{self.device}" if self.is_torch else "numpy"

    @property
    def on_cpu(self) -> bool:
        return not self.is_torch or self.device.type == "cpu"

    def __repr__(self) -> str:
        return f"Namespace({self.label}, {self.dtype_name})"

    @contextlib.contextmanager
    def single_threaded(self):
        """Run BLAS/LAPACK (and torch's intra-op pool) on one thread while on the CPU.

        For loops of small or batched matrix operations, where threads only synchronize
        (measured 50x slower ``eigh`` of 50 x 50 stacks on a loaded 2-core machine), so the
        batch is the parallelism. No effect on a GPU.
        """
        if not self.on_cpu:
            yield
            return
        old = self.torch.get_num_threads() if self.is_torch else None
        if old is not None:
            self.torch.set_num_threads(1)
        try:
            with single_threaded_blas():
                yield
        finally:
            if old is not None:
                self.torch.set_num_threads(old)

    # -- conversion ---------------------------------------------------------------------------
    def asarray(self, x, dtype=None):
        """``x`` as a backend array of the namespace dtype (``dtype="int"`` for indices,
        ``"bool"`` for masks)."""
        if self.is_torch:
            torch = self.torch
            want = {"int": torch.long, "bool": torch.bool}.get(dtype, self.dtype)
            if isinstance(x, torch.Tensor):
                return x.to(device=self.device, dtype=want)
            return torch.as_tensor(np.asarray(x), dtype=want, device=self.device)
        if hasattr(x, "detach"):   # a torch tensor handed to the numpy backend
            x = x.detach().cpu().numpy()
        want = {"int": np.intp, "bool": np.bool_}.get(dtype, self.dtype)
        return np.asarray(x, dtype=want)

    def to_numpy(self, x) -> np.ndarray:
        if self.is_torch:
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def _tensor(self, x):
        """A Python scalar as a 0-d tensor of the namespace dtype (torch promotes a bare float
        to its default float32 in ``where``)."""
        if isinstance(x, self.torch.Tensor):
            return x
        return self.torch.as_tensor(x, dtype=self.dtype, device=self.device)

    # -- creation -----------------------------------------------------------------------------
    def zeros(self, shape):
        if self.is_torch:
            return self.torch.zeros(shape, dtype=self.dtype, device=self.device)
        return np.zeros(shape, dtype=self.dtype)

    def ones(self, shape):
        if self.is_torch:
            return self.torch.ones(shape, dtype=self.dtype, device=self.device)
        return np.ones(shape, dtype=self.dtype)

    def eye(self, n: int):
        if self.is_torch:
            return self.torch.eye(n, dtype=self.dtype, device=self.device)
        return np.eye(n, dtype=self.dtype)

    def arange(self, n: int):
        """Integer ``0 .. n-1`` (for index arithmetic)."""
        if self.is_torch:
            return self.torch.arange(n, device=self.device)
        return np.arange(n)

    def copy(self, x):
        return x.clone() if self.is_torch else x.copy()

    # -- elementwise --------------------------------------------------------------------------
    def sqrt(self, x):
        return self.torch.sqrt(x) if self.is_torch else np.sqrt(x)

    def abs(self, x):
        return self.torch.abs(x) if self.is_torch else np.abs(x)

    def maximum(self, a, b):
        """Elementwise maximum; ``b`` may be a Python scalar."""
        if not self.is_torch:
            return np.maximum(a, b)
        if isinstance(b, self.torch.Tensor):
            return self.torch.maximum(a, b)
        return self.torch.clamp(a, min=b)

    def minimum(self, a, b):
        """Elementwise minimum; ``b`` may be a Python scalar."""
        if not self.is_torch:
            return np.minimum(a, b)
        if isinstance(b, self.torch.Tensor):
            return self.torch.minimum(a, b)
        return self.torch.clamp(a, max=b)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi) if self.is_torch else np.clip(x, lo, hi)

    def where(self, cond, a, b):
        """``a`` where ``cond`` else ``b``; ``a``/``b`` may be Python scalars."""
        if self.is_torch:
            return self.torch.where(cond, self._tensor(a), self._tensor(b))
        return np.where(cond, a, b)

    def outer(self, a, b):
        return a[:, None] * b[None, :]

    # -- reductions and searches --------------------------------------------------------------
    def amax(self, x, axis):
        return self.torch.amax(x, dim=axis) if self.is_torch else x.max(axis=axis)

    def amin_last(self, x):
        return self.torch.amin(x, dim=-1) if self.is_torch else np.min(x, axis=-1)

    def argmin_last(self, x):
        return self.torch.argmin(x, dim=-1) if self.is_torch else np.argmin(x, axis=-1)

    def any(self, x, axis=None):
        if self.is_torch:
            return x.any() if axis is None else x.any(dim=axis)
        return x.any(axis=axis)

    def all(self, x, axis=None):
        if self.is_torch:
            return x.all() if axis is None else x.all(dim=axis)
        return x.all(axis=axis)

    def sum_int(self, x, axis):
        """Count of true values of a boolean array along ``axis`` (integer result)."""
        return x.sum(dim=axis) if self.is_torch else x.sum(axis=axis)

    def nonzero(self, mask):
        """Indices of the true entries of a 1-d mask."""
        if self.is_torch:
            return self.torch.nonzero(mask, as_tuple=True)[0]
        return np.flatnonzero(mask)

    def nonzero2(self, mask):
        """Row and column indices of the true entries of a 2-d mask."""
        if self.is_torch:
            return self.torch.nonzero(mask, as_tuple=True)
        return np.nonzero(mask)

    def argsort_stable(self, x):
        """Stable argsort of a boolean array along the last axis (False first)."""
        if self.is_torch:
            return self.torch.argsort(x.to(self.torch.int8), dim=-1, stable=True)
        return np.argsort(x, axis=-1, kind="stable")

    def finfo_eps(self) -> float:
        return float(np.finfo(self.dtype_name).eps)

    # -- indexing -----------------------------------------------------------------------------
    def setitem(self, x, idx, values):
        x[idx] = values

    def flip(self, x, axis: int):
        if self.is_torch:
            return self.torch.flip(x, dims=(axis,))
        return np.flip(x, axis=axis)

    def take2d(self, x, rows, cols):
        """``x[rows][:, cols]`` with a single copy."""
        if self.is_torch:
            return x.index_select(0, rows).index_select(1, cols)
        return x[np.ix_(rows, cols)]

    def swap(self, x):
        """Transpose of the last two axes (batched ``.T``)."""
        return x.transpose(-1, -2) if self.is_torch else np.swapaxes(x, -1, -2)

    def diagonal(self, x):
        """Diagonals of a (batch of) square matrices."""
        if self.is_torch:
            return self.torch.diagonal(x, dim1=-2, dim2=-1)
        return np.diagonal(x, axis1=-2, axis2=-1)

    def add_to_diagonal(self, x, values):
        """``x[..., i, i] += values[..., i]`` in place."""
        if self.is_torch:
            self.torch.diagonal(x, dim1=-2, dim2=-1).add_(values)
            return
        n = x.shape[-1]
        x.reshape(x.shape[:-2] + (n * n,))[..., ::n + 1] += values

    # -- linear algebra -----------------------------------------------------------------------
    def eigh(self, a):
        """Eigenvalues (ascending) and eigenvectors of (a batch of) symmetric matrices."""
        if self.is_torch:
            return self.torch.linalg.eigh(a)
        return np.linalg.eigh(a)

    def eigvalsh(self, a):
        """Eigenvalues (ascending) of (a batch of) symmetric matrices."""
        if self.is_torch:
            return self.torch.linalg.eigvalsh(a)
        return np.linalg.eigvalsh(a)

    def eigh_descending(self, a):
        """Eigenvalues (descending) and the matching eigenvectors of a symmetric matrix."""
        w, v = self.eigh(a)
        return self.flip(w, 0), self.flip(v, 1)

    def svd(self, a):
        """Thin SVD ``u, s, vt`` of a matrix (singular values descending)."""
        if self.is_torch:
            return self.torch.linalg.svd(a, full_matrices=False)
        return np.linalg.svd(a, full_matrices=False)

    def solve(self, a, b):
        """``a⁻¹ b`` for a batch of matrices ``a`` (..., n, n) and vectors ``b`` (..., n)."""
        if self.is_torch:
            return self.torch.linalg.solve(a, b)
        return np.linalg.solve(a, b[..., None])[..., 0]

    def solve_shifted_psd(self, A, B, shift: float):
        """``(A + shift I)^-1 B`` for symmetric positive semi-definite ``A``.

        Cholesky first (about 10x cheaper than an eigendecomposition); when round-off makes the
        shifted matrix numerically indefinite, the eigendecomposition with eigenvalues clipped
        at 0 gives the same solution stably.
        """
        shifted = A + shift * self.eye(A.shape[0])
        if self.is_torch:
            L, info = self.torch.linalg.cholesky_ex(shifted)
            if int(info) == 0:
                return self.torch.cholesky_solve(B, L)
        else:
            import scipy.linalg

            try:
                factor = scipy.linalg.cho_factor(shifted, lower=True, check_finite=False)
                return scipy.linalg.cho_solve(factor, B, check_finite=False)
            except np.linalg.LinAlgError:
                pass
        e, V = self.eigh(A)
        return V @ ((V.T @ B) / (self.maximum(e, 0.0) + shift)[:, None])

    def top_eigenvector(self, a):
        """Eigenvector of the largest eigenvalue of a symmetric matrix.

        numpy: ARPACK's Lanczos iteration (``eigsh``) converged to machine precision (tol=0)
        from a fixed start vector, ~2.5× cheaper than LAPACK at t = 256 and equal to the full
        decomposition's vector to ~1e-15; LAPACK ``syevx`` for that one eigenpair when the
        matrix is small or ARPACK does not converge. torch: the full ``eigh``.
        """
        if self.is_torch:
            return self.eigh(a)[1][:, -1]
        from scipy.linalg import eigh
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        n = a.shape[0]
        with single_threaded_blas():   # t × t: threads only add synchronization
            if n > 32:
                start = np.random.default_rng(0).standard_normal(n)
                try:
                    return eigsh(a, k=1, which="LA", tol=0, v0=start)[1][:, 0]
                except ArpackNoConvergence:
                    pass
            return eigh(a, subset_by_index=[n - 1, n - 1], driver="evx",
                        check_finite=False)[1][:, 0]

    def matmul_self_t(self, x):
        """``x @ x.T`` (numpy uses the symmetric rank-k update for this exact expression)."""
        return x @ x.T

    def centered_gram(self, x, block: int = 1024):
        """``(x - m)(x - m)^T`` with ``m`` the column means, without a centered copy of ``x``.

        Columns are centered ``block`` at a time and accumulated by symmetric rank-k updates
        (BLAS ``syrk`` into one n × n buffer for numpy), so the temporary is n × block instead
        of the whole matrix; the other triangle is mirrored at the end.
        """
        n, p = x.shape
        mean = x.mean(0)
        if self.is_torch:
            K = self.zeros((n, n))
            for s in range(0, p, block):
                c = x[:, s:s + block] - mean[None, s:s + block]
                K.addmm_(c, c.T)
            return (K + K.T) / 2
        from scipy.linalg import blas

        syrk = blas.dsyrk if self.dtype == np.float64 else blas.ssyrk
        K = np.zeros((n, n), dtype=self.dtype, order="F")
        for s in range(0, p, block):
            c = x[:, s:s + block] - mean[None, s:s + block]       # n × b, C order
            # c.T is a Fortran-ordered b × n view, so syrk reads it without a copy.
            K = syrk(1.0, c.T, beta=1.0, c=K, trans=1, lower=0, overwrite_c=1)
        for lo in range(0, n, 512):                               # upper -> lower triangle
            hi = min(lo + 512, n)
            K[lo:hi, :lo] = K[:lo, lo:hi].T
            d = K[lo:hi, lo:hi]
            d[np.tril_indices(hi - lo, -1)] = d.T[np.tril_indices(hi - lo, -1)]
        return K.T   # symmetric, so the C-ordered transpose view is the same matrix
