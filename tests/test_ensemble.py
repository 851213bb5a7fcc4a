"""Several runs as one detector: the mean of the members' logits, a threshold chosen on validation."""

import numpy as np
import pytest
import torch

from irisgan.checkpoints import CheckpointError
from irisgan.ensemble import build_ensemble
from irisgan.inference import load_classifier, score_pairs
from tests.conftest import DATA_CACHE

# The smoke run's synthetic pairs are split in memory (no validation CSV): its test set stands in.
VAL_CSV = (
    DATA_CACHE / "synthetic_pairs" / "synthetic_pairs-v3-test-n48-fake0.5-difficulty0.0-seed0" / "pairs.csv"
)


def test_ensemble_scores_the_mean_logit_and_loads_like_any_weights(tmp_path, smoke_run):
    best, last = smoke_run / "checkpoints" / "best.ckpt", smoke_run / "checkpoints" / "last.ckpt"
    metrics = build_ensemble([smoke_run, last], tmp_path / "ens.pt", val_csv=VAL_CSV)
    assert metrics["val_csv"] == str(VAL_CSV) and len(metrics["val/member_auroc"]) == 2
    assert 0.0 <= metrics["val/threshold"] <= 1.0

    ensemble = load_classifier(tmp_path / "ens.pt")
    assert float(ensemble.threshold) == pytest.approx(metrics["val/threshold"])
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 255, (5, 3, 96, 96), dtype=np.uint8))
    with torch.no_grad():
        logits = [load_classifier(p)(x) for p in (best, last)]
    expected = torch.sigmoid((logits[0] + logits[1]) / 2).numpy()
    np.testing.assert_allclose(score_pairs(ensemble, x), expected, atol=1e-5)
    # one run alone is that run, its threshold chosen on the given pairs
    build_ensemble([best], tmp_path / "one.pt", val_csv=VAL_CSV)
    one = load_classifier(tmp_path / "one.pt")
    assert one.hparams.members == 1
    np.testing.assert_allclose(score_pairs(one, x), score_pairs(load_classifier(best), x), atol=1e-6)
    # one run twice is that run
    build_ensemble([best, best], tmp_path / "twice.pt", val_csv=VAL_CSV)
    np.testing.assert_allclose(
        score_pairs(load_classifier(tmp_path / "twice.pt"), x),
        score_pairs(load_classifier(best), x),
        atol=1e-5,
    )


def test_members_of_other_splits_or_one_run_are_refused(tmp_path, smoke_run):
    best = smoke_run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    ckpt["state_dict"]["mean"] = ckpt["state_dict"]["mean"] + 0.1
    torch.save(ckpt, tmp_path / "other_split.ckpt")
    with pytest.raises(CheckpointError, match="same data.split_seed"):
        build_ensemble([smoke_run, tmp_path / "other_split.ckpt"], tmp_path / "x.pt", val_csv=VAL_CSV)
    grey = torch.load(best, map_location="cpu", weights_only=True)
    grey["hyper_parameters"]["colour"] = "luminance"
    torch.save(grey, tmp_path / "grey.ckpt")
    with pytest.raises(CheckpointError, match="model.colour"):
        build_ensemble([best, tmp_path / "grey.ckpt"], tmp_path / "x.pt", val_csv=VAL_CSV)
    with pytest.raises(ValueError, match="no runs"):
        build_ensemble([], tmp_path / "x.pt", val_csv=VAL_CSV)
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        build_ensemble([smoke_run, tmp_path], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="validation sets"):
        build_ensemble([best, best], tmp_path / "x.pt")  # files alone name no validation pairs
    with pytest.raises(
        ValueError, match="training sets.*--fit-csv"
    ):  # nor the photos a face cue is fitted on
        build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, face_cue=True)
    # the face cue's options without the cue, and borders that are no crops, say so before any work
    with pytest.raises(ValueError, match="add --face-cue"):
        build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, face_crops="0.25,0.1")
    with pytest.raises(ValueError, match="add --face-cue"):
        build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, inner=True)
    with pytest.raises(ValueError, match="add --face-cue"):
        build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, vivid=True)
    for bad in ({"novelty_quantile": 1.5}, {"spread_quantile": 0.0}, {"vivid_quantile": 0.0}):
        with pytest.raises(ValueError, match="in \\(0, 1\\]"):
            build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, **bad)
    with pytest.raises(ValueError, match="face crops '0.25;0.1'"):
        build_ensemble([best], tmp_path / "x.pt", val_csv=VAL_CSV, face_cue=True, face_crops="0.25;0.1")


def test_an_ensemble_explains_with_its_first_members_attention():
    from irisgan.models.ran import NetEnsemble
    from tests.conftest import TINY_NET

    net = NetEnsemble(TINY_NET, members=3).eval()
    modules = net.attention_modules()
    assert modules and all(any(m is n for n in net.members[0].modules()) for m in modules)
    for m in modules:
        m.record_masks = True
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        out = net(x)
        assert torch.allclose(out, torch.stack([m(x) for m in net.members]).mean(0), atol=1e-6)
    assert all(m.last_mask is not None and m.last_mask.shape[0] == 2 for m in modules)
    with pytest.raises(ValueError, match="2 or more"):
        NetEnsemble(TINY_NET, members=1)
