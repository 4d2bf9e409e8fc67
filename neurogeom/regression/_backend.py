"""A tiny array namespace so the regression kernels run unchanged on numpy or torch (CPU/GPU).

The kernels only use operators (``@``, ``*``, ``.T``), positional reductions (``x.sum(0)``),
integer indexing and the few functions collected here, which is the common ground of numpy and
torch. ``device=None`` means numpy; ``device="cpu"``/``"cuda"`` (or a ``torch.device``) means
torch on that device. Results come back to numpy through :meth:`Namespace.to_numpy`.
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError

DTYPES = ("float64", "float32")


class Namespace:
    """Array operations on one backend, device and floating dtype.

    Parameters
    ----------
    device : None, str or torch.device
        ``None`` selects numpy; anything else selects torch on that device.
    dtype : {"float64", "float32"}
        Floating dtype of every array the kernels create.
    """

    def __init__(self, device=None, dtype: str = "float64"):
        if str(dtype) not in DTYPES:
            raise AnalysisError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype_name = str(dtype)
        self.device = device
        if device is None:
            self.is_torch = False
            self.dtype = np.dtype(self.dtype_name)
        else:
            try:
                import torch
            except ImportError as exc:  # pragma: no cover - torch is a dependency
                raise AnalysisError(f"device={device!r} needs torch ({exc})") from exc
            self._torch = torch
            self.is_torch = True
            self.dtype = getattr(torch, self.dtype_name)
            try:
                self.device = torch.device(device)
                torch.empty(0, device=self.device)
            except (RuntimeError, TypeError) as exc:
                raise AnalysisError(f"torch cannot use device={device!r}: {exc}") from exc

    @property
    def name(self) -> str:
        return f"torch:{self.device}" if self.is_torch else "numpy"

    # -- conversion ---------------------------------------------------------------------------
    def asarray(self, x, dtype=None):
        """``x`` as a backend array of the namespace dtype (``dtype="int"`` for indices)."""
        if self.is_torch:
            torch = self._torch
            want = torch.long if dtype == "int" else self.dtype
            if isinstance(x, torch.Tensor):
                return x.to(device=self.device, dtype=want)
            return torch.as_tensor(np.asarray(x), dtype=want, device=self.device)
        want = np.intp if dtype == "int" else self.dtype
        return np.asarray(x, dtype=want)

    def to_numpy(self, x) -> np.ndarray:
        if self.is_torch:
            return x.detach().cpu().numpy()
        return np.asarray(x)

    # -- functions ----------------------------------------------------------------------------
    def eigh(self, a):
        """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
        if self.is_torch:
            return self._torch.linalg.eigh(a)
        return np.linalg.eigh(a)

    def eigh_descending(self, a):
        """Eigenvalues (descending) and the matching eigenvectors of a symmetric matrix."""
        w, v = self.eigh(a)
        return self.flip(w, 0), self.flip(v, 1)

    def solve_shifted_psd(self, A, B, shift: float):
        """``(A + shift I)^-1 B`` for symmetric positive semi-definite ``A``.

        Cholesky first (about 10x cheaper than an eigendecomposition); when round-off makes the
        shifted matrix numerically indefinite, the eigendecomposition with eigenvalues clipped
        at 0 gives the same solution stably.
        """
        shifted = A + shift * self.eye(A.shape[0])
        if self.is_torch:
            L, info = self._torch.linalg.cholesky_ex(shifted)
            if int(info) == 0:
                return self._torch.cholesky_solve(B, L)
        else:
            import scipy.linalg

            try:
                factor = scipy.linalg.cho_factor(shifted, lower=True, check_finite=False)
                return scipy.linalg.cho_solve(factor, B, check_finite=False)
            except np.linalg.LinAlgError:
                pass
        e, V = self.eigh(A)
        return V @ ((V.T @ B) / (self.clip_min(e, 0.0) + shift)[:, None])

    def take2d(self, x, rows, cols):
        """``x[rows][:, cols]`` with a single copy."""
        if self.is_torch:
            return x.index_select(0, rows).index_select(1, cols)
        return x[np.ix_(rows, cols)]

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

        from .._blas import single_threaded_blas

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

    def flip(self, x, axis: int):
        if self.is_torch:
            return self._torch.flip(x, dims=(axis,))
        return np.flip(x, axis=axis)

    def zeros(self, shape):
        if self.is_torch:
            return self._torch.zeros(shape, dtype=self.dtype, device=self.device)
        return np.zeros(shape, dtype=self.dtype)

    def ones(self, shape):
        if self.is_torch:
            return self._torch.ones(shape, dtype=self.dtype, device=self.device)
        return np.ones(shape, dtype=self.dtype)

    def eye(self, n: int):
        if self.is_torch:
            return self._torch.eye(n, dtype=self.dtype, device=self.device)
        return np.eye(n, dtype=self.dtype)

    def sqrt(self, x):
        return self._torch.sqrt(x) if self.is_torch else np.sqrt(x)

    def clip_min(self, x, lo: float):
        return self._torch.clamp(x, min=lo) if self.is_torch else np.maximum(x, lo)

    def where(self, cond, a, b):
        if self.is_torch:
            return self._torch.where(cond, a, b)
        return np.where(cond, a, b)

    def take_columns(self, x, index):
        """``x[index[j], j]`` for every column ``j`` (per-target selection)."""
        if self.is_torch:
            return self._torch.gather(x, 0, index[None, :]).squeeze(0)
        return np.take_along_axis(x, index[None, :], axis=0)[0]

    def outer(self, a, b):
        return a[:, None] * b[None, :]

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

    def copy(self, x):
        return x.clone() if self.is_torch else x.copy()

    def sum_all(self, x) -> float:
        return float(x.sum())

    def finfo_eps(self) -> float:
        return float(np.finfo(self.dtype_name).eps)


def namespace(device=None, dtype: str = "float64") -> Namespace:
    """The :class:`Namespace` for ``device`` (None = numpy) and ``dtype``."""
    return Namespace(device, dtype)
