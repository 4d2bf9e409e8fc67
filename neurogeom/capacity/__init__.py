"""Manifold capacity: replica mean-field theory, effective geometry, correlated and simulated capacity.

Submodules: :mod:`.qp` (the batched non-negative QP solver every estimator shares),
:mod:`.mft` (replica MFT capacity, radius and dimension; PRX 2018), :mod:`.centers`
(center-correlation removal on the Stiefel manifold).
"""

from .qp import QPResult, kkt_residual, project_onto_polyhedral_cone, solve_nonneg_qp
from .mft import MFTResult, manifold_capacity, mft_analysis

__all__ = ["QPResult", "kkt_residual", "project_onto_polyhedral_cone", "solve_nonneg_qp",
           "MFTResult", "manifold_capacity", "mft_analysis"]

# effective geometry (GLUE), correlated and simulated capacity (branch capacity-geom)
from .correlated import ball_capacity, correlated_capacity
from .effective import effective_geometry
from .simulated import simulated_capacity

__all__ += ["ball_capacity", "correlated_capacity", "effective_geometry", "simulated_capacity"]
