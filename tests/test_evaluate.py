"""`python -m irisgan.evaluate` on a tiny trained checkpoint, and safe checkpoint loading."""

import json

import numpy as np
import pytest
import torch

from irisgan.inference import CheckpointError, load_classifier, score_pairs
from irisgan.models.baseline import aligned_iou, highlight_score
from tests.conftest import run_cli


def test_evaluate_writes_report_with_intervals_baseline_and_robustness(tmp_path, smoke_run):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    run_cli(
        "irisgan.evaluate",
        f"ckpt={ckpt}",
        "synthetic.n_pairs=60",
        "bootstrap=50",
        "robustness=true",
        "degradations=[clean,jpeg50,blur2]",
        "hydra.run.dir=ev",
        "wandb=true",
        cwd=tmp_path,
    )
    ev = tmp_path / "ev"
    metrics = json.loads((ev / "metrics.json").read_text())
    ran, base = metrics["methods"]["ran"], metrics["methods"]["highlight_baseline"]
    assert metrics["n_pairs"] == 60
    lo, hi = ran["auroc_ci95"]
    assert lo <= ran["auroc"] <= hi and 0 <= lo and hi <= 1
    assert ran["threshold"] == pytest.approx(
        float(torch.load(ckpt, weights_only=True)["state_dict"]["threshold"])
    )
    assert "acc_ci95" in base and "auroc" in base
    assert [r["degradation"] for r in metrics["robustness"]] == ["clean", "jpeg50", "blur2"]
    assert metrics["robustness"][0]["ran_auroc"] == pytest.approx(ran["auroc"], abs=1e-6)
    report = (ev / "report.md").read_text()
    assert "highlight_baseline" in report and "AUC 95% CI" in report and "Robustness" in report
    assert "Per GAN cue" in report
    cue_names = {r["cue"] for r in ran["per_cue"]}
    assert cue_names and cue_names <= {"highlight", "pupil", "colour", "checkerboard", "blotchy", "seam"}
    for fig in ("ran_roc", "highlight_baseline_roc", "roc_comparison", "robustness"):
        assert (ev / "plots" / f"{fig}.png").is_file()
    assert list((ev / "wandb").glob("offline-run-*"))


def test_checkpoint_loading_refuses_foreign_files(tmp_path, smoke_run):
    model = load_classifier(smoke_run / "checkpoints" / "best.ckpt")
    probs = score_pairs(model, np.zeros((3, 3, 96, 96), np.uint8))
    assert probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_classifier(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_classifier(tmp_path / "junk.ckpt")
    torch.save(
        {
            "state_dict": {"model.roi_heads.box_predictor.cls_score.weight": torch.zeros(2, 4)},
            "irisgan": {"kind": "segmenter"},
        },
        tmp_path / "seg.ckpt",
    )
    with pytest.raises(CheckpointError, match="segmenter checkpoint"):
        load_classifier(tmp_path / "seg.ckpt")
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "missing.ckpt")


def _iris(highlight_at=None):
    import cv2

    img = np.full((96, 96, 3), 200, np.uint8)
    cv2.circle(img, (48, 48), 40, (90, 60, 30), -1)
    cv2.circle(img, (48, 48), 14, (10, 10, 10), -1)
    if highlight_at is not None:
        cv2.circle(img, highlight_at, 5, (255, 255, 255), -1)
    return img


def test_highlight_baseline_scores_mismatched_reflections_higher():
    from irisgan.data.pairs_format import join_pair

    same = join_pair(_iris((60, 36)), _iris((60, 36)))
    different = join_pair(_iris((60, 36)), _iris((34, 62)))
    assert highlight_score(same) < 0.3 < 0.7 < highlight_score(different)
    assert aligned_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_inference_precision_switch_keeps_the_scores_and_rejects_unknown_values(smoke_run):
    from irisgan.inference import configure_inference

    model = load_classifier(smoke_run / "checkpoints" / "best.ckpt")
    images = np.random.default_rng(0).integers(0, 256, (8, 3, 96, 96), dtype=np.uint8)
    fp32 = score_pairs(model, images)
    bf16 = score_pairs(configure_inference(model, "bf16"), images)
    assert model.inference_dtype == torch.bfloat16
    assert np.abs(bf16 - fp32).max() < 0.05  # bf16 rounding only; the scores stay where they were
    with pytest.raises(ValueError, match="valid choices"):
        configure_inference(model, "fp16")
    with pytest.raises(ValueError, match="valid choices"):
        load_classifier(smoke_run / "checkpoints" / "best.ckpt", precision="16-mixed")


