"""The detector with a face cue: descriptors of the photos behind a pairs CSV, the per-source threshold, and
``ensemble --face-cue`` through ``predict`` and ``evaluate`` on real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from irisgan.data.pairs_format import read_pairs_csv, write_image_atomic, write_pairs_csv
from irisgan.ensemble import build_ensemble
from irisgan.extraction import descriptors
from irisgan.extraction.descriptors import (
    MissingFaceError,
    pair_descriptors,
    pair_lightness,
    vivid_cache_name,
)
from irisgan.extraction.faces import FaceLandmarker
from irisgan.inference import DecisionRule, fuse_face_cue, load_classifier, score_pairs
from irisgan.models.face_cue import DESCRIPTOR_SIZE, FEATURE_SIZE, INNER_SIZE, FaceView
from irisgan.training.metrics import report_from_scores, source_threshold
from tests.conftest import FACES, run_cli
from tests.test_iris_quality import hide_eyes


def _fake_extraction(root: Path, n: int = 6) -> Path:
    """An extraction folder (photos, pairs, manifest) and a split CSV two folders below it, as data=faces
    keeps them."""
    records, rows = [], []
    for i in range(n):
        photo = root / "photos" / f"p{i}.png"
        write_image_atomic(photo, np.full((8, 8, 3), 10 * i, np.uint8))
        write_image_atomic(root / "pairs" / f"p{i}.png", np.zeros((4, 8, 3), np.uint8))
        records.append(
            {"path": str(photo), "label": i % 2, "fingerprint": f"f{i}", "status": "ok", "pair": f"pairs/p{i}.png",
             "face_box": [0, 0, 8, 8], "landmarks": [[1.0, 1.0]] * 68}
        )  # fmt: skip
        rows.append({"path": f"../../pairs/p{i}.png", "label": i % 2})
    records.append({"path": str(root / "photos" / "none.png"), "label": 0, "status": "no_face"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return write_pairs_csv(root / "splits" / "k" / "val.csv", rows[::-1])


def test_pair_descriptors_follow_the_manifest_in_the_csvs_order_and_are_cached(tmp_path, monkeypatch):
    calls = []

    def describe(image, box, landmarks, view):  # stands in for the networks: the photo's grey level
        calls.append(int(image[0, 0, 0]))
        return np.full(view.width, image[0, 0, 0], np.float32)

    monkeypatch.setattr(descriptors, "face_features", describe)
    csv = _fake_extraction(tmp_path / "ex")
    x = pair_descriptors(csv)
    assert x.shape == (6, FEATURE_SIZE) and x[:, 0].tolist() == [
        50,
        40,
        30,
        20,
        10,
        0,
    ]  # the CSV's order, reversed
    assert sorted(calls) == [0, 10, 20, 30, 40, 50]
    assert (tmp_path / "ex" / descriptors.FEATURES).is_file()
    np.testing.assert_array_equal(pair_descriptors(csv), x)
    assert len(calls) == 6  # the second read came from the cache
    # another view (three crops, no texture) is computed and cached apart, as wide as it says
    crops = FaceView((0.25, 0.1, 0.0))
    assert pair_descriptors(csv, crops).shape == (6, 3 * DESCRIPTOR_SIZE) and len(calls) == 12
    assert (tmp_path / "ex" / "face_features_p0.25_0.1_0.npz").is_file()
    np.testing.assert_array_equal(pair_descriptors(csv), x)  # the first view's cache untouched

    # a pair the manifest does not know, a photo gone, a CSV far from any manifest: each says what is missing
    rows = read_pairs_csv(csv) + [{"path": "../../pairs/other.png", "label": "1"}]
    with pytest.raises(MissingFaceError, match="line 8.*other.png.*not in"):
        pair_descriptors(write_pairs_csv(tmp_path / "ex" / "splits" / "k" / "more.csv", rows))
    (tmp_path / "ex" / descriptors.FEATURES).unlink()
    (tmp_path / "ex" / "photos" / "p3.png").unlink()
    with pytest.raises(MissingFaceError, match="p3.png: the photo behind the pair cannot be read"):
        pair_descriptors(csv)
    lone = write_pairs_csv(tmp_path / "a" / "b" / "c" / "d" / "pairs.csv", rows[:1])
    with pytest.raises(MissingFaceError, match="no manifest.jsonl.*evaluate faces=DIR"):
        pair_descriptors(lone)


def test_pair_lightness_follows_the_csv_and_marks_a_photo_it_cannot_read_again(tmp_path):
    csv = _fake_extraction(
        tmp_path / "ex"
    )  # grey photos 0, 10, ..., 50: all dark; the CSV lists them reversed
    landmarks = np.zeros((68, 2))
    landmarks[36], landmarks[45], landmarks[41], landmarks[46] = (1, 2), (6, 2), (2, 3), (5, 3)
    landmarks[48], landmarks[54] = (2, 6), (5, 6)
    manifest = tmp_path / "ex" / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    for r in records:
        r["landmarks"] = landmarks.tolist()
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    write_image_atomic(
        tmp_path / "ex" / "photos" / "p5.png", np.full((8, 8, 3), 250, np.uint8)
    )  # a bright one
    (tmp_path / "ex" / "photos" / "p3.png").unlink()
    assert pair_lightness(csv) == ["lighter-looking", "darker-looking", "unknown", *["darker-looking"] * 3]
    with pytest.raises(
        MissingFaceError, match="no manifest.jsonl"
    ):  # evaluate leaves such a test set unsplit
        pair_lightness(
            write_pairs_csv(tmp_path / "a" / "b" / "c" / "d" / "pairs.csv", read_pairs_csv(csv)[:1])
        )


def test_source_threshold_holds_every_real_source_to_the_rate():
    rng = np.random.default_rng(0)
    # source b's real photos score higher than a's: a G-mean threshold would leave most false positives to b
    probs = np.r_[rng.uniform(0.0, 0.5, 100), rng.uniform(0.3, 0.8, 40), rng.uniform(0.5, 1.0, 100)]
    labels = np.r_[np.zeros(140), np.ones(100)]
    sources = ["a"] * 100 + ["b"] * 40 + ["gan"] * 100
    for rate in (0.0, 0.05, 0.2):
        t = source_threshold(probs, labels, sources, rate)
        assert np.mean(probs[:100] >= t) <= rate and np.mean(probs[100:140] >= t) <= rate
        # no stricter than it needs: source b, whose photos score highest, sits within two photos of the rate
        assert np.mean(probs[100:140] >= t) > rate - 2 / 40
    with pytest.raises(ValueError, match="real photos"):
        source_threshold(probs[140:], labels[140:], sources[140:])
    with pytest.raises(ValueError, match="max_fpr"):
        source_threshold(probs, labels, sources, 1.0)


@pytest.mark.skipif(not FACES.is_dir(), reason="sample face photos ../shared/data/faces not present")
def test_a_detector_with_a_face_cue_scores_the_face_in_predict_and_evaluate(tmp_path, smoke_run):
    faces = tmp_path / "faces"
    for cls in ("real", "fake"):
        for photo in sorted((FACES / cls).iterdir())[:3]:
            (faces / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, faces / cls / photo.name)
    run_cli("irisgan.extract", f"faces={faces}", "out=ex", "num_workers=0", cwd=tmp_path)
    csv = tmp_path / "ex" / "pairs.csv"
    labels = np.array([int(r["label"]) for r in read_pairs_csv(csv)])
    assert len(labels) >= 5 and 0 < labels.sum() < len(labels)
    best = smoke_run / "checkpoints" / "best.ckpt"
    metrics = build_ensemble(
        [best], tmp_path / "fused.pt", val_csv=csv, face_cue=True, fit_csv=csv, source_fpr=0.0, texture=True
    )
    model = load_classifier(tmp_path / "fused.pt")
    assert model.face_cue is not None and metrics["fit_csv"] == str(csv)
    assert model.face_cue.texture is not None and model.face_cue.width == FEATURE_SIZE
    build_ensemble([best], tmp_path / "plain.pt", val_csv=csv, face_cue=True, fit_csv=csv)
    plain = load_classifier(tmp_path / "plain.pt").face_cue
    assert plain.texture is None and plain.width == 128  # by default the descriptor's parts alone
    build_ensemble(
        [best],
        tmp_path / "crops.pt",
        val_csv=csv,
        face_cue=True,
        fit_csv=csv,
        face_crops="0.25,0",
        inner=True,
    )
    crops = load_classifier(tmp_path / "crops.pt").face_cue
    assert crops.view == FaceView((0.25, 0.0), inner=True) and crops.width == 256 + INNER_SIZE
    # --face-vivid: a vivid copy of each real training photo joins the generated neighbours, cached apart
    vivid = build_ensemble([best], tmp_path / "vivid.pt", val_csv=csv, face_cue=True, fit_csv=csv, vivid=True)
    cue = load_classifier(tmp_path / "vivid.pt").face_cue
    n_real = int((labels == 0).sum())
    assert vivid["face_vivid"] and len(cue.fake_neighbours) == len(plain.fake_neighbours) + n_real
    assert len(cue.real_neighbours) == len(plain.real_neighbours)
    with np.load(tmp_path / "ex" / vivid_cache_name(FaceView())) as cached:
        assert len(cached["x"]) == n_real
        assert cached["x"].shape == (n_real, 128)  # the copies' own faces: not the photos' descriptors
        assert np.abs(cached["x"] - pair_descriptors(csv, FaceView())[labels == 0]).max() > 1e-3
    images = torch.from_numpy(
        np.stack(
            [
                cv2.cvtColor(cv2.imread(str(csv.parent / r["path"])), cv2.COLOR_BGR2RGB)
                for r in read_pairs_csv(csv)
            ]
        )
    ).permute(0, 3, 1, 2)
    iris_p = score_pairs(model, images)
    # the iris network's own threshold travels along, chosen on the same pairs as training chooses it
    iris_scalars, iris_report = report_from_scores(
        torch.from_numpy(iris_p), torch.from_numpy(labels).float(), None, "gmean"
    )
    assert model.decision["iris_threshold"] == pytest.approx(iris_report["threshold"])
    fused = fuse_face_cue(model, iris_p, pair_descriptors(csv))
    # the threshold keeps every real photo of the validation pairs below it (source_fpr=0)
    assert (fused[labels == 0] < float(model.threshold)).all()
    with pytest.raises(ValueError, match="face descriptors"):
        fuse_face_cue(model, iris_p, None)

    run_cli("irisgan.predict", "ckpt=fused.pt", f"images={faces}", "hydra.run.dir=pred", cwd=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "pred" / "predictions.jsonl").open()]
    scored = {Path(r["path"]).name: r for r in records if r["p_gan"] is not None}
    expected = {Path(r["source"]).name: p for r, p in zip(read_pairs_csv(csv), fused, strict=True)}
    assert scored.keys() == expected.keys()
    for name, record in scored.items():  # the photo's face and irises, as the pairs CSV's
        assert record["p_iris"] is not None and record["p_gan"] == pytest.approx(expected[name], abs=1e-3)
        assert record.get("face_decision") is None  # the face alone speaks only when there is no pair
    # a cue of two crops and the face network's inner features, without texture: predict describes the faces as
    # its view says (no texture network), and scores alike
    plain_fused = fuse_face_cue(
        load_classifier(tmp_path / "crops.pt"), iris_p, pair_descriptors(csv, crops.view)
    )
    run_cli(  # with the pictures, which draw the face's novelty against the bound
        "irisgan.predict",
        "ckpt=crops.pt",
        f"images={faces}",
        "explain=true",
        "hydra.run.dir=pred_plain",
        cwd=tmp_path,
    )
    records = [json.loads(line) for line in (tmp_path / "pred_plain" / "predictions.jsonl").open()]
    plain_scored = {Path(r["path"]).name: r["p_gan"] for r in records if r["p_gan"] is not None}
    expected = {Path(r["source"]).name: p for r, p in zip(read_pairs_csv(csv), plain_fused, strict=True)}
    assert plain_scored == pytest.approx(expected, abs=1e-3)
    # with the inner features comes the distance from the training faces, and the bound on the real validation
    # photos' beyond which a face is unfamiliar; the cue without them reports neither
    max_novelty = load_classifier(tmp_path / "crops.pt").decision["max_novelty"]
    assert max_novelty > 0 and model.decision["max_novelty"] is None
    for r in records:
        if r["p_gan"] is not None:
            assert r["max_novelty"] == max_novelty and r["unfamiliar"] == (r["novelty"] > max_novelty)
            assert (tmp_path / "pred_plain" / r["explanation"]).stat().st_size > 5000
    assert all(r.get("novelty") is None for r in scored.values())
    # every face cue learns how vivid a face looks, from vivid copies of its real training photos, and the bound
    # on the real validation photos' beyond which a face is never called real; --no-vivid-rule leaves both out
    for r in [*records, *scored.values()]:
        if r["p_gan"] is not None:
            assert r["max_vividness"] is not None and r["vivid"] == (r["vividness"] > r["max_vividness"])
    assert model.decision["max_vividness"] is not None and model.decision["vivid_quantile"] == 0.95
    # each part counts once, unless the validation photos are to weigh them (--part-weights)
    assert model.face_cue.part_weights is None and metrics["part_weights"] is None
    build_ensemble(
        [best], tmp_path / "plainer.pt", val_csv=csv, face_cue=True, fit_csv=csv, vivid_quantile=None,
        part_weights=True, family_probes=True,
    )  # fmt: skip
    plainer = load_classifier(tmp_path / "plainer.pt")
    assert plainer.face_cue.vivid is None and plainer.decision["max_vividness"] is None
    assert set(plainer.face_cue.part_weights) == {"face", "knn", "iris"}
    # --family-probes: the descriptor's regression once per generated family (the few sample GAN photos: one)
    assert model.face_cue.family_probes is None and len(plainer.face_cue.family_probes["face"]) == 1

    # a face whose eyes are hidden gives no pair: no decision, but the face alone is scored, by its own rule
    photo = sorted((faces / "fake").iterdir())[0]
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    landmarker = FaceLandmarker()
    hidden = hide_eyes(rgb, landmarker.landmarks(rgb, landmarker.detect(rgb)[0].box), "sunglasses")
    (tmp_path / "hidden").mkdir()
    cv2.imwrite(str(tmp_path / "hidden" / "sunglasses.jpg"), cv2.cvtColor(hidden, cv2.COLOR_RGB2BGR))
    grey = cv2.cvtColor(cv2.cvtColor(hidden, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(tmp_path / "hidden" / "sunglasses_grey.jpg"), grey)
    run_cli("irisgan.predict", "ckpt=fused.pt", "images=hidden", "hydra.run.dir=pred_hidden", cwd=tmp_path)
    records = {
        Path(r["path"]).stem: r
        for r in map(json.loads, (tmp_path / "pred_hidden" / "predictions.jsonl").open())
    }
    record, grey_record = records["sunglasses"], records["sunglasses_grey"]
    assert record["status"] == "eyes_hidden" and record["p_gan"] is None and record["decision"] is None
    face_only = model.decision["face_only"]
    # the face alone has a threshold and band of its own, and the detector's vivid rule (no inner features here:
    # no novelty)
    rule = DecisionRule(
        face_only["threshold"], tuple(face_only["band"]), max_vividness=model.decision["max_vividness"]
    )
    vivid = lambda r: rule.decide(r["p_face"], None, r["grayscale"], None, r["vividness"])[0]  # noqa: E731
    assert 0.0 <= record["p_face"] <= 1.0 and record["face_decision"] == vivid(record)
    assert record["grayscale"] is False and record.get("novelty") is None
    assert record["max_vividness"] == model.decision["max_vividness"]
    assert record["vivid"] == (record["vividness"] > record["max_vividness"])
    # a grey face without a pair is judged as a grey pair is: never a confident real
    assert grey_record["status"] == "eyes_hidden" and grey_record["grayscale"] is True
    assert grey_record["face_decision"] == vivid(grey_record) != "real"

    # evaluate scores those photos by the face alone too, apart from the pairs, as predict did
    for name in ("sunglasses.jpg", "sunglasses_grey.jpg"):
        shutil.copy(tmp_path / "hidden" / name, faces / "fake" / name)
    run_cli(
        "irisgan.evaluate", "ckpt=fused.pt", f"faces={faces}", "bootstrap=0", "hydra.run.dir=ev", cwd=tmp_path
    )
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"ran", "iris_only"} <= report["methods"].keys() and report["n_pairs"] == len(labels)
    alone = report["face_only"]
    assert (
        alone["n"] == alone["n_fake"] == 2
        and alone["statuses"] == {"eyes_hidden": 2}
        and alone["grayscale"] == 1
        and alone["auroc"] is None
    )
    decisions = [r["face_decision"].lower() for r in (record, grey_record)]
    for decision in ("gan", "uncertain", "real"):
        assert alone[f"gan_called_{decision}"] == decisions.count(decision) / 2
    assert alone["real_called_real"] is None
    text = (tmp_path / "ev" / "report.md").read_text()
    assert "Photos without a pair, by the face alone (2: eyes_hidden 2)" in text
    assert "grayscale faces: 1 (never called real with confidence)" in text
    assert report["methods"]["ran"]["threshold"] == pytest.approx(float(model.threshold))
    # pairs without their extraction: the irises alone, at their own threshold and with a warning, or (face_cue=
    # true) a clear error
    lone = tmp_path / "lone"
    shutil.copytree(tmp_path / "ex" / "pairs", lone / "pairs")
    shutil.copy(csv, lone / "pairs.csv")
    args = ("irisgan.evaluate", "ckpt=fused.pt", f"pairs_csv={lone}/pairs.csv", "bootstrap=0", "wandb=false")
    proc = run_cli(*args, "hydra.run.dir=ev_lone", cwd=tmp_path)
    assert (
        "no manifest.jsonl" in proc.stderr + proc.stdout
        and "Scoring the irises alone" in proc.stderr + proc.stdout
    )
    report = json.loads((tmp_path / "ev_lone" / "metrics.json").read_text())
    assert not report["face_cue"] and "iris_only" not in report["methods"]
    assert report["methods"]["ran"]["threshold"] == pytest.approx(model.decision["iris_threshold"])
    assert report["methods"]["ran"]["auroc"] == pytest.approx(iris_scalars["auroc"], abs=1e-6)
    proc = run_cli(*args, "face_cue=true", "hydra.run.dir=ev_strict", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "no manifest.jsonl" in proc.stderr
