"""The one array backend: its backend/device convention, and torch = numpy for every analysis
that has a torch path."""

import inspect
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import loaders
import neurogeom as ng
from neurogeom._backend import BACKENDS, get_namespace, resolve, torch_device
from neurogeom.capacity.qp import kkt_residual, solve_nonneg_qp
from neurogeom.errors import AnalysisError
from neurogeom.latent import NeuralCrossEncoder

torch = pytest.importorskip("torch")

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device on this machine"
# an index past the last CUDA device: unusable on every machine, with or without a GPU
MISSING_GPU = f"cuda:{torch.cuda.device_count()}"


# --- the convention ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend, device, expected", [
    (None, None, ("numpy", "cpu")),            # the default: numpy on the CPU
    (None, "cpu", ("numpy", "cpu")),           # naming the CPU does not switch to torch
    ("numpy", None, ("numpy", "cpu")),
    ("numpy", "cpu", ("numpy", "cpu")),
    ("torch", None, ("torch", "cpu")),         # device None is the CPU for torch too
    ("torch", "cpu", ("torch", "cpu")),
])
def test_cpu_rules(backend, device, expected):
    name, dev = resolve(backend, device)
    assert (name, str(dev)) == expected
    xp = get_namespace(backend, device)
    assert xp.name == expected[0] and xp.on_cpu
    assert xp.is_torch == (expected[0] == "torch")


def test_a_torch_cpu_device_object_follows_the_same_rules():
    assert resolve(None, torch.device("cpu")) == ("numpy", "cpu")
    assert resolve("torch", torch.device("cpu")) == ("torch", torch.device("cpu"))
    assert torch_device(None) == torch.device("cpu")
    assert torch_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:0-object"])
def test_a_gpu_device_alone_selects_torch(device):
    device = torch.device("cuda:0") if device == "cuda:0-object" else device
    name, dev = resolve(None, device)
    assert name == "torch" and dev.type == "cuda"
    assert resolve("torch", device) == (name, dev)
    assert not get_namespace(device=device).on_cpu
    assert torch_device(device).type == "cuda"


def test_unknown_backend_is_named_with_the_choices():
    with pytest.raises(AnalysisError, match="backend") as info:
        resolve("jax")
    assert "'jax'" in str(info.value)
    assert all(repr(b) in str(info.value) for b in BACKENDS)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", MISSING_GPU])
def test_numpy_with_a_gpu_names_both(device):
    """Checked before availability: the conflict is the user's, whatever the machine has."""
    with pytest.raises(AnalysisError, match="CPU only") as info:
        resolve("numpy", device)
    assert "'numpy'" in str(info.value) and repr(device) in str(info.value)


@pytest.mark.parametrize("backend", [None, "torch"])
def test_an_unavailable_gpu_names_it_and_lists_what_is_available(backend):
    with pytest.raises(AnalysisError, match="not usable") as info:
        resolve(backend, MISSING_GPU)
    message = str(info.value)
    assert repr(MISSING_GPU) in message and "'cpu'" in message
    assert all(repr(f"cuda:{i}") in message for i in range(torch.cuda.device_count()))


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA; the case is covered by cuda:N")
def test_cuda_without_a_gpu():
    with pytest.raises(AnalysisError, match="'cuda:0' is not usable.*'cpu'"):
        resolve(None, "cuda:0")


@pytest.mark.parametrize("device", ["gpu0", "cuda:x", ""])
def test_a_bogus_device_string(device):
    with pytest.raises(AnalysisError, match="not a device name") as info:
        resolve(None, device)
    assert repr(device) in str(info.value) and "'cpu'" in str(info.value)


def test_a_device_of_the_wrong_type():
    with pytest.raises(AnalysisError, match="int"):
        resolve(None, 0)


def test_bad_dtype():
    with pytest.raises(AnalysisError, match="dtype") as info:
        get_namespace(dtype="float16")
    assert all(repr(d) in str(info.value) for d in ("float16", "float64", "float32"))


def test_the_numpy_path_does_not_need_torch_devices():
    """numpy on the CPU resolves without touching torch's device machinery: the device stays
    the plain string the attrs record."""
    xp = get_namespace()
    assert xp.device == "cpu" and xp.label == "numpy" and xp.dtype == np.float64
    assert get_namespace(backend="torch").label == "torch:cpu"


