"""The one result builder: every analysis returns its Dataset through :func:`build_result`.

A result file must explain itself without the code that made it. :func:`build_result` makes the
Dataset from its variables and coords and writes the same attrs for every analysis:

``analysis``
    The public function that produced the result (``"manifold_capacity"``, …).
``parameters`` and one attr per parameter
    ``parameters`` lists the names of the analysis' options; each option is also an attr under
    its own name, with the value actually used (a default resolved, e.g. ``n_dichotomies``).
``inputs`` and the input provenance
    ``inputs`` lists the prefixes of the input assemblies: ``"input"`` for one-input analyses,
    the argument names (``"source"``, ``"target"``) for two-input ones. For each prefix:
    ``<prefix>_dims``, ``<prefix>_shape``, ``<prefix>_name`` (when named), the assembly's
    provenance attrs (``source``, ``species``, ``loader``, ``model``, ``layer``, ``units``, …)
    as ``<prefix>_<attr>``, and the distinct values of its ``subject``, ``session`` and
    ``region`` neuroid coords.
``neurogeom_version``
    The version that computed the result.
``references``
    Citations of the papers whose method the analysis implements (keys of :data:`REFERENCES`).

Every other attr (method notes, sizes, diagnostics) is passed as ``details``.

Attribute values are made storable in netCDF by one rule set (:func:`attr_value`): ``None``
becomes ``"none"``, a bool becomes 0/1, numpy scalars become Python numbers, sequences become
lists of numbers or strings (an empty sequence becomes ``""``), a dict becomes its JSON text.
Every value is then checked with :func:`neurogeom.io.attr_problem`, so a result always
round-trips through :func:`neurogeom.io.to_netcdf` / :func:`neurogeom.io.open` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from numbers import Number
from pathlib import PurePath

import numpy as np
import xarray as xr

from ._version import __version__
from .io import attr_problem

__all__ = ["PROVENANCE_ATTRS", "REFERENCES", "attr_value", "build_result", "input_provenance"]

#: Paper citations, by the short key the analyses use.
REFERENCES: dict[str, str] = {
    "mft": ("Chung, Lee & Sompolinsky (2018). Classification and geometry of general perceptual "
            "manifolds. Phys. Rev. X 8, 031003."),
    "mft_dnn": ("Cohen, Chung, Lee & Sompolinsky (2020). Separability and geometry of object "
                "manifolds in deep neural networks. Nat. Commun. 11, 746."),
    "glue": ("Chou, Wakhloo, Canatar, Chung et al. (2024). Neural manifold capacity captures "
             "representation geometry, correlations, and task-efficiency across species and "
             "behaviors. bioRxiv (v1 'GCMC', v2 'GLUE')."),
    "correlated": ("Wakhloo, Sussman & Chung (2023). Linear classification of neural manifolds "
                   "with correlated variability. Phys. Rev. Lett. 131, 027301."),
    "cover": ("Cover (1965). Geometrical and statistical properties of systems of linear "
              "inequalities with applications in pattern recognition. IEEE Trans. Electron. "
              "Comput. EC-14, 326-334."),
    "brainscore": ("Schrimpf, Kubilius, Hong, Majaj, Rajalingham, Issa, Kar, Bashivan, "
                   "Prescott-Roy, Geiger, Schmidt, Yamins & DiCarlo (2018). Brain-Score: which "
                   "artificial neural network for object recognition is most brain-like? "
                   "bioRxiv 407007."),
    "spearman_brown": ("Spearman (1910). Correlation calculated from faulty data. Br. J. "
                       "Psychol. 3, 271-295; Brown (1910). Some experimental results in the "
                       "correlation of mental abilities. Br. J. Psychol. 3, 296-322."),
    "spectral": ("Canatar, Feather, Wakhloo & Chung (2023). A spectral theory of neural "
                 "prediction and alignment. Advances in Neural Information Processing Systems "
                 "36 (NeurIPS 2023)."),
    "nce": ("Schmutz, Haydaroğlu, Wang, Feng, Carandini & Harris (2025). High-dimensional "
            "neuronal activity from low-dimensional latent dynamics: a solvable model. Advances "
            "in Neural Information Processing Systems (NeurIPS 2025)."),
    "rrr": ("Izenman (1975). Reduced-rank regression for the multivariate linear model. J. "
            "Multivar. Anal. 5, 248-264."),
    "cvpca": ("Stringer, Pachitariu, Steinmetz, Carandini & Harris (2019). High-dimensional "
              "geometry of population responses in visual cortex. Nature 571, 361-365."),
    "dask": ("Rocklin (2015). Dask: parallel computation with blocked algorithms and task "
             "scheduling. Proc. 14th Python in Science Conf., 130-136."),
    "maa": ("Kuoch, Chou, Parthasarathy, Dapello, DiCarlo, Sompolinsky & Chung (2024). Probing "
            "biological and artificial neural networks with task-dependent neural manifolds. "
            "Conference on Parsimony and Learning (CPAL), PMLR 234."),
    "principal_angles": ("Björck & Golub (1973). Numerical methods for computing angles "
                         "between linear subspaces. Math. Comp. 27, 579-594."),
    "decoding": ("Hung, Kreiman, Poggio & DiCarlo (2005). Fast readout of object identity from "
                 "macaque inferior temporal cortex. Science 310, 863-866."),
    "majaj": ("Majaj, Hong, Solomon & DiCarlo (2015). Simple learned weighted sums of inferior "
              "temporal neuronal firing rates accurately predict human core object recognition "
              "performance. J. Neurosci. 35, 13402-13418."),
    "rsa": ("Kriegeskorte, Mur & Bandettini (2008). Representational similarity analysis - "
            "connecting the branches of systems neuroscience. Front. Syst. Neurosci. 2, 4."),
    "procrustes": ("Schönemann (1966). A generalized solution of the orthogonal Procrustes "
                   "problem. Psychometrika 31, 1-10."),
    "mmcr": ("Yerxa, Kuang, Simoncelli & Chung (2023). Learning efficient coding of natural "
             "images with maximum manifold capacity representations. Advances in Neural "
             "Information Processing Systems 36 (NeurIPS 2023)."),
    "adversarial_geometry": ("Dapello, Feather, Le, Marques, Cox, McDermott, DiCarlo & Chung "
                             "(2021). Neural population geometry reveals the role of "
                             "stochasticity in robust perception. Advances in Neural Information "
                             "Processing Systems 34 (NeurIPS 2021)."),
    "pgd": ("Madry, Makelov, Schmidt, Tsipras & Vladu (2018). Towards deep learning models "
            "resistant to adversarial attacks. International Conference on Learning "
            "Representations (ICLR 2018)."),
    "retinal_waves": ("Ligeralde, Kuang, Yerxa, Pitcher, Feller & Chung (2023). Unsupervised "
                      "learning on spontaneous retinal activity leads to efficient neural "
                      "representation geometry. UniReps workshop, PMLR 243, 182-193; "
                      "arXiv:2312.02791."),
    "svca": ("Stringer, Pachitariu, Steinmetz, Reddy, Carandini & Harris (2019). Spontaneous "
             "behaviors drive multidimensional, brainwide activity. Science 364, eaav7893."),
}

#: Assembly attrs copied into a result as ``<prefix>_<attr>`` when present.
PROVENANCE_ATTRS = ("source", "species", "subject", "session", "loader", "model", "layer",
                    "stimulus", "units", "identifier", "stimulus_set_identifier",
                    "neurogeom_version")

#: Neuroid coords whose distinct values are recorded (at most ``_MAX_LABELS`` of them).
_PROVENANCE_COORDS = ("subject", "session", "region")
_MAX_LABELS = 20


def attr_value(value):
    """``value`` as a netCDF-storable attribute (the rules in the module docstring).

    Raises
    ------
    TypeError
        When the converted value still cannot be stored: the caller must describe it as a
        string itself.
    """
    if value is None:
        out = "none"
    elif isinstance(value, (bool, np.bool_)):
        out = int(value)
    elif isinstance(value, np.generic):
        return attr_value(value.item())   # datetime64 -> datetime -> its text, below
    elif isinstance(value, complex):
        out = str(value)
    elif isinstance(value, (str, Number)):
        out = value
    elif isinstance(value, PurePath):
        out = str(value)
    elif isinstance(value, Mapping):
        out = json.dumps({str(k): v for k, v in value.items()}, sort_keys=True, default=str)
    elif isinstance(value, (list, tuple, range, np.ndarray)):
        items = [attr_value(v) for v in np.asarray(value, dtype=object).ravel().tolist()] \
            if isinstance(value, np.ndarray) else [attr_value(v) for v in value]
        if not items:
            out = ""
        elif all(isinstance(v, str) for v in items):
            out = items
        elif all(isinstance(v, Number) for v in items):
            out = items if len({type(v) for v in items}) == 1 else [float(v) for v in items]
        else:
            out = [str(v) for v in items]
    else:
        out = str(value)
    problem = attr_problem(out)
    if problem is not None:
        raise TypeError(f"cannot store {value!r} as a result attribute: {problem}")
    return out


def input_provenance(prefix: str, a: xr.DataArray) -> dict:
    """Provenance attrs of one input assembly, each name starting with ``prefix + "_"``."""
    out = {f"{prefix}_dims": [str(d) for d in a.dims],
           f"{prefix}_shape": [int(n) for n in a.shape]}
    if a.name is not None:
        out[f"{prefix}_name"] = str(a.name)
    for key in PROVENANCE_ATTRS:
        if key in a.attrs:
            try:
                out[f"{prefix}_{key}"] = attr_value(a.attrs[key])
            except TypeError:   # provenance must never stop an analysis: keep its text
                out[f"{prefix}_{key}"] = str(a.attrs[key])
    for key in _PROVENANCE_COORDS:
        if key in a.coords and key not in a.attrs and a[key].ndim == 1:
            labels = sorted({str(v) for v in np.asarray(a[key].values).tolist()})
            if len(labels) > _MAX_LABELS:
                labels = labels[:_MAX_LABELS] + [f"... ({len(labels)} in all)"]
            out[f"{prefix}_{key}"] = labels
    return out


def build_result(data_vars: Mapping, coords: Mapping | None = None, *, analysis: str,
                 parameters: Mapping, inputs: Mapping[str, xr.DataArray],
                 references: Sequence[str], details: Mapping | None = None) -> xr.Dataset:
    """The result Dataset of an analysis, with the attrs every result carries.

    Parameters
    ----------
    data_vars, coords : mapping
        As for :class:`xarray.Dataset`.
    analysis : str
        Name of the public function that produced the result.
    parameters : mapping
        The function's options and the values used (converted by :func:`attr_value`).
    inputs : mapping of str to xarray.DataArray
        The input assemblies, keyed by their attr prefix (``{"input": a}`` or
        ``{"source": source, "target": target}``).
    references : sequence of str
        Keys of :data:`REFERENCES`, in the order they should be cited.
    details : mapping, optional
        Further attrs: method notes, sizes, diagnostics.

    Returns
    -------
    xarray.Dataset
        With attrs, in this order: ``analysis``, ``parameters`` and each parameter,
        ``details``, ``inputs`` and each input's provenance, ``neurogeom_version``,
        ``references``.

    Raises
    ------
    KeyError
        An unknown reference key.
    ValueError
        Two attrs with the same name (a parameter, a detail and a provenance attr must differ).
    """
    unknown = [key for key in references if key not in REFERENCES]
    if unknown or not references:
        raise KeyError(f"unknown or no reference keys {unknown}; known: {sorted(REFERENCES)}")
    attrs: dict = {"analysis": str(analysis), "parameters": [str(k) for k in parameters]}

    def add(name, value):
        if name in attrs:
            raise ValueError(f"result attr {name!r} of {analysis} is set twice")
        attrs[name] = attr_value(value)

    for name, value in parameters.items():
        add(str(name), value)
    for name, value in (details or {}).items():
        add(str(name), value)
    add("inputs", list(inputs))
    for prefix, a in inputs.items():
        for name, value in input_provenance(prefix, a).items():
            add(name, value)
    add("neurogeom_version", __version__)
    add("references", [REFERENCES[key] for key in references])
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
