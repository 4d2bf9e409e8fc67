"""Synthetic population activity driven by known low-dimensional latents.

Each generator returns an assembly whose true latents are coords on the sample dim
(``latent_0``, ``latent_1``, …), so a latent-dimensionality analysis can be checked against
them: the ring model, random-feature readouts of latents on a sphere, the solvable RNN of
Schmutz et al. (NeurIPS 2025), and power-law responses for cvPCA. :func:`with_repetitions`
turns clean responses into repeated noisy presentations (for cvPCA and the crossed NCE loss).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurogeom import __version__

__all__ = ["ring_model", "random_feature_latents", "solvable_rnn", "power_law_responses",
           "with_repetitions"]


def _neuroid_coords(n: int, tag: str) -> dict:
    return {"neuroid_id": ("neuroid", np.array([f"synthetic/{tag}/{i}" for i in range(n)])),
            "region": ("neuroid", np.full(n, tag)),
            "session": ("neuroid", np.full(n, "session_0"))}


def _latent_coords(dim: str, latents: np.ndarray) -> dict:
    return {f"latent_{k}": (dim, latents[:, k]) for k in range(latents.shape[1])}


def ring_model(n_neuroids: int = 200, n_samples: int = 2000, *, readout: str = "step",
               latents: str = "random", noise: float = 0.0, seed: int = 0) -> xr.DataArray:
    """Neurons tuned to one latent angle with a step readout: latent dimension 2.

    Neuron i has preferred angle θ_i = 2πi/N and responds ``Θ(cos(θ_i − ϑ_t))`` to the latent
    angle ϑ_t. Its covariance eigenvalues per neuron come in pairs ∝ (2k+1)⁻² (the Fourier
    series of a square wave): ``(1/π²)(2⌊(n−1)/2⌋+1)⁻²`` for the 0/1 step and
    ``(4/π²)(2⌊(n−1)/2⌋+1)⁻²`` for the ±1 readout ``sign(cos)`` (Schmutz et al. 2025
    quote the latter); the participation ratio is 3 for both.

    Parameters
    ----------
    n_neuroids, n_samples : int
        Neurons and time samples.
    readout : {"step", "sign"}
        ``Θ(cos)`` ∈ {0, 1} or ``sign(cos)`` ∈ {−1, 1}.
    latents : {"random", "grid"}
        ϑ_t drawn uniformly (seeded) or evenly spaced on the circle (exact spectrum).
    noise : float
        Standard deviation of added Gaussian noise.
    seed : int
        Seed of the latents and noise.

    Returns
    -------
    xarray.DataArray
        ``(time, neuroid)``; coords ``latent_angle``, ``latent_0`` = cos ϑ, ``latent_1`` = sin ϑ
        on ``time``, ``preferred_angle`` on ``neuroid``.
    """
    if readout not in ("step", "sign"):
        raise ValueError(f"readout must be 'step' or 'sign', got {readout!r}")
    if latents not in ("random", "grid"):
        raise ValueError(f"latents must be 'random' or 'grid', got {latents!r}")
    rng = np.random.default_rng(seed)
    preferred = 2 * np.pi * np.arange(n_neuroids) / n_neuroids
    if latents == "grid":
        # offset by half a step so no latent falls exactly on a tuning-curve edge
        angle = 2 * np.pi * (np.arange(n_samples) + 0.5) / n_samples
    else:
        angle = rng.uniform(0, 2 * np.pi, n_samples)
    drive = np.cos(preferred[None, :] - angle[:, None])
    values = (drive > 0).astype(np.float64)
    if readout == "sign":
        values = 2 * values - 1
    if noise:
        values = values + noise * rng.standard_normal(values.shape)
    z = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    coords = {"time": ("time", np.arange(n_samples, dtype=np.float64)),
              "latent_angle": ("time", angle), **_latent_coords("time", z),
              **_neuroid_coords(n_neuroids, "ring"),
              "preferred_angle": ("neuroid", preferred)}
    return xr.DataArray(values, dims=("time", "neuroid"), coords=coords, name="activity",
                        attrs={"units": "a.u.", "source": "loaders.synthetic.ring_model",
                               "readout": readout, "latent_dimension": 2, "noise": float(noise),
                               "seed": int(seed), "neurogeom_version": __version__})


def random_feature_latents(d: int, n_neuroids: int = 1000, n_stimuli: int = 2000, *,
                           readout: str = "relu", bias: float = 0.0, noise: float = 0.0,
                           n_repetitions: int = 1, seed: int = 0) -> xr.DataArray:
    """Responses ``max(0, U z + c)^p`` to latents z uniform on the sphere S^{d−1}.

    U is an (N, d) standard Gaussian matrix; p = 1 (``"relu"``) or p = 0 (``"step"``, the
    Heaviside function). With c = 0 the covariance spectrum decays as n^{−α},
    α = 1 + (2p+1)/(d−1) (Schmutz et al. 2025), so linear methods need many more dimensions than d.

    Parameters
    ----------
    d : int
        Latent dimension (≥ 2: S^{d−1} is a circle for d = 2).
    n_neuroids, n_stimuli : int
        Neurons and stimuli (one latent point each).
    readout : {"relu", "step"}
        Exponent p = 1 or p = 0.
    bias : float
        The threshold shift c, shared by all neurons.
    noise : float
        Standard deviation of Gaussian trial noise, drawn independently per repetition.
    n_repetitions : int
        Presentations of each stimulus (≥ 2 gives data for the crossed loss and cvPCA).
    seed : int
        Seed of latents, readout weights and noise.

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)``; coords ``stimulus_id``, ``repetition``, ``latent_0`` …
        ``latent_{d-1}`` on ``presentation``.
    """
    if d < 2:
        raise ValueError(f"latents on S^(d-1) need d >= 2, got {d}")
    if readout not in ("relu", "step"):
        raise ValueError(f"readout must be 'relu' or 'step', got {readout!r}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_stimuli, d))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    weights = rng.standard_normal((n_neuroids, d))
    drive = z @ weights.T + bias
    clean = np.maximum(drive, 0.0) if readout == "relu" else (drive > 0).astype(np.float64)
    a = _stimulus_assembly(clean, z, "random_features")
    a.attrs.update({"source": "loaders.synthetic.random_feature_latents", "readout": readout,
                    "latent_dimension": int(d), "bias": float(bias), "seed": int(seed)})
    if n_repetitions > 1 or noise:
        a = with_repetitions(a, n_repetitions, noise=noise, seed=seed + 1)
    return a


def _stimulus_assembly(clean: np.ndarray, z: np.ndarray | None, tag: str) -> xr.DataArray:
    n_stim, n_neur = clean.shape
    coords = {"stimulus_id": ("presentation", np.array([f"stim_{i:05d}" for i in range(n_stim)])),
              "repetition": ("presentation", np.zeros(n_stim, dtype=np.int64)),
              **_neuroid_coords(n_neur, tag)}
    if z is not None:
        coords.update(_latent_coords("presentation", z))
    return xr.DataArray(clean, dims=("presentation", "neuroid"), coords=coords, name="responses",
                        attrs={"units": "a.u.", "species": "synthetic",
                               "neurogeom_version": __version__})


def with_repetitions(a: xr.DataArray, n_repetitions: int = 2, *, noise: float = 1.0,
                     seed: int = 0) -> xr.DataArray:
    """Repeat every presentation ``n_repetitions`` times with independent Gaussian noise.

    Parameters
    ----------
    a : xarray.DataArray
        ``(presentation, neuroid)`` responses, one per stimulus (clean signal).
    n_repetitions : int
        Repeats per stimulus.
    noise : float
        Noise standard deviation (the noise variance per neuron is ``noise**2``).
    seed : int
        Seed of the noise.

    Returns
    -------
    xarray.DataArray
        ``n_repetitions`` times as many presentations, repeat-major, with coord ``repetition``.
    """
    if n_repetitions < 1:
        raise ValueError(f"n_repetitions must be >= 1, got {n_repetitions}")
    rng = np.random.default_rng(seed)
    parts = []
    for r in range(n_repetitions):
        part = a + noise * rng.standard_normal(a.shape)
        part = part.assign_coords(repetition=("presentation", np.full(a.sizes["presentation"], r)))
        parts.append(part)
    out = xr.concat(parts, dim="presentation")
    out.attrs = {**a.attrs, "noise": float(noise), "n_repetitions": int(n_repetitions),
                 "noise_seed": int(seed)}
    out.name = a.name
    return out


def power_law_responses(n_stimuli: int = 1000, n_neuroids: int = 500, *, alpha: float = 1.0,
                        noise: float = 1.0, n_repetitions: int = 2, n_modes: int | None = None,
                        seed: int = 0) -> xr.DataArray:
    """Repeated responses whose stimulus-related spectrum is n^{−α}, randomly rotated.

    The signal is ``G diag(λ^{1/2}) Q^T`` with G standard Gaussian (stimuli × modes),
    λ_n = n^{−α} and Q a random orthogonal (neurons × neurons) matrix; each repeat adds
    isotropic Gaussian noise whose total variance is ``noise`` times the total signal variance.
    ``n_modes`` (default ``n_neuroids``) truncates the spectrum, so that Q is only
    (neurons × n_modes): with ``n_modes = n_stimuli`` a 10,000-neuron population needs no
    10,000² rotation, and no observable mode is lost (n_stimuli − 1 modes can be estimated).

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid)`` with ``n_repetitions`` repeats of each stimulus; attrs
        ``alpha`` and ``noise_to_signal``.
    """
    rng = np.random.default_rng(seed)
    n_modes = n_neuroids if n_modes is None else min(int(n_modes), n_neuroids)
    lam = np.arange(1, n_modes + 1, dtype=np.float64) ** (-alpha)
    q, r = np.linalg.qr(rng.standard_normal((n_neuroids, n_modes)))
    q *= np.sign(np.diag(r))  # Haar-distributed orthonormal columns
    clean = (rng.standard_normal((n_stimuli, n_modes)) * np.sqrt(lam)) @ q.T
    noise_std = np.sqrt(noise * lam.sum() / n_neuroids)
    a = _stimulus_assembly(clean, None, "power_law")
    a.attrs.update({"source": "loaders.synthetic.power_law_responses", "alpha": float(alpha),
                    "noise_to_signal": float(noise), "seed": int(seed)})
    return with_repetitions(a, n_repetitions, noise=noise_std, seed=seed + 1)


def solvable_rnn(n_neuroids: int = 1000, duration: float = 30.0, *, dt: float = 1e-3,
                 coupling: float = np.pi * np.sqrt(2), shift: float = np.pi / 4,
                 sample_every: int = 10, seed: int = 0) -> xr.DataArray:
    """The solvable RNN of Schmutz et al. (NeurIPS 2025): a 2-d latent on a limit cycle.

    ``ẋ_i = −x_i + (1/N) Σ_j J cos(θ_i − θ_j − Δ) Θ(x_j)`` with evenly spaced θ. The coupling
    has rank 2, so after transients x = U κ with U = [cos θ, sin θ]; half the neurons are active,
    giving ``κ̇ = −κ + (J/π) R(Δ) κ/‖κ‖``. With J = π√2 and Δ = π/4 the radial part is
    ``−‖κ‖ + 1`` and the angular speed ``√2 sin Δ / ‖κ‖``, so κ = U†x settles on the unit
    circle turning at angular speed 1. Integrated with Euler steps of ``dt``.

    Parameters
    ----------
    n_neuroids : int
        N.
    duration : float
        Simulated time (in units of the neuronal time constant).
    dt : float
        Euler step.
    coupling, shift : float
        J and Δ.
    sample_every : int
        Keep one state every ``sample_every`` steps.
    seed : int
        Seed of the initial state.

    Returns
    -------
    xarray.DataArray
        ``(time, neuroid)`` state x; coords ``latent_0``, ``latent_1`` (κ = U†x) on ``time``,
        ``preferred_angle`` on ``neuroid``.
    """
    rng = np.random.default_rng(seed)
    theta = 2 * np.pi * np.arange(n_neuroids) / n_neuroids
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)              # U
    shifted = np.stack([np.cos(theta - shift), np.sin(theta - shift)], axis=1)
    # J cos(θ_i − θ_j − Δ) = J [cos(θ_i−Δ) cos θ_j + sin(θ_i−Δ) sin θ_j]: rank 2, O(N) per step
    x = basis @ rng.normal(0, 0.5, 2) + 0.1 * rng.standard_normal(n_neuroids)
    n_steps = int(round(duration / dt))
    kept, times = [], []
    for step in range(n_steps + 1):
        if step % sample_every == 0:
            kept.append(x.copy())
            times.append(step * dt)
        if step == n_steps:
            break
        rates = (x > 0).astype(np.float64)
        recurrent = shifted @ (basis.T @ rates) * (coupling / n_neuroids)
        x = x + dt * (-x + recurrent)
    states = np.array(kept)
    kappa = states @ np.linalg.pinv(basis).T
    coords = {"time": ("time", np.array(times)), **_latent_coords("time", kappa),
              **_neuroid_coords(n_neuroids, "rnn"), "preferred_angle": ("neuroid", theta)}
    return xr.DataArray(states, dims=("time", "neuroid"), coords=coords, name="activity",
                        attrs={"units": "a.u.", "source": "loaders.synthetic.solvable_rnn",
                               "coupling": float(coupling), "shift": float(shift),
                               "dt": float(dt), "latent_dimension": 2, "seed": int(seed),
                               "neurogeom_version": __version__})
