"""Face photos to iris pairs: ``python -m irisgan.extract faces=DIR out=DIR [locator=hough|segmenter]``.

``faces`` is a folder with ``real/`` and ``fake/`` subfolders (labels 0 and 1), a folder, glob or
list of them with ``label=0|1``, or a mapping ``faces={real: DIR_OR_GLOB, fake: DIR_OR_GLOB}``.
``out`` receives:

* ``pairs/*.png``: 96x96 iris pairs, image-left iris (dlib landmarks 36-41) on the left;
* ``pairs.csv``: the iris-pairs format (``path,label,source``), rebuilt from the manifest at the end;
* ``manifest.jsonl``: one record per input photo: status, face box, landmarks, eye boxes, iris
  boxes, the pair written, timings per stage;
* ``summary.json``: counts per class and status, time per stage, photos per second;
* ``overlays/*.png`` and the contact sheet ``overlays.png`` with ``overlay=true`` (Figure 1 of the paper).

The run is resumable and idempotent: photos already in the manifest (same path, size and mtime)
are skipped; a pair file is written (atomically) before its manifest line, so an interrupted run
loses at most the photos in flight and a rerun redoes exactly those.

One code path for one CPU and for many GPUs or nodes: a Lightning predict loop. DataLoader workers
decode, detect faces and fit landmarks (``FacePhotoDataset``); ``IrisPairExtractor.predict_step``
locates irises batched over the eye crops and builds the pairs; ``ExtractionWriter`` writes pairs,
overlays and manifest lines. ``trainer.devices=N`` (with ``trainer.accelerator=gpu``) splits the
photos across processes, each appending to its own manifest part, merged at the end.

The contact sheet in ``docs/img/extract_overlays.png`` comes from
``python -m irisgan.extract faces=../shared/data/faces out=/tmp/extract overlay=true`` (its ``overlays.png``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import hydra
import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image

from irisgan.config import CONFIG_DIR
from irisgan.data.pairs_format import join_pair, write_bytes_atomic, write_image_atomic, write_pairs_csv
from irisgan.faces import (
    IMAGE_SUFFIXES,
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
from irisgan.iris_locator import IrisLocation
from irisgan.iris_quality import IrisQualityRule

CLASS_LABELS = {"real": 0, "fake": 1}
CLASS_NAMES = {label: name for name, label in CLASS_LABELS.items()}
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
MANIFEST = "manifest.jsonl"
PENDING = "pending.json"
# Typical iris diameter over the eye's corner-to-corner width; used to reject tiny eyes up front.
IRIS_TO_EYE_WIDTH = 0.42


# ------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PhotoInput:
    path: str  # absolute; the manifest key
    label: int
    fingerprint: str  # size and mtime: a changed file is processed again

    @property
    def pair_name(self) -> str:
        """A file name unique per input path, readable, the same on every rerun."""
        digest = hashlib.sha1(self.path.encode()).hexdigest()[:8]
        return f"{CLASS_NAMES[self.label]}_{Path(self.path).stem}_{digest}.png"


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _expand(spec: str) -> tuple[list[Path], list[Path]]:
    """(image files, ignored files) named by a folder (recursive), a file or a glob."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not _is_hidden(p, path)]
    elif path.is_file():
        return [path], []  # named explicitly: an input whatever its suffix
    else:
        files = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
        if not files:
            raise FileNotFoundError(
                f"faces: {spec!r} is not a folder, a file or a glob that matches any file"
            )
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    ignored = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    return images, ignored


def _parse_label(value: object, where: str) -> int:
    if isinstance(value, str) and value.lower() in CLASS_LABELS:
        return CLASS_LABELS[value.lower()]
    if str(value) in ("0", "1"):
        return int(str(value))
    raise ValueError(f"{where}: label {value!r} is not 0/real or 1/fake")


