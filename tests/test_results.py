"""Every analysis result describes itself the same way: analysis, parameters, input provenance,
version and paper citations in attrs, through one builder (neurogeom._results); the options share
names and defaults across analyses and are keyword-only."""

import inspect
import pathlib

import numpy as np
import pytest
import xarray as xr

import loaders
import neurogeom as ng
from neurogeom import io as ngio
from neurogeom._results import REFERENCES, attr_value, build_result

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def responses():
    a = loaders.synthetic.object_manifolds(n_objects=4, n_images=8, n_neuroids=20,
                                           n_repetitions=2, seed=0)
    return a.assign_attrs(species="Macaca mulatta", subject="monkey M")


@pytest.fixture(scope="module")
def mean(responses):
    return ng.average_repetitions(responses)


@pytest.fixture(scope="module")
def model(mean):
    # a "model" with its own provenance: noisy copy of the clean means
    rng = np.random.default_rng(1)
    feats = mean.copy(data=mean.values + rng.standard_normal(mean.shape))
    return feats.assign_attrs(source="test.model", model="toy", layer="layer1", units="a.u.")


# analysis -> (how to run it small, the data arguments, parameter values it must record)
CASES = {
    "manifold_capacity": (
        lambda r, m, f: ng.manifold_capacity(m, by="object_name", n_t=30, seed=3, kappa=0.1),
        ("a",), {"by": "object_name", "n_t": 30, "seed": 3, "kappa": 0.1,
                 "center_correlations": 1, "dimension": "rank"}),
    "effective_geometry": (
        lambda r, m, f: ng.effective_geometry(m, by="object_name", n_t=10, n_dichotomies=3,
                                              seed=3),
        ("a",), {"by": "object_name", "n_t": 10, "n_dichotomies": 3, "seed": 3, "center": 1,
                 "absolute_alignment": 1, "dichotomy": "random"}),
    "correlated_capacity": (
        lambda r, m, f: ng.correlated_capacity(m, by="object_name", n_t=10, n_dichotomies=3,
                                               seed=3),
        ("a",), {"by": "object_name", "n_t": 10, "n_dichotomies": 3, "seed": 3,
                 "ridge": "none"}),
    "simulated_capacity": (
        lambda r, m, f: ng.simulated_capacity(m, by="object_name", n_dichotomies=10,
                                              n_bootstrap=20, seed=3),
        ("a",), {"by": "object_name", "n_dichotomies": 10, "n_bootstrap": 20, "seed": 3}),
    "neural_predictivity": (
        lambda r, m, f: ng.neural_predictivity(f, r, regression="pls", n_components=3,
                                               n_splits=3, seed=3),
        ("source", "target"), {"regression": "pls", "n_components": 3, "n_splits": 3,
                               "seed": 3, "average_repetitions": 1, "stratify_by": "object_name"}),
    "noise_ceiling": (
        lambda r, m, f: ng.noise_ceiling(r, n_splits=4, seed=3),
        ("target",), {"n_splits": 4, "seed": 3}),
    "spectral_decomposition": (
        lambda r, m, f: ng.spectral_decomposition(f, r, p=[4, 8], n_trials=2, seed=3),
        ("source", "target"), {"p": [4, 8], "n_trials": 2, "seed": 3,
                               "average_repetitions": 1, "center": 1}),
    "latent_dimensionality": (
        lambda r, m, f: ng.latent_dimensionality(r, dims=[1, 2], n_splits=1, seed=3,
                                                 methods=("rrr",)),
        ("a",), {"dims": [1, 2], "n_splits": 1, "seed": 3, "methods": ["rrr"], "crossed": 1}),
    "cvpca": (
        lambda r, m, f: ng.cvpca(r, n_shuffles=2, seed=3),
        ("a",), {"n_shuffles": 2, "seed": 3, "repeats": [0, 1]}),
    "svca": (
        lambda r, m, f: ng.svca(r, n_components=3, chunk=4, seed=3),
        ("a",), {"n_components": 3, "chunk": 4, "seed": 3}),
    "manifold_alignment": (
        lambda r, m, f: ng.manifold_alignment(r, "object_name", n_components=2),
        ("a",), {"by": "object_name", "n_components": 2, "variance": 0.9, "other_by": "none"}),
    "decoding_accuracy": (
        lambda r, m, f: ng.decoding_accuracy(r, "object_name", n_splits=3, seed=3,
                                             per_manifold=False),
        ("a",), {"by": "object_name", "n_splits": 3, "seed": 3, "classifier": "linear_svm",
                 "per_manifold": 0}),
}
#: analyses without randomness (no `seed`)
DETERMINISTIC = {"manifold_alignment"}
# options that do not change the numbers, or apply only to another setting, are not recorded
NOT_RECORDED = {
    "latent_dimensionality": {"progress"},
    "manifold_capacity": {"progress"},      # how the run is shown, not what it computes
    "effective_geometry": {"progress"},
    "correlated_capacity": {"progress"},
    "neural_predictivity": {"alphas", "alpha_per_target", "cv"},   # ridge only; this runs PLS
}
CAPACITY = ("manifold_capacity", "effective_geometry", "correlated_capacity")


