import io

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from irisgan.models.face_cue import (
    DESCRIPTOR_SIZE,
    FEATURE_SIZE,
    INNER_SIZE,
    TEXTURE_SIZE,
    FaceCue,
    FaceView,
    fit_face_cue,
    fit_logistic,
    fit_part_weights,
    fit_vividness,
    generated_families,
    logit,
)


def _stored(cue: FaceCue) -> FaceCue:
    """The cue as a weights-only detector file holds it, read back."""
    buf = io.BytesIO()
    torch.save({"face_cue": cue.to_dict()}, buf)
    buf.seek(0)
    return FaceCue(**torch.load(buf, weights_only=True)["face_cue"])


def _descriptors(n: int, shift: float, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE))
    x[:, :3] += shift  # the class shows in three coordinates only
    return x


def test_logistic_fit_finds_the_informative_coordinates():
    rng = np.random.default_rng(0)
    x = np.r_[_descriptors(200, 0.0, rng), _descriptors(200, 0.1, rng)]
    y = np.r_[np.zeros(200), np.ones(200)]
    mean, scale, weight, bias = fit_logistic(x, y)
    assert weight.shape == (DESCRIPTOR_SIZE,) and np.isfinite(weight).all()
    assert weight[:3].min() > np.abs(weight[3:]).max() and weight[:3].min() > 5 * np.abs(weight[3:]).mean()
    scores = ((x - mean) / scale) @ weight + bias
    assert np.mean((scores > 0) == (y == 1)) > 0.95
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(x[:200], y[:200])


def test_fused_logit_is_the_sum_of_the_standardised_logits():
    rng = np.random.default_rng(1)
    fit = np.r_[_descriptors(100, 0.0, rng), _descriptors(100, 0.1, rng)]
    labels = np.r_[np.zeros(100), np.ones(100)]
    val = np.r_[_descriptors(40, 0.0, rng), _descriptors(40, 0.1, rng)]
    ran_p = np.r_[rng.uniform(0.1, 0.6, 40), rng.uniform(0.4, 0.9, 40)]
    cue = fit_face_cue(fit, labels, val, ran_p, k=0)  # the logistic regression alone
    face, ran = cue.face_logits(val), logit(ran_p)
    # standardised on the validation photos: each part has mean 0 and sd 1 there
    np.testing.assert_allclose(cue.face_logit, (face.mean(), face.std()), rtol=1e-6)
    np.testing.assert_allclose(cue.ran_logit, (ran.mean(), ran.std()), rtol=1e-6)
    fused = cue.fused_logits(ran_p, val)
    np.testing.assert_allclose(
        fused, (face - face.mean()) / face.std() + (ran - ran.mean()) / ran.std(), rtol=1e-5
    )
    np.testing.assert_allclose(cue.fused_probability(ran_p, val), 1 / (1 + np.exp(-fused)))
    # the fusion ranks the validation photos better than the RAN's score alone here
    y = torch.tensor(np.r_[np.zeros(40), np.ones(40)]).long()
    auroc = lambda s: float(binary_auroc(torch.tensor(s), y))  # noqa: E731
    assert auroc(fused) > auroc(ran_p)
    # it travels as plain numbers
    again = FaceCue(**cue.to_dict())
    np.testing.assert_allclose(again.fused_logits(ran_p, val), fused)
    with pytest.raises(ValueError, match="128 values"):
        FaceCue([0.0] * 5, [1.0] * 5, [0.0] * 5, 0.0)


