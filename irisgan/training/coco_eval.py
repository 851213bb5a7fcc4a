"""COCO box and mask AP/AR for the iris segmenter, through torchmetrics' MeanAveragePrecision with the
pycocotools backend (the same numbers COCOeval prints), renamed to short keys for logging.

``val/segm_ap`` is COCO's AP (IoU 0.50:0.95), ``segm_ap50``/``segm_ap75`` at one IoU, ``segm_ar`` the
AR with up to 100 detections per image; the same for ``bbox_``.
"""

from __future__ import annotations

import torch
from torchmetrics.detection import MeanAveragePrecision

# torchmetrics' key (after its "bbox_"/"segm_" prefix) -> ours
SUMMARY_KEYS = {
    "map": "ap",
    "map_50": "ap50",
    "map_75": "ap75",
    "mar_1": "ar1",
    "mar_10": "ar10",
    "mar_100": "ar",
}
IOU_TYPES = ("bbox", "segm")


def make_coco_metric() -> MeanAveragePrecision:
    return MeanAveragePrecision(iou_type=IOU_TYPES, backend="pycocotools")


def coco_summary(results: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """``MeanAveragePrecision.compute()`` output -> ``{prefix}bbox_ap``, ``{prefix}segm_ar``, ..."""
    summary = {}
    for iou_type in IOU_TYPES:
        for theirs, ours in SUMMARY_KEYS.items():
            key = f"{iou_type}_{theirs}"
            if key in results:
                summary[f"{prefix}{iou_type}_{ours}"] = results[key].float()
    return summary


def predictions_for_coco(outputs: list[dict[str, torch.Tensor]], mask_threshold: float = 0.5) -> list[dict]:
    """torchvision Mask R-CNN outputs (masks N x 1 x H x W probabilities) -> MeanAveragePrecision preds."""
    return [
        {
            "boxes": o["boxes"].detach().float(),
            "scores": o["scores"].detach().float(),
            "labels": o["labels"].detach(),
            "masks": o["masks"].detach()[:, 0] > mask_threshold,
        }
        for o in outputs
    ]


def targets_for_coco(targets: list[dict[str, torch.Tensor]]) -> list[dict]:
    """Dataset targets (tv_tensors) -> MeanAveragePrecision targets (plain tensors, boolean masks)."""
    return [
        {
            "boxes": t["boxes"].as_subclass(torch.Tensor).float(),
            "labels": t["labels"],
            "masks": t["masks"].as_subclass(torch.Tensor).bool(),
            "iscrowd": t.get("iscrowd", torch.zeros(len(t["labels"]), dtype=torch.int64)),
        }
        for t in targets
    ]
