"""Pictures of what the extractor did: one overlay per photo and the contact sheet of many (Figure 1 of
the paper). ``docs/img/extract_overlays.png`` comes from
``python -m irisgan.extract faces=../shared/data/faces out=/tmp/extract overlay=true`` (its ``overlays.png``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from irisgan.extraction.photos import CLASS_NAMES

if TYPE_CHECKING:
    from irisgan.extraction.pipeline import PhotoResult

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


def draw_overlay(result: PhotoResult, panel_height: int = 512) -> np.ndarray:
    """The photo with face box, landmarks, eye and iris boxes, and the pair inset (left); both eye
    crops enlarged with the eye contour, the iris circle or mask and the crop taken (right)."""
    face = result.overlay_image.copy()
    scale = result.overlay_scale
    if result.face_box:
        cv2.rectangle(face, *np.reshape(_scaled(result.face_box, scale), (2, 2)).tolist(), _GREEN, 2)
    for x, y in result.landmarks or []:
        cv2.circle(face, (int(x * scale), int(y * scale)), 1, _YELLOW, -1)
    for side in ("left", "right"):
        if result.eye_boxes:
            cv2.rectangle(
                face, *np.reshape(_scaled(result.eye_boxes[side], scale), (2, 2)).tolist(), _CYAN, 1
            )
        iris = (result.iris or {}).get(side)
        if iris:
            cv2.rectangle(face, *np.reshape(_scaled(iris["box"], scale), (2, 2)).tolist(), _RED, 1)
    if face.shape[0] != panel_height:
        size = (max(1, round(face.shape[1] * panel_height / face.shape[0])), panel_height)
        face = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
    if result.pair_image is not None:
        inset = cv2.resize(result.pair_image, (128, 128), interpolation=cv2.INTER_NEAREST)
        face[4:132, 4:132] = inset
        cv2.rectangle(face, (3, 3), (132, 132), _WHITE, 1)
    label = CLASS_NAMES.get(result.label)  # predict: the class is what we are asked, not known
    text = f"{label}: {result.status}" if label else result.status
    cv2.putText(face, text, (6, panel_height - 12), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 7, cv2.LINE_AA)
    cv2.putText(face, text, (6, panel_height - 12), cv2.FONT_HERSHEY_SIMPLEX, 1.2, _WHITE, 2, cv2.LINE_AA)

    eye_side = panel_height // 2
    eyes = []
    crops = result.eye_crops or []
    for i in range(2):
        if i >= len(crops):
            eyes.append(np.zeros((eye_side, eye_side, 3), np.uint8))
            continue
        f = eye_side / crops[i].shape[0]
        eye = cv2.resize(crops[i], (eye_side, eye_side), interpolation=cv2.INTER_LINEAR)
        cv2.polylines(
            eye, [np.round(result.eye_points[i] * f).astype(np.int32)], True, _GREEN, 1, cv2.LINE_AA
        )
        found = (result.irises or [None, None])[i]
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
            record = result.iris[("left", "right")[i]]
            box = result.eye_boxes[("left", "right")[i]]
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
