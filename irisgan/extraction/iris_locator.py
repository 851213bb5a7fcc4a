"""Where is the iris in an eye crop? Two interchangeable locators, chosen by config (``conf/locator``).

* ``HoughIrisLocator`` needs no training: it searches circles whose centre lies inside the eye
  (dlib landmarks 36-41 or 42-47), scored by the limbus edge on the visible left and right arcs
  (dark iris inside, bright sclera outside) plus the contrast between the iris disk and the sclera
  beside it, with a prior on size (iris diameter ~ 0.42 of the eye's corner-to-corner width) and
  on height (the iris centre sits near the middle of the lids). ``cv2.HoughCircles`` proposals are
  scored the same way, so a clean circular limbus wins when present and the search covers the rest.
  A closed eye (low eye aspect ratio) or an iris with too little contrast (sunglasses, hair, a lid)
  gives ``None``.
* ``SegmenterIrisLocator`` wraps the trained Mask R-CNN (``irisgan.extraction.iris_segmenter.IrisSegmenter``),
  batched over eye crops; imported lazily, so extraction works before any segmenter exists.

Both take RGB uint8 eye crops plus the six eye landmarks in crop coordinates and return, per crop,
an ``IrisLocation`` (crop coordinates) or ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from irisgan.extraction.faces import eye_openness, eye_width


@dataclass
class IrisLocation:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the eye crop's pixels
    score: float
    circle: tuple[float, float, float] | None = None  # cx, cy, r (training-free locator)
    mask: np.ndarray | None = None  # HxW bool over the eye crop (segmenter)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    @property
    def size(self) -> float:
        """Diameter in pixels: the larger side of the box."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


# ---------------------------------------------------------------------------- training-free locator