def test_part_weights_follow_what_each_part_tells_the_validation_photos_and_travel_with_the_cue():
    rng = np.random.default_rng(7)
    fit = np.r_[_descriptors(100, 0.0, rng), _descriptors(100, 0.1, rng)]
    labels = np.r_[np.zeros(100), np.ones(100)]
    val = np.r_[_descriptors(60, 0.0, rng), _descriptors(60, 0.1, rng)]
    y_val = np.r_[np.zeros(60), np.ones(60)]
    noise = rng.uniform(0.1, 0.9, 120)  # an iris network that tells nothing
    plain = fit_face_cue(fit, labels, val, noise, k=5)
    cue = fit_face_cue(fit, labels, val, noise, k=5, val_labels=y_val)
    assert plain.part_weights is None and set(cue.part_weights) == {"face", "knn", "iris"} == {
        *cue.part_names,
        "iris",
    }
    assert cue.part_weights["face"] > 0.5 and abs(cue.part_weights["iris"]) < 0.3 * cue.part_weights["face"]
    assert cue.part_weights == fit_part_weights(plain, val, noise, y_val)  # the fit changes nothing else
    # the weighted sum of the standardised parts, as the cue without weights standardises them
    z = plain.standardised_parts(val)
    iris = (logit(noise) - plain.ran_logit[0]) / plain.ran_logit[1]
    expected = sum(cue.part_weights[n] * z[n] for n in z) + cue.part_weights["iris"] * iris
    np.testing.assert_allclose(cue.fused_logits(noise, val), expected, rtol=1e-6)
    np.testing.assert_allclose(plain.fused_logits(noise, val), sum(z.values()) + iris, rtol=1e-6)
    # an informative iris network gets its weight
    told = np.where(y_val == 1, rng.uniform(0.6, 0.99, 120), rng.uniform(0.01, 0.4, 120))
    assert fit_part_weights(plain, val, told, y_val)["iris"] > 0.5
    # they travel in a weights-only file; a file without them (an older detector) counts each part once
    np.testing.assert_allclose(_stored(cue).fused_logits(noise, val), cue.fused_logits(noise, val), rtol=1e-6)
    assert _stored(plain).part_weights is None
    with pytest.raises(ValueError, match="part_weights needs a finite weight for each of"):
        FaceCue(**{**cue.to_dict(), "part_weights": {"face": 1.0, "iris": 1.0}})
    with pytest.raises(ValueError, match="part_weights needs a finite weight"):
        FaceCue(**{**cue.to_dict(), "part_weights": {**cue.part_weights, "knn": float("nan")}})
    with pytest.raises(ValueError, match="80 labels for 120"):
        fit_part_weights(plain, val, noise, y_val[:80])


def test_family_probes_catch_every_family_and_travel_with_the_cue():
    rng = np.random.default_rng(3)

    def features(n: int, family: int) -> np.ndarray:
        # real faces sit at the origin; each generated family is off it along a coordinate of its own, of the
        # descriptor and of the inner block alike
        x = np.concatenate(
            [rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE)), rng.normal(0.0, 1.0, (n, INNER_SIZE))], 1
        )
        if family:
            cols = slice(20 * family, 20 * family + 20)
            x[:, cols] += 0.06
            x[:, DESCRIPTOR_SIZE:][:, cols] += 1.0
        return x

    # a large family and a small one: one line between real and generated follows the large one
    fit = np.r_[features(200, 0), features(180, 1), features(30, 2)]
    labels = np.r_[np.zeros(200), np.ones(210)]
    generators = ["ffhq"] * 200 + ["big"] * 180 + ["small"] * 30
    families = generated_families(generators, labels)
    assert list(families[[0, 200, 380]]) == ["", "big", "small"]
    assert set(generated_families(generators, labels, min_photos=31)[labels == 1]) == {"big", "other"}
    # vivid copies appended after the photos are a family of their own; a count that does not add up is refused
    with_copies = generated_families(generators, np.r_[labels, np.ones(25)], copies=25)
    assert list(with_copies[[0, 200, 410]]) == ["", "big", "vivid copy"]
    with pytest.raises(ValueError, match="copies"):
        generated_families(generators, np.r_[labels, np.ones(25)], copies=24)
    val = np.r_[features(60, 0), features(30, 1), features(30, 2)]
    ran_p = rng.uniform(0.1, 0.9, 120)
    test = np.r_[features(60, 0), features(60, 2)]
    y = torch.tensor(np.r_[np.zeros(60), np.ones(60)]).long()
    pooled = fit_face_cue(fit, labels, val, ran_p, k=0)
    cue = fit_face_cue(fit, labels, val, ran_p, k=0, fit_families=families)
    assert pooled.family_probes is None and sorted(cue.family_probes) == ["face", "inner"]
    assert [len(cue.family_probes[p]) for p in ("face", "inner")] == [2, 2]
    auc = lambda c: float(binary_auroc(torch.tensor(c.standardised_parts(test)["face"]), y))  # noqa: E731
    assert auc(cue) > 0.99 and auc(cue) > auc(pooled) + 0.02  # the small family is caught too (pooled: 0.95)
    # the largest family logit, z-scored on the real training photos
    (probe, (rm, rs)), *_ = cue.family_probes["inner"]
    m, sc, w, b = (np.asarray(v) for v in probe)
    inner = test[:, DESCRIPTOR_SIZE:]
    assert np.all(cue.inner_logits(test) >= (((inner - m) / sc) @ w + b - rm) / rs - 1e-9)
    ran_test = rng.uniform(0.1, 0.9, 120)
    np.testing.assert_allclose(
        _stored(cue).fused_logits(ran_test, test), cue.fused_logits(ran_test, test), rtol=1e-9
    )
    assert _stored(pooled).family_probes is None
    with pytest.raises(ValueError, match="family probes are for the 'face' and"):
        FaceCue(**{**cue.to_dict(), "family_probes": {"texture": cue.family_probes["face"]}})
    with pytest.raises(ValueError, match="a face family probe needs 128 values"):
        FaceCue(**{**cue.to_dict(), "family_probes": {"face": cue.family_probes["inner"]}})