def list_inputs(
    faces: object, label: object = None, exclude: str | Path | None = None
) -> tuple[list[PhotoInput], list[str]]:
    """Resolve the ``faces`` config to labelled photos (sorted, unique) and the files ignored.

    ``faces``: a folder with ``real/`` and ``fake/``; a folder, file or glob (or a list of them)
    with ``label``; or a mapping ``{real: ..., fake: ...}`` whose values are folders, globs or lists.
    Files under ``exclude`` (the output folder, should it sit inside an input folder) are skipped.
    """
    excluded = Path(exclude).expanduser().resolve() if exclude is not None else None
    if faces is None or faces == "" or faces == "???":
        raise ValueError(
            "faces= is required: a folder with real/ and fake/, a folder or glob with label=0|1, "
            "or faces={real: DIR, fake: DIR}"
        )
    if isinstance(faces, DictConfig | ListConfig):
        faces = OmegaConf.to_container(faces, resolve=True)
    specs: list[tuple[str, int]] = []
    if isinstance(faces, Mapping):
        for name, value in faces.items():
            value_label = _parse_label(name, f"faces.{name} (keys must be real or fake)")
            for spec in [value] if isinstance(value, str) else list(value):
                specs.append((str(spec), value_label))
    else:
        for spec in [faces] if isinstance(faces, str | os.PathLike) else list(faces):
            folder = Path(spec).expanduser()
            if label is None:
                subfolders = [
                    (folder / name, lab) for name, lab in CLASS_LABELS.items() if (folder / name).is_dir()
                ]
                if not folder.is_dir() or not subfolders:
                    raise ValueError(
                        f"faces={spec!r}: expected a folder with real/ and/or fake/ subfolders; for photos of one "
                        "class add label=0 (real) or label=1 (fake), or give faces={real: DIR, fake: DIR}"
                    )
                specs.extend((str(sub), lab) for sub, lab in subfolders)
            else:
                specs.append((str(spec), _parse_label(label, "label")))

    photos: dict[str, PhotoInput] = {}
    ignored: list[str] = []
    for spec, spec_label in specs:
        images, skipped = _expand(spec)
        if excluded is not None:
            images = [p for p in images if not p.resolve().is_relative_to(excluded)]
            skipped = [p for p in skipped if not p.resolve().is_relative_to(excluded)]
        ignored.extend(str(p) for p in skipped)
        for image in images:
            key = str(image.resolve())
            if key in photos and photos[key].label != spec_label:
                raise ValueError(f"faces: {key} is listed as both real and fake")
            photos.setdefault(key, PhotoInput(key, spec_label, _fingerprint(image)))
    return sorted(photos.values(), key=lambda p: (p.label, p.path)), sorted(ignored)


# ------------------------------------------------------------------------------------------- manifest


