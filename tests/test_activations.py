"""model_activations: equality with a hand-captured forward pass, hooks, reductions, spill, bad input."""

import os

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from loaders.activations import RandomProjection, fit_pca, layer_names, model_activations
from loaders.synthetic import models as synth
from neurogeom import assembly as asm
from neurogeom.errors import AlignmentError, LoaderError

# float32 conv/linear results may differ in the last bits between batch sizes (different
# blocking inside the BLAS/conv kernels); activations here are O(1), so 1e-5 relative plus
# 1e-6 absolute is a few float32 ulps (2^-23 ~ 1.2e-7) accumulated over ~100-term dot products.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture
def net():
    return synth.untrained_convnet(seed=1)


@pytest.fixture
def images():
    return torch.rand(10, 1, 12, 12, generator=torch.Generator().manual_seed(0))


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def by_hand(model, x):
    """The layers' outputs computed by calling the submodules directly, no hooks."""
    with torch.no_grad():
        conv1 = model.block1.conv(x)
        b1 = model.block1(x)
        b2 = model.block2(b1)
        fc = model(x)
    return {"block1.conv": conv1, "block2.pool": b2, "fc": fc}


# --- correctness ----------------------------------------------------------------------------

def test_equals_direct_forward_pass(net, images):
    acts = model_activations(net, images, ["block1.conv", "block2.pool", "fc"], batch_size=3,
                             progress=False)
    assert list(acts) == ["block1.conv", "block2.pool", "fc"]
    ref = by_hand(net, images)
    for name, a in acts.items():
        asm.validate(a)
        assert a.dims == ("presentation", "neuroid")
        np.testing.assert_allclose(a.values, ref[name].reshape(len(images), -1).numpy(),
                                   rtol=RTOL, atol=ATOL)
    assert acts["fc"].sizes["neuroid"] == 10
    assert acts["fc"]["neuroid_id"].values[3] == "SmallConvNet.fc.3"
    assert acts["block1.conv"].attrs["layer_output_shape"] == "8x12x12"
    assert no_hooks(net)


def test_conv_coords_address_the_right_unit(net, images):
    a = model_activations(net, images, "block1.conv", progress=False)["block1.conv"]
    ref = by_hand(net, images)["block1.conv"].numpy()
    rng = np.random.default_rng(0)
    for k in rng.choice(a.sizes["neuroid"], size=20, replace=False):
        unit = a.isel(neuroid=k)
        c, y, x = (int(unit[n]) for n in ("channel", "channel_y", "channel_x"))
        np.testing.assert_allclose(unit.values, ref[:, c, y, x], rtol=RTOL, atol=ATOL)


def test_eval_no_grad_and_training_mode_restored(images):
    class Probe(nn.Module):
        def forward(self, x):
            Probe.seen.append((self.training, torch.is_grad_enabled()))
            return x * 2
    Probe.seen = []
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), Probe())
    model.train()
    a = model_activations(model, images, ["1", "2"], progress=False)
    assert Probe.seen and all(s == (False, False) for s in Probe.seen)
    # dropout in eval mode is the identity: layer "2" is exactly twice layer "1"
    np.testing.assert_array_equal(a["2"].values, 2 * a["1"].values)
    assert model.training  # restored
    model[1].eval()  # a submodule deliberately in eval mode stays so
    model_activations(model, images, ["1"], progress=False)
    assert model.training and not model[1].training


def test_duplicate_ids_are_computed_once(net, images):
    class Counter(nn.Module):
        rows = 0

        def forward(self, x):
            Counter.rows += len(x)
            return x
    model = nn.Sequential(Counter(), net)
    x = torch.cat([images[:4], images[:2]])
    ids = ["a", "b", "c", "d", "a", "b"]
    a = model_activations(model, x, "1.fc", stimulus_ids=ids, batch_size=4, progress=False)["1.fc"]
    assert Counter.rows == 4
    assert list(a["stimulus_id"].values) == ids
    np.testing.assert_array_equal(a.values[4:], a.values[:2])
    np.testing.assert_allclose(a.values[:4], net(images[:4]).detach().numpy(), rtol=RTOL, atol=ATOL)