def test_nearest_neighbour_score_is_standardised_and_added_and_travels_in_a_weights_file():
    rng = np.random.default_rng(2)
    fit = np.r_[_descriptors(60, 0.0, rng), _descriptors(60, 0.1, rng)]
    labels = np.r_[np.zeros(60), np.ones(60)]
    val = np.r_[_descriptors(30, 0.0, rng), _descriptors(30, 0.1, rng)]
    ran_p = rng.uniform(0.1, 0.9, 60)
    cue = fit_face_cue(fit, labels, val, ran_p, k=5)
    assert cue.real_neighbours.shape == (60, DESCRIPTOR_SIZE) and cue.fake_neighbours.shape == (
        60,
        DESCRIPTOR_SIZE,
    )
    knn = cue.knn_scores(val)
    # by hand: mean distance to the 5 nearest real faces minus that to the 5 nearest generated ones
    dist = np.linalg.norm(val[:, None] - fit[None], axis=-1)
    expected = np.sort(dist[:, :60], 1)[:, :5].mean(1) - np.sort(dist[:, 60:], 1)[:, :5].mean(1)
    np.testing.assert_allclose(knn, expected, rtol=1e-4, atol=1e-6)
    assert knn[30:].mean() > knn[:30].mean()  # generated faces sit nearer the generated training faces
    np.testing.assert_allclose(cue.knn_score, (knn.mean(), knn.std()), rtol=1e-4)
    face = (cue.face_logits(val) - cue.face_logit[0]) / cue.face_logit[1]
    np.testing.assert_allclose(
        cue.face_part(val), face + (knn - knn.mean()) / knn.std(), rtol=1e-4, atol=1e-6
    )
    ran = (logit(ran_p) - cue.ran_logit[0]) / cue.ran_logit[1]
    np.testing.assert_allclose(cue.fused_logits(ran_p, val), cue.face_part(val) + ran, rtol=1e-6)
    # the neighbours travel as tensors: a weights-only load gives the same scores
    again = _stored(cue)
    np.testing.assert_allclose(again.fused_logits(ran_p, val), cue.fused_logits(ran_p, val), rtol=1e-6)
    with pytest.raises(ValueError, match="k=70 needs at least 70 neighbours"):
        FaceCue(**{**cue.to_dict(), "k": 70})
    assert fit_face_cue(fit, labels, val, ran_p, k=70).k == 60  # as many as the smaller class has


