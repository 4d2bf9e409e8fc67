"""Manifold alignment analysis, decoding, cross-system agreement and layer profiles (issue 14).

Known answers (identical, orthogonal and random subspaces; centers inside subspaces; additive
object × position codes), invariances (rotation, global scaling), and independent references
(scipy.linalg.subspace_angles, scikit-learn's cross_val_score).
"""

import numpy as np
import pytest
import scipy.linalg
import xarray as xr

import neurogeom as ng
from neurogeom.errors import AlignmentError, AnalysisError, AssemblyError
from neurogeom_cli import main


def assembly(points, labels, *, extra=None, ids=None):
    """(presentation, neuroid) assembly of stacked points with a label coord."""
    points = np.asarray(points, dtype=float)
    n, N = points.shape
    coords = {"stimulus_id": ("presentation", ids if ids is not None
                              else np.array([f"s{i:04d}" for i in range(n)])),
              "object_name": ("presentation", np.asarray(labels)),
              "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(N)]))}
    for name, values in (extra or {}).items():
        coords[name] = ("presentation", np.asarray(values))
    return xr.DataArray(points, dims=("presentation", "neuroid"), coords=coords,
                        attrs={"source": "test"})


def manifolds_in_subspaces(P=8, n=12, N=40, seed=0, radius_scale=1.0):
    """P manifolds of n points, each spread in its own random d-dim subspace (d = 2..5) around
    a random center, with radii spread over a factor 4 (so capacities and radii differ)."""
    rng = np.random.default_rng(seed)
    pts, labels = [], []
    for m in range(P):
        d = 2 + m % 4
        basis = np.linalg.qr(rng.standard_normal((N, d)))[0]
        radius = radius_scale * (0.4 + 1.2 * m / P)
        pts.append(rng.standard_normal(N) + radius * rng.standard_normal((n, d)) @ basis.T)
        labels += [f"o{m}"] * n
    return assembly(np.concatenate(pts), labels)


def random_rotation(N, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((N, N)))[0]


ALIGNMENT_VARS = ("center_alignment", "subspace_alignment", "principal_angles",
                  "center_axis_alignment", "center_distance", "center_norm", "radius",
                  "n_components", "n_angles", "center_alignment_mean",
                  "subspace_alignment_mean", "center_axis_alignment_mean")


# --------------------------------------------------------------------------------------------
# manifold_alignment
# --------------------------------------------------------------------------------------------

def test_result_contract_and_self_alignment():
    a = manifolds_in_subspaces()
    res = ng.manifold_alignment(a, "object_name")
    assert res.attrs["analysis"] == "manifold_alignment"
    assert set(res["principal_angles"].dims) == {"manifold", "manifold_other", "component"}
    for name in ALIGNMENT_VARS:
        assert name in res, name
        assert np.isfinite(res[name].values).all(), name       # NaN-free, padding included
    assert list(res["manifold"].values) == [f"o{m}" for m in range(8)]
    diag = np.arange(8)
    assert np.allclose(res["center_alignment"].values[diag, diag], 1)
    assert np.allclose(res["subspace_alignment"].values[diag, diag], 1)
    angles = res["principal_angles"].values
    assert np.all(angles[diag, diag][:, 0] == 0)
    # the padding convention: angles past min(k_mu, k_nu) are pi/2
    k = res["n_angles"].values
    comp = np.arange(angles.shape[2])
    assert np.all(angles[comp[None, None, :] >= k[:, :, None]] == np.pi / 2)
    for name in ("center_alignment", "subspace_alignment", "principal_angles",
                 "center_distance"):
        assert np.allclose(res[name].values, np.swapaxes(res[name].values, 0, 1)), name
    # points spread in a d-dim subspace: at most d components, and 90% of variance needs most
    assert all(1 <= kk <= 2 + m % 4 for m, kk in enumerate(res["n_components"].values))


def test_rotation_and_global_scaling_leave_every_measure_unchanged():
    a = manifolds_in_subspaces(seed=3)
    Q = random_rotation(a.sizes["neuroid"], 7)
    b = a.copy(data=4.7 * a.values @ Q + 3.0)      # rotate, scale, shift
    for kwargs in ({}, {"n_components": 2}):
        r1 = ng.manifold_alignment(a, "object_name", **kwargs)
        r2 = ng.manifold_alignment(b, "object_name", **kwargs)
        for name in ALIGNMENT_VARS:
            # rounding of the Gram eigendecompositions: ~eps (s1/sk)^2, far below 1e-7; the
            # angle of ~0 is sqrt(rounding) ~1e-8
            np.testing.assert_allclose(r1[name].values, r2[name].values, atol=1e-7,
                                       err_msg=name)
        assert r2["data_scale"] == pytest.approx(4.7 * float(r1["data_scale"]))


def test_principal_angles_equal_scipy_subspace_angles():
    a = manifolds_in_subspaces(seed=5)
    res = ng.manifold_alignment(a, "object_name", variance=1.0)
    groups = ng.manifolds(a, "object_name")
    mean = np.concatenate([p for _, p in groups]).mean(0)
    # independent reference: each manifold's basis by a plain SVD, angles by scipy
    bases = []
    for _, p in groups:
        u = np.linalg.svd((p - mean) - (p - mean).mean(0), full_matrices=False)[2]
        bases.append(u[:2 + len(bases) % 4].T)
    for mu in range(len(bases)):
        assert res["n_components"].values[mu] == bases[mu].shape[1]
        for nu in range(len(bases)):
            expected = np.sort(scipy.linalg.subspace_angles(bases[mu], bases[nu]))
            got = res["principal_angles"].values[mu, nu, :len(expected)]
            # arccos of a cosine near 1 resolves angles to ~1e-8 (sqrt of eps)
            np.testing.assert_allclose(got, expected, atol=1e-7)
            cos2 = np.mean(np.cos(expected) ** 2)
            assert res["subspace_alignment"].values[mu, nu] == pytest.approx(cos2, abs=1e-12)


def test_block_spectra_in_chunks_and_threads_equal_one_batch():
    from neurogeom.alignment import principal_angles

    rng = np.random.default_rng(0)
    P, N = 30, 60
    ks = rng.integers(1, 7, size=P)
    bases = np.zeros((P, 6, N))
    for mu, k in enumerate(ks):
        bases[mu, :k] = np.linalg.qr(rng.standard_normal((N, k)))[0].T
    one, n1 = principal_angles(bases, ks, chunk_bytes=2**40)
    many, n2 = principal_angles(bases, ks, chunk_bytes=2000)    # ~2 pairs per chunk
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(n1, np.minimum.outer(ks, ks))
    ref = np.sort(scipy.linalg.subspace_angles(bases[3, :ks[3]].T, bases[7, :ks[7]].T))
    np.testing.assert_allclose(np.arccos(one[3, 7, :len(ref)]), ref, atol=1e-7)


def test_identical_and_orthogonal_subspaces():
    rng = np.random.default_rng(1)
    N, n = 30, 10
    e = np.eye(N)
    pts, labels = [], []
    # A and B spread in span(e0, e1, e2); C in span(e3, e4, e5); centers along e10.., outside
    for name, axes, center in (("A", e[:3], e[10]), ("B", e[:3], e[11] * 2),
                               ("C", e[3:6], e[12] * 3)):
        spread = rng.standard_normal((n, 3))
        # zero-mean spread: the center (and the global mean) stay outside e0..e5
        pts.append(center + (spread - spread.mean(0)) @ axes)
        labels += [name] * n
    res = ng.manifold_alignment(assembly(np.concatenate(pts), labels), "object_name",
                                n_components=3)
    s = res["subspace_alignment"]
    ang = res["principal_angles"]
    assert float(s.sel(manifold="A", manifold_other="B")) == pytest.approx(1, abs=1e-12)
    # identical subspaces: every angle 0 (to the sqrt(eps) resolution of arccos near 1)
    assert np.all(ang.sel(manifold="A", manifold_other="B").values < 1e-7)
    assert float(s.sel(manifold="A", manifold_other="C")) == pytest.approx(0, abs=1e-20)
    np.testing.assert_allclose(ang.sel(manifold="B", manifold_other="C").values, np.pi / 2)
    # the centers (along e10, e11, e12 minus their mean) have no part in any subspace
    np.testing.assert_allclose(res["center_axis_alignment"].values, 0, atol=1e-20)


def test_random_subspaces_mean_cos2_is_k_over_n():
    # P random k-dim subspaces in N dims: ||U1' U2||_F^2 / k has mean k/N and, each of the k^2
    # entries of U1'U2 having variance ~1/N^2 (squares: ~2/N^2), sd sqrt(2)/N per pair; the
    # P(P-1)/2 = 780 pairs are pairwise independent (Haar invariance), so the mean over pairs
    # has sd sqrt(2)/N/sqrt(780) = 2.5e-4. Tolerance: 4 sd.
    rng = np.random.default_rng(2)
    P, k, N, n = 40, 5, 200, 8
    pts, labels = [], []
    for m in range(P):
        basis = np.linalg.qr(rng.standard_normal((N, k)))[0]
        pts.append(rng.standard_normal(N) + rng.standard_normal((n, k)) @ basis.T)
        labels += [f"m{m:02d}"] * n
    res = ng.manifold_alignment(assembly(np.concatenate(pts), labels), "object_name",
                                n_components=k)
    sd = np.sqrt(2) / N / np.sqrt(P * (P - 1) / 2)
    assert abs(float(res["subspace_alignment_mean"]) - k / N) < 4 * sd
    # a random unit center in a random k-dim subspace: mean squared projection k/N (sd of
    # one pair ~sqrt(2k)/N; 1560 ordered pairs, centers shared: 4 sd of P independent ones)
    assert abs(float(res["center_axis_alignment_mean"]) - k / N) < 4 * np.sqrt(2 * k) / N / np.sqrt(P)


def test_positions_known_answer():
    # two manifolds: {c ± r e_i}, i = 1, 2: center c, RMS radius r exactly
    N = 6
    e = np.eye(N)
    pts, labels = [], []
    for name, c, r in (("A", 3 * e[4], 1.0), ("B", -3 * e[4] + 4 * e[5], 0.5)):
        for sign in (1, -1):
            for i in (0, 1):
                pts.append(c + sign * r * e[i])
                labels.append(name)
    pts = np.array(pts)
    res = ng.manifold_alignment(assembly(pts, labels), "object_name")
    centered = pts - pts.mean(0)
    scale = np.sqrt(np.mean(np.sum(centered ** 2, axis=1)))
    assert float(res["data_scale"]) == pytest.approx(scale)
    np.testing.assert_allclose(res["radius"].values, np.array([1.0, 0.5]) / scale)
    d = np.linalg.norm(3 * e[4] - (-3 * e[4] + 4 * e[5]))
    assert float(res["center_distance"][0, 1]) == pytest.approx(d / 1.5)
    cA, cB = centered[:4].mean(0), centered[4:].mean(0)
    np.testing.assert_allclose(res["center_norm"].values,
                               [np.linalg.norm(cA) / scale, np.linalg.norm(cB) / scale])
    cos = cA @ cB / np.linalg.norm(cA) / np.linalg.norm(cB)
    assert float(res["center_alignment"][0, 1]) == pytest.approx(cos)
    assert float(res["center_alignment_mean"]) == pytest.approx(abs(cos))


def test_other_by_object_versus_position_manifolds():
    # response = object code + position code in orthogonal subspaces: an object manifold
    # (its points: the positions) spreads in the position code, a position manifold in the
    # object code. So object vs position subspaces are orthogonal (cos^2 = 0) and every object
    # center lies inside every position manifold's subspace (center-axis alignment 1).
    rng = np.random.default_rng(4)
    n_obj, n_pos, N = 4, 5, 20
    obj_code = np.zeros((n_obj, N))
    obj_code[:, :10] = rng.standard_normal((n_obj, 10))
    pos_code = np.zeros((n_pos, N))
    pos_code[:, 10:] = rng.standard_normal((n_pos, 10))
    pts = np.array([obj_code[o] + pos_code[p] for o in range(n_obj) for p in range(n_pos)])
    objects = [f"obj{o}" for o in range(n_obj) for p in range(n_pos)]
    positions = [f"pos{p}" for o in range(n_obj) for p in range(n_pos)]
    a = assembly(pts, objects, extra={"position": positions})
    res = ng.manifold_alignment(a, "object_name", other_by="position", n_components=3)
    assert list(res["manifold"].values) == [f"obj{o}" for o in range(n_obj)]
    assert list(res["manifold_other"].values) == [f"pos{p}" for p in range(n_pos)]
    assert res["subspace_alignment"].shape == (n_obj, n_pos)
    np.testing.assert_allclose(res["subspace_alignment"].values, 0, atol=1e-20)
    np.testing.assert_allclose(res["center_axis_alignment"].values, 1, atol=1e-10)
    assert float(res["center_axis_alignment_mean"]) == pytest.approx(1)
    assert "radius_other" in res and "n_components_other" in res
    for name in ("center_alignment", "subspace_alignment", "principal_angles"):
        assert np.isfinite(res[name].values).all()


def test_alignment_bad_inputs_name_what_is_wrong():
    a = manifolds_in_subspaces(P=3, n=4)
    with pytest.raises(AssemblyError, match="by='shape'.*object_name"):
        ng.manifold_alignment(a, "shape")
    with pytest.raises(AssemblyError, match="other_by='pose'.*stimulus_id"):
        ng.manifold_alignment(a, "object_name", other_by="pose")
    with pytest.raises(AnalysisError, match="at least 2 manifolds.*'o0'"):
        ng.manifold_alignment(a.isel(presentation=slice(0, 4)), "object_name")
    with pytest.raises(AnalysisError, match=r"n_components=3 .* 1 manifold.*'o0' \(4 points, "
                                            r"rank 2\)"):
        ng.manifold_alignment(a, "object_name", n_components=3)
    one_point = a.isel(presentation=list(range(9)))     # o2 keeps a single point
    with pytest.raises(AssemblyError, match="fewer than 2 points.*'o2' \\(1\\)"):
        ng.manifold_alignment(one_point, "object_name")
    with pytest.raises(AnalysisError, match="variance"):
        ng.manifold_alignment(a, "object_name", variance=0)


# --------------------------------------------------------------------------------------------
# decoding_accuracy
# --------------------------------------------------------------------------------------------

def clusters(separation, *, n_classes=4, n_stim=15, n_rep=2, N=12, seed=0):
    """Gaussian clusters (unit noise) at ``separation`` x random unit directions, each
    stimulus presented n_rep times with fresh noise."""
    rng = np.random.default_rng(seed)
    means = separation * np.linalg.qr(rng.standard_normal((N, n_classes)))[0].T
    pts, labels, ids = [], [], []
    for c in range(n_classes):
        for s in range(n_stim):
            for _ in range(n_rep):
                pts.append(means[c] + rng.standard_normal(N))
                labels.append(f"c{c}")
                ids.append(f"c{c}_s{s}")
    return assembly(np.array(pts), labels, ids=np.array(ids))


def test_separable_clusters_decode_perfectly():
    res = ng.decoding_accuracy(clusters(40.0), "object_name")
    assert float(res["accuracy"]) == 1.0 and float(res["accuracy_std"]) == 0.0
    assert np.all(res["one_vs_rest_accuracy"].values == 1.0)
    off = ~np.eye(4, dtype=bool)
    assert np.all(res["pairwise_accuracy"].values[off] == 1.0)
    assert np.isnan(res["pairwise_accuracy"].values[~off]).all()   # the documented diagonal
    assert float(res["chance"]) == 0.25


def test_identical_distributions_decode_at_chance():
    # every class from the same Gaussian: 120 presentations, chance 1/4; a readout of pure
    # noise scores Binomial(120, 1/4)/120 on held-out points, sd sqrt(.25 * .75 / 120) = 0.040
    # (a little more with the fold-to-fold fits); tolerance 3.5 sd
    res = ng.decoding_accuracy(clusters(0.0), "object_name")
    sd = np.sqrt(0.25 * 0.75 / 120)
    assert abs(float(res["accuracy"]) - 0.25) < 3.5 * sd      # measured 0.367 (+2.9 sd)
    # one data set is one draw: over 10 independent data sets (seeds 0-9) the accuracy has
    # mean 0.250 and sd 0.061 (the binomial 0.040 plus the fold-to-fold fits); their mean
    # must sit at chance within 3.5 sd / sqrt(10) of a generous sd of 0.065
    accs = [float(ng.decoding_accuracy(clusters(0.0, seed=s), "object_name",
                                       per_manifold=False)["accuracy"]) for s in range(10)]
    assert abs(np.mean(accs) - 0.25) < 3.5 * 0.065 / np.sqrt(10), accs
    assert all(abs(acc - 0.25) < 3.5 * 0.065 for acc in accs), accs
    # pairwise: 60 held-out points per pair, chance 1/2, sd 0.065 per pair; the mean over 6
    assert abs(float(res["pairwise_accuracy_mean"]) - 0.5) < 3.5 * 0.065


@pytest.mark.parametrize("classifier", ["linear_svm", "logistic"])
def test_decoding_equals_a_plain_cross_val_score_loop(classifier):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    a = clusters(1.5, seed=3)
    res = ng.decoding_accuracy(a, "object_name", classifier=classifier, n_splits=4, seed=2)
    X, y, groups = a.values, a["object_name"].values, a["stimulus_id"].values
    clf = LinearSVC(random_state=2, max_iter=10000) if classifier == "linear_svm" \
        else LogisticRegression(max_iter=2000)
    est = make_pipeline(StandardScaler(), clf)
    folds = list(StratifiedGroupKFold(4, shuffle=True, random_state=2).split(X, y, groups))
    for train, test in folds:            # repeats of one image never straddle the split
        assert not set(groups[train]) & set(groups[test])
    expected = cross_val_score(est, X, y, cv=folds)
    np.testing.assert_array_equal(res["accuracy_split"].values, expected)
    assert float(res["accuracy"]) == pytest.approx(expected.mean())
    # one-vs-rest: balanced accuracy of class c2 against the rest, same folds
    ovr = cross_val_score(est, X, y == "c2", cv=folds, scoring="balanced_accuracy")
    assert float(res["one_vs_rest_accuracy"].sel(manifold="c2")) == pytest.approx(ovr.mean())
    # pairwise c0 vs c3: the same folds restricted to their points
    keep = np.flatnonzero((y == "c0") | (y == "c3"))
    sub = [(np.flatnonzero(np.isin(keep, tr)), np.flatnonzero(np.isin(keep, te)))
           for tr, te in folds]
    pair = cross_val_score(est, X[keep], y[keep], cv=sub)
    got = float(res["pairwise_accuracy"].sel(manifold="c0", manifold_other="c3"))
    assert got == pytest.approx(pair.mean())


def test_decoding_bad_inputs():
    a = clusters(1.0, n_stim=3)
    with pytest.raises(AnalysisError, match="n_splits=5 needs at least 5 distinct stimuli.*"
                                            "'c0' \\(3\\)"):
        ng.decoding_accuracy(a, "object_name")
    with pytest.raises(AssemblyError, match="by='digit'.*object_name"):
        ng.decoding_accuracy(a, "digit")
    with pytest.raises(AnalysisError, match="classifier must be one of"):
        ng.decoding_accuracy(a, "object_name", classifier="forest", n_splits=2)
    with pytest.raises(AnalysisError, match="at least 2 manifolds.*gives 1: 'c0'"):
        ng.decoding_accuracy(a.isel(presentation=slice(0, 6)), "object_name", n_splits=2)


# --------------------------------------------------------------------------------------------
# compare_geometry
# --------------------------------------------------------------------------------------------

def system_pair(seed=0, noise=0.05):
    a = manifolds_in_subspaces(P=10, n=12, N=40, seed=seed, radius_scale=6.0)
    Q = random_rotation(40, seed + 11)
    rng = np.random.default_rng(seed + 12)
    b = a.copy(data=2.5 * (a.values @ Q + noise * rng.standard_normal(a.shape)))
    return a, b


def test_a_system_agrees_with_its_rotated_rescaled_noisy_copy():
    a, b = system_pair()
    res = ng.compare_geometry(a, b, "object_name", n_t=100, n_permutations=300)
    assert res.attrs["analysis"] == "compare_geometry"
    for name in ("rank_agreement_capacity", "rank_agreement_radius",
                 "rank_agreement_dimension"):
        assert float(res[name]) > 0.8, name            # Spearman over 10 manifolds
    assert float(res["center_alignment_similarity"]) > 0.99
    assert float(res["procrustes_alignment"]) > 0.9
    for name in ("rank_agreement_capacity", "rank_agreement_radius",
                 "center_alignment_similarity", "procrustes_alignment"):
        assert float(res[name + "_pvalue"]) < 0.01, name
        assert res[name + "_null"].dims == ("permutation",)
    # invariance: rotating and scaling x changes nothing (capacity works in span coordinates)
    a2 = a.copy(data=0.3 * a.values @ random_rotation(40, 99))
    res2 = ng.compare_geometry(a2, b, "object_name", n_t=100, n_permutations=300)
    for name in ("rank_agreement_capacity", "rank_agreement_radius", "rank_agreement_dimension",
                 "center_alignment_similarity", "procrustes_alignment"):
        assert float(res2[name]) == pytest.approx(float(res[name]), abs=1e-6), name


def test_shuffled_manifold_labels_drop_agreement_to_the_null():
    a, b = system_pair(seed=1)
    # 1. y's labels shuffled over its points (rows permuted, ids and labels kept): no
    #    manifold structure is shared, every statistic is a draw from its null
    rng = np.random.default_rng(3)
    shuffled = b.copy(data=b.values[rng.permutation(b.sizes["presentation"])])
    res = ng.compare_geometry(a, shuffled, "object_name", n_t=50, n_permutations=300)
    for name in ("rank_agreement_capacity", "rank_agreement_radius",
                 "center_alignment_similarity", "procrustes_alignment"):
        null = res[name + "_null"].values
        assert float(res[name + "_pvalue"]) > 0.01, name
        assert np.quantile(null, 0.005) <= float(res[name]) <= np.quantile(null, 0.995), name
    assert float(res["procrustes_alignment"]) < 0.5
    # 2. y's manifolds relabeled as whole manifolds (o0 -> o5, ...): the per-system
    #    statistics compare mismatched manifolds and fall to their nulls. (The Procrustes
    #    statistic is left out here: the stimulus pairing itself carries the relabeling, and in
    #    40 dims an orthogonal map can learn it.)
    mapping = {f"o{m}": f"o{(3 * m + 5) % 10}" for m in range(10)}
    relabeled = b.assign_coords(object_name=("presentation",
                                             [mapping[v] for v in b["object_name"].values]))
    with pytest.raises(AlignmentError, match="object_name labels differ.*s0000: 'o0' vs 'o5'"):
        ng.compare_geometry(a, relabeled, "object_name")
    order = np.argsort(relabeled["object_name"].values, kind="stable")
    relabeled = relabeled.isel(presentation=order).assign_coords(stimulus_id=a["stimulus_id"])
    res = ng.compare_geometry(a, relabeled, "object_name", n_t=50, n_permutations=300)
    for name in ("rank_agreement_radius", "rank_agreement_dimension",
                 "center_alignment_similarity"):
        assert float(res[name + "_pvalue"]) > 0.01, name


def test_compare_geometry_bad_inputs():
    a, b = system_pair()
    with pytest.raises(AlignmentError, match="stimulus_id sets differ: 12 only in the first "
                                             "assembly \\('s0000', 's0001'"):
        ng.compare_geometry(a, b.isel(presentation=slice(12, None)), "object_name")
    with pytest.raises(AssemblyError, match="by \\(in y\\)='object_name'.*stimulus_id"):
        ng.compare_geometry(a, b.drop_vars("object_name"), "object_name")
    # one manifold, and two (too few pairs for a center-alignment similarity)
    with pytest.raises(AnalysisError, match="at least 2 manifolds, got 1"):
        ng.compare_geometry(a.isel(presentation=slice(0, 12)),
                            b.isel(presentation=slice(0, 12)), "object_name")
    with pytest.raises(AnalysisError, match="at least 3 manifolds; got 2"):
        ng.compare_geometry(a.isel(presentation=slice(0, 24)),
                            b.isel(presentation=slice(0, 24)), "object_name", n_t=20)


# --------------------------------------------------------------------------------------------
# layer_profile
# --------------------------------------------------------------------------------------------

def test_layer_profile_with_regions_contract():
    a, _ = system_pair(seed=2)
    rng = np.random.default_rng(0)
    neural_it = a.copy(data=a.values @ random_rotation(40, 5))
    # with repetitions: two noisy repeats of each stimulus (for the noise ceiling)
    reps = xr.concat([neural_it.copy(data=neural_it.values + 0.1 * rng.standard_normal(a.shape))
                      for _ in range(2)], dim="presentation")
    reps = reps.assign_coords(repetition=("presentation", np.repeat([0, 1], a.sizes[
        "presentation"])))
    noise_layer = a.copy(data=rng.standard_normal(a.shape))
    features = {"noise": noise_layer, "good": a}
    # only IT has repetitions: no noise ceiling for V4, so 'ceiling' is left out, with a warning
    with pytest.warns(UserWarning, match="no noise ceiling"):
        res = ng.layer_profile(features, {"IT": reps, "V4": neural_it}, "object_name", n_t=50,
                               n_permutations=100, predictivity_options={"n_splits": 3})
    assert res.attrs["analysis"] == "layer_profile"
    assert list(res["layer"].values) == ["noise", "good"]
    assert list(res["region"].values) == ["IT", "V4"]
    for name in ("capacity", "radius", "dimension", "center_correlation", "center_alignment",
                 "subspace_alignment", "decoding_accuracy", "chance"):
        assert res[name].dims == ("layer",), name
        assert res["neural_" + name].dims == ("region",), name
    for name in ("predictivity", "rank_agreement_capacity", "rank_agreement_radius",
                 "rank_agreement_dimension", "center_alignment_similarity",
                 "procrustes_alignment", "procrustes_alignment_pvalue"):
        assert res[name].dims == ("layer", "region"), name
    # the layer that is the region (rotated) predicts and agrees; the noise layer does not
    good, noise = res.sel(layer="good"), res.sel(layer="noise")
    assert np.all(good["predictivity"].values > 0.9)
    assert np.all(good["predictivity"].values > noise["predictivity"].values + 0.5)
    assert np.all(good["procrustes_alignment"].values > 0.9)
    assert np.all(good["procrustes_alignment_pvalue"].values < 0.05)
    assert np.all(good["center_alignment_similarity"].values > 0.99)
    assert float(good["capacity"]) == pytest.approx(float(res["neural_capacity"].sel(
        region="V4")), rel=1e-6)                       # rotation: the same geometry
    assert "ceiling" not in res
    # a single assembly gives a length-1 region dim named after it
    one = ng.layer_profile({"good": a}, reps.rename("IT"), "object_name",
                           analyses=("predictivity",), predictivity_options={"n_splits": 3})
    assert list(one["region"].values) == ["IT"] and one["ceiling"].item() > 0.9
    with pytest.raises(AnalysisError, match="need neural responses"):
        ng.layer_profile(features, None, "object_name", analyses=("agreement",))
    with pytest.raises(AnalysisError, match="unknown analyses 'rsa'"):
        ng.layer_profile(features, None, "object_name", analyses=("rsa",))


def test_layer_profile_digits_cnn_trained_last_layer_beats_untrained_and_pixels():
    import loaders

    # 5 digits x 3 exemplars x 4 positions: 60 images; n_t = 60 keeps capacity fast and its
    # Monte-Carlo error (~2/sqrt(n_t) relative per manifold, averaged over 5) well below the
    # gaps asserted
    images, meta = loaders.synthetic.translated_digits(digits=[0, 1, 3, 7, 8], n_exemplars=3,
                                                       positions=[(0, 0), (8, 0), (0, 8),
                                                                  (8, 8)])
    trained = loaders.model_activations(loaders.synthetic.digits_convnet(), images, "fc",
                                        metadata=meta, progress=False)["fc"]
    untrained = loaders.model_activations(loaders.synthetic.untrained_convnet(), images, "fc",
                                          metadata=meta, progress=False)["fc"]
    pixels = xr.DataArray(images.reshape(len(images), -1), dims=("presentation", "neuroid"),
                          coords={**{c: trained[c] for c in trained.coords
                                     if trained[c].dims == ("presentation",)},
                                  "neuroid_id": ("neuroid", [f"px{i}" for i in range(256)])})
    res = ng.layer_profile({"pixels": pixels, "untrained.fc": untrained, "trained.fc": trained},
                           None, "object_name", analyses=("capacity", "decoding"), n_t=60,
                           n_splits=3)
    assert "region" not in res.dims
    cap, dec = res["capacity"], res["decoding_accuracy"]
    assert float(cap.sel(layer="trained.fc")) > float(cap.sel(layer="untrained.fc"))
    assert float(cap.sel(layer="trained.fc")) > float(cap.sel(layer="pixels"))
    assert float(dec.sel(layer="trained.fc")) > float(dec.sel(layer="untrained.fc"))
    assert float(dec.sel(layer="trained.fc")) > float(dec.sel(layer="pixels"))
    assert float(dec.sel(layer="trained.fc")) > 0.8 > float(res["chance"].sel(layer="pixels"))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_cli_align_and_profile(tmp_path, capsys):
    a, b = system_pair()
    rng = np.random.default_rng(0)
    a = a.assign_coords(position=("presentation", rng.choice(["left", "right"],
                                                             a.sizes["presentation"])))
    pa = ng.io.to_netcdf(a, tmp_path / "a.nc")
    pb = ng.io.to_netcdf(b.assign_attrs(layer="layer4"), tmp_path / "b.nc")
    assert main(["align", str(pa), "--by", "object_name", "-o", str(tmp_path / "al.nc")]) == 0
    out = ng.io.open(tmp_path / "al.nc")
    ref = ng.manifold_alignment(a, "object_name")
    np.testing.assert_allclose(out["subspace_alignment"].values,
                               ref["subspace_alignment"].values)
    assert "subspace_alignment_mean" in capsys.readouterr().out
    assert main(["align", str(pa), "--by", "object_name", "--other-by", "position",
                 "--n-components", "2", "-o", str(tmp_path / "ob.nc")]) == 0
    assert list(ng.io.open(tmp_path / "ob.nc")["manifold_other"].values) == ["left", "right"]
    assert main(["align", str(pa), "--by", "object_name", "--other", str(pb), "--n-t", "50",
                 "--n-permutations", "100", "-o", str(tmp_path / "cmp.nc")]) == 0
    assert ng.io.open(tmp_path / "cmp.nc").attrs["analysis"] == "compare_geometry"
    assert "procrustes_alignment" in capsys.readouterr().out
    assert main(["profile", str(pb), str(pa), "--by", "object_name", "--analyses",
                 "alignment,decoding", "--n-splits", "3", "-o", str(tmp_path / "p.nc")]) == 0
    prof = ng.io.open(tmp_path / "p.nc")
    assert list(prof["layer"].values) == ["layer4", "a"]
    # a neural file with two regions on its neuroids becomes two regions of the profile
    neural = a.assign_coords(region=("neuroid", ["V4"] * 20 + ["IT"] * 20))
    pn = ng.io.to_netcdf(neural, tmp_path / "neural.nc")
    assert main(["profile", str(pb), "--neural", str(pn), "--by", "object_name", "--analyses",
                 "predictivity", "-o", str(tmp_path / "pn.nc")]) == 0
    prof = ng.io.open(tmp_path / "pn.nc")
    assert list(prof["region"].values) == ["V4", "IT"]
    assert prof["predictivity"].dims == ("layer", "region")
    # bad input: one line, exit 2
    assert main(["align", str(pa), "--by", "shape"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--by 'shape'" in err and "object_name" in err