def test_numpy_on_the_cpu_never_imports_torch():
    """`import neurogeom` and numpy runs must not pay torch's import time."""
    code = ("import sys, neurogeom._backend as b; b.get_namespace(); b.get_namespace('numpy', "
            "'cpu'); b.resolve(None, None); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_single_threaded_restores_torch_threads():
    xp = get_namespace(backend="torch")
    before = torch.get_num_threads()
    with xp.single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# Every public entry point with a torch path takes the same two keyword-only options, default
# None (so the module docstring's rules apply unchanged); the NCE, torch-only, takes device.
BOTH = [ng.manifold_capacity, ng.capacity.mft_analysis, ng.effective_geometry,
        ng.correlated_capacity, ng.neural_predictivity, ng.spectral_decomposition, ng.cvpca,
        ng.svca, ng.eigenspectrum.cvpca_spectrum, ng.eigenspectrum.svca_spectrum,
        solve_nonneg_qp, kkt_residual]
ESTIMATORS = [ng.RidgeRegression, ng.PLSRegression, ng.LinearRegression]
DEVICE_ONLY = [NeuralCrossEncoder, ng.latent_dimensionality]


@pytest.mark.parametrize("func", BOTH + DEVICE_ONLY, ids=lambda f: f.__name__)
def test_public_signatures(func):
    params = inspect.signature(func).parameters
    names = ["device"] if func in DEVICE_ONLY else ["backend", "device"]
    for name in names:
        assert params[name].default is None
        assert params[name].kind == inspect.Parameter.KEYWORD_ONLY or func is NeuralCrossEncoder
    if func in DEVICE_ONLY:
        assert "backend" not in params


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_estimators_store_both_options(cls):
    est = cls(backend="torch", device="cpu")
    assert (est.backend, est.device) == ("torch", "cpu")
    assert (cls().backend, cls().device) == (None, None)


def test_bad_options_fail_before_any_work():
    """An analysis given a bad backend/device says so, not something about the data."""
    empty = xr.DataArray(np.zeros((0, 0)), dims=("presentation", "neuroid"))
    for call in (lambda: ng.manifold_capacity(empty, by="x", backend="jax"),
                 lambda: ng.neural_predictivity(empty, empty, backend="numpy", device="cuda"),
                 lambda: ng.spectral_decomposition(empty, empty, device="gpu0"),
                 lambda: ng.cvpca(empty, backend="jax"),
                 lambda: ng.svca(empty, device=MISSING_GPU),
                 lambda: ng.latent_dimensionality(empty, device="gpu0")):
        with pytest.raises(AnalysisError, match="backend|device"):
            call()


def test_the_active_set_joint_solver_refuses_torch():
    """solver='active_set' is numpy/scipy: asking it for torch must not silently run numpy."""
    a = loaders.synthetic.object_manifolds(n_objects=4, n_images=5, n_neuroids=20,
                                           n_repetitions=1)
    with pytest.raises(AnalysisError, match="solver='shared'"):
        ng.effective_geometry(a, by="object_name", backend="torch")
    with pytest.raises(AnalysisError, match="solver='shared'"):
        ng.correlated_capacity(a, by="object_name", backend="torch")


def test_nce_device_goes_through_the_convention():
    x = np.random.default_rng(0).standard_normal((30, 6))
    with pytest.raises(AnalysisError, match="not a device name"):
        NeuralCrossEncoder(2, device="gpu0", max_epochs=1, progress=False).fit(x, x)
    model = NeuralCrossEncoder(2, max_epochs=1, progress=False).fit(x, x)
    assert model.device_ == torch.device("cpu")


# --- torch = numpy, for every analysis with a torch path ---------------------------------------

def _capacity_assembly():
    return loaders.synthetic.object_manifolds(n_objects=5, n_images=8, n_neuroids=30,
                                              n_repetitions=1, seed=2)


def _points_in_general_position():
    """16 points in 30 dimensions, uncentered: the joint QP's Gram matrix is non-singular, so
    its duals, and the per-manifold shares built from them, are unique. (With more points than
    dimensions only G·λ is unique: two exact solvers may return different λ, which moves the
    per-manifold capacities but not capacity_overall.)"""
    return loaders.synthetic.object_manifolds(n_objects=4, n_images=4, n_neuroids=30,
                                              n_repetitions=1, seed=2)


def _regression_pair():
    responses = loaders.synthetic.object_manifolds(n_objects=5, n_images=12, n_neuroids=16,
                                                   n_repetitions=4, noise=0.5, seed=3)
    return loaders.synthetic.random_features(responses, 90, noise=0.7, seed=1), responses


def _time_assembly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3)) @ rng.standard_normal((3, 40)) \
        + rng.standard_normal((400, 40))
    return xr.DataArray(x, dims=("time", "neuroid"),
                        coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(40)])})


