"""The iris segmenter: a LightningModule that trains Mask R-CNN, and the inference API the extractor uses.

Training (``python -m irisgan.train stage=segmenter``): ``SegmenterModule`` wraps the network from
``irisgan.models.maskrcnn.build_maskrcnn``; validation and test report COCO box and mask AP/AR
(``irisgan.training.coco_eval``) and save a picture of predicted masks on validation images under the run folder.

Inference::

    segmenter = IrisSegmenter.from_checkpoint("best.ckpt", device="cpu", score_threshold=0.5)
    detections = segmenter.predict([eye_crop_rgb_uint8, ...])  # one IrisDetection or None per crop

Demo on face photos (dlib eye crops, a picture and a count)::

    python -m irisgan.training.segmenter ckpt=PATH faces=DIR out=segmenter_real_eyes.png
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from irisgan.checkpoints import SEGMENTER, load_checkpoint, stamp_kind
from irisgan.data.pairs_format import write_image_atomic
from irisgan.models.maskrcnn import build_maskrcnn
from irisgan.training.coco_eval import coco_summary, make_coco_metric, predictions_for_coco, targets_for_coco
from irisgan.training.optim import configure_optimization

log = logging.getLogger(__name__)

IRIS_LABEL = 1


class SegmenterModule(L.LightningModule):
    """Mask R-CNN iris segmenter.

    ``network``: keyword arguments of ``build_maskrcnn`` (plain values, stored in the checkpoint).
    ``optimizer``, ``scheduler``: ``_target_`` dicts from the ``optimizer`` and ``scheduler`` config groups
    (``irisgan.training.optim.configure_optimization``); the stage's default is SGD with a linear warm-up then
    cosine (``irisgan.training.optim.WarmupCosineLR``).
    """

    def __init__(
        self,
        network: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        mask_threshold: float = 0.5,
        picture_count: int = 16,
        picture_score_threshold: float = 0.5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_maskrcnn(**network)
        self.val_coco = make_coco_metric()
        self.test_coco = make_coco_metric()
        self._picture_batch: tuple[list[torch.Tensor], list[dict]] | None = None

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        loss_parts = self.model(list(images), list(targets))
        loss = sum(loss_parts.values())
        if not torch.isfinite(loss):
            parts = {k: float(v) for k, v in loss_parts.items()}
            ids = [t["image_id"] for t in targets]
            raise FloatingPointError(
                f"segmenter loss is not finite at step {self.global_step} (parts {parts}, image ids {ids}); "
                "lower model.optimizer.lr or raise model.scheduler.warmup_steps"
            )
        batch_size = len(images)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in loss_parts.items()}, batch_size=batch_size)
        return loss

    def _evaluate(self, batch, metric) -> list[dict]:
        images, targets = batch
        outputs = self.model(list(images))
        metric.update(predictions_for_coco(outputs, self.hparams.mask_threshold), targets_for_coco(targets))
        return outputs

    def validation_step(self, batch, batch_idx: int) -> None:
        outputs = self._evaluate(batch, self.val_coco)
        if self._picture_batch is None or len(self._picture_batch[0]) < self.hparams.picture_count:
            self._keep_for_picture(batch[0], outputs)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_coco)

    def _keep_for_picture(self, images, outputs) -> None:
        if self._picture_batch is None:
            self._picture_batch = ([], [])
        room = self.hparams.picture_count - len(self._picture_batch[0])
        self._picture_batch[0].extend(img.detach().cpu() for img in list(images)[:room])
        self._picture_batch[1].extend({k: v.detach().cpu() for k, v in o.items()} for o in outputs[:room])

    def on_validation_epoch_start(self) -> None:
        self._picture_batch = None

    def on_validation_epoch_end(self) -> None:
        self.log_dict(coco_summary(self.val_coco.compute(), "val/"), prog_bar=False)
        self.val_coco.reset()
        if not self.trainer.sanity_checking and self._picture_batch and self.trainer.is_global_zero:
            self._save_picture()
        self._picture_batch = None

    def on_test_epoch_end(self) -> None:
        self.log_dict(coco_summary(self.test_coco.compute(), "test/"))
        self.test_coco.reset()

    def _save_picture(self) -> None:
        images, outputs = self._picture_batch
        tiles = [
            draw_detection(
                (img * 255).round().to(torch.uint8),
                out,
                self.hparams.picture_score_threshold,
                self.hparams.mask_threshold,
            )
            for img, out in zip(images, outputs, strict=True)
        ]
        picture = tile_images(tiles)
        # During fit one picture per epoch; a later `trainer.validate` (of the best checkpoint) gets its own name.
        fitting = self.trainer.state.fn == "fit"
        name = f"epoch_{self.current_epoch:03d}.png" if fitting else "validate.png"
        path = Path(self.trainer.default_root_dir) / "segmenter_val" / name
        write_image_atomic(path, picture)
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(
                    key="val/predictions",
                    images=[picture],
                    step=self.global_step,
                    caption=[
                        f"epoch {self.current_epoch}: masks with score >= "
                        f"{self.hparams.picture_score_threshold}"
                    ],
                )

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return configure_optimization(
            params,
            self.hparams.optimizer,
            self.hparams.scheduler,
            lambda: self.trainer.estimated_stepping_batches,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        stamp_kind(checkpoint, SEGMENTER)


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------


def draw_detection(
    image: torch.Tensor, output: dict, score_threshold: float = 0.5, mask_threshold: float = 0.5
) -> torch.Tensor:
    """uint8 3xHxW image with the detections scoring >= ``score_threshold`` drawn (mask, box, score)."""
    keep = output["scores"] >= score_threshold
    if keep.any():
        masks = output["masks"][keep]
        masks = masks[:, 0] > mask_threshold if masks.dim() == 4 else masks.bool()
        image = draw_segmentation_masks(image, masks, alpha=0.45, colors="lime")
        labels = [f"{s:.2f}" for s in output["scores"][keep].tolist()]
        image = draw_bounding_boxes(image, output["boxes"][keep], labels=labels, colors="yellow", width=1)
    return image


def tile_images(tiles: list[torch.Tensor], size: int = 128, per_row: int = 8) -> np.ndarray:
    """Resize uint8 3xHxW tiles to ``size`` and lay them out in rows: an RGB HxWx3 array."""
    from torchvision.transforms.v2.functional import resize

    tiles = [resize(t, [size, size], antialias=True) for t in tiles]
    grid = make_grid(tiles, nrow=min(per_row, len(tiles)), padding=2, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------------------------
# Inference API
# ----------------------------------------------------------------------------------------------


@dataclass
class IrisDetection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in crop pixels
    mask: np.ndarray  # H x W bool, the crop's size
    score: float


class IrisSegmenter:
    """A trained segmenter for inference: eye crops in, the best iris per crop (or None) out."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
        batch_size: int = 16,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "cpu", score_threshold: float = 0.5
    ) -> IrisSegmenter:
        checkpoint = load_checkpoint(path, SEGMENTER)
        hparams = checkpoint.get("hyper_parameters", {})
        model = build_maskrcnn(**hparams["network"])
        state = {
            k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")
        }
        model.load_state_dict(state)
        return cls(model, device, score_threshold, hparams.get("mask_threshold", 0.5))

    @torch.inference_mode()
    def predict(self, crops: list[np.ndarray]) -> list[IrisDetection | None]:
        """RGB uint8 HxWx3 eye crops (any sizes) -> for each, its best iris detection, or None below the
        score threshold."""
        for i, crop in enumerate(crops):
            if (
                not isinstance(crop, np.ndarray)
                or crop.dtype != np.uint8
                or crop.ndim != 3
                or crop.shape[2] != 3
            ):
                shape = getattr(crop, "shape", None)
                raise ValueError(
                    f"crop {i}: expected an RGB uint8 HxWx3 array, got {type(crop).__name__} "
                    f"{shape} {getattr(crop, 'dtype', '')}"
                )
            if min(crop.shape[:2]) < 8:
                raise ValueError(
                    f"crop {i}: {crop.shape[1]}x{crop.shape[0]} pixels is too small to hold an iris"
                )
        results: list[IrisDetection | None] = []
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            images = [
                torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).to(self.device, torch.float32)
                / 255
                for c in chunk
            ]
            for output in self.model(images):
                results.append(self._best(output))
        return results

    def _best(self, output: dict[str, torch.Tensor]) -> IrisDetection | None:
        ok = (output["labels"] == IRIS_LABEL) & (output["scores"] >= self.score_threshold)
        if not ok.any():
            return None
        index = int(torch.where(ok, output["scores"], -1.0).argmax())
        box = tuple(float(v) for v in output["boxes"][index].tolist())
        mask = (output["masks"][index, 0] > self.mask_threshold).cpu().numpy()
        return IrisDetection(box=box, mask=mask, score=float(output["scores"][index]))


