"""Training the iris segmenter: a LightningModule around Mask R-CNN, and its pictures of detections.

``python -m irisgan.train stage=segmenter``: ``SegmenterModule`` wraps the network from
``irisgan.models.maskrcnn.build_maskrcnn``; validation and test report COCO box and mask AP/AR
(``irisgan.training.coco_eval``) and save a picture of predicted masks on validation images under the run folder.

The inference API the extractor uses (``IrisSegmenter``) is ``irisgan.extraction.iris_segmenter``; the demo on
face photos is ``python -m irisgan.extraction.segmenter_demo``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from irisgan.checkpoints import SEGMENTER, stamp_kind
from irisgan.data.pairs_format import write_image_atomic
from irisgan.models.maskrcnn import build_maskrcnn
from irisgan.training.coco_eval import coco_summary, make_coco_metric, predictions_for_coco, targets_for_coco
from irisgan.training.optim import configure_optimization


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
