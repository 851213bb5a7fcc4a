"""The segmenter stage: Mask R-CNN builder, COCO evaluation, the LightningModule and the inference API."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from irisgan.config import CONFIG_DIR
from irisgan.data.ubipr import SyntheticEyesDataModule
from irisgan.extraction.iris_segmenter import IrisDetection, IrisSegmenter
from irisgan.models.maskrcnn import build_maskrcnn
from irisgan.synthetic.periocular_render import SyntheticEyesParams, render_periocular
from irisgan.training.coco_eval import coco_summary, make_coco_metric
from irisgan.training.segmenter import SegmenterModule

# A Mask R-CNN small enough for a test to train a step in about a second.
TINY_NETWORK = dict(
    backbone="resnet18",
    norm="group_norm",
    min_size=64,
    max_size=96,
    fpn_channels=16,
    returned_layers=[3, 4],
    anchor_sizes=[16, 32, 64],
    aspect_ratios=[0.75],
    rpn_pre_nms_top_n_train=50,
    rpn_post_nms_top_n_train=20,
    rpn_pre_nms_top_n_test=50,
    rpn_post_nms_top_n_test=20,
    box_batch_size_per_image=16,
    box_detections_per_img=5,
    box_representation_size=32,
    mask_head_channels=16,
    mask_head_layers=1,
)
TINY_OVERRIDES = [f"model.network.{k}={v}".replace("'", "") for k, v in TINY_NETWORK.items()]


# ------------------------------------------------------------------ COCO evaluation


def _disc_mask(cx: int, cy: int, r: int, size: int = 64) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((xs - cx) ** 2 + (ys - cy) ** 2) <= r * r


def _target(cx, cy, r):
    mask = _disc_mask(cx, cy, r)
    return {
        "boxes": torch.tensor([[cx - r, cy - r, cx + r, cy + r]], dtype=torch.float32),
        "labels": torch.tensor([1]),
        "masks": mask[None],
    }


def _coco(preds, targets) -> dict[str, float]:
    metric = make_coco_metric()
    metric.update(preds, targets)
    return {k: float(v) for k, v in coco_summary(metric.compute(), "val/").items()}


def test_perfect_predictions_give_ap_one() -> None:
    targets = [_target(20, 30, 9), _target(40, 25, 12), _target(32, 32, 6)]
    preds = [dict(t, scores=torch.tensor([0.9])) for t in targets]
    result = _coco(preds, targets)
    for key in ("bbox_ap", "bbox_ap50", "bbox_ap75", "bbox_ar", "segm_ap", "segm_ap50", "segm_ar"):
        assert result[f"val/{key}"] == pytest.approx(1.0), key


def test_shifted_box_lowers_box_ap_only() -> None:
    targets = [_target(20, 30, 9), _target(40, 25, 12)]
    preds = [dict(t, scores=torch.tensor([0.9])) for t in targets]
    preds[0] = dict(preds[0], boxes=preds[0]["boxes"] + torch.tensor([6.0, 0.0, 6.0, 0.0]))  # IoU about 0.5
    result = _coco(preds, targets)
    assert result["val/bbox_ap"] < 0.8
    assert result["val/bbox_ap75"] < 1.0
    assert result["val/segm_ap"] == pytest.approx(1.0)  # the masks are untouched


def test_missed_iris_and_false_alarm_lower_ap() -> None:
    targets = [_target(20, 30, 9), _target(40, 25, 12)]
    preds = [
        dict(targets[0], scores=torch.tensor([0.9])),
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10]]),
            "labels": torch.tensor([1]),
            "scores": torch.tensor([0.95]),
            "masks": _disc_mask(5, 5, 4)[None],
        },
    ]
    result = _coco(preds, targets)
    assert result["val/segm_ap"] < 0.6 and result["val/segm_ar"] == pytest.approx(0.5)


# ------------------------------------------------------------------ the network


def test_builder_makes_two_class_predictors_and_rejects_bad_settings() -> None:
    model = build_maskrcnn(**TINY_NETWORK)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.backbone.body.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(ValueError, match="choose one of"):
        build_maskrcnn(**{**TINY_NETWORK, "backbone": "vgg"})
    with pytest.raises(ValueError, match="choose one of"):
        build_maskrcnn(**{**TINY_NETWORK, "norm": "layer_norm"})
    with pytest.raises(ValueError, match="one size per feature level"):
        build_maskrcnn(**{**TINY_NETWORK, "anchor_sizes": [16, 32]})
    with pytest.raises(ValueError, match="COCO weights fit"):
        build_maskrcnn(**{**TINY_NETWORK, "weights": "coco"})


def test_coco_weights_are_never_downloaded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_maskrcnn(backbone="resnet50", norm="frozen_batch_norm", weights="coco")
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ the LightningModule


def _module(**kwargs) -> SegmenterModule:
    return SegmenterModule(
        TINY_NETWORK,
        {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.9},
        {
            "_target_": "irisgan.training.optim.WarmupCosineLR",
            "warmup_steps": 2,
            "total_steps": None,
            "interval": "step",
        },
        picture_count=4,
        **kwargs,
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A segmenter checkpoint after one training step and one validation pass."""
    root = tmp_path_factory.mktemp("segmenter")
    dm = SyntheticEyesDataModule(
        str(root / "data"),
        count=12,
        image_size=64,
        batch_size=4,
        closed_eye_fraction=0.0,
        val_fraction=0.34,
        test_fraction=0.0,
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        accelerator="cpu",
    )
    trainer.fit(_module(), dm)
    path = root / "segmenter.ckpt"
    trainer.save_checkpoint(path)
    assert (root / "segmenter_val" / "epoch_000.png").is_file()  # the per-run picture of predicted masks
    assert {"val/segm_ap", "val/bbox_ap", "val/bbox_ap50", "val/segm_ar"} <= set(trainer.callback_metrics)
    return path