@pytest.fixture(scope="module")
def results(responses, mean, model):
    return {name: run(responses, mean, model) for name, (run, _, _) in CASES.items()}


def _options(name):
    """The function's options: every parameter after its data arguments."""
    _, data_args, _ = CASES[name]
    return {p: v for p, v in inspect.signature(getattr(ng, name)).parameters.items()
            if p not in data_args}


@pytest.mark.parametrize("name", CASES)
def test_result_describes_itself(results, name, responses, mean, model):
    ds = results[name]
    _, data_args, recorded = CASES[name]
    assert ds.attrs["analysis"] == name
    assert ds.attrs["neurogeom_version"] == ng.__version__
    refs = ds.attrs["references"]
    assert isinstance(refs, list) and refs and set(refs) <= set(REFERENCES.values())
    # every option is recorded under its own name, and listed in `parameters`
    expected = set(_options(name)) - NOT_RECORDED.get(name, set())
    assert set(ds.attrs["parameters"]) == expected
    for key, value in recorded.items():
        assert ds.attrs[key] == value, key
    # input provenance: one prefix per input assembly
    if data_args == ("source", "target"):
        assert ds.attrs["inputs"] == ["source", "target"]
        assert ds.attrs["source_model"] == "toy" and ds.attrs["source_layer"] == "layer1"
        assert ds.attrs["source_shape"] == list(model.shape)
        assert ds.attrs["target_shape"] == list(responses.shape)
        assert ds.attrs["target_species"] == "Macaca mulatta"
        assert ds.attrs["target_source"] == responses.attrs["source"]
    else:
        given = mean if name in CAPACITY + ("simulated_capacity",) else responses
        assert ds.attrs["inputs"] == ["input"]
        assert ds.attrs["input_shape"] == list(given.shape)
        assert ds.attrs["input_dims"] == list(given.dims)
        assert ds.attrs["input_source"] == given.attrs["source"]
        assert ds.attrs["input_subject"] == "monkey M"
        assert ds.attrs["input_region"] == ["IT"]


@pytest.mark.parametrize("name", CASES)
def test_result_round_trips_with_identical_attrs(results, name, tmp_path):
    ds = results[name]
    back = ngio.open(ngio.to_netcdf(ds, tmp_path / f"{name}.nc"))
    assert set(back.attrs) == set(ds.attrs)
    for key, value in ds.attrs.items():
        assert back.attrs[key] == value, key
        assert type(back.attrs[key]) is type(value) or (
            isinstance(value, (int, float)) and np.isscalar(back.attrs[key])), key
    xr.testing.assert_identical(back, ds)


@pytest.mark.parametrize("name", CASES)
def test_no_attr_or_docstring_points_to_design_notes(results, name):
    ds = results[name]
    text = " ".join(str(v) for v in ds.attrs.values())
    assert "SCIENCE" not in text
    doc = getattr(ng, name).__doc__
    assert "SCIENCE" not in doc
    # a numpydoc References section whose entries are the registry's citations
    assert "\n    References\n    ----------\n" in doc
    cited = " ".join(doc.split("References\n    ----------\n")[1].split())
    for ref in ds.attrs["references"]:
        assert " ".join(ref.split()) in cited, ref


@pytest.mark.parametrize("cls, keys", [("NeuralCrossEncoder", ("nce",)),
                                       ("ReducedRankRegression", ("rrr", "nce"))])
def test_estimators_from_papers_cite_them(cls, keys):
    doc = getattr(ng, cls).__doc__
    assert "\n    References\n    ----------\n" in doc
    cited = " ".join(doc.split("References\n    ----------\n")[1].split())
    for key in keys:
        assert " ".join(REFERENCES[key].split()) in cited, key