def test_texture_features_add_a_third_standardised_part_and_travel_in_a_weights_file():
    rng = np.random.default_rng(3)

    def features(
        n: int, shift: float
    ) -> np.ndarray:  # the class shows in the texture's first coordinates only
        texture = rng.normal(0.0, 1.0, (n, TEXTURE_SIZE))
        texture[:, :4] += shift
        return np.c_[rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE)), texture]

    fit, val = np.r_[features(150, 0.0), features(150, 2.0)], np.r_[features(40, 0.0), features(40, 2.0)]
    labels, ran_p = np.r_[np.zeros(150), np.ones(150)], rng.uniform(0.1, 0.9, 80)
    cue = fit_face_cue(fit, labels, val, ran_p, k=5)
    assert fit.shape[1] == FEATURE_SIZE and cue.width == FEATURE_SIZE and cue.texture is not None
    assert cue.real_neighbours.shape == (150, DESCRIPTOR_SIZE)  # the neighbours are of the descriptor alone
    texture = cue.texture_logits(val)
    np.testing.assert_allclose(cue.texture_logit, (texture.mean(), texture.std()), rtol=1e-6)
    without = FaceCue(**{**cue.to_dict(), "texture": None})  # the descriptor's parts alone
    np.testing.assert_allclose(
        cue.face_part(val),
        without.face_part(val) + (texture - texture.mean()) / texture.std(),
        rtol=1e-5,
        atol=1e-6,
    )
    y = torch.tensor(np.r_[np.zeros(40), np.ones(40)]).long()
    assert float(binary_auroc(torch.tensor(texture), y)) > 0.9  # the texture probe found its coordinates
    again = _stored(cue)
    np.testing.assert_allclose(again.face_part(val), cue.face_part(val), rtol=1e-6)
    # a cue with texture refuses the descriptor alone; one without reads wider features up to the descriptor
    with pytest.raises(ValueError, match=f"needs \\(N, {FEATURE_SIZE}\\) face features"):
        cue.face_part(val[:, :DESCRIPTOR_SIZE])
    np.testing.assert_allclose(without.face_logits(val), without.face_logits(val[:, :DESCRIPTOR_SIZE]))
    with pytest.raises(ValueError, match="128, 280, 1600, 1752 wide"):
        fit_face_cue(fit[:, :200], labels, val, ran_p)


def test_inner_features_add_a_standardised_part_of_their_own_after_the_texture():
    rng = np.random.default_rng(5)

    def features(
        n: int, shift: float, texture: bool
    ) -> np.ndarray:  # the class shows in the inner block only
        inner = rng.normal(0.0, 1.0, (n, INNER_SIZE))
        inner[:, -20:] += shift
        blocks = [rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE))] + [
            rng.normal(0.0, 1.0, (n, TEXTURE_SIZE))
        ] * texture
        return np.concatenate([*blocks, inner], axis=1)

    labels, ran_p = np.r_[np.zeros(150), np.ones(150)], rng.uniform(0.1, 0.9, 80)
    y = torch.tensor(np.r_[np.zeros(40), np.ones(40)]).long()
    for texture in (False, True):
        fit = np.r_[features(150, 0.0, texture), features(150, 2.0, texture)]
        val = np.r_[features(40, 0.0, texture), features(40, 2.0, texture)]
        cue = fit_face_cue(fit, labels, val, ran_p, k=5)
        view = FaceView(texture=texture, inner=True)
        assert (
            cue.view == view
            and cue.width == view.width == fit.shape[1]
            and (cue.texture is not None) == texture
        )
        assert view.cache_name == (
            "face_features_p0.25_texture_inner.npz" if texture else "face_features_p0.25_inner.npz"
        )
        inner = cue.inner_logits(val)
        np.testing.assert_allclose(cue.inner_logit, (inner.mean(), inner.std()), rtol=1e-6)
        assert float(binary_auroc(torch.tensor(inner), y)) > 0.9  # the inner probe found its coordinates
        # and a nearest-neighbour score on them, standardised too, like the descriptor's
        assert [len(n) for n in cue.inner_neighbours] == [150, 150]
        near = cue.inner_knn_scores(val)
        np.testing.assert_allclose(cue.inner_knn_score, (near.mean(), near.std()), rtol=1e-6)
        assert float(binary_auroc(torch.tensor(near), y)) > 0.8
        without = FaceCue(**{**cue.to_dict(), "inner": None, "inner_neighbours": None})
        np.testing.assert_allclose(
            cue.face_part(val),
            without.face_part(val[:, : without.width])
            + (inner - inner.mean()) / inner.std()
            + (near - near.mean()) / near.std(),
            rtol=1e-5,
            atol=1e-6,
        )
        no_near = fit_face_cue(fit, labels, val, ran_p, k=5, inner_neighbours=False)
        assert (
            no_near.inner is not None
            and no_near.inner_neighbours is None
            and "inner_knn" not in no_near.parts(val)
        )
        again = _stored(cue)
        assert again.view == view
        np.testing.assert_allclose(again.face_part(val), cue.face_part(val), rtol=1e-6)
        with pytest.raises(ValueError, match=f"needs \\(N, {view.width}\\) face features"):
            cue.face_part(val[:, :-1])
    with pytest.raises(ValueError, match="inner probe needs 1472 values"):
        FaceCue(**{**cue.to_dict(), "inner": ([0.0], [1.0], [0.0], 0.0)})
    with pytest.raises(ValueError, match="inner neighbours need the inner probe"):
        FaceCue(**{**cue.to_dict(), "inner": None})


