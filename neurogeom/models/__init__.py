"""Geometry of model representations (torch): the MMCR objective and the manifolds that
augmentations, adversarial perturbations, neuronal noise and translations make of each image.

- :class:`MMCRLoss`, :func:`train_ssl`, :func:`linear_probe`, :func:`augmentation_manifolds`:
  maximum manifold capacity representations (Yerxa, Kuang, Simoncelli & Chung, NeurIPS 2023).
- :func:`adversarial_manifolds` (with :func:`pgd_attack`), :func:`stochastic_manifolds` and
  :class:`PoissonNoise`: adversarial and stochastic manifolds (Dapello et al., NeurIPS 2021).
- :func:`translation_manifolds` (and the :class:`RandomShift` augmentation): each image under a
  grid of shifts (Ligeralde et al. 2023, arXiv:2312.02791).

Every manifold builder takes any ``torch.nn.Module`` and layer names from
``model.named_modules()``, and returns one ``(presentation, neuroid)`` assembly per layer whose
``object_name`` coord labels one manifold per image, ready for
``neurogeom.manifold_capacity(a, by="object_name")``. This package imports torch; ``import
neurogeom`` does not (``neurogeom.models`` is imported on first use).
"""

from .adversarial import adversarial_manifolds, pgd_attack
from .mmcr import MMCRLoss, augmentation_manifolds, linear_probe, train_ssl
from .stochastic import PoissonNoise, stochastic_manifolds
from .translation import RandomShift, shift_images, translation_manifolds

__all__ = ["MMCRLoss", "train_ssl", "linear_probe", "augmentation_manifolds",
           "adversarial_manifolds", "pgd_attack", "stochastic_manifolds", "PoissonNoise",
           "translation_manifolds", "RandomShift", "shift_images"]
