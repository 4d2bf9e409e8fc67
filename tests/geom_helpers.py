"""Synthetic manifolds with known geometry for the capacity-geometry tests."""

import numpy as np
import xarray as xr


def as_assembly(points: np.ndarray, owner, by: str = "object_name") -> xr.DataArray:
    """A (presentation, neuroid) assembly whose manifold label is ``owner`` (ints or strings)."""
    m, n = points.shape
    owner = np.asarray(owner)
    names = owner if owner.dtype.kind in "US" else np.array([f"m{o:04d}" for o in owner])
    return xr.DataArray(
        points, dims=("presentation", "neuroid"),
        coords={"stimulus_id": ("presentation", np.array([f"s{i}" for i in range(m)])),
                by: ("presentation", names),
                "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(n)]))},
        attrs={"units": "a.u."})


def orthonormal(rng, n_features: int, n_vectors: int) -> np.ndarray:
    """(n_vectors, n_features) orthonormal rows."""
    q, _ = np.linalg.qr(rng.standard_normal((n_features, n_vectors)))
    return q.T


def segments(rng, n_manifolds: int, n_features: int, radius: float, n_points: int = 2,
             rho_center: float = 0.0, rho_axis: float = 0.0):
    """Segments c_mu + s R u_mu, s in linspace(-1, 1, n_points), |c| = 1, |u| = 1.

    Centers have pairwise correlation ``rho_center`` (a shared unit component with weight
    sqrt(rho)); axes likewise ``rho_axis``; all independent parts are mutually orthogonal, so
    c.c' = rho_c and u.u' = rho_a exactly (SCIENCE.md §3 construction).
    """
    basis = orthonormal(rng, n_features, 2 * n_manifolds + 2)
    common_c, common_u = basis[0], basis[1]
    own_c, own_u = basis[2:2 + n_manifolds], basis[2 + n_manifolds:]
    c = np.sqrt(rho_center) * common_c + np.sqrt(1 - rho_center) * own_c
    u = np.sqrt(rho_axis) * common_u + np.sqrt(1 - rho_axis) * own_u
    s = np.linspace(-1, 1, n_points)
    pts = c[:, None, :] + radius * s[None, :, None] * u[:, None, :]
    return pts.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points)


def circles(rng, n_manifolds: int, n_features: int, radius: float, n_points: int,
            orthogonal: bool = True):
    """Densely sampled circles (D = 2) of relative radius R around unit centers.

    With ``orthogonal`` every center and axis is orthogonal to all others (needs
    n_features >= 3 P): the manifolds are uncorrelated exactly.
    """
    if orthogonal:
        basis = orthonormal(rng, n_features, 3 * n_manifolds).reshape(n_manifolds, 3, n_features)
    else:
        basis = rng.standard_normal((n_manifolds, 3, n_features)) / np.sqrt(n_features)
    phi = 2 * np.pi * np.arange(n_points) / n_points
    ring = np.stack([np.cos(phi), np.sin(phi)], axis=1)               # (M, 2)
    pts = basis[:, None, 0, :] + radius * np.einsum("md,pdn->pmn", ring, basis[:, 1:, :])
    return pts.reshape(-1, n_features), np.repeat(np.arange(n_manifolds), n_points)