# ----------------------------------------------------------------------------------------------
# Demo on face photos: python -m irisgan.training.segmenter ckpt=PATH faces=DIR out=PNG
# ----------------------------------------------------------------------------------------------


def eye_crops_from_photos(photos: list, margin: float = 0.25):
    """Both eye crops of the largest face in each photo, cut by the extractor's photo -> eyes step with
    its face settings (conf/extract.yaml).

    Yields ``(photo path, "left"|"right", crop RGB uint8, eye landmarks in crop pixels)``; photos
    without eye crops (no face, unreadable) are skipped with a warning."""
    from irisgan.config import compose_config
    from irisgan.extraction.pipeline import SIDES, build_dataset, build_landmarker

    cfg = compose_config("extract", [f"eyes.margin={margin}"])
    dataset = build_dataset(cfg, photos, build_landmarker(cfg.face), overlay=False)
    for index in range(len(dataset)):
        result = dataset[index]
        if not result.eye_crops:
            log.warning("%s: no eyes (%s)", result.path, result.status)
            continue
        for side, crop, points in zip(SIDES, result.eye_crops, result.eye_points, strict=True):
            yield Path(result.path), side, crop, points


def plausible_iris(detection: IrisDetection | None, eye_points: np.ndarray) -> bool:
    """A detection whose centre lies between the eye corners and lids and whose width is a plausible
    fraction of the eye's width (an iris spans about 30-65% of it)."""
    if detection is None:
        return False
    x0, y0, x1, y1 = detection.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ex0, ey0 = eye_points.min(axis=0)
    ex1, ey1 = eye_points.max(axis=0)
    eye_w = ex1 - ex0
    return bool(
        ex0 <= cx <= ex1
        and ey0 - 0.15 * eye_w <= cy <= ey1 + 0.15 * eye_w
        and 0.25 * eye_w <= x1 - x0 <= 0.75 * eye_w
    )