def _unit_arc(half_angle: float, count: int = 12) -> np.ndarray:
    """Points on the left and right arcs of the unit circle (the limbus that the lids rarely cover)."""
    right = np.linspace(-half_angle, half_angle, count // 2)
    angles = np.deg2rad(np.concatenate([right, right + 180.0]))
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def _unit_disk(steps: int = 7) -> np.ndarray:
    grid = np.linspace(-1.0, 1.0, steps, dtype=np.float32)
    xs, ys = np.meshgrid(grid, grid)
    inside = xs**2 + ys**2 <= 1.0 + 1e-6
    return np.stack([xs[inside], ys[inside]], axis=1)


class HoughIrisLocator:
    """Training-free iris locator: limbus-edge and darkness scoring of circles inside the eye contour.

    Args:
        iris_to_eye_width: expected iris diameter over the eye's corner-to-corner width.
        radius_range: searched radii, as fractions of the expected radius (low, high).
        radius_steps: number of radii searched in that range.
        work_eye_width: eye crops are rescaled so the eye is this many pixels wide (speed and
            scale-free thresholds).
        arc_half_angle: the limbus arcs scored, in degrees either side of horizontal.
        height_penalty: weight of the prior keeping the iris centre near the middle of the lids.
        min_contrast: sclera-minus-iris brightness (0-255, red channel) below which no iris is reported.
        min_eye_openness: eye aspect ratio below which the eye counts as closed.
        hough_proposals: also score up to this many ``cv2.HoughCircles`` circles (0: grid search only).
        sclera_level: the red channel is brightened so that the eye's bright part (its 90th
            percentile inside the lids: the sclera) reaches this level, so that edges and
            ``min_contrast`` mean the same in a dark or shadowed photo as in a bright one.
        max_gain: at most this brightening, so that a black or flat eye region stays without contrast.
    """

    name = "hough"

    def __init__(
        self,
        iris_to_eye_width: float = 0.42,
        radius_range: Sequence[float] = (0.8, 1.2),
        radius_steps: int = 5,
        work_eye_width: int = 64,
        arc_half_angle: float = 50.0,
        height_penalty: float = 40.0,
        min_contrast: float = 30.0,
        min_eye_openness: float = 0.12,
        hough_proposals: int = 8,
        sclera_level: float = 200.0,
        max_gain: float = 4.0,
    ) -> None:
        if not 0 < radius_range[0] <= radius_range[1]:
            raise ValueError(f"radius_range must be 0 < low <= high, got {tuple(radius_range)}")
        self.iris_to_eye_width = float(iris_to_eye_width)
        self.radius_factors = np.linspace(radius_range[0], radius_range[1], max(1, int(radius_steps)))
        self.work_eye_width = float(work_eye_width)
        self.arc_half_angle = float(arc_half_angle)
        self.height_penalty = float(height_penalty)
        self.min_contrast = float(min_contrast)
        self.min_eye_openness = float(min_eye_openness)
        self.hough_proposals = int(hough_proposals)
        self.sclera_level = float(sclera_level)
        self.max_gain = float(max_gain)

    def prepare(self, device: object = None) -> None:
        """Nothing to load; present so every locator is set up the same way."""

    def locate(
        self, eye_crops: Sequence[np.ndarray], eye_points: Sequence[np.ndarray]
    ) -> list[IrisLocation | None]:
        return [self.locate_one(crop, points) for crop, points in zip(eye_crops, eye_points, strict=True)]

    def locate_one(self, crop: np.ndarray, points: np.ndarray) -> IrisLocation | None:
        width = eye_width(points)
        if width < 2 or eye_openness(points) < self.min_eye_openness:
            return None
        scale = self.work_eye_width / width
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=interpolation)
        expected_radius = self.iris_to_eye_width * self.work_eye_width / 2.0
        radii = (self.radius_factors * expected_radius).astype(np.float32)
        # Pad so that every sampled point lands in the arrays: no clipping in the inner loop.
        pad = int(np.ceil(1.5 * radii[-1] + 4))
        pts = points.astype(np.float32) * scale + pad
        # Red: the sclera and the skin are bright in it, irises of every colour are dark.
        red = cv2.GaussianBlur(small[:, :, 0], (0, 0), 1.0)
        red = cv2.copyMakeBorder(red, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
        inside = np.zeros(red.shape, np.uint8)
        cv2.fillPoly(inside, [np.round(pts).astype(np.int32)], 1)
        inside = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(np.float32)
        inside[:pad] = inside[-pad:] = 0  # the padding is not eye
        inside[:, :pad] = inside[:, -pad:] = 0
        if self.max_gain > 1 and inside.any():
            bright = float(np.percentile(red[inside > 0], 90))
            red *= float(np.clip(self.sclera_level / max(bright, 1.0), 1.0, self.max_gain))

        lid_middle = float(pts[[1, 2, 4, 5], 1].mean())
        corner_margin = 0.12 * self.work_eye_width
        x_range = (float(pts[0, 0] + corner_margin), float(pts[3, 0] - corner_margin))
        y_range = (lid_middle - 0.4 * expected_radius, lid_middle + 0.3 * expected_radius)
        if x_range[1] < x_range[0]:
            return None
        search = _CircleScorer(red, inside, lid_middle, self.arc_half_angle, self.height_penalty)

        # Coarse grid over centres and radii, then a 1-pixel search around the best coarse circle.
        xs = np.arange(x_range[0], x_range[1] + 1e-3, 2.0, dtype=np.float32)
        ys = np.arange(y_range[0], y_range[1] + 1e-3, 2.0, dtype=np.float32)
        best = search.best(_grid(xs, ys, radii))
        fine = np.arange(-2.0, 2.01, 1.0, dtype=np.float32)
        fine_radii = np.unique(np.clip(best[3] + np.array([-1.0, 0.0, 1.0], np.float32), radii[0], radii[-1]))
        candidates = [best, search.best(_grid(best[1] + fine, best[2] + fine, fine_radii))]
        if self.hough_proposals > 0:
            circles = cv2.HoughCircles(
                np.clip(red, 0, 255).astype(np.uint8),
                cv2.HOUGH_GRADIENT,
                dp=1,
                minDist=2,
                param1=60,
                param2=8,
                minRadius=int(radii[0]),
                maxRadius=int(np.ceil(radii[-1])),
            )
            if circles is not None:
                circles = circles[0][: self.hough_proposals]
                keep = (circles[:, 0] >= x_range[0]) & (circles[:, 0] <= x_range[1])
                keep &= (circles[:, 1] >= y_range[0]) & (circles[:, 1] <= y_range[1])
                if keep.any():
                    candidates.append(search.best(circles[keep].astype(np.float32)))
        score, cx, cy, radius, contrast = max(candidates, key=lambda c: c[0])
        if not np.isfinite(score) or contrast < self.min_contrast:
            return None
        cx, cy, radius = (cx - pad) / scale, (cy - pad) / scale, radius / scale
        return IrisLocation(
            box=(cx - radius, cy - radius, cx + radius, cy + radius),
            score=float(score),
            circle=(float(cx), float(cy), float(radius)),
        )


def _grid(xs: np.ndarray, ys: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """All (cx, cy, r) combinations, as an Nx3 float32 array."""
    return np.stack([g.ravel() for g in np.meshgrid(xs, ys, radii)], axis=1).astype(np.float32)


class _CircleScorer:
    """Scores circles (cx, cy, r) on one eye: limbus edge + iris/sclera contrast - height prior."""

    def __init__(
        self,
        red: np.ndarray,
        inside: np.ndarray,
        lid_middle: float,
        arc_half_angle: float,
        height_penalty: float,
    ):
        self.red, self.inside = red, inside
        self.lid_middle, self.height_penalty = lid_middle, height_penalty
        self.arc = _unit_arc(arc_half_angle)
        self.disk = _unit_disk()

    def _masked_mean(self, circles: np.ndarray, offsets: np.ndarray, radii: np.ndarray):
        """Mean red over the sampled points that fall inside the eye, and the fraction that do."""
        xy = np.rint(circles[:, None, :2] + offsets[None] * radii[:, None, None]).astype(np.intp)
        weight = self.inside[xy[..., 1], xy[..., 0]]
        count = weight.sum(axis=1)
        total = (self.red[xy[..., 1], xy[..., 0]] * weight).sum(axis=1)
        return total / np.maximum(count, 1e-3), count / offsets.shape[0]

    def best(self, circles: np.ndarray) -> tuple[float, float, float, float, float]:
        """(score, cx, cy, r, contrast) of the best-scoring circle."""
        r = circles[:, 2]
        inner, inner_seen = self._masked_mean(circles, self.arc, r - 1.5)
        outer, outer_seen = self._masked_mean(circles, self.arc, r + 1.5)
        disk, disk_seen = self._masked_mean(circles, self.disk, 0.7 * r)
        sclera_offsets = np.concatenate([self.arc * f for f in (1.2, 1.35, 1.5)])
        sclera, sclera_seen = self._masked_mean(circles, sclera_offsets, r)
        contrast = sclera - disk
        off_middle = np.maximum(0.0, np.abs(circles[:, 1] - self.lid_middle) - 0.1 * r) / r
        score = (outer - inner) + contrast - self.height_penalty * off_middle
        seen = (inner_seen > 0.3) & (outer_seen > 0.3) & (disk_seen > 0.3) & (sclera_seen > 0.2)
        score = np.where(seen, score, -np.inf)
        i = int(np.argmax(score))
        return (float(score[i]), *(float(v) for v in circles[i]), float(contrast[i]))


# ---------------------------------------------------------------------------- trained segmenter


class SegmenterIrisLocator:
    """The trained iris segmenter (``irisgan.extraction.iris_segmenter.IrisSegmenter``), batched over eye crops.

    ``device=None`` uses the device Lightning gives the prediction module (one per process/GPU).
    """

    name = "segmenter"

    def __init__(
        self, ckpt: str, device: str | None = None, score_threshold: float = 0.5, batch_size: int = 32
    ) -> None:
        if not ckpt:
            raise ValueError("locator=segmenter needs a checkpoint: add locator.ckpt=PATH")
        self.ckpt = str(ckpt)
        self.device = device
        self.score_threshold = float(score_threshold)
        self.batch_size = int(batch_size)
        self._segmenter = None

    def prepare(self, device: object = None) -> None:
        try:
            from irisgan.extraction.iris_segmenter import IrisSegmenter
        except ImportError as error:
            raise ImportError(
                "locator=segmenter needs irisgan.extraction.iris_segmenter (the trained Mask R-CNN); "
                "use locator=hough for the training-free locator"
            ) from error
        target = self.device if self.device is not None else (str(device) if device is not None else "cpu")
        self._segmenter = IrisSegmenter.from_checkpoint(self.ckpt, target, self.score_threshold)

    def locate(
        self, eye_crops: Sequence[np.ndarray], eye_points: Sequence[np.ndarray]
    ) -> list[IrisLocation | None]:
        if self._segmenter is None:
            self.prepare()
        found: list[IrisLocation | None] = []
        for start in range(0, len(eye_crops), self.batch_size):
            for detection in self._segmenter.predict(list(eye_crops[start : start + self.batch_size])):
                if detection is None:
                    found.append(None)
                    continue
                x0, y0, x1, y1 = (float(v) for v in detection.box)
                mask = None if detection.mask is None else np.asarray(detection.mask, dtype=bool)
                found.append(IrisLocation(box=(x0, y0, x1, y1), score=float(detection.score), mask=mask))
        return found