def test_novelty_is_the_distance_from_the_training_faces_of_either_class():
    rng = np.random.default_rng(7)

    def features(n: int, shift: float, spread: float = 1.0) -> np.ndarray:
        inner = rng.normal(0.0, spread, (n, INNER_SIZE))
        inner[:, :20] += shift
        return np.concatenate([rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE)), inner], axis=1)

    labels = np.r_[np.zeros(120), np.ones(120)]
    fit = np.r_[features(120, 0.0), features(120, 2.0)]
    val = np.r_[features(100, 0.0), features(100, 2.0)]
    cue = fit_face_cue(fit, labels, val, rng.uniform(0.1, 0.9, 200), k=5)
    familiar = cue.novelty(val)
    # the mean distance to the 5 nearest training photos, in the inner probe's standardisation, whatever their class
    z = (fit[:, -INNER_SIZE:] - np.asarray(cue.inner[0])) / np.asarray(cue.inner[1])
    first = (val[:1, -INNER_SIZE:] - np.asarray(cue.inner[0])) / np.asarray(cue.inner[1])
    assert familiar[0] == pytest.approx(np.sort(np.linalg.norm(z - first, axis=1))[:5].mean(), rel=1e-3)
    # faces of another kind (here, spread wider in every inner feature) lie farther out, whichever class
    assert np.quantile(familiar, 0.95) < cue.novelty(features(50, 1.0, spread=1.5)).min()
    np.testing.assert_allclose(_stored(cue).novelty(val), familiar, rtol=1e-6)
    plain = fit_face_cue(fit, labels, val, rng.uniform(0.1, 0.9, 200), k=5, inner_neighbours=False)
    with pytest.raises(ValueError, match="novelty needs the inner neighbours"):
        plain.novelty(val)


def test_vividness_learns_the_look_of_the_copies_and_travels_with_the_cue():
    rng = np.random.default_rng(9)
    width = DESCRIPTOR_SIZE + INNER_SIZE
    real = rng.normal(0.0, 1.0, (150, width))
    copies = real + rng.normal(0.0, 0.1, real.shape)
    copies[:, 200:210] += 3.0  # the copies' look: a shift in a few inner features, the face otherwise kept
    labels = np.r_[np.zeros(100), np.ones(100)]
    fit = np.r_[real[:100], rng.normal(0.5, 1.0, (100, width))]
    cue = fit_face_cue(fit, labels, real[100:], rng.uniform(0.1, 0.9, 50), k=5)
    with pytest.raises(ValueError, match="vividness needs the vivid probe"):
        cue.vividness(real)
    cue.vivid = fit_vividness(real[:100], copies[:100])
    held_real, held_copies = cue.vividness(real[100:]), cue.vividness(copies[100:])
    # faces it never saw: the look, not the faces, is learnt
    assert (held_copies[:, None] > held_real[None, :]).mean() > 0.95
    np.testing.assert_allclose(_stored(cue).vividness(real[100:]), held_real, rtol=1e-6)
    with pytest.raises(ValueError, match=f"vivid probe needs {width} values"):
        FaceCue(**{**cue.to_dict(), "vivid": ([0.0], [1.0], [0.0], 0.0)})
    with pytest.raises(ValueError, match="one copy per real photo"):
        fit_vividness(real[:100], copies[:99])


