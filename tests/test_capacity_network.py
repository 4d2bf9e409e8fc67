"""A real network: MFT capacity of digit-class manifolds rises through a trained CNN
(Cohen, Chung, Lee & Sompolinsky 2020's central finding) and rises clearly less untrained."""

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")
from sklearn.datasets import load_digits  # noqa: E402

from neurogeom.capacity import manifold_capacity  # noqa: E402


def make_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),   # last hidden layer
        torch.nn.Linear(64, 10))


def hidden_activations(model, images):
    """Activations of the last hidden layer (after its ReLU), read by a forward hook."""
    store = {}
    hook = model[8].register_forward_hook(lambda mod, inp, out: store.update(h=out.detach()))
    with torch.no_grad():
        model(torch.from_numpy(images))
    hook.remove()
    return store["h"].numpy().astype(np.float64)


def assembly(values, digits, layer):
    n, d = values.shape
    return xr.DataArray(values, dims=("presentation", "neuroid"),
                        coords={"stimulus_id": ("presentation", [f"img{i}" for i in range(n)]),
                                "digit": ("presentation", digits),
                                "neuroid_id": ("neuroid", [f"{layer}/{j}" for j in range(d)]),
                                "region": ("neuroid", [layer] * d)})


def test_capacity_rises_through_trained_network_only():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # tiny model: threads only add overhead
    try:
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        order = np.random.default_rng(0).permutation(len(X))
        X, y = X[order], y[order]
        Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
        net, untrained = make_cnn(), make_cnn()      # identical initial weights
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(Xtr), torch.from_numpy(ytr)
        for _ in range(8):
            for i in range(0, len(xt), 100):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
                opt.step()
        with torch.no_grad():
            accuracy = (net(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean()
        assert accuracy > 0.85                       # the network did learn the task

        # 40 held-out images per digit: 10 manifolds of 40 points
        sel = np.concatenate([np.flatnonzero(yte == c)[:40] for c in range(10)])
        images, digits = Xte[sel], yte[sel].astype(str)
        alpha = {}
        for name, values in (("pixels", images.reshape(len(images), -1).astype(np.float64)),
                             ("trained", hidden_activations(net, images)),
                             ("untrained", hidden_activations(untrained, images))):
            res = manifold_capacity(assembly(values, digits, name), by="digit", n_t=100)
            alpha[name] = float(res.capacity_overall)
    finally:
        torch.set_num_threads(threads)
    # MC error of the overall capacity with 10 manifolds × 100 samples is ≈ 2/√1000 ≈ 6%
    # (SCIENCE.md §1); the effects asserted are several times larger (measured: pixels 0.13,
    # trained 0.46, untrained 0.18).
    rise_trained = alpha["trained"] - alpha["pixels"]
    rise_untrained = alpha["untrained"] - alpha["pixels"]
    assert alpha["trained"] > 2.0 * alpha["pixels"], alpha
    assert rise_trained > 3.0 * max(rise_untrained, 0.0), alpha
