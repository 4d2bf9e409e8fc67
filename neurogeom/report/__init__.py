"""Pictures of neurogeom results and the self-contained HTML report.

:mod:`.plots` holds one function per result kind, each returning a matplotlib ``Figure`` (object
API, no pyplot state); :func:`figures` picks them by a result's ``analysis`` attr. :func:`html`
writes one HTML file with every result's figures, headline numbers and provenance;
:func:`save_figures` writes the figures as PNG files.
"""

from .html import figure_data_uri, headline_numbers, html, save_figures
from .plots import (PLOTS, alignment_matrices, batch_summary, capacity_geometry, cvpca_spectrum,
                    decoding, figures, latent_dimensionality, layer_profile, noise_ceiling,
                    predictivity, separability, spectral)

__all__ = ["html", "save_figures", "figures", "figure_data_uri", "headline_numbers", "PLOTS",
           "capacity_geometry", "layer_profile", "alignment_matrices", "decoding",
           "predictivity", "noise_ceiling", "separability", "spectral", "latent_dimensionality",
           "cvpca_spectrum", "batch_summary"]