REGRESSION = {"alphas": np.logspace(-2, 4, 7), "n_components": 5, "ceiling": False, "n_splits": 3}

# name: (build the input once, run the analysis on it with backend/device keywords, the
# variables to compare)
CASES = {
    "manifold_capacity": (_capacity_assembly,
                          lambda a, **kw: ng.manifold_capacity(a, by="object_name", n_t=40, **kw),
                          ["capacity", "radius", "dimension", "capacity_overall"]),
    "effective_geometry": (_points_in_general_position,
                           lambda a, **kw: ng.effective_geometry(
                               a, by="object_name", n_t=10, n_dichotomies=3, kappa=0.2,
                               center=False, solver="shared", **kw),
                           ["capacity", "radius", "dimension", "capacity_overall"]),
    "correlated_capacity": (_points_in_general_position,
                            lambda a, **kw: ng.correlated_capacity(
                                a, by="object_name", n_t=10, n_dichotomies=3, kappa=0.2,
                                center=False, solver="shared", **kw),
                            ["capacity", "capacity_overall"]),
    "neural_predictivity[ridge]": (_regression_pair,
                                   lambda p, **kw: ng.neural_predictivity(
                                       *p, regression="ridge", **REGRESSION, **kw),
                                   ["r", "alpha", "score"]),
    "neural_predictivity[pls]": (_regression_pair,
                                 lambda p, **kw: ng.neural_predictivity(
                                     *p, regression="pls", **REGRESSION, **kw),
                                 ["r", "score"]),
    "neural_predictivity[ols]": (_regression_pair,
                                 lambda p, **kw: ng.neural_predictivity(
                                     *p, regression="ols", **REGRESSION, **kw),
                                 ["r", "score"]),
    "spectral_decomposition": (_regression_pair,
                               lambda p, **kw: ng.spectral_decomposition(
                                   *p, p=[5, 20], n_trials=2, **kw),
                               ["eigenvalue", "alignment", "theory_error", "empirical_error"]),
    "cvpca[stimuli<neurons]": (lambda: loaders.synthetic.power_law_responses(40, 60, seed=1),
                               lambda a, **kw: ng.cvpca(a, n_shuffles=3, **kw),
                               ["cv_variance", "cv_variance_shuffle"]),
    "cvpca[stimuli>neurons]": (lambda: loaders.synthetic.power_law_responses(80, 30, seed=1),
                               lambda a, **kw: ng.cvpca(a, n_shuffles=3, **kw),
                               ["cv_variance", "cv_variance_shuffle"]),
    "svca": (_time_assembly, lambda a, **kw: ng.svca(a, n_components=8, **kw),
             ["shared_variance", "total_variance"]),
}


@pytest.fixture(scope="module", params=list(CASES))
def analysis(request):
    """One small input per analysis kind, its numpy result, and how to rerun it elsewhere."""
    build, run, variables = CASES[request.param]
    data = build()
    return run, data, variables, run(data)


@pytest.mark.parametrize("where", [
    {"backend": "torch"},
    pytest.param({"device": "cuda:0"},
                 marks=pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)),
], ids=["torch-cpu", "cuda"])
def test_torch_equals_numpy(analysis, where):
    """The same kernels in float64 on another library differ by round-off only. Both sides do
    the same operations, but BLAS/LAPACK (OpenBLAS in numpy, MKL or cuBLAS/cuSOLVER in torch)
    order the sums differently: each product or eigendecomposition is exact to ~n·eps ≈ 1e-13
    relative for these sizes (n <= 400), amplified by at most the conditioning of what follows.
    The iterative capacity QPs stop at KKT residual 1e-10 and may stop one iteration apart,
    which moves a dual by up to ~1e-9 relative (tests/test_capacity_qp.py); so 1e-7 relative
    (plus 1e-9 of the variable's scale for values that are zero up to round-off) is well above
    round-off yet far below any real difference (a wrong formula or a lost centering changes
    these numbers at 1e-2 or more)."""
    run, data, variables, expected = analysis
    got = run(data, **where)
    assert got.attrs.get("backend", "torch") == "torch"
    for name in variables:
        a, b = np.asarray(expected[name], dtype=float), np.asarray(got[name], dtype=float)
        finite = np.abs(a[np.isfinite(a)])
        scale = finite.max() if finite.size else 0.0
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9 * scale, err_msg=name)
