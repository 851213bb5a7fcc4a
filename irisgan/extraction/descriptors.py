"""The face features of the photos behind a pairs CSV: what the face cue (``irisgan.models.face_cue``) scores
beside each pair. A photo's face features are what the cue's ``FaceView`` names: dlib's 128-d descriptor of its
face at one or more borders, and the face's texture features (``irisgan.extraction.texture``) or not.

A pairs CSV written by ``extract`` (or cached by ``data=faces``) sits in, or below, the folder of its extraction
manifest, whose record of each photo names the pair file, the photo, its face box and its 68 landmarks. The
features are computed from those, as ``predict`` computes them for a new photo (``FacePhotoDataset`` with
``describe_faces``), and cached beside the manifest by the photo's content fingerprint: the landmarks, and so the
features, are fixed by the extraction's settings, which the folder stands for.

``vivid_descriptors`` gives the same features of a vivid copy of each photo (``irisgan.data.degrade.vivid_copy``):
the pseudo-generated faces that ``irisgan.ensemble --face-vivid`` adds to the cue's training photos.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from irisgan.data.degrade import vivid_copy
from irisgan.data.pairs_format import read_pairs_csv, write_bytes_atomic
from irisgan.extraction.faces import DARKER_LIGHTNESS, cheek_lightness, decode_image
from irisgan.extraction.manifest import MANIFEST, read_manifest
from irisgan.extraction.texture import face_features
from irisgan.models.face_cue import FaceView

log = logging.getLogger(__name__)

DESCRIPTORS = FaceView().cache_name  # dlib's descriptor alone: what the first detector's cue reads
FEATURES = FaceView(texture=True).cache_name  # the descriptor and the texture features
# data=faces keeps its split CSVs in <cache>/splits/<key>/: the manifest is at most this many folders up
MANIFEST_DEPTH = 3


class MissingFaceError(ValueError):
    """A pair whose photo, face box or landmarks cannot be found: the face cue cannot score it."""


def find_manifest(csv_path: str | Path) -> Path:
    """The extraction folder a pairs CSV belongs to: the nearest folder, from the CSV's own up, with a manifest."""
    folder = Path(csv_path).resolve().parent
    for candidate in [folder, *folder.parents][: MANIFEST_DEPTH + 1]:
        if (candidate / MANIFEST).is_file():
            return candidate
    raise MissingFaceError(
        f"{csv_path}: no {MANIFEST} in its folder or the {MANIFEST_DEPTH} above it. This detector scores each "
        "pair's face as well, so it needs the extraction that cut the pairs: evaluate faces=DIR, or pairs_csv= of "
        "a folder written by `python -m irisgan.extract`"
    )


def photo_descriptors(
    records: list[dict],
    cache: Path | None = None,
    describe=None,
    view: FaceView = FaceView(texture=True),
) -> np.ndarray:
    """(N, ``view.width``) face features of manifest records (each with ``path``, ``fingerprint``, ``face_box``,
    ``landmarks``), read from and added to ``cache`` (an ``.npz`` keyed by fingerprint, one per view) when given.
    ``describe(image, box, landmarks)``: other features (a study's variant, with its own cache)."""
    width = view.width
    expected = width if describe is None else None
    if describe is None:
        describe = lambda image, box, points: face_features(image, box, points, view)  # noqa: E731
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            # an older file of another layout, or of another width, is recomputed
            if "fingerprint" in stored and expected in (None, stored["x"].shape[-1]):
                known = dict(zip(stored["fingerprint"].tolist(), stored["x"], strict=True))
    added = 0
    out: list[np.ndarray] = []
    for record in records:
        key = record.get("fingerprint") or record["path"]
        if key not in known:
            if not record.get("face_box") or not record.get("landmarks"):
                raise MissingFaceError(
                    f"{record['path']}: the manifest holds no face box and landmarks for it"
                )
            try:
                image = decode_image(Path(record["path"]).read_bytes(), record["path"])
            except OSError as error:
                raise MissingFaceError(
                    f"{record['path']}: the photo behind the pair cannot be read ({error})"
                ) from None
            known[key] = describe(image, record["face_box"], record["landmarks"])
            added += 1
        out.append(known[key])
    if added and cache is not None:
        buf = io.BytesIO()
        np.savez(buf, fingerprint=np.array(list(known)), x=np.stack(list(known.values())))
        write_bytes_atomic(cache, buf.getvalue())
        log.info("%d face descriptors computed (%d cached in %s)", added, len(known), cache)
    return np.stack(out) if out else np.zeros((0, width), np.float32)


def pair_records(csv_path: str | Path) -> tuple[Path, list[dict]]:
    """The extraction folder of a pairs CSV and its manifest's record of the photo behind each pair, in the CSV's
    row order."""
    csv_path = Path(csv_path)
    root = find_manifest(csv_path)
    by_pair = {(root / r["pair"]).resolve(): r for r in read_manifest(root).values() if r.get("pair")}
    records = []
    for line, row in enumerate(read_pairs_csv(csv_path), start=2):
        record = by_pair.get((csv_path.parent / row["path"]).resolve())
        if record is None:
            raise MissingFaceError(
                f"{csv_path}, line {line} ({row['path']}): the pair is not in {root / MANIFEST}, so its face is "
                "unknown"
            )
        records.append(record)
    return root, records


def pair_descriptors(csv_path: str | Path, view: FaceView = FaceView(texture=True)) -> np.ndarray:
    """(N, ``view.width``) face features of the photos behind the N pairs of a pairs CSV, in its row order (each
    view cached apart, so a view without texture never runs the texture network)."""
    root, records = pair_records(csv_path)
    return photo_descriptors(records, root / view.cache_name, view=view)


def record_lightness(record: dict) -> float:
    """``cheek_lightness`` of a manifest record's photo at its landmarks; NaN where the photo cannot be read again
    or the record has no usable landmarks."""
    try:
        rgb = decode_image(Path(record["path"]).read_bytes(), record["path"])
        return cheek_lightness(rgb, record["landmarks"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return float("nan")


def pair_lightness(csv_path: str | Path) -> list[str]:
    """How light the face behind each pair of a pairs CSV looks (``record_lightness``), in its row order:
    ``darker-looking``, ``lighter-looking``, or ``unknown`` for a photo that cannot be read again."""
    groups = []
    for record in pair_records(csv_path)[1]:
        value = record_lightness(record)
        groups.append(
            "unknown"
            if np.isnan(value)
            else "darker-looking"
            if value < DARKER_LIGHTNESS
            else "lighter-looking"
        )
    return groups


def vivid_cache_name(view: FaceView) -> str:
    """The file beside an extraction manifest that caches ``view`` of the photos' vivid copies."""
    return view.cache_name.removesuffix(".npz") + "_vivid.npz"


def vivid_descriptors(records: list[dict], cache: Path | None, view: FaceView) -> np.ndarray:
    """(N, ``view.width``) face features of a vivid copy of each record's photo (``degrade.vivid_copy``), at the
    face the manifest found in the photo itself: the copy keeps its geometry."""
    describe = lambda image, box, points: face_features(vivid_copy(image), box, points, view)  # noqa: E731
    return photo_descriptors(records, cache, describe, view)