def test_metadata_becomes_presentation_coords(net):
    imgs, meta = synth.translated_digits(digits=[1, 7], n_exemplars=2, positions=[(0, 0), (8, 8)])
    a = model_activations(net, imgs, "fc", metadata=meta, progress=False)["fc"]
    assert list(a["stimulus_id"].values) == list(meta["stimulus_id"])
    for col in ("object_name", "position_x", "position_y", "exemplar"):
        np.testing.assert_array_equal(a[col].values, meta[col].to_numpy())
    assert len(asm.manifolds(a, by="object_name")) == 2


# --- stimulus sources -----------------------------------------------------------------------

def test_every_stimulus_source_gives_the_same_rows(net, images, tmp_path):
    ref = model_activations(net, images, "fc", progress=False)["fc"].values
    arr = model_activations(net, images.numpy(), "fc", progress=False)["fc"]
    ds = torch.utils.data.TensorDataset(images, torch.arange(len(images)))
    from_ds = model_activations(net, ds, "fc", batch_size=4, progress=False)["fc"]
    dl = torch.utils.data.DataLoader(ds, batch_size=3)
    from_dl = model_activations(net, dl, "fc", progress=False)["fc"]
    for a in (arr, from_ds, from_dl):
        np.testing.assert_allclose(a.values, ref, rtol=RTOL, atol=ATOL)
        assert list(a["stimulus_id"].values) == [f"stimulus_{i}" for i in range(len(images))]


def test_image_paths(net, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3, 12, 12, 3), dtype=np.uint8)
    paths = []
    for i, p in enumerate(pixels):
        paths.append(str(tmp_path / f"im{i}.png"))
        Image.fromarray(p).save(paths[-1])
    rgb_net = synth.untrained_convnet(in_channels=3)
    a = model_activations(rgb_net, paths, "fc", progress=False)["fc"]
    x = torch.from_numpy(pixels.astype(np.float32) / 255).permute(0, 3, 1, 2)
    np.testing.assert_allclose(a.values, rgb_net(x).detach().numpy(), rtol=RTOL, atol=ATOL)
    assert list(a["stimulus_id"].values) == paths
    # preprocess receives the PIL image
    b = model_activations(rgb_net, paths, "fc", progress=False,
                          preprocess=lambda im: torch.from_numpy(
                              np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1))["fc"]
    np.testing.assert_allclose(b.values, a.values, rtol=RTOL, atol=ATOL)


def test_dataloader_duplicate_ids(net, images):
    x = torch.cat([images[:3], images[:1]])
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=2)
    a = model_activations(net, dl, "fc", stimulus_ids=["a", "b", "c", "a"], progress=False)["fc"]
    np.testing.assert_array_equal(a.values[3], a.values[0])
    with pytest.raises(LoaderError, match="'c' is used for different stimuli"):
        model_activations(net, dl, "fc", stimulus_ids=["a", "b", "c", "c"], progress=False)


# --- reductions -----------------------------------------------------------------------------