def test_no_user_facing_text_mentions_the_design_notes():
    offenders = [str(p.relative_to(ROOT)) for folder in ("neurogeom", "loaders", "neurogeom_cli")
                 for p in sorted((ROOT / folder).rglob("*.py")) if "SCIENCE.md" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("name", CASES)
def test_options_are_keyword_only(name):
    # the data arguments (and `by`, which names the manifolds) may be positional; nothing else
    positional = [p for p, v in _options(name).items()
                  if v.kind is not inspect.Parameter.KEYWORD_ONLY and p != "by"]
    assert positional == []


def test_same_option_same_name_and_default():
    params = {name: inspect.signature(getattr(ng, name)).parameters for name in CASES}
    # one name for the repetition-averaging switch
    assert not [n for n, p in params.items() if "average_repetitions_first" in p]
    assert params["neural_predictivity"]["average_repetitions"].default is True
    assert params["spectral_decomposition"]["average_repetitions"].default is True
    # one default for the number of Gaussian samples t
    assert {params[n]["n_t"].default for n in CAPACITY} == {200}
    # every analysis with randomness takes `seed`
    assert all("seed" in p for n, p in params.items() if n not in DETERMINISTIC)
    # seed defaults to 0, except where 1 is Brain-Score's split random_state (as the README says)
    seeds = {name: p["seed"].default for name, p in params.items() if "seed" in p}
    assert {name: s for name, s in seeds.items() if s != 0} == {"neural_predictivity": 1,
                                                                  "noise_ceiling": 1}
    # one default grid of ridge penalties wherever a penalty is selected
    grids = {params["neural_predictivity"]["alphas"].default,
             params["latent_dimensionality"]["alphas"].default,
             *(inspect.signature(cls).parameters["alphas"].default
               for cls in (ng.RidgeRegression, ng.ReducedRankRegression, ng.NeuralCrossEncoder))}
    assert grids == {tuple(np.logspace(-2, 7, 20).tolist())}
    # one default number of permutations for the geometry agreement's null
    assert (inspect.signature(ng.compare_geometry).parameters["n_permutations"].default
            == inspect.signature(ng.layer_profile).parameters["n_permutations"].default == 1000)


def test_repeated_targets_without_averaging_are_refused(responses, model):
    with pytest.raises(ng.AnalysisError, match="average_repetitions"):
        ng.spectral_decomposition(model, responses, average_repetitions=False, p=[4])


def test_attr_value_rules():
    assert attr_value(None) == "none"
    assert attr_value(True) == 1 and type(attr_value(np.bool_(False))) is int
    assert type(attr_value(np.float32(0.5))) is float
    assert attr_value((1, 2)) == [1, 2] and attr_value(range(3)) == [0, 1, 2]
    assert attr_value([1, 2.5]) == [1.0, 2.5] and attr_value(np.array(["a", "b"])) == ["a", "b"]
    assert attr_value([]) == ""
    assert attr_value({"b": 1, "a": None}) == '{"a": null, "b": 1}'
    assert attr_value(pathlib.Path("x") / "y.nc") == str(pathlib.Path("x/y.nc"))
    assert attr_value([None, 1]) == ["none", "1"]
    assert attr_value(np.datetime64("2026-01-02")) == "2026-01-02"
    assert attr_value(1 + 2j) == "(1+2j)"


def test_builder_refuses_duplicates_and_unknown_references(mean):
    kw = {"analysis": "x", "inputs": {"input": mean}, "references": ("mft",)}
    with pytest.raises(ValueError, match="'seed'"):
        build_result({}, parameters={"seed": 0}, details={"seed": 1}, **kw)
    with pytest.raises(ValueError, match="'input_shape'"):
        build_result({}, parameters={"input_shape": 0}, **kw)
    with pytest.raises(KeyError, match="nope"):
        build_result({}, parameters={}, analysis="x", inputs={}, references=("nope",))
    with pytest.raises(KeyError):
        build_result({}, parameters={}, analysis="x", inputs={}, references=())
    ds = build_result({"v": ("k", [1.0])}, parameters={"seed": None}, **kw)
    assert ds.attrs["seed"] == "none" and ds.attrs["parameters"] == ["seed"]
    assert list(ds.attrs)[:3] == ["analysis", "parameters", "seed"]
    assert list(ds.attrs)[-2:] == ["neurogeom_version", "references"]
