"""Photo -> eyes -> irises -> pair: the one path that ``extract``, ``predict`` and ``evaluate faces=`` share.

* ``FacePhotoDataset`` (in DataLoader workers): decode, detect the face, fit landmarks, crop both eyes;
* ``IrisPairExtractor.predict_step`` (in the main process): locate the irises of a whole batch of eye
  crops in one locator call, then ``make_pair`` per photo.

Each photo's outcome is one ``PhotoResult``: the fields of its manifest record (``record()``) and, as
transient fields, the arrays later steps draw from (eye crops, the pair image, a copy for the overlay).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from irisgan.data.pairs_format import is_grayscale, join_pair, resolve_pair_width
from irisgan.extraction.faces import (
    LEFT_EYE,
    RIGHT_EYE,
    SEVERAL_FACES_CHOICES,
    FaceLandmarker,
    UnreadableImageError,
    crop_with_padding,
    decode_image,
    eye_box,
    eye_openness,
    eye_width,
)
from irisgan.extraction.iris_locator import IrisLocation
from irisgan.extraction.iris_quality import IrisQualityRule
from irisgan.extraction.photos import PhotoInput
from irisgan.extraction.texture import face_features
from irisgan.models.face_cue import FaceView

STATUSES = (
    "ok",
    "unreadable",
    "no_face",
    "several_faces",
    "iris_too_small",
    "no_left_iris",
    "no_right_iris",
    "no_irises",
    "eyes_hidden",  # an eye without a bright sclera, texture or sharp edges: covered, painted, blurred (iris_quality.py)
    "error",
)
STAGES = ("decode", "detect", "landmarks", "iris", "write")
# Typical iris diameter over the eye's corner-to-corner width; used to reject tiny eyes up front.
IRIS_TO_EYE_WIDTH = 0.42
SIDES = ("left", "right")


def _transient():
    return field(default=None, repr=False, metadata={"transient": True})


@dataclass
class PhotoResult:
    """One photo through the pipeline. ``record()`` is its manifest line; transient fields are not."""

    path: str
    label: int | None
    fingerprint: str
    status: str = "ok"
    timings_ms: dict[str, float] = field(default_factory=dict)
    message: str | None = None
    traceback: str | None = None
    image_size: list[int] | None = None
    n_faces: int | None = None
    face_boxes: list[list[int]] | None = None
    face_box: list[int] | None = None
    face_score: float | None = None
    landmarks: list[list[float]] | None = None
    eye_boxes: dict[str, list[int]] | None = None
    eye_openness: dict[str, float] | None = None
    eye_quality: dict[str, dict[str, float]] | None = None  # the eyes_hidden rule's measures per eye
    locator: str | None = None
    iris: dict[str, dict | None] | None = None
    pair: str | None = None  # the pair file, relative to the output folder
    overlay: str | None = None
    extracted_at: float | None = None
    p_gan: float | None = None  # predict only
    decision: str | None = None  # GAN, real or uncertain
    reasons: list[str] | None = None  # why a decision is uncertain
    member_spread: float | None = None  # standard deviation of the ensemble members' P(GAN)
    grayscale: bool | None = None  # the pair carries no colour
    novelty: float | None = None  # how far the face lies from the detector's training faces (its face cue's)
    unfamiliar: bool | None = None  # farther than the detector's max_novelty
    vividness: float | None = None  # how vivid the face looks (its face cue's vivid probe)
    vivid: bool | None = None  # more vivid than the detector's max_vividness
    p_iris: float | None = None  # the iris network's own P(GAN), when the detector adds the face cue to it
    p_face: float | None = None  # a face cue's P(GAN) from the face alone, when the irises gave no pair
    face_decision: str | None = None  # and its decision (GAN, real or uncertain)

    eye_crops: list[np.ndarray] | None = _transient()  # image-left eye first
    eye_points: list[np.ndarray] | None = _transient()  # each eye's landmarks in its crop's pixels
    irises: list[IrisLocation | None] | None = _transient()  # as the locator found them, in crop pixels
    pair_image: np.ndarray | None = _transient()
    overlay_image: np.ndarray | None = _transient()  # a small copy of the photo to draw on
    overlay_scale: float | None = _transient()
    face_descriptor: np.ndarray | None = _transient()  # the face features the cue reads (describe_faces)
    face_grayscale: bool | None = _transient()  # the face carries no colour (judged without a pair)
    # predict explain=true: (title, map) of the network's explanation maps (the RAN's soft masks)
    attention: list[tuple[str, np.ndarray]] | None = _transient()

    _ALWAYS = ("label", "pair")

    @classmethod
    def of(cls, photo: PhotoInput) -> PhotoResult:
        return cls(photo.path, photo.label, photo.fingerprint)

    @property
    def input(self) -> PhotoInput:
        return PhotoInput(self.path, self.label, self.fingerprint)

    def fail(self, status: str, message: str | None = None) -> None:
        self.status, self.message = status, message

    def record(self) -> dict:
        """The JSON record: every set field that is not transient."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.metadata.get("transient") and (value is not None or f.name in self._ALWAYS):
                out[f.name] = value
        return out


