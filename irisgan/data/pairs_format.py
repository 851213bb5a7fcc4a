"""The iris-pairs format on disk, shared by the extractor, the synthetic generator and the loader.

A folder holds RGB pair images (96x96 unless ``pair.size`` / ``pair.width`` say otherwise) and a CSV with
at least ``path,label`` (label 1 = GAN-generated, 0 = real), paths relative to the CSV's folder. Extra
columns (``source``, ``cues``...) are kept.
A pair is the image-left iris (the subject's right eye, dlib landmarks 36-41) and the image-right
iris side by side, each a square crop, the two joined and resized to ``size`` high and ``width`` wide. The
paper's square pair (``width`` = ``size``) squeezes each eye to half its width; ``width`` = 2 x ``size`` keeps
each eye's shape.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

PAIR_SIZE = 96
# An image whose mean (max - min) over the colour channels stays below this (0-255 units) carries no colour: a
# grayscale photo (its three channels equal, give or take JPEG rounding). The 1,543 pairs of faces_train measure
# 3.0 at the least (a dark photo), 9.7 at the 1st percentile and 29 at the median; the faces' boxes of its 1,582
# photos with a face 13.3 at the least and 56 at the median.
GRAYSCALE_CHROMA = 2.0
_UMASK = os.umask(0)
os.umask(_UMASK)
REQUIRED_COLUMNS = ("path", "label")


def is_grayscale(image: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 image (a pair, a face) has lost its colour; a 2-D image has none."""
    image = np.asarray(image, dtype=np.int16)
    if image.ndim == 2:
        return True
    return float((image.max(axis=-1) - image.min(axis=-1)).mean()) < GRAYSCALE_CHROMA


def join_pair(
    left: np.ndarray, right: np.ndarray, size: int = PAIR_SIZE, width: int | None = None
) -> np.ndarray:
    """Join two square-ish RGB iris crops (HxWx3 uint8) into one pair image, ``size`` high and ``width`` wide
    (``None``: ``size``, the square pair)."""
    if left.ndim != 3 or right.ndim != 3 or left.shape[2] != 3 or right.shape[2] != 3:
        raise ValueError(f"iris crops must be HxWx3, got {left.shape} and {right.shape}")
    width = resolve_pair_width(size, width)
    halves = []
    for crop in (left, right):
        interp = cv2.INTER_AREA if min(crop.shape[:2]) >= size else cv2.INTER_LINEAR
        halves.append(cv2.resize(crop, (size, size), interpolation=interp))
    joined = np.concatenate(halves, axis=1)  # size x 2*size
    if width == 2 * size:
        return joined
    return cv2.resize(joined, (width, size), interpolation=cv2.INTER_AREA)


def pair_shape(size: int = PAIR_SIZE, width: int | None = None) -> tuple[int, int]:
    """(height, width) of the pairs: ``size`` high, ``width`` wide (``None``: square)."""
    return int(size), resolve_pair_width(size, width)


def resolve_pair_width(size: int, width: int | None = None) -> int:
    """The pair's width in pixels: ``width``, or ``size`` (the square pair) when it is ``None``; it must be even
    (each eye gets half) and no wider than the two eyes at ``size`` pixels each."""
    size = int(size)
    width = size if width is None else int(width)
    if size < 8 or width < 8 or width % 2 or width > 2 * size:
        raise ValueError(
            f"pair size {size} x width {width}: need size >= 8 and an even width from 8 to 2 x size "
            "(each eye is one half)"
        )
    return width


def write_image_atomic(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image so that a crash never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode image for {path}")
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pairs_csv(csv_path: str | Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write (atomically) a pairs CSV; ``rows`` carry at least ``path`` and ``label``."""
    rows = list(rows)
    columns = list(REQUIRED_COLUMNS)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    csv_path = Path(csv_path)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    write_bytes_atomic(csv_path, buf.getvalue().encode())
    return csv_path


def read_pairs_csv(csv_path: str | Path) -> list[dict[str, str]]:
    """Read a pairs CSV, checking its columns and labels; errors name the file and the row."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"pairs CSV not found: {csv_path}")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {missing}; a pairs CSV needs at least {list(REQUIRED_COLUMNS)}"
            )
        rows = list(reader)
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        if str(row["label"]).strip() not in ("0", "1"):
            raise ValueError(
                f"{csv_path}, line {i} ({row['path']}): label {row['label']!r} is not 0 (real) or 1 (GAN)"
            )
    return rows