def test_per_cue_breakdown_scores_each_cue_against_all_reals():
    from irisgan.evaluate import per_cue_breakdown

    labels = np.array([0, 0, 0, 1, 1, 1])
    cues = ["", "", "", "pupil", "pupil;colour", "colour"]
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.25, 0.05])
    rows = {r["cue"]: r for r in per_cue_breakdown(scores, labels, cues, threshold=0.5)}
    assert set(rows) == {"pupil", "colour"}
    assert rows["pupil"]["n_fake"] == 2 and rows["pupil"]["n_only"] == 1
    # pupil fakes 0.9 and 0.25 against reals 0.1, 0.2, 0.3: 5 of 6 orderings right
    assert rows["pupil"]["auroc"] == pytest.approx(5 / 6)
    assert rows["pupil"]["recall_at_thr"] == pytest.approx(0.5)
    assert rows["pupil"]["only_auroc"] == pytest.approx(1.0)
    assert rows["colour"]["only_auroc"] == pytest.approx(0.0) and rows["colour"]["recall_at_thr"] == 0.0


def test_compiled_scoring_pads_the_last_batch_to_one_shape(smoke_run):
    model = load_classifier(smoke_run / "checkpoints" / "best.ckpt")
    images = np.random.default_rng(1).integers(0, 256, (5, 3, 96, 96), dtype=np.uint8)
    eager = score_pairs(model, images, batch_size=4)

    class Compiled(torch.nn.Module):  # stands in for torch.compile's wrapper: records the shapes it sees
        def __init__(self, net):
            super().__init__()
            self._orig_mod, self.shapes = net, []

        def forward(self, x):
            self.shapes.append(tuple(x.shape))
            return self._orig_mod(x)

    model.net = Compiled(model.net)
    padded = score_pairs(model, images, batch_size=4)
    assert [s[0] for s in model.net.shapes] == [4, 4]
    np.testing.assert_allclose(padded, eager, atol=1e-6)


def test_per_group_breakdown_shows_each_source_against_the_other_class():
    from irisgan.evaluate import per_group_breakdown

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.8, 0.3, 0.4])
    groups = ["ffhq", "ffhq", "yonsei", "yonsei", "gan-a", "gan-a", "gan-b", "gan-b"]
    rows = {r["group"]: r for r in per_group_breakdown(scores, labels, groups, threshold=0.5)}
    assert rows["gan-a"]["auroc"] == pytest.approx(1.0) and rows["gan-a"]["rate_at_thr"] == 1.0
    assert rows["gan-b"]["auroc"] == pytest.approx(0.5) and rows["gan-b"]["rate_at_thr"] == 0.0
    assert rows["ffhq"]["auroc"] == pytest.approx(1.0) and rows["ffhq"]["class"] == "real"
    assert rows["yonsei"]["auroc"] == pytest.approx(0.5) and rows["yonsei"]["rate_at_thr"] == 0.0
    assert {r["n"] for r in rows.values()} == {2}


def test_evaluate_reports_per_generator_when_the_csv_has_the_column(tmp_path, smoke_run):
    from irisgan.data.pairs_format import read_pairs_csv, write_pairs_csv
    from tests.conftest import write_random_pairs

    csv_path = write_random_pairs(tmp_path / "set", n=24)
    rows = read_pairs_csv(csv_path)
    for i, row in enumerate(rows):
        row["generator"] = ("ffhq" if i % 4 == 0 else "yonsei") if row["label"] == "0" else f"gan{i % 3}"
        row["source"] = f"/photos/{i}.jpg"  # one value per pair: names no groups
    write_pairs_csv(csv_path, rows)
    run_cli(
        "irisgan.evaluate", f"ckpt={smoke_run / 'checkpoints' / 'best.ckpt'}", f"pairs_csv={csv_path}",
        "bootstrap=20", "wandb=true", "hydra.run.dir=ev", cwd=tmp_path,
    )  # fmt: skip
    ran = json.loads((tmp_path / "ev" / "metrics.json").read_text())["methods"]["ran"]
    # the breakdown goes to W&B as a table too
    assert list(
        (tmp_path / "ev" / "wandb").glob("offline-run-*/files/media/table/eval/ran/per_generator_*.json")
    )
    assert {r["group"] for r in ran["per_generator"]} == {"ffhq", "yonsei", "gan0", "gan1", "gan2"}
    assert "per_source" not in ran
    assert "per_lightness" not in ran  # bare pairs: no extraction to find their faces in
    assert "Per generator" in (tmp_path / "ev" / "report.md").read_text()
    assert (tmp_path / "ev" / "plots" / "roc_per_generator.png").stat().st_size > 1000