def test_global_average_pooling(net, images):
    a = model_activations(net, images, "block1.conv", reduce="gap", progress=False)["block1.conv"]
    ref = by_hand(net, images)["block1.conv"].mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(a.values, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(a["channel"].values, np.arange(8))
    fc = model_activations(net, images, "fc", reduce="gap", progress=False)["fc"]
    np.testing.assert_allclose(fc.values, by_hand(net, images)["fc"].numpy(), rtol=RTOL, atol=ATOL)
    assert fc.attrs["reduce"] == "gap (no spatial dims: unchanged)" 


def test_random_projection_is_seeded_and_linear(net, images):
    rp = RandomProjection(5, seed=3)
    a = model_activations(net, images, ["block2.pool", "fc"], reduce=rp, progress=False)
    again = model_activations(net, images, ["fc"], reduce=RandomProjection(5, seed=3),
                              progress=False)
    np.testing.assert_array_equal(a["fc"].values, again["fc"].values)  # same seed, same numbers
    other = model_activations(net, images, "fc", reduce=RandomProjection(5, seed=4), progress=False)
    assert not np.allclose(other["fc"].values, a["fc"].values)
    flat = by_hand(net, images)["block2.pool"].reshape(len(images), -1)
    np.testing.assert_allclose(a["block2.pool"].values, (flat @ rp.matrix("block2.pool", flat.shape[1])).numpy(),
                               rtol=1e-4, atol=1e-5)
    assert a["fc"].sizes["neuroid"] == 5 and "component" in a["fc"].coords


def test_pca_fit_on_separate_set_matches_sklearn(net, images):
    fit_set = torch.rand(30, 1, 12, 12, generator=torch.Generator().manual_seed(9))
    pcas = fit_pca(net, fit_set, ["block2.pool"], n_components=4, progress=False)
    a = model_activations(net, images, "block2.pool", reduce=pcas, progress=False)["block2.pool"]
    flat = by_hand(net, images)["block2.pool"].reshape(len(images), -1).numpy()
    # float32 projection on the device vs sklearn's float64: relative 1e-4 of O(1) scores
    np.testing.assert_allclose(a.values, pcas["block2.pool"].transform(flat), rtol=1e-4, atol=1e-4)
    with pytest.raises(LoaderError, match="no fitted PCA for layer 'fc'"):
        model_activations(net, images, "fc", reduce=pcas, progress=False)
    with pytest.raises(LoaderError, match="unknown reduce"):
        model_activations(net, images, "fc", reduce="max", progress=False)


# --- memory budget: the zarr spill path ------------------------------------------------------

def test_spill_path_equals_in_memory_path(net, images, tmp_path):
    ids = [f"s{i}" for i in range(8)] + ["s0", "s3"]
    x = torch.cat([images[:8], images[0:1], images[3:4]])
    mem = model_activations(net, x, ["block1.conv", "fc"], stimulus_ids=ids, batch_size=3,
                            progress=False, memory_budget=None)
    budget = 8 * 12 * 12 * 4 * 5  # block1.conv needs 8 unique rows of 4.6 kB: over; fc: under
    spilled = model_activations(net, x, ["block1.conv", "fc"], stimulus_ids=ids, batch_size=3,
                                progress=False, memory_budget=budget, spill_dir=tmp_path)
    big, small = spilled["block1.conv"], spilled["fc"]
    import dask.array as da
    assert isinstance(big.data, da.Array) and big.attrs["spilled"] == 1
    assert isinstance(small.data, np.ndarray) and small.attrs["spilled"] == 0
    assert os.listdir(tmp_path) == ["SmallConvNet.block1.conv.zarr"]
    # identical computation, only the storage differs: exact equality
    np.testing.assert_array_equal(big.values, mem["block1.conv"].values)
    np.testing.assert_array_equal(small.values, mem["fc"].values)
    xr.testing.assert_identical(big.drop_attrs().compute(), mem["block1.conv"].drop_attrs())


def test_spill_when_row_count_unknown(net, images, tmp_path):
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=4)
    mem = model_activations(net, images, "block1.conv", progress=False)["block1.conv"]
    a = model_activations(net, dl, "block1.conv", progress=False, memory_budget=10_000,
                          spill_dir=tmp_path)["block1.conv"]
    assert a.attrs["spilled"] == 1
    np.testing.assert_allclose(a.values, mem.values, rtol=RTOL, atol=ATOL)


class Boom(nn.Module):
    """Passes stimuli through until it has seen ``after`` of them, then raises."""

    def __init__(self, after):
        super().__init__()
        self.after, self.seen = after, 0

    def forward(self, x):
        self.seen += len(x)
        if self.seen > self.after:
            raise RuntimeError("boom")
        return x