def test_a_cue_of_several_crops_reads_their_descriptors_side_by_side_and_only_its_own_view():
    rng = np.random.default_rng(4)

    def crops(n: int, shift: float) -> np.ndarray:  # the class shows in the second crop's descriptor only
        x = rng.normal(0.0, 0.05, (n, 3 * DESCRIPTOR_SIZE))
        x[:, DESCRIPTOR_SIZE : DESCRIPTOR_SIZE + 3] += shift
        return x

    fit, val = np.r_[crops(150, 0.0), crops(150, 0.3)], np.r_[crops(40, 0.0), crops(40, 0.3)]
    labels, ran_p = np.r_[np.zeros(150), np.ones(150)], rng.uniform(0.1, 0.9, 80)
    view = FaceView.parse("0.25,0.1,0")
    assert view.paddings == (0.25, 0.1, 0.0) and view.width == 3 * DESCRIPTOR_SIZE and not view.texture
    assert view.cache_name == "face_features_p0.25_0.1_0.npz"
    assert FaceView().cache_name == "face_descriptors.npz"
    assert FaceView(texture=True).cache_name == "face_features.npz"
    assert FaceView((0.25, 0.1), texture=True).width == 2 * DESCRIPTOR_SIZE + TEXTURE_SIZE
    cue = fit_face_cue(fit, labels, val, ran_p, k=5, paddings=view.paddings)
    assert cue.view == view and cue.real_neighbours.shape == (150, 3 * DESCRIPTOR_SIZE)
    y = torch.tensor(np.r_[np.zeros(40), np.ones(40)]).long()
    assert float(binary_auroc(torch.tensor(cue.face_part(val)), y)) > 0.95  # the second crop was read
    again = _stored(cue)
    assert again.view == view
    np.testing.assert_allclose(again.face_part(val), cue.face_part(val), rtol=1e-6)
    # another view's features are refused, never read in part
    for width in (DESCRIPTOR_SIZE, FEATURE_SIZE, 3 * DESCRIPTOR_SIZE + TEXTURE_SIZE):
        with pytest.raises(ValueError, match="needs \\(N, 384\\) face features"):
            cue.face_part(np.zeros((2, width)))
    with pytest.raises(ValueError, match="3 crop\\(s\\) are 384, 536, 1856, 2008 wide"):
        fit_face_cue(fit[:, :DESCRIPTOR_SIZE], labels, val, ran_p, paddings=view.paddings)
    with pytest.raises(ValueError, match="mean, scale and weight need 128"):
        FaceCue(**{**cue.to_dict(), "paddings": (0.25,)})
    for bad in ("0.25,x", "0.25,0.25", "-1", "3"):
        with pytest.raises(ValueError, match="face crops|paddings must be"):
            FaceView.parse(bad)


def test_a_stored_cue_is_read_back_and_one_from_another_version_refused_clearly():
    from irisgan.checkpoints import CheckpointError
    from irisgan.inference import load_face_cue

    rng = np.random.default_rng(5)
    fit = np.r_[_descriptors(60, 0.0, rng), _descriptors(60, 0.1, rng)]
    cue = fit_face_cue(fit, np.r_[np.zeros(60), np.ones(60)], fit[::3], rng.uniform(0.1, 0.9, 40), k=3)
    stored = cue.to_dict()
    assert load_face_cue("det.pt", None) is None
    np.testing.assert_allclose(load_face_cue("det.pt", stored).face_part(fit), cue.face_part(fit))
    with pytest.raises(CheckpointError, match="det.pt: its face cue has fields .*\\(mlp\\).*another version"):
        load_face_cue("det.pt", {**stored, "mlp": None})
    with pytest.raises(CheckpointError, match="det.pt: its face cue cannot be read: .*128 values"):
        load_face_cue("det.pt", {**stored, "mean": [0.0]})
