"""The trained iris segmenter for inference: eye crops in, the best iris per crop (or None) out.

The extractor's ``locator=segmenter`` (``irisgan.extraction.iris_locator.SegmenterIrisLocator``) uses it;
the network is trained by ``python -m irisgan.train stage=segmenter`` (``irisgan.training.segmenter``)::

    segmenter = IrisSegmenter.from_checkpoint("best.ckpt", device="cpu", score_threshold=0.5)
    detections = segmenter.predict([eye_crop_rgb_uint8, ...])  # one IrisDetection or None per crop

Only ``torch``, the network builder and the checkpoint reader are needed: no Lightning module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from irisgan.checkpoints import SEGMENTER, load_checkpoint
from irisgan.models.maskrcnn import build_maskrcnn

IRIS_LABEL = 1  # the iris class of the segmenter's targets (irisgan.data.ubipr)


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