def test_raising_model_removes_hooks_and_leaves_no_store(net, images, tmp_path):
    model = nn.Sequential(net.block1, Boom(after=6), net.block2)
    with pytest.raises(LoaderError, match="raised during the forward pass.*boom"):
        model_activations(model, images, ["0.conv", "2.pool"], batch_size=3, progress=False,
                          memory_budget=100, spill_dir=tmp_path)
    assert no_hooks(model)
    assert os.listdir(tmp_path) == []


def test_default_spill_dir_is_removed_when_the_model_raises(net, images, monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    model = nn.Sequential(net.block1, Boom(after=3))
    with pytest.raises(LoaderError):
        model_activations(model, images, "0.conv", batch_size=3, progress=False, memory_budget=100)
    assert os.listdir(tmp_path) == []


# --- bad input ------------------------------------------------------------------------------

def test_unknown_layer_suggests_close_names(net, images):
    with pytest.raises(LoaderError) as err:
        model_activations(net, images, ["fc", "block1.cnov"], progress=False)
    msg = str(err.value)
    assert "'block1.cnov'" in msg and "did you mean 'block1.conv'" in msg
    assert "available:" in msg and "'block2.pool'" in msg
    assert no_hooks(net)
    assert "block2.relu" in layer_names(net)


def test_module_used_twice_is_ambiguous(images):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2, self.act = nn.Linear(144, 8), nn.Linear(8, 4), nn.Tanh()

        def forward(self, x):
            return self.act(self.lin2(self.act(self.lin1(x.flatten(1)))))
    model = Shared()
    with pytest.raises(LoaderError, match="'act' runs more than once per forward pass"):
        model_activations(model, images, ["lin2", "act"], progress=False)
    assert no_hooks(model)
    a = model_activations(model, images, ["lin2"], progress=False)["lin2"]  # used once: fine
    np.testing.assert_allclose(a.values, model.lin2(torch.tanh(model.lin1(images.flatten(1))))
                               .detach().numpy(), rtol=RTOL, atol=ATOL)


def test_ids_count_must_match(net, images):
    with pytest.raises(LoaderError, match="3 stimulus_ids for 10 stimuli"):
        model_activations(net, images, "fc", stimulus_ids=["a", "b", "c"], progress=False)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=4)
    with pytest.raises(LoaderError, match="more stimuli than the 3"):
        model_activations(net, dl, "fc", stimulus_ids=["a", "b", "c"], progress=False)
    with pytest.raises(LoaderError, match="11 stimulus_ids for 10 stimuli"):
        model_activations(net, dl, "fc", stimulus_ids=list("abcdefghijk"), progress=False)


def test_duplicate_ids_with_different_images(net, images):
    with pytest.raises(LoaderError, match="'b' is used for different stimuli"):
        model_activations(net, images[:3], "fc", stimulus_ids=["a", "b", "b"], progress=False)


def test_non_finite_activations_name_the_layer(images):
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x - 0.5)  # NaN wherever a pixel is below 0.5
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 4), Log())
    with pytest.raises(LoaderError, match="layer '2' produced non-finite activations"):
        model_activations(model, images, ["1", "2"], progress=False)
    assert no_hooks(model)
    a = model_activations(model, images, ["2"], progress=False, check_finite=False)["2"]
    assert np.isnan(a.values).any()


def test_other_bad_inputs(net, images):
    with pytest.raises(LoaderError, match="not supported"):
        model_activations(net, {"x": images}, "fc", progress=False)
    with pytest.raises(LoaderError, match="do not exist"):
        model_activations(net, ["/nonexistent/a.png"], "fc", progress=False)
    with pytest.raises(LoaderError, match="torch.nn.Module"):
        model_activations(lambda x: x, images, "fc", progress=False)
    with pytest.raises(LoaderError, match="coord 'bad' has object dtype"):
        model_activations(net, images[:2], "fc", metadata={"bad": np.array([1, "x"], dtype=object)}, progress=False)
    with pytest.raises(LoaderError, match="metadata has 2 rows"):
        model_activations(net, images, "fc", metadata={"object_name": ["a", "b"]}, progress=False)


