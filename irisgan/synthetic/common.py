"""What the two synthetic generators (iris pairs, eye images) share: the on-disk cache and the colours.

A generated set lives in a folder named after everything that determines it. ``ensure_cached`` writes the
completion marker ``complete.json`` last, atomically: it names the generator, its version and parameters,
and the SHA-1 of every file written. A set is reused only when its marker matches and every file is
still there unchanged; an interrupted or damaged set is generated again.

Colour palettes are RGB in [0, 1]; ``rgb255`` converts one for a renderer that draws in 0-255.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from irisgan.data.pairs_format import write_bytes_atomic

log = logging.getLogger(__name__)

MARKER = "complete.json"


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _why_not_reusable(folder: Path, stamp: dict) -> str | None:
    marker = folder / MARKER
    if not marker.is_file():
        return None if not folder.exists() else f"{folder} has no {MARKER} (an interrupted generation)"
    try:
        written = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"{marker} is unreadable ({error})"
    if written.get("stamp") != stamp:
        return f"{marker} was written for other parameters ({written.get('stamp')})"
    for relative, digest in written.get("files", {}).items():
        path = folder / relative
        if not path.is_file():
            return f"{path} is missing"
        if _sha1(path) != digest:
            return f"{path} has changed"
    return ""


def ensure_cached(folder: Path, stamp: dict, generate: Callable[[Path], Iterable[str]], what: str) -> Path:
    """``folder`` holding a complete set: reused if its marker matches ``stamp`` and its files are intact,
    otherwise made by ``generate(folder)``, which returns the paths it wrote (relative to ``folder``)."""
    folder = Path(folder)
    reason = _why_not_reusable(folder, stamp)
    if reason == "":
        return folder
    if reason:
        log.warning("regenerating %s: %s", what, reason)
    (folder / MARKER).unlink(missing_ok=True)
    files = sorted(generate(folder))
    marker = {"stamp": stamp, "files": {relative: _sha1(folder / relative) for relative in files}}
    write_bytes_atomic(folder / MARKER, json.dumps(marker, indent=1).encode())
    return folder


def rgb255(palette: np.ndarray) -> np.ndarray:
    """A [0, 1] palette in 0-255 units, as float32."""
    return (palette * 255).astype(np.float32)


def _from_255(colours: list[tuple[int, int, int]]) -> np.ndarray:
    return np.array(colours, dtype=np.float64) / 255


# Skin around the iris in the pairs' crops (sclera corners, eyelids).
IRIS_CROP_SKIN_TONES = np.array(
    [
        (0.88, 0.70, 0.60),
        (0.80, 0.60, 0.48),
        (0.70, 0.50, 0.38),
        (0.55, 0.38, 0.27),
        (0.40, 0.27, 0.19),
        (0.29, 0.19, 0.14),
    ]
)
# The eye images' anchors: each image jitters around one of them.
EYE_IMAGE_SKIN_TONES = _from_255(
    [
        (236, 200, 180),
        (225, 180, 155),
        (205, 160, 130),
        (190, 140, 110),
        (160, 110, 80),
        (120, 80, 55),
        (90, 60, 40),
        (240, 210, 195),
        (215, 170, 140),
    ]
)
EYE_IMAGE_IRIS_TONES = _from_255(
    [
        (70, 40, 20),
        (95, 60, 30),
        (50, 30, 18),
        (120, 85, 45),
        (110, 110, 60),
        (85, 110, 75),
        (90, 120, 140),
        (110, 140, 165),
        (120, 125, 125),
        (60, 45, 35),
    ]
)
EYE_IMAGE_HAIR_TONES = _from_255(
    [(30, 22, 18), (55, 40, 30), (85, 60, 40), (20, 18, 18), (140, 110, 80), (110, 80, 55)]
)
