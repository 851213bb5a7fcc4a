"""real / GAN / uncertain: the band chosen on validation pairs, the members' spread, grayscale photos."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irisgan.data.degrade import ADVERSARY_DEGRADATIONS, PHOTO_DEGRADATIONS, write_degraded_photo
from irisgan.ensemble import build_ensemble
from irisgan.inference import (
    DecisionRule,
    decision_summary,
    is_grayscale_pair,
    load_classifier,
    save_weights,
    score_members,
    score_pairs,
)
from irisgan.training.metrics import uncertain_band
from tests.conftest import FACES, run_cli
from tests.test_ensemble import VAL_CSV


def test_uncertain_band_makes_each_confident_call_right_often_enough():
    # real pairs score 0.0-0.6, GAN pairs 0.4-1.0: the overlap 0.4-0.6 is where calls go wrong
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(0.0, 0.6, 500), rng.uniform(0.4, 1.0, 500)
    probs, labels = np.concatenate([real, fake]), np.r_[np.zeros(500), np.ones(500)]
    lo, hi = uncertain_band(probs, labels, threshold=0.5, precision=0.95)
    assert 0.3 < lo <= 0.5 <= hi < 0.7
    assert (labels[probs < lo] == 0).mean() >= 0.95 and (labels[probs >= hi] == 1).mean() >= 0.95
    # perfectly separated scores need no band; a stricter precision widens it
    assert uncertain_band(np.r_[real * 0.5, 0.5 + fake * 0.5], labels, 0.4, 0.95) == (0.4, 0.4)
    lo99, hi99 = uncertain_band(probs, labels, 0.5, 0.99)
    assert lo99 <= lo and hi99 >= hi
    with pytest.raises(ValueError, match="precision"):
        uncertain_band(probs, labels, 0.5, 0.0)


def test_decision_rule_band_spread_and_grayscale():
    rule = DecisionRule(threshold=0.5, band=(0.3, 0.7), max_spread=0.1)
    assert rule.decide(0.9) == ("GAN", [])
    assert rule.decide(0.1) == ("real", [])
    decision, reasons = rule.decide(0.55)
    assert decision == "uncertain" and "uncertain band" in reasons[0]
    decision, reasons = rule.decide(0.9, spread=0.2)
    assert decision == "uncertain" and "disagree" in reasons[0]
    # grayscale: never a confident real; a confident GAN call stands
    assert rule.decide(0.1, grayscale=True) == ("uncertain", ["grayscale: colour cues unavailable"])
    assert rule.decide(0.9, grayscale=True) == ("GAN", [])
    # no band stored (a plain training checkpoint): the threshold alone, grayscale still never real
    plain = DecisionRule(threshold=0.5)
    assert plain.decide(0.49)[0] == "real" and plain.decide(0.5)[0] == "GAN"
    assert plain.decide(0.49, grayscale=True)[0] == "uncertain"
    # a detector that sees the grey level only scores a grey photo as its colour original: no special status
    grey_blind = DecisionRule(threshold=0.5, band=(0.3, 0.7), luminance=True)
    assert grey_blind.decide(0.1, grayscale=True) == ("real", [])
    # an unfamiliar face (novelty beyond the bound) is never a confident real either, even for a detector that
    # reads the grey level only; without a bound or a novelty, no face is unfamiliar
    wary = DecisionRule(threshold=0.5, band=(0.3, 0.7), luminance=True, max_novelty=10.0)
    assert wary.decide(0.1, novelty=12.0) == ("uncertain", ["unfamiliar face (novelty 12.0 > 10.0)"])
    assert wary.decide(0.1, novelty=9.0) == ("real", []) and wary.decide(0.1) == ("real", [])
    assert wary.decide(0.9, novelty=12.0) == ("GAN", []) and rule.decide(0.1, novelty=99.0) == ("real", [])
    pairs = np.full((3, 3, 8, 8), 128, np.uint8) + np.arange(3, dtype=np.uint8)[None, :, None, None]
    decisions = wary.decide_pairs(np.array([0.1, 0.1, 0.9]), None, pairs, np.array([5.0, 12.0, 12.0]))
    assert decisions == ["real", "uncertain", "GAN"]
    unfamiliar = wary.unfamiliar(np.array([5.0, 12.0, 12.0]))
    summary = decision_summary(decisions, np.array([0, 0, 1]), unfamiliar)
    assert summary["real_unfamiliar"] == 0.5 and summary["gan_unfamiliar"] == 1.0
    assert rule.unfamiliar(np.array([5.0])) is None and wary.unfamiliar(None) is None
    assert "gan_unfamiliar" not in decision_summary(decisions, np.array([0, 0, 1]))
    assert wary.record()["max_novelty"] == 10.0
    # a vivid face (vividness beyond its bound) neither; the reasons name each flag that is up
    vivid = DecisionRule(threshold=0.5, band=(0.3, 0.7), max_novelty=10.0, max_vividness=1.5)
    assert vivid.decide(0.1, vividness=2.0) == ("uncertain", ["vivid face (vividness 2.00 > 1.50)"])
    assert vivid.decide(0.1, novelty=12.0, vividness=2.0)[1] == [
        "unfamiliar face (novelty 12.0 > 10.0)", "vivid face (vividness 2.00 > 1.50)"
    ]  # fmt: skip
    assert vivid.decide(0.1, vividness=1.0) == ("real", []) and vivid.decide(0.9, vividness=9.0) == (
        "GAN",
        [],
    )
    assert wary.decide(0.1, vividness=99.0) == ("real", [])  # no bound: no vivid faces
    vividness = np.array([0.0, 2.0, 2.0])
    decisions = vivid.decide_pairs(np.array([0.1, 0.1, 0.9]), None, pairs, None, vividness)
    assert decisions == ["real", "uncertain", "GAN"]
    summary = decision_summary(decisions, np.array([0, 0, 1]), None, vivid.vivid(vividness))
    assert summary["real_vivid"] == 0.5 and summary["gan_vivid"] == 1.0 and "gan_unfamiliar" not in summary
    assert wary.vivid(vividness) is None and vivid.vivid(None) is None
    assert vivid.record()["max_vividness"] == 1.5


def test_luminance_detector_scores_a_grey_copy_as_its_colour_original(tmp_path):
    from irisgan.training.classifier import RANClassifier

    net = {"stem_channels": 8, "stage_channels": [8, 16, 16], "head_channels": 32}
    # seeded: how far PIL's rounding of the grey level moves the score depends on the random weights, and the
    # global generator's state depends on which tests ran before
    torch.manual_seed(0)
    model = RANClassifier(net=net, colour="luminance").eval()
    model.mean.copy_(torch.tensor([0.5, 0.4, 0.3]))
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    grey = np.stack([np.asarray(Image.fromarray(c).convert("L")) for c in colour])
    grey = np.repeat(grey[..., None], 3, axis=3)
    as_tensor = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())  # noqa: E731
    # PIL rounds the grey level to whole numbers: scores agree to that rounding
    assert np.allclose(score_pairs(model, as_tensor(colour)), score_pairs(model, as_tensor(grey)), atol=2e-3)
    assert DecisionRule.of(model).luminance
    # the setting travels with the weights: a loaded detector sees what it was trained on
    save_weights(model.state_dict(), dict(model.hparams), tmp_path / "grey.pt")
    loaded = load_classifier(tmp_path / "grey.pt")
    assert loaded.hparams.colour == "luminance"
    np.testing.assert_allclose(
        score_pairs(loaded, as_tensor(colour)), score_pairs(model, as_tensor(colour)), atol=1e-6
    )
    rgb = RANClassifier(net=net).eval()
    assert not DecisionRule.of(rgb).luminance
    with pytest.raises(ValueError, match="model.colour"):
        RANClassifier(net=net, colour="grey")


def test_relative_colour_ignores_exposure_and_white_balance(tmp_path):
    from irisgan.training.classifier import RANClassifier

    net = {"stem_channels": 8, "stage_channels": [8, 16, 16], "head_channels": 32}
    model = RANClassifier(net=net, colour="relative").eval()
    rng = np.random.default_rng(0)
    pairs = torch.from_numpy(rng.uniform(0.2, 0.6, (4, 3, 96, 96))).float()
    # a warmer, brighter, lower-contrast copy of the same pairs: per channel gain and offset
    gain, offset = (
        torch.tensor([1.3, 1.1, 0.8]).view(1, 3, 1, 1),
        torch.tensor([0.05, 0.1, 0.0]).view(1, 3, 1, 1),
    )
    cast = pairs * gain + offset
    np.testing.assert_allclose(score_pairs(model, cast), score_pairs(model, pairs), atol=1e-5)
    rgb = RANClassifier(net=net).eval()
    rgb.load_state_dict(model.state_dict())  # the same network, which sees the cast
    assert np.abs(score_pairs(rgb, cast) - score_pairs(rgb, pairs)).max() > 1e-3
    # a flat pair stays finite
    assert np.isfinite(score_pairs(model, torch.full((1, 3, 96, 96), 0.5))).all()
    save_weights(model.state_dict(), dict(model.hparams), tmp_path / "relative.pt")
    assert load_classifier(tmp_path / "relative.pt").hparams.colour == "relative"
    assert not DecisionRule.of(model).luminance  # a grey photo still gets its own status


def test_grayscale_pairs_are_told_from_colour_ones():
    colour = np.zeros((96, 96, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 150, 110, 90  # skin-like
    grey = np.repeat(np.asarray(Image.fromarray(colour).convert("L"))[..., None], 3, axis=2)
    assert not is_grayscale_pair(colour) and is_grayscale_pair(grey)


def test_photo_degradations_write_the_file_a_user_would_have(tmp_path):
    from skimage import data

    source = tmp_path / "face_trunc-0.7.png"  # a dot in the stem stays in the copy's name
    Image.fromarray(data.astronaut()).save(source)  # 512 x 512 RGB
    written = {
        name: write_degraded_photo(source, name, tmp_path / "out" / name / source.stem)
        for name in PHOTO_DEGRADATIONS
    }
    assert written["clean"].read_bytes() == source.read_bytes()
    assert {p.name for p in written.values()} == {"face_trunc-0.7.png", "face_trunc-0.7.jpg"}
    assert written["jpeg50"].suffix == ".jpg" and written["jpeg50"].stat().st_size < source.stat().st_size
    with Image.open(written["grayscale"]) as im:
        assert im.mode == "L" and im.size == (512, 512)
    with Image.open(written["shrink0.25"]) as im:
        assert im.size == (128, 128)
    cast = np.asarray(Image.open(written["cast0.15"])).astype(float)
    original = data.astronaut().astype(float)
    assert cast[..., 0].mean() > original[..., 0].mean() and cast[..., 2].mean() < original[..., 2].mean()
    for name in ADVERSARY_DEGRADATIONS:  # lossless copies, of the edited size
        written = write_degraded_photo(source, name, tmp_path / "adversary" / name / source.stem)
        with Image.open(written) as im:
            side = {"crop0.8": 410, "upscale2": 1024}.get(name, 512)
            assert written.suffix == ".png" and im.size == (side, side) and im.mode == "RGB", name
    with pytest.raises(ValueError, match="unknown degradation"):
        write_degraded_photo(source, "sepia", tmp_path / "x")


def test_ensemble_stores_a_band_and_a_spread_that_predict_reports(tmp_path, smoke_run):
    best, last = smoke_run / "checkpoints" / "best.ckpt", smoke_run / "checkpoints" / "last.ckpt"
    metrics = build_ensemble([best, last], tmp_path / "ens.pt", val_csv=VAL_CSV, precision=0.9)
    d = metrics["decision"]
    lo, hi = d["band"]
    assert 0.0 <= lo <= metrics["val/threshold"] <= hi <= 1.0
    assert d["max_spread"] is not None and 0.0 <= d["val_uncertain_share"] <= 1.0
    model = load_classifier(tmp_path / "ens.pt")
    assert model.decision["band"] == [lo, hi]
    rule = DecisionRule.of(model)
    assert rule.band == (lo, hi) and rule.max_spread == d["max_spread"]
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (6, 3, 96, 96), dtype=np.uint8))
    probs, spread = score_members(model, x)
    np.testing.assert_allclose(probs, score_pairs(model, x), atol=1e-6)
    members = [score_pairs(load_classifier(p), x) for p in (best, last)]
    np.testing.assert_allclose(spread, np.std(members, axis=0), atol=1e-5)
    # a single run has no members to disagree
    assert score_members(load_classifier(best), x)[1] is None

    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    write_degraded_photo(photos / "astronaut.png", "grayscale", photos / "astronaut_grey")
    run_cli(
        "irisgan.predict", f"ckpt={tmp_path / 'ens.pt'}", f"images={photos}", "explain=true",
        "hydra.run.dir=pred", cwd=tmp_path,
    )  # fmt: skip
    records = {
        Path(r["path"]).stem: r for r in map(json.loads, (tmp_path / "pred" / "predictions.jsonl").open())
    }
    for r in records.values():
        assert r["band"] == [lo, hi] and r["max_spread"] == pytest.approx(d["max_spread"])
        assert r["member_spread"] is not None and r["decision"] in ("GAN", "real", "uncertain")
        assert (r["decision"] == "uncertain") == bool(r["reasons"])
    grey = records["astronaut_grey"]
    assert grey["grayscale"] is True and not records["astronaut"]["grayscale"]
    assert grey["decision"] != "real"


@pytest.mark.skipif(not FACES.is_dir(), reason="sample face photos ../shared/data/faces not present")
def test_a_grayscale_copy_of_a_gan_face_is_never_a_confident_real(tmp_path):
    """The shipped detector, as a user runs it: a grey copy of a GAN face called GAN is not called real."""
    fakes = sorted((FACES / "fake").iterdir())[:3]
    photos = tmp_path / "photos"
    for f in fakes:
        write_degraded_photo(f, "clean", photos / f.stem)
        write_degraded_photo(f, "grayscale", photos / f"{f.stem}_grey")
    run_cli("irisgan.predict", f"images={photos}", "hydra.run.dir=pred", cwd=tmp_path)
    records = {
        Path(r["path"]).stem: r for r in map(json.loads, (tmp_path / "pred" / "predictions.jsonl").open())
    }
    model = load_classifier(None)
    pairs = [
        (records[f.stem], records[f"{f.stem}_grey"]) for f in fakes if records[f.stem]["p_gan"] is not None
    ]
    assert pairs, records
    for colour, grey in pairs:
        assert grey["grayscale"] and not colour["grayscale"]
        # the shipped cue tells how far a face lies from its training faces, and whether that is too far
        for r in (colour, grey):
            assert r["novelty"] > 0 and r["unfamiliar"] == (r["novelty"] > r["max_novelty"])
        assert not (colour["decision"] == "GAN" and grey["decision"] == "real"), (colour, grey)
        if model.luminance:  # it sees the grey level only: the same score
            assert grey["p_gan"] == pytest.approx(colour["p_gan"], abs=0.05)
        else:
            assert grey["decision"] in ("GAN", "uncertain"), grey


@pytest.mark.skipif(not FACES.is_dir(), reason="sample face photos ../shared/data/faces not present")
def test_evaluate_runs_photo_degradations_through_the_whole_pipeline(tmp_path, smoke_run):
    faces = tmp_path / "faces"
    for cls in ("real", "fake"):
        (faces / cls).mkdir(parents=True)
        for f in sorted((FACES / cls).iterdir())[:2]:
            (faces / cls / f.name).symlink_to(f)
    run_cli(
        "irisgan.evaluate", f"ckpt={smoke_run / 'checkpoints' / 'best.ckpt'}", f"faces={faces}",
        "photo_robustness=true", "photo_degradations=[grayscale,jpeg50]", "bootstrap=0", "baseline=false",
        "wandb=false", "hydra.run.dir=ev", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    rows = {r["degradation"]: r for r in metrics["photo_robustness"]}
    assert list(rows) == ["clean", "grayscale", "jpeg50"]  # clean first: the flips are counted against it
    assert rows["clean"]["photos"] == 4 and rows["clean"]["scored"] >= 3
    # the photos as they are reuse the main extraction; the copies are extracted, with their statuses
    assert not (tmp_path / "ev" / "photo_robustness" / "clean").exists()
    assert rows["jpeg50"]["statuses"]["real"]["total"] == 2
    assert rows["grayscale"]["gan_called_real"] == 0.0  # grey photos are never called real
    # a GAN photo the detector was unsure of is counted apart when a copy makes it a confident real
    assert rows["clean"]["gan_caught_clean"] + rows["clean"]["gan_unsure_clean"] <= 2
    assert rows["grayscale"]["gan_unsure_to_real"] in (0.0, None)
    assert rows["clean"]["auroc"] == pytest.approx(metrics["methods"]["ran"]["auroc"], abs=1e-6)
    # each evasion is named: the GAN photos the copy turns into a confident real, of those caught or left unsure
    for row in rows.values():
        evasions = row["evasions"]
        assert set(evasions) == {"gan_to_real", "gan_unsure_to_real"}
        assert all("/fake/" in p for p in evasions["gan_to_real"] + evasions["gan_unsure_to_real"])
        for kind, among in (("gan_to_real", "gan_caught_clean"), ("gan_unsure_to_real", "gan_unsure_clean")):
            if row[kind] is not None:
                assert len(evasions[kind]) == round(row[kind] * row[among])
    assert set(metrics["decisions"]) >= {"uncertain_share", "acc_outside_band", "gan_called_real"}
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "Photo-level degradations" in report and "## Decisions" in report
    # each class apart by how light the faces look, read from the photos behind the pairs
    lightness = metrics["methods"]["ran"]["per_lightness"]
    assert {r["group"] for r in lightness} <= {"darker-looking", "lighter-looking"}  # every photo read again
    assert sum(r["n"] for r in lightness) == metrics["n_pairs"]
    assert "## Per lightness (faces by cheek lightness" in report


def test_the_pair_margin_and_shape_travel_with_the_detector(tmp_path, caplog):
    """A detector trained on wider crops or on undistorted (wide) pairs is fed pairs cut alike: predict and
    evaluate cut them with its margin and its pair shape."""
    from irisgan.config import compose_config
    from irisgan.inference import check_pair_shape, pair_overrides, stored_pair_shape
    from irisgan.predict import Predictor
    from irisgan.training.classifier import RANClassifier

    net = {"stem_channels": 8, "stage_channels": [8, 16, 16], "head_channels": 32}
    wide = RANClassifier(net=net, pair_margin=0.6, pair_size=64, pair_width=128)
    save_weights(wide.state_dict(), dict(wide.hparams), tmp_path / "wide.pt")
    loaded = load_classifier(tmp_path / "wide.pt")
    assert loaded.hparams.pair_margin == 0.6 and stored_pair_shape(loaded) == (64, 128)
    shape = ["pair.size=64", "pair.width=128"]
    assert pair_overrides(loaded, ["locator=hough"]) == ["locator=hough", "pair.iris_margin=0.6", *shape]
    with caplog.at_level("WARNING"):
        assert pair_overrides(loaded, ["pair.iris_margin=0.1"]) == [
            "pair.iris_margin=0.1",
            *shape,
        ]  # the user's
    assert "trained on pairs cut with pair.iris_margin=0.6" in caplog.text
    with pytest.raises(ValueError, match="pair.width=128"):
        pair_overrides(loaded, ["pair.width=96"])  # the network scores no other shape
    with pytest.raises(ValueError, match="trained on 64 x 128 pairs"):
        check_pair_shape(loaded, np.zeros((2, 3, 96, 96), np.uint8))
    check_pair_shape(loaded, np.zeros((2, 3, 64, 128), np.uint8))
    cfg = compose_config("predict", [f"ckpt={tmp_path / 'wide.pt'}", "images=unused", f"out={tmp_path}"])
    extractor = Predictor(cfg).extractor
    assert (extractor.iris_margin, extractor.pair_size, extractor.pair_width) == (0.6, 64, 128)
    old = RANClassifier(net=net)  # weights saved before the keys existed read as the extractor's defaults
    old_hparams = {k: v for k, v in dict(old.hparams).items() if not k.startswith("pair_")}
    save_weights(old.state_dict(), old_hparams, tmp_path / "old.pt")
    old = load_classifier(tmp_path / "old.pt")
    assert pair_overrides(old) == ["pair.iris_margin=0.1", "pair.size=96", "pair.width=96"]
    assert stored_pair_shape(old) == (96, 96)
    with pytest.raises(ValueError, match="pair_margin"):
        RANClassifier(net=net, pair_margin=-1)
    with pytest.raises(ValueError, match="even width"):
        RANClassifier(net=net, pair_size=64, pair_width=129)