def test_features_with_other_ids_do_not_align(net, images):
    feats = model_activations(net, images[:4], "fc", stimulus_ids=list("abcd"), progress=False)["fc"]
    neural = feats.copy(data=np.ones(feats.shape)).assign_coords(
        stimulus_id=("presentation", list("wxyz")))
    with pytest.raises(AlignmentError, match="no stimulus_id is shared.*'a'.*'w'"):
        asm.align(feats, neural)


# --- synthetic models and images -------------------------------------------------------------

def test_untrained_convnet_is_seeded_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    a, b = synth.untrained_convnet(seed=2), synth.untrained_convnet(seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    assert not torch.equal(a.fc.weight, synth.untrained_convnet(seed=3).fc.weight)


def test_digits_convnet_is_cached_atomically(monkeypatch, tmp_path):
    monkeypatch.setenv(synth.CACHE_ENV, str(tmp_path))
    net, acc = synth.digits_convnet(epochs=1, return_accuracy=True)
    files = os.listdir(tmp_path)
    assert files == ["digits_convnet-v2-seed0-canvas16-epochs1.pt"]  # no temp file left
    again, acc2 = synth.digits_convnet(epochs=1, return_accuracy=True)
    assert acc2 == acc
    for p, q in zip(net.parameters(), again.parameters()):
        assert torch.equal(p, q)
    assert 0.0 <= acc <= 1.0
    assert not torch.equal(net.fc.weight, synth.untrained_convnet().fc.weight)  # it trained


def test_digits_convnet_learns(tmp_path, monkeypatch):
    monkeypatch.setenv(synth.CACHE_ENV, str(tmp_path))
    _, acc = synth.digits_convnet(return_accuracy=True)
    assert acc > 0.7  # chance is 0.1; measured 0.83 with the default recipe


def test_translated_digits_places_digits_where_the_metadata_says():
    imgs, meta = synth.translated_digits(digits=[0, 3], n_exemplars=2, canvas=20)
    assert imgs.shape == (2 * 2 * 9, 1, 20, 20) and len(meta) == len(imgs)
    assert meta["stimulus_id"].is_unique
    from sklearn.datasets import load_digits
    src = load_digits().images / 16.0
    for i in (0, 7, 20, 35):
        row = meta.iloc[i]
        x, y = row.position_x, row.position_y
        np.testing.assert_array_equal(imgs[i, 0, y:y + 8, x:x + 8], src[row.source_index].astype(np.float32))
        assert imgs[i].sum() == pytest.approx(src[row.source_index].sum(), rel=1e-5)  # nothing else drawn
        assert row.object_name == f"digit{row.digit}"
        assert load_digits().target[row.source_index] == row.digit
    assert (meta["source_index"] >= 1000).all()  # never the digits the trained net saw
    with pytest.raises(LoaderError, match="outside"):
        synth.translated_digits(positions=[(9, 0)], canvas=16)


def test_bfloat16_model(net, images):
    ref = model_activations(net, images, "fc", progress=False)["fc"]
    half = model_activations(synth.untrained_convnet(seed=1).to(torch.bfloat16),
                             images.to(torch.bfloat16), "fc", progress=False)["fc"]
    assert half.dtype == np.float32
    # bfloat16 keeps 8 mantissa bits: relative error ~2^-8 per op, a few % after two convs
    np.testing.assert_allclose(half.values, ref.values, rtol=0.1, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(net, images):
    cpu = model_activations(net, images, ["block1.conv", "fc"], progress=False,
                            reduce=RandomProjection(6))
    gpu = model_activations(net, images, ["block1.conv", "fc"], progress=False, device="cuda",
                            reduce=RandomProjection(6))
    for name in cpu:
        # different kernels (TF32 may be on for convs): 1e-3 relative of O(1) activations
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=1e-3, atol=1e-3)
        assert gpu[name].attrs["device"].startswith("cuda")