def main(argv: list[str] | None = None) -> dict:
    """Run a segmenter checkpoint on the eyes of face photos; write a picture, print and return a summary."""
    import json
    import sys

    from omegaconf import OmegaConf

    args = OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv)
    unknown = set(args) - {"ckpt", "faces", "out", "margin", "score_threshold", "device"}
    if unknown or "ckpt" not in args or "faces" not in args:
        raise SystemExit(
            "usage: python -m irisgan.training.segmenter ckpt=PATH faces=DIR [out=PNG] [margin=0.25] "
            f"[score_threshold=0.5] [device=cpu]{'  (unknown: ' + str(sorted(unknown)) + ')' if unknown else ''}"
        )
    from irisgan.extraction.photos import list_unlabelled

    photos, _ = list_unlabelled(str(args.faces))
    if not photos:
        raise SystemExit(f"no face photos under {args.faces}")
    segmenter = IrisSegmenter.from_checkpoint(
        args.ckpt, args.get("device", "cpu"), args.get("score_threshold", 0.5)
    )
    eyes = list(eye_crops_from_photos(photos, float(args.get("margin", 0.25))))
    detections = segmenter.predict([crop for _, _, crop, _ in eyes])
    tiles, per_eye = [], []
    for (path, side, crop, points), found in zip(eyes, detections, strict=True):
        ok = plausible_iris(found, points)
        per_eye.append(
            {
                "photo": str(path),
                "eye": side,
                "found": found is not None,
                "plausible": ok,
                "score": None if found is None else round(found.score, 3),
            }
        )
        tile = torch.from_numpy(crop).permute(2, 0, 1)
        if found is not None:
            output = {
                "boxes": torch.tensor([found.box]),
                "scores": torch.tensor([found.score]),
                "masks": torch.from_numpy(found.mask)[None],
            }
            tile = draw_detection(tile, output, score_threshold=0.0)
        tiles.append(tile)
    summary = {
        "photos": len(photos),
        "eyes": len(eyes),
        "found": sum(e["found"] for e in per_eye),
        "plausible": sum(e["plausible"] for e in per_eye),
        "score_threshold": segmenter.score_threshold,
    }
    if args.get("out"):
        write_image_atomic(args.out, tile_images(tiles, size=128, per_row=8))
        summary["picture"] = str(args.out)
    for eye in per_eye:
        log.info(
            "%s %s: found=%s plausible=%s score=%s",
            eye["photo"],
            eye["eye"],
            eye["found"],
            eye["plausible"],
            eye["score"],
        )
    print(json.dumps(summary))
    return {**summary, "per_eye": per_eye}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