def test_checkpoint_loads_with_weights_only(tiny_checkpoint: Path) -> None:
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["irisgan"]["kind"] == "segmenter"
    assert checkpoint["hyper_parameters"]["network"]["fpn_channels"] == 16


def test_non_finite_loss_stops_with_a_clear_message() -> None:
    module = _module()
    module.model.forward = lambda images, targets=None: {"loss_mask": torch.tensor(float("nan"))}
    batch = ([torch.zeros(3, 64, 64)], [{"image_id": 7}])
    with pytest.raises(FloatingPointError, match=r"not finite at step 0 .*image ids \[7\].*optimizer.lr"):
        module.training_step(batch, 0)


def test_optimizer_without_a_target_names_the_config_group() -> None:
    module = SegmenterModule(TINY_NETWORK, {"name": "sgd", "lr": 1.0})
    with pytest.raises(ValueError, match=r"no _target_.*`optimizer` config group"):
        module.configure_optimizers()


@pytest.mark.parametrize("choice", [[], ["optimizer=adamw"]], ids=["default", "adamw"])
def test_stage_fast_dev_run(tmp_path: Path, choice: list[str]) -> None:
    """The real stage config, composed as `python -m irisgan.train stage=segmenter` would, on a tiny set."""
    from irisgan.train import train

    overrides = [
        "stage=segmenter",
        *choice,
        "logger=none",
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.count=8",
        "data.image_size=64",
        "data.batch_size=2",
        "data.val_fraction=0.25",
        "data.test_fraction=0.25",
        "+trainer.fast_dev_run=true",
        "+trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        *TINY_OVERRIDES,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    assert cfg.monitor == "val/segm_ap" and cfg.optimized_metric == "val/segm_ap" and cfg.get("loss") is None
    assert cfg.model._target_ == "irisgan.training.segmenter.SegmenterModule"
    metrics = train(cfg)
    assert "test/segm_ap" in metrics and "val/bbox_ap" in metrics


# ------------------------------------------------------------------ the inference API


def _eye_crops(n: int, size: int = 64) -> list[np.ndarray]:
    params = SyntheticEyesParams(image_size=size, closed_eye_fraction=0.0)
    return [render_periocular(np.random.default_rng([9, i]), params)[0] for i in range(n)]


def test_inference_api_returns_one_result_per_crop(tiny_checkpoint: Path) -> None:
    segmenter = IrisSegmenter.from_checkpoint(tiny_checkpoint, device="cpu", score_threshold=0.0)
    crops = _eye_crops(3) + [np.zeros((40, 70, 3), np.uint8)]
    results = segmenter.predict(crops)
    assert len(results) == 4
    for crop, found in zip(crops, results, strict=True):
        assert isinstance(found, IrisDetection)  # threshold 0: an untrained net still proposes something
        height, width = crop.shape[:2]
        x0, y0, x1, y1 = found.box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert found.mask.shape == (height, width) and found.mask.dtype == bool
        assert 0.0 <= found.score <= 1.0
    strict = IrisSegmenter.from_checkpoint(tiny_checkpoint, score_threshold=1.01)
    assert strict.predict(crops[:2]) == [None, None]
    assert segmenter.predict([]) == []


def test_inference_api_rejects_bad_crops(tiny_checkpoint: Path) -> None:
    segmenter = IrisSegmenter.from_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match="crop 1: expected an RGB uint8"):
        segmenter.predict([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)])
    with pytest.raises(ValueError, match="crop 0: expected an RGB uint8"):
        segmenter.predict([np.zeros((32, 32, 3), np.float32)])


def test_other_checkpoints_are_refused_clearly(tmp_path: Path) -> None:
    other = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}}, other)
    with pytest.raises(ValueError, match="not a segmenter checkpoint"):
        IrisSegmenter.from_checkpoint(other)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint irisgan can load"):
        IrisSegmenter.from_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="not found"):
        IrisSegmenter.from_checkpoint(tmp_path / "missing.ckpt")


FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


@pytest.mark.slow
@pytest.mark.skipif(not FACES.is_dir(), reason="../shared/data/faces (the 20 test photos) is not here")
def test_real_eye_demo_command(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from irisgan.extraction.segmenter_demo import main

    out = tmp_path / "real_eyes.png"
    summary = main([f"ckpt={tiny_checkpoint}", f"faces={FACES}", f"out={out}", "score_threshold=0.0"])
    assert summary["photos"] == 20 and summary["eyes"] == 40 and len(summary["per_eye"]) == 40
    assert summary["found"] == 40  # threshold 0: every crop gets its best detection drawn
    assert out.is_file()
    with pytest.raises(SystemExit, match="usage"):
        main([f"ckpt={tiny_checkpoint}", "faces=x", "bogus=1"])
