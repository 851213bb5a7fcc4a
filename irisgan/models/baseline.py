"""A training-free baseline: corneal specular highlight consistency (Hu et al. 2021, ICASSP).

Under one light source, the corneal reflections of a real person's two eyes have nearly the same shape and
position relative to the iris; GAN faces often render them differently. Per iris pair: find the highlight
in each iris (bright, near-white pixels inside the iris disk), align the two masks (the crops are centred on
the irises; a small translation search absorbs crop jitter), and score ``1 - IoU``: high means GAN.
"""

from __future__ import annotations

import cv2
import numpy as np

HALF = 96  # each iris is compared on its own square canvas


def _halves(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo the side-by-side squeeze: two square RGB iris images from one (H, W, 3) pair."""
    h, w = pair.shape[:2]
    left, right = pair[:, : w // 2], pair[:, w // 2 :]
    return (
        cv2.resize(left, (HALF, HALF), interpolation=cv2.INTER_LINEAR),
        cv2.resize(right, (HALF, HALF), interpolation=cv2.INTER_LINEAR),
    )


_yy, _xx = np.mgrid[0:HALF, 0:HALF]
_IRIS_DISK = (_xx - (HALF - 1) / 2) ** 2 + (_yy - (HALF - 1) / 2) ** 2 <= (0.42 * HALF) ** 2


def highlight_mask(iris_rgb: np.ndarray, min_level: int = 170, k: float = 2.5) -> np.ndarray:
    """Specular highlight pixels of one square iris image: bright and unsaturated, inside the iris disk."""
    hsv = cv2.cvtColor(iris_rgb, cv2.COLOR_RGB2HSV)
    value = hsv[..., 2].astype(np.float32)
    inside = value[_IRIS_DISK]
    level = max(float(min_level), float(inside.mean() + k * inside.std()))
    mask = (value >= level) & (hsv[..., 1] < 110) & _IRIS_DISK
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)


def aligned_iou(a: np.ndarray, b: np.ndarray, max_shift: int = 3) -> float:
    """Best IoU of two masks over translations of up to ``max_shift`` pixels. Both empty: 1 (consistent)."""
    if not a.any() and not b.any():
        return 1.0
    if not a.any() or not b.any():
        return 0.0
    best = 0.0
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            shifted = np.roll(np.roll(b, dy, axis=0), dx, axis=1)
            inter = np.logical_and(a, shifted).sum()
            union = np.logical_or(a, shifted).sum()
            best = max(best, inter / union)
    return float(best)


def highlight_score(pair_rgb: np.ndarray) -> float:
    """P(GAN)-like score in [0, 1] of one (H, W, 3) uint8 iris pair: 1 - IoU of the aligned highlights."""
    left, right = _halves(pair_rgb)
    return 1.0 - aligned_iou(highlight_mask(left), highlight_mask(right))


def highlight_scores(images: np.ndarray) -> np.ndarray:
    """Scores of (N, 3, H, W) uint8 pairs."""
    return np.array(
        [highlight_score(np.ascontiguousarray(img.transpose(1, 2, 0))) for img in images], np.float32
    )


def highlight_masks_for_display(pair_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left, right = _halves(pair_rgb)
    return highlight_mask(left), highlight_mask(right)