def test_no_ckpt_uses_the_shipped_detector_or_says_how_to_get_one(tmp_path, monkeypatch, smoke_run):
    import irisgan.inference as inference

    monkeypatch.setattr(inference, "SHIPPED_WEIGHTS", tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="make model"):
        load_classifier(None)
    inference.export_weights(
        smoke_run / "checkpoints" / "best.ckpt", tmp_path / "shipped.pt", {"note": "test"}
    )
    monkeypatch.setattr(inference, "SHIPPED_WEIGHTS", tmp_path / "shipped.pt")
    model = load_classifier(None)
    reference = load_classifier(smoke_run / "checkpoints" / "best.ckpt")
    x = np.random.default_rng(0).integers(0, 255, (4, 3, 96, 96), dtype=np.uint8)
    np.testing.assert_allclose(score_pairs(model, x), score_pairs(reference, x), atol=1e-6)
    assert (tmp_path / "shipped.pt").stat().st_size < (smoke_run / "checkpoints" / "best.ckpt").stat().st_size


def test_report_lists_the_extraction_statuses_not_the_whole_summary():
    from irisgan.evaluate import _report_markdown

    method = {
        "auroc": 0.5,
        "acc_at_thr": 0.5,
        "precision_at_thr": 0.5,
        "recall_at_thr": 0.5,
        "f1_at_thr": 0.5,
        "acc_at_0.5": 0.5,
        "threshold": 0.5,
    }
    extraction = {
        "per_class": {"real": {"total": 2, "ok": 2}, "fake": {"total": 2, "ok": 1, "no_face": 1}},
        "ignored_files": ["/photos/notes.txt"],
        "this_run": {"processed": 4, "seconds": 1.0},
    }
    results = {
        "checkpoint": "x.ckpt",
        "source": "faces=/photos",
        "n_pairs": 3,
        "n_real": 2,
        "n_fake": 1,
        "methods": {"ran": method},
        "extraction": extraction,
    }
    text = _report_markdown(results, [])
    assert "- real: 2 photos: ok 2" in text and "- fake: 2 photos: ok 1, no_face 1" in text
    assert "notes.txt" not in text and "this_run" not in text


def test_flip_tta_scores_a_pair_and_its_mirror_alike_and_travels_with_the_weights(tmp_path, smoke_run):
    import irisgan.inference as inference

    x = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (6, 3, 96, 96), dtype=np.uint8))
    plain = load_classifier(smoke_run / "checkpoints" / "best.ckpt")
    tta = load_classifier(smoke_run / "checkpoints" / "best.ckpt", flip_tta=True)
    expected = 0.5 * (score_pairs(plain, x) + score_pairs(plain, x.flip(-1)))
    np.testing.assert_allclose(score_pairs(tta, x), expected, atol=1e-6)
    np.testing.assert_allclose(score_pairs(tta, x.flip(-1)), score_pairs(tta, x), atol=1e-6)
    assert not np.allclose(score_pairs(plain, x), expected, atol=1e-6)  # the mirror really is another view
    # explanations read the attention of the last pass: it must be the unflipped pair's
    modules = tta.net.attention_modules()
    for m in modules:
        m.record_masks = True
    tta.predict_proba(x)
    masks = [m.last_mask.clone() for m in modules]
    with torch.no_grad():
        tta(x)
    assert all(torch.equal(a, m.last_mask) for a, m in zip(masks, modules, strict=True))

    # A model trained with flip_tta keeps it in its exported weights; flip_tta=false overrides it.
    ckpt = torch.load(smoke_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["flip_tta"] = True
    torch.save(ckpt, tmp_path / "tta.ckpt")
    inference.export_weights(tmp_path / "tta.ckpt", tmp_path / "tta.pt")
    np.testing.assert_allclose(score_pairs(load_classifier(tmp_path / "tta.pt"), x), expected, atol=1e-6)
    off = load_classifier(tmp_path / "tta.pt", flip_tta=False)
    np.testing.assert_allclose(score_pairs(off, x), score_pairs(plain, x), atol=1e-6)