def _round_box(box: Sequence[float], digits: int = 1) -> list[float]:
    return [round(float(v), digits) for v in box]


def _error(result: PhotoResult, error: Exception) -> None:
    result.fail("error", f"{type(error).__name__}: {error}")
    result.traceback = traceback.format_exc(limit=3)


class FacePhotoDataset(torch.utils.data.Dataset):
    """Photo -> eyes, per photo in DataLoader workers: decode, detect the face, fit landmarks, crop both
    eyes. Returns a ``PhotoResult`` (``status`` ``ok`` if both eyes were cropped). ``describe_faces``: also
    what a detector with a face cue scores of the face (``PhotoResult.face_descriptor``): the cue's
    ``FaceView``, or none."""

    def __init__(
        self,
        photos: Sequence[PhotoInput],
        landmarker: FaceLandmarker,
        several_faces: str = "largest",
        eye_margin: float = 0.25,
        min_iris_size: float = 6.0,
        overlay_max_side: int | None = None,
        describe_faces: FaceView | None = None,
    ) -> None:
        if several_faces not in SEVERAL_FACES_CHOICES:
            raise ValueError(f"several_faces={several_faces!r} is not one of {SEVERAL_FACES_CHOICES}")
        self.photos = list(photos)
        self.landmarker = landmarker
        self.several_faces = several_faces
        self.eye_margin = float(eye_margin)
        self.min_iris_size = float(min_iris_size)
        self.overlay_max_side = overlay_max_side
        if describe_faces is not None and not isinstance(describe_faces, FaceView):
            raise ValueError(f"describe_faces={describe_faces!r}: a face cue's FaceView, or None")
        self.describe_faces = describe_faces

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> PhotoResult:
        result = PhotoResult.of(self.photos[index])
        # Once per worker and outside the per-photo guard: a missing model stops the run at once
        # instead of marking every photo `error`; its time is not counted in the photo's timings.
        self.landmarker.load()
        try:
            self.find_eyes(result)
        except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
            _error(result, error)
        return result

    def find_eyes(self, result: PhotoResult) -> None:
        timings = result.timings_ms
        start = time.perf_counter()
        try:
            rgb = decode_image(Path(result.path).read_bytes(), result.path)
        except (UnreadableImageError, OSError) as error:
            result.fail("unreadable", str(error))
            return
        height, width = rgb.shape[:2]
        result.image_size = [width, height]
        timings["decode"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        faces = self.landmarker.detect(rgb, exhaustive=self.several_faces == "reject")
        timings["detect"] = (time.perf_counter() - start) * 1e3
        result.n_faces = len(faces)
        result.face_boxes = [list(f.box) for f in faces]
        if self.overlay_max_side:
            scale = min(1.0, self.overlay_max_side / max(height, width))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            result.overlay_scale = scale
            result.overlay_image = (
                cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
            )
        if not faces:
            result.fail("no_face")
            return
        if len(faces) > 1 and self.several_faces == "reject":
            result.fail("several_faces")
            return

        start = time.perf_counter()
        face = faces[0]  # largest
        result.face_box = list(face.box)
        result.face_score = round(face.score, 3)
        landmarks = self.landmarker.landmarks(rgb, face.box)
        result.landmarks = np.round(landmarks, 1).tolist()
        result.eye_boxes, result.eye_openness, result.eye_crops, result.eye_points = {}, {}, [], []
        for side, eye in zip(SIDES, (LEFT_EYE, RIGHT_EYE), strict=True):
            points = landmarks[eye]
            box = eye_box(points, self.eye_margin)
            result.eye_boxes[side] = list(box)
            result.eye_openness[side] = round(eye_openness(points), 3)
            result.eye_crops.append(crop_with_padding(rgb, box))
            result.eye_points.append(points - np.array(box[:2], dtype=np.float32))
        timings["landmarks"] = (time.perf_counter() - start) * 1e3
        if self.describe_faces:  # every face found: one whose irises fail can still be scored by its face
            start = time.perf_counter()
            # from the rounded landmarks the manifest keeps, so that a pairs CSV's faces describe alike
            result.face_descriptor = face_features(
                rgb, face.box, np.asarray(result.landmarks), self.describe_faces
            )
            # judged only where the face is scored: a photo without a pair has no pair to judge by
            result.face_grayscale = face_is_grayscale(rgb, face.box)
            timings["describe"] = (time.perf_counter() - start) * 1e3
        expected = IRIS_TO_EYE_WIDTH * min(eye_width(p) for p in result.eye_points)
        if expected < self.min_iris_size:
            result.fail("iris_too_small", f"expected iris diameter {expected:.1f} px < {self.min_iris_size}")


def face_is_grayscale(rgb: np.ndarray, face_box: Sequence[float]) -> bool:
    """Whether the face in its box (full-resolution pixels) carries no colour: the grayscale test of a photo
    whose irises give no pair to judge by."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in face_box)
    face = rgb[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    return is_grayscale(face if face.size else rgb)


def collate_photos(items: list[PhotoResult]) -> list[PhotoResult]:
    return items


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would only contend


def photo_dataloader(
    dataset: FacePhotoDataset, batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """DataLoader over photos (batches are lists of ``PhotoResult``) that is safe to fork workers from."""
    if num_workers > 0:
        # A forked worker inherits OpenCV's thread pool in whatever state the parent's threads left
        # it and can hang in its first cv2 call; with one thread the parent has no pool.
        cv2.setNumThreads(1)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_photos,
        worker_init_fn=_worker_init,
    )


def square_box(center: tuple[float, float], size: float, margin: float) -> tuple[int, int, int, int]:
    """Integer square box of side ``size * (1 + 2 * margin)`` centred on ``center``."""
    side = max(1, int(round(size * (1.0 + 2.0 * margin))))
    x0 = int(round(center[0] - side / 2.0))
    y0 = int(round(center[1] - side / 2.0))
    return (x0, y0, x0 + side, y0 + side)


class IrisPairExtractor(L.LightningModule):
    """Eyes -> irises -> pair: locates both irises of every photo in a batch (one locator call), then
    ``make_pair`` per photo.

    ``locator``: a ``HoughIrisLocator`` or ``SegmenterIrisLocator`` (``conf/locator``).
    """

    def __init__(
        self,
        locator: object,
        pair_size: int = 96,
        iris_margin: float = 0.1,
        pair_width: int | None = None,
        min_iris_size: float = 6.0,
        iris_quality: IrisQualityRule | None = None,
    ):
        super().__init__()
        self.locator = locator
        self.iris_quality = iris_quality
        self.pair_size = int(pair_size)
        self.pair_width = resolve_pair_width(pair_size, pair_width)
        self.iris_margin = float(iris_margin)
        self.min_iris_size = float(min_iris_size)

    def on_predict_start(self) -> None:
        self.locator.prepare(self.device)

    def predict_step(self, batch: list[PhotoResult], batch_idx: int = 0) -> list[PhotoResult]:
        ready = [result for result in batch if result.status == "ok"]
        start = time.perf_counter()
        crops = [crop for result in ready for crop in result.eye_crops]
        points = [p for result in ready for p in result.eye_points]
        found = self.locator.locate(crops, points) if crops else []
        per_photo_ms = (time.perf_counter() - start) * 1e3 / max(1, len(ready))
        for i, result in enumerate(ready):
            result_start = time.perf_counter()
            try:
                self.make_pair(result, found[2 * i], found[2 * i + 1])
            except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
                _error(result, error)
            result.timings_ms["iris"] = per_photo_ms + (time.perf_counter() - result_start) * 1e3
        return batch

    def make_pair(self, result: PhotoResult, left: IrisLocation | None, right: IrisLocation | None) -> None:
        """Record both irises in photo coordinates and join their square crops into the pair, or set the
        status that says why there is no pair."""
        result.locator = getattr(self.locator, "name", type(self.locator).__name__)
        result.iris = {}
        result.irises = [left, right]
        iris_crops = []
        for side, found, crop in zip(SIDES, (left, right), result.eye_crops, strict=True):
            if found is None:
                result.iris[side] = None
                continue
            ox, oy = result.eye_boxes[side][:2]
            record = {
                "box": _round_box(
                    (found.box[0] + ox, found.box[1] + oy, found.box[2] + ox, found.box[3] + oy)
                ),
                "score": round(found.score, 3),
            }
            if found.circle is not None:
                record["circle"] = _round_box((found.circle[0] + ox, found.circle[1] + oy, found.circle[2]))
            crop_box = square_box(found.center, found.size, self.iris_margin)
            record["crop_box"] = [crop_box[0] + ox, crop_box[1] + oy, crop_box[2] + ox, crop_box[3] + oy]
            result.iris[side] = record
            iris_crops.append(crop_with_padding(crop, crop_box))
        if self.iris_quality is not None:  # hidden eyes get a status, not a pair
            hidden, result.eye_quality = self.iris_quality.check(result.eye_crops, result.eye_points)
            if hidden:
                result.fail("eyes_hidden", hidden)
                return
        if left is None or right is None:
            result.fail(
                "no_irises"
                if left is None and right is None
                else ("no_left_iris" if left is None else "no_right_iris")
            )
            return
        smallest = min(left.size, right.size)
        if smallest < self.min_iris_size:
            result.fail("iris_too_small", f"iris diameter {smallest:.1f} px < {self.min_iris_size}")
            return
        result.pair_image = join_pair(iris_crops[0], iris_crops[1], self.pair_size, self.pair_width)


def build_landmarker(face: DictConfig) -> FaceLandmarker:
    """The dlib face detector + landmarker from the ``face`` config node."""
    return FaceLandmarker(
        detector=face.detector,
        detect_max_side=face.detect_max_side,
        detect_min_side=face.detect_min_side,
        detect_first_side=face.get("detect_first_side"),
        upsample=face.upsample,
        min_score=face.min_score,
        cnn_weights=face.cnn_weights,
        fallback=face.get("fallback"),
        fallback_side=face.get("fallback_side", 256),
    )


def build_dataset(
    cfg: DictConfig,
    photos: Sequence[PhotoInput],
    landmarker: FaceLandmarker,
    overlay: bool,
    describe_faces: FaceView | None = None,
) -> FacePhotoDataset:
    """The photo -> eyes step from an extract/predict config."""
    return FacePhotoDataset(
        photos,
        landmarker,
        several_faces=cfg.face.several_faces,
        eye_margin=cfg.eyes.margin,
        min_iris_size=cfg.iris.min_size,
        overlay_max_side=cfg.overlay_max_side if overlay else None,
        describe_faces=describe_faces,
    )


def build_pair_extractor(cfg: DictConfig) -> IrisPairExtractor:
    """The eyes -> irises -> pair step from an extract/predict config."""
    return IrisPairExtractor(
        locator=instantiate(cfg.locator),
        pair_size=cfg.pair.size,
        pair_width=cfg.pair.get("width"),
        iris_margin=cfg.pair.iris_margin,
        min_iris_size=cfg.iris.min_size,
        iris_quality=IrisQualityRule(**cfg.iris.quality) if cfg.iris.get("quality") else None,
    )


def run_in_process(
    dataset: FacePhotoDataset, extractor: IrisPairExtractor, batch_size: int, num_workers: int = 0
) -> Iterator[list[PhotoResult]]:
    """The pipeline without a Trainer (``predict``: a few photos, models kept warm between calls): batches
    of results, as ``run_extraction``'s predict loop makes them."""
    for batch in photo_dataloader(dataset, batch_size, num_workers):
        yield extractor.predict_step(batch)