def read_manifest(out_dir: str | Path) -> dict[str, dict]:
    """Latest record per photo path from ``manifest.jsonl`` and any per-process parts.

    A line cut short by a crash is skipped (its photo is then simply processed again).
    """
    out_dir = Path(out_dir)
    records: dict[str, dict] = {}
    for part in [out_dir / MANIFEST, *sorted(out_dir.glob("manifest.rank*.jsonl"))]:
        if not part.is_file():
            continue
        with open(part, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "path" in record:
                    records[record["path"]] = record
    return records


class ManifestWriter:
    """Appends JSON lines, one ``write`` + ``fsync`` per batch; process ``rank`` > 0 writes its own part."""

    def __init__(self, out_dir: str | Path, rank: int = 0) -> None:
        name = MANIFEST if rank == 0 else f"manifest.rank{rank}.jsonl"
        self.path = Path(out_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._checked_tail = False

    def append(self, records: Iterable[dict]) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if not text:
            return
        with open(self.path, "a+b") as f:
            if not self._checked_tail:
                # A crash mid-line left a partial record: end it so that new records stay whole.
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                self._checked_tail = True
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------- workers


def _round_box(box: Sequence[float], digits: int = 1) -> list[float]:
    return [round(float(v), digits) for v in box]


class FacePhotoDataset(torch.utils.data.Dataset):
    """Per photo (in DataLoader workers): decode, detect the face, fit landmarks, crop both eyes.

    Returns a dict: the manifest fields so far (``status`` ``ok`` if both eyes were cropped) and,
    under keys starting with ``_``, the arrays the main process needs (eye crops, eye landmarks in
    crop coordinates, a small copy of the photo for the overlay).
    """

    def __init__(
        self,
        photos: Sequence[PhotoInput],
        landmarker: FaceLandmarker,
        several_faces: str = "largest",
        eye_margin: float = 0.25,
        min_iris_size: float = 6.0,
        overlay_max_side: int | None = None,
    ) -> None:
        if several_faces not in SEVERAL_FACES_CHOICES:
            raise ValueError(f"several_faces={several_faces!r} is not one of {SEVERAL_FACES_CHOICES}")
        self.photos = list(photos)
        self.landmarker = landmarker
        self.several_faces = several_faces
        self.eye_margin = float(eye_margin)
        self.min_iris_size = float(min_iris_size)
        self.overlay_max_side = overlay_max_side

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> dict:
        photo = self.photos[index]
        item = {
            "path": photo.path,
            "label": photo.label,
            "fingerprint": photo.fingerprint,
            "status": "ok",
            "timings_ms": {},
        }
        # Once per worker and outside the per-photo guard: a missing model stops the run at once
        # instead of marking every photo `error`; its time is not counted in the photo's timings.
        self.landmarker.load()
        try:
            self._process(photo, item)
        except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
            item.update(
                status="error",
                message=f"{type(error).__name__}: {error}",
                traceback=traceback.format_exc(limit=3),
            )
        return item

    def _process(self, photo: PhotoInput, item: dict) -> None:
        timings = item["timings_ms"]
        start = time.perf_counter()
        try:
            rgb = decode_image(Path(photo.path).read_bytes(), photo.path)
        except (UnreadableImageError, OSError) as error:
            item.update(status="unreadable", message=str(error))
            return
        height, width = rgb.shape[:2]
        item["image_size"] = [width, height]
        timings["decode"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        faces = self.landmarker.detect(rgb, exhaustive=self.several_faces == "reject")
        timings["detect"] = (time.perf_counter() - start) * 1e3
        item["n_faces"] = len(faces)
        item["face_boxes"] = [list(f.box) for f in faces]
        if self.overlay_max_side:
            scale = min(1.0, self.overlay_max_side / max(height, width))
            item["_overlay_scale"] = scale
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            item["_overlay"] = (
                cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
            )
        if not faces:
            item["status"] = "no_face"
            return
        if len(faces) > 1 and self.several_faces == "reject":
            item["status"] = "several_faces"
            return

        start = time.perf_counter()
        face = faces[0]  # largest
        item["face_box"] = list(face.box)
        item["face_score"] = round(face.score, 3)
        landmarks = self.landmarker.landmarks(rgb, face.box)
        item["landmarks"] = np.round(landmarks, 1).tolist()
        item["eye_boxes"], item["eye_openness"], item["_eye_crops"], item["_eye_points"] = {}, {}, [], []
        for side, eye in (("left", LEFT_EYE), ("right", RIGHT_EYE)):
            points = landmarks[eye]
            box = eye_box(points, self.eye_margin)
            item["eye_boxes"][side] = list(box)
            item["eye_openness"][side] = round(eye_openness(points), 3)
            item["_eye_crops"].append(crop_with_padding(rgb, box))
            item["_eye_points"].append(points - np.array(box[:2], dtype=np.float32))
        timings["landmarks"] = (time.perf_counter() - start) * 1e3
        expected = IRIS_TO_EYE_WIDTH * min(eye_width(p) for p in item["_eye_points"])
        if expected < self.min_iris_size:
            item.update(
                status="iris_too_small",
                message=f"expected iris diameter {expected:.1f} px < {self.min_iris_size}",
            )


def collate_photos(items: list[dict]) -> list[dict]:
    return items


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would only contend


def photo_dataloader(
    dataset: FacePhotoDataset, batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """DataLoader over photos (batches are lists of dicts) that is safe to fork workers from."""
    if num_workers > 0:
        # A forked worker inherits OpenCV's thread pool in whatever state the parent's threads left
        # it and can hang in its first cv2 call (seen here); with one thread the parent has no pool.
        cv2.setNumThreads(1)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_photos,
        worker_init_fn=_worker_init,
    )


# ------------------------------------------------------------------------------------------- Lightning


class FacePhotosDataModule(L.LightningDataModule):
    """The photos still to do. ``prepare_data`` (once) lists inputs minus the manifest into
    ``pending.json``; every process then reads that same list, so all agree on the split."""

    def __init__(
        self,
        faces: object,
        out: str,
        label: object = None,
        landmarker: FaceLandmarker | None = None,
        several_faces: str = "largest",
        eye_margin: float = 0.25,
        min_iris_size: float = 6.0,
        overlay_max_side: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        retry_statuses: Sequence[str] = ("error",),
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self.faces, self.label, self.out = faces, label, Path(out)
        self.landmarker = landmarker or FaceLandmarker()
        self.dataset_kwargs = dict(
            several_faces=several_faces,
            eye_margin=eye_margin,
            min_iris_size=min_iris_size,
            overlay_max_side=overlay_max_side,
        )
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.retry_statuses = set(retry_statuses or ())
        self.limit = limit
        self.dataset: FacePhotoDataset | None = None

    def pending_photos(self) -> list[PhotoInput]:
        photos, _ = list_inputs(self.faces, self.label, exclude=self.out)
        done = read_manifest(self.out)
        pending = [
            p
            for p in photos
            if p.path not in done
            or done[p.path].get("fingerprint") != p.fingerprint
            or done[p.path].get("status") in self.retry_statuses
        ]
        return pending[: self.limit] if self.limit is not None else pending

    def prepare_data(self) -> None:
        pending = [asdict(p) for p in self.pending_photos()]
        write_bytes_atomic(self.out / PENDING, json.dumps(pending).encode())

    def setup(self, stage: str | None = None) -> None:
        pending = json.loads((self.out / PENDING).read_text())
        self.dataset = FacePhotoDataset(
            [PhotoInput(**p) for p in pending], self.landmarker, **self.dataset_kwargs
        )

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        return photo_dataloader(self.dataset, self.batch_size, self.num_workers)


def square_box(center: tuple[float, float], size: float, margin: float) -> tuple[int, int, int, int]:
    """Integer square box of side ``size * (1 + 2 * margin)`` centred on ``center``."""
    side = max(1, int(round(size * (1.0 + 2.0 * margin))))
    x0 = int(round(center[0] - side / 2.0))
    y0 = int(round(center[1] - side / 2.0))
    return (x0, y0, x0 + side, y0 + side)


class IrisPairExtractor(L.LightningModule):
    """Locates both irises of every photo in a batch (one locator call) and builds the pairs.

    ``locator``: a ``HoughIrisLocator`` or ``SegmenterIrisLocator`` (``conf/locator``).
    """

    def __init__(
        self,
        locator: object,
        pair_size: int = 96,
        iris_margin: float = 0.1,
        min_iris_size: float = 6.0,
        iris_quality: IrisQualityRule | None = None,
    ):
        super().__init__()
        self.locator = locator
        self.iris_quality = iris_quality
        self.pair_size = int(pair_size)
        self.iris_margin = float(iris_margin)
        self.min_iris_size = float(min_iris_size)

    def on_predict_start(self) -> None:
        self.locator.prepare(self.device)

    def predict_step(self, batch: list[dict], batch_idx: int = 0) -> list[dict]:
        ready = [item for item in batch if item["status"] == "ok"]
        start = time.perf_counter()
        crops = [crop for item in ready for crop in item["_eye_crops"]]
        points = [p for item in ready for p in item["_eye_points"]]
        found = self.locator.locate(crops, points) if crops else []
        per_photo_ms = (time.perf_counter() - start) * 1e3 / max(1, len(ready))
        for i, item in enumerate(ready):
            item_start = time.perf_counter()
            try:
                self._make_pair(item, found[2 * i], found[2 * i + 1])
            except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
                item.update(
                    status="error",
                    message=f"{type(error).__name__}: {error}",
                    traceback=traceback.format_exc(limit=3),
                )
            item["timings_ms"]["iris"] = per_photo_ms + (time.perf_counter() - item_start) * 1e3
        return batch

    def _make_pair(self, item: dict, left: IrisLocation | None, right: IrisLocation | None) -> None:
        item["locator"] = getattr(self.locator, "name", type(self.locator).__name__)
        item["iris"] = {}
        item["_iris"] = [left, right]
        iris_crops = []
        for side, found, crop, box in zip(
            ("left", "right"),
            (left, right),
            item["_eye_crops"],
            (item["eye_boxes"]["left"], item["eye_boxes"]["right"]),
            strict=True,
        ):
            if found is None:
                item["iris"][side] = None
                continue
            ox, oy = box[0], box[1]
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
            item["iris"][side] = record
            iris_crops.append(crop_with_padding(crop, crop_box))
        if self.iris_quality is not None:  # hidden eyes get a status, not a pair
            hidden, item["eye_quality"] = self.iris_quality.check(item["_eye_crops"], item["_eye_points"])
            if hidden:
                item.update(status="eyes_hidden", message=hidden)
                return
        if left is None or right is None:
            item["status"] = (
                "no_irises"
                if left is None and right is None
                else ("no_left_iris" if left is None else "no_right_iris")
            )
            return
        smallest = min(left.size, right.size)
        if smallest < self.min_iris_size:
            item.update(
                status="iris_too_small", message=f"iris diameter {smallest:.1f} px < {self.min_iris_size}"
            )
            return
        item["_pair"] = join_pair(iris_crops[0], iris_crops[1], self.pair_size)


class ExtractionWriter(BasePredictionWriter):
    """Writes each batch's pairs and overlays (atomically), then its manifest lines."""

    def __init__(self, out_dir: str | Path, overlay: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.overlay = overlay
        self._manifest: ManifestWriter | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._manifest = ManifestWriter(self.out_dir, rank=trainer.global_rank)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        records = []
        for item in prediction:
            start = time.perf_counter()
            name = PhotoInput(item["path"], item["label"], item["fingerprint"]).pair_name
            item["pair"] = None
            if item.get("_pair") is not None:
                item["pair"] = f"pairs/{name}"
                write_image_atomic(self.out_dir / item["pair"], item["_pair"])
            if self.overlay and item.get("_overlay") is not None:
                item["overlay"] = f"overlays/{name}"
                write_image_atomic(self.out_dir / item["overlay"], draw_overlay(item))
            item["timings_ms"]["write"] = (time.perf_counter() - start) * 1e3
            item["extracted_at"] = round(time.time(), 3)
            item["timings_ms"] = {k: round(v, 2) for k, v in item["timings_ms"].items()}
            records.append({k: v for k, v in item.items() if not k.startswith("_")})
        self._manifest.append(records)


# ------------------------------------------------------------------------------------------- pictures

_GREEN, _YELLOW, _CYAN, _RED, _MAGENTA, _WHITE = (
    (0, 220, 0),
    (255, 230, 0),
    (0, 200, 255),
    (255, 40, 40),
    (255, 0, 255),
    (255, 255, 255),
)


def _scaled(box: Sequence[float], scale: float) -> tuple[int, int, int, int]:
    return tuple(int(round(v * scale)) for v in box)  # type: ignore[return-value]


def draw_overlay(item: dict, panel_height: int = 512) -> np.ndarray:
    """The photo with face box, landmarks, eye and iris boxes, and the pair inset (left); both eye
    crops enlarged with the eye contour, the iris circle or mask and the crop taken (right)."""
    face = item["_overlay"].copy()
    scale = item["_overlay_scale"]
    if item.get("face_box"):
        cv2.rectangle(face, *np.reshape(_scaled(item["face_box"], scale), (2, 2)).tolist(), _GREEN, 2)
    for x, y in item.get("landmarks", []):
        cv2.circle(face, (int(x * scale), int(y * scale)), 1, _YELLOW, -1)
    for side in ("left", "right"):
        if item.get("eye_boxes"):
            cv2.rectangle(
                face, *np.reshape(_scaled(item["eye_boxes"][side], scale), (2, 2)).tolist(), _CYAN, 1
            )
        iris = (item.get("iris") or {}).get(side)
        if iris:
            cv2.rectangle(face, *np.reshape(_scaled(iris["box"], scale), (2, 2)).tolist(), _RED, 1)
    if face.shape[0] != panel_height:
        size = (max(1, round(face.shape[1] * panel_height / face.shape[0])), panel_height)
        face = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
    if item.get("_pair") is not None:
        inset = cv2.resize(item["_pair"], (128, 128), interpolation=cv2.INTER_NEAREST)
        face[4:132, 4:132] = inset
        cv2.rectangle(face, (3, 3), (132, 132), _WHITE, 1)
    label = CLASS_NAMES.get(item.get("label"))  # predict: the class is what we are asked, not known
    text = f"{label}: {item['status']}" if label else item["status"]
    cv2.putText(face, text, (6, panel_height - 12), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 7, cv2.LINE_AA)
    cv2.putText(face, text, (6, panel_height - 12), cv2.FONT_HERSHEY_SIMPLEX, 1.2, _WHITE, 2, cv2.LINE_AA)

    eye_side = panel_height // 2
    eyes = []
    crops = item.get("_eye_crops") or []
    for i in range(2):
        if i >= len(crops):
            eyes.append(np.zeros((eye_side, eye_side, 3), np.uint8))
            continue
        f = eye_side / crops[i].shape[0]
        eye = cv2.resize(crops[i], (eye_side, eye_side), interpolation=cv2.INTER_LINEAR)
        cv2.polylines(
            eye, [np.round(item["_eye_points"][i] * f).astype(np.int32)], True, _GREEN, 1, cv2.LINE_AA
        )
        found = (item.get("_iris") or [None, None])[i]
        if found is not None:
            if found.mask is not None:
                mask = cv2.resize(
                    found.mask.astype(np.uint8), (eye_side, eye_side), interpolation=cv2.INTER_NEAREST
                )
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(eye, contours, -1, _RED, 2, cv2.LINE_AA)
            if found.circle is not None:
                cx, cy, r = (v * f for v in found.circle)
                cv2.circle(eye, (int(round(cx)), int(round(cy))), int(round(r)), _RED, 2, cv2.LINE_AA)
            else:
                cv2.rectangle(eye, *np.reshape(_scaled(found.box, f), (2, 2)).tolist(), _RED, 2)
            record = item["iris"][("left", "right")[i]]
            box = item["eye_boxes"][("left", "right")[i]]
            crop_box = np.subtract(record["crop_box"], [box[0], box[1], box[0], box[1]])
            cv2.rectangle(eye, *np.reshape(_scaled(crop_box, f), (2, 2)).tolist(), _MAGENTA, 1)
        eyes.append(eye)
    column = np.concatenate(eyes, axis=0)[:panel_height]
    return np.concatenate([face, column], axis=1)


def contact_sheet(images: Sequence[np.ndarray], tile_width: int = 240, columns: int = 5) -> np.ndarray:
    """Tiles of the same height in a grid, black where a row is short."""
    tiles = [
        cv2.resize(
            im,
            (tile_width, max(1, round(im.shape[0] * tile_width / im.shape[1]))),
            interpolation=cv2.INTER_AREA,
        )
        for im in images
    ]
    tile_height = max(t.shape[0] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = [
            np.pad(t, ((0, tile_height - t.shape[0]), (0, 0), (0, 0))) for t in tiles[start : start + columns]
        ]
        row += [np.zeros((tile_height, tile_width, 3), np.uint8)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def write_contact_sheet(
    out_dir: Path, records: Sequence[dict], path: Path, max_tiles: int = 20
) -> Path | None:
    overlays = [
        out_dir / r["overlay"] for r in records if r.get("overlay") and (out_dir / r["overlay"]).is_file()
    ]
    if not overlays:
        return None
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in overlays[:max_tiles]]
    sheet = Image.fromarray(contact_sheet(images))
    # 128 colours keep a sheet of 20 photos under 400 KB (committable); the boxes stay sharp.
    quantized = sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    tmp = path.with_name(f".{path.name}.tmp")
    quantized.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------- finishing


def finalize(
    out_dir: str | Path,
    photos: Sequence[PhotoInput],
    ignored: Sequence[str],
    run_started: float,
    run_seconds: float,
    overlay_sheet: bool = False,
) -> dict:
    """Merge manifest parts, rebuild pairs.csv from the manifest, write summary.json; return the summary."""
    out_dir = Path(out_dir)
    records = read_manifest(out_dir)
    ordered = sorted(records.values(), key=lambda r: (r["label"], r["path"]))
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in ordered)
    write_bytes_atomic(out_dir / MANIFEST, text.encode("utf-8"))
    for part in out_dir.glob("manifest.rank*.jsonl"):
        part.unlink()
    (out_dir / PENDING).unlink(missing_ok=True)

    rows = [
        {"path": r["pair"], "label": r["label"], "source": r["path"]}
        for r in ordered
        if r["status"] == "ok" and r.get("pair") and (out_dir / r["pair"]).is_file()
    ]
    write_pairs_csv(out_dir / "pairs.csv", rows)
    # A photo redone with another outcome (its file changed) leaves its old pair behind: drop it,
    # so that pairs/ holds exactly the pairs the CSV lists.
    listed = {Path(row["path"]).name for row in rows}
    for stale in (out_dir / "pairs").glob("*.png"):
        if stale.name not in listed:
            stale.unlink()

    # Per class over the whole manifest: one output folder may gather several runs (real, then fake).
    per_class: dict[str, Counter] = {name: Counter() for name in CLASS_LABELS}
    for r in ordered:
        per_class[CLASS_NAMES[r["label"]]][r["status"]] += 1
    this_run = [r for r in ordered if r.get("extracted_at", 0) >= run_started]
    processed = len(this_run)
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
    for r in this_run:
        for stage, ms in r.get("timings_ms", {}).items():
            stage_ms.setdefault(stage, []).append(ms)
    summary = {
        "inputs": len(photos),
        "in_manifest": sum(1 for p in photos if p.path in records),
        "manifest_records": len(ordered),
        "pairs": len(rows),
        "per_class": {
            name: {"total": sum(c.values()), **{k: c[k] for k in sorted(c, key=_status_order)}}
            for name, c in per_class.items()
        },
        "ignored_files": list(ignored),
        "this_run": {
            "processed": processed,
            "seconds": round(run_seconds, 2),
            "photos_per_second": round(processed / run_seconds, 2) if run_seconds > 0 and processed else None,
        },
        "mean_ms_per_photo_this_run": {s: round(float(np.mean(v)), 2) for s, v in stage_ms.items() if v},
    }
    if overlay_sheet:
        sheet = write_contact_sheet(out_dir, ordered, out_dir / "overlays.png")
        summary["overlay_sheet"] = str(sheet.relative_to(out_dir)) if sheet else None
    write_bytes_atomic(out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _status_order(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['in_manifest']}/{summary['inputs']} input photos in the manifest "
        f"({summary['manifest_records']} records), {summary['pairs']} pairs"
    ]
    for name, counts in summary["per_class"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total")
        lines.append(f"  {name}: {counts['total']} photos: {statuses or '-'}")
    run = summary["this_run"]
    lines.append(
        f"  this run: {run['processed']} photos in {run['seconds']} s ({run['photos_per_second']} photos/s)"
    )
    stages = ", ".join(f"{k} {v}" for k, v in summary["mean_ms_per_photo_this_run"].items())
    if stages:
        lines.append(f"  mean ms per photo and stage (workers run in parallel): {stages}")
    if summary["ignored_files"]:
        lines.append(f"  ignored (not an image suffix): {len(summary['ignored_files'])} files")
    return "\n".join(lines)


def build_landmarker(face: DictConfig) -> FaceLandmarker:
    """The dlib face detector + landmarker from the ``face`` config node (shared with ``predict``)."""
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


def build_pair_extractor(cfg: DictConfig) -> IrisPairExtractor:
    """The iris locator and pair builder from an extract/predict config."""
    return IrisPairExtractor(
        locator=instantiate(cfg.locator),
        pair_size=cfg.pair.size,
        iris_margin=cfg.pair.iris_margin,
        min_iris_size=cfg.iris.min_size,
        iris_quality=IrisQualityRule(**cfg.iris.quality) if cfg.iris.get("quality") else None,
    )


def run_extraction(cfg: DictConfig) -> dict | None:
    """Extract iris pairs as ``cfg`` says; returns the summary (on the process of global rank 0)."""
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    photos, ignored = list_inputs(cfg.faces, cfg.get("label"), exclude=out)
    face = cfg.face
    landmarker = build_landmarker(face)
    datamodule = FacePhotosDataModule(
        faces=cfg.faces,
        out=str(out),
        label=cfg.get("label"),
        landmarker=landmarker,
        several_faces=face.several_faces,
        eye_margin=cfg.eyes.margin,
        min_iris_size=cfg.iris.min_size,
        overlay_max_side=cfg.overlay_max_side if cfg.overlay else None,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        retry_statuses=list(cfg.retry_statuses),
        limit=cfg.get("limit"),
    )
    model = build_pair_extractor(cfg)
    writer = ExtractionWriter(out, overlay=cfg.overlay)
    trainer = instantiate(cfg.trainer, callbacks=[writer], default_root_dir=str(out))
    started, start = time.time(), time.perf_counter()
    if datamodule.pending_photos():
        trainer.predict(model, datamodule=datamodule, return_predictions=False)
        trainer.strategy.barrier()
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None
    summary = finalize(out, photos, ignored, started, seconds, overlay_sheet=cfg.overlay)
    print(format_summary(summary))
    return summary


@hydra.main(config_path=CONFIG_DIR, config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_extraction(cfg)


if __name__ == "__main__":
    main()
