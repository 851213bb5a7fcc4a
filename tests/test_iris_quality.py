"""Hidden eyes get status eyes_hidden, open ones stay ok: the measures, then photos made in the test."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from irisgan.extraction.faces import LEFT_EYE, RIGHT_EYE, FaceLandmarker, eye_box, eye_width, read_image
from irisgan.extraction.iris_quality import IrisQualityRule, measure_eye
from tests.test_extract import extraction_config, manifest_lines
from tests.test_faces import _synthetic_eye

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / ".." / "shared" / "data" / "faces"
PHOTOS = [FACES / "real" / "celebahq_005735.jpg", FACES / "fake" / "kenton_ffhq_trunc-1_seed0085.jpg"]
HIDINGS = ("black", "skin", "sunglasses", "blur")


def _paint_black(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The eye painted over, a little beyond its lids as a brush would."""
    center = points.mean(axis=0)
    painted = crop.copy()
    cv2.fillPoly(painted, [np.round((points - center) * 1.4 + center).astype(np.int32)], (0, 0, 0))
    return painted


def _textured(crop: np.ndarray, seed: int = 0) -> np.ndarray:
    """Photo-like grain: a synthetic eye without it would be as flat as paint."""
    noise = np.random.default_rng(seed).normal(0, 3, crop.shape)
    return np.clip(crop + noise, 0, 255).astype(np.uint8)


def test_an_open_eye_passes_and_each_way_of_hiding_it_fails_its_measure():
    crop, points = _synthetic_eye()
    crop = _textured(crop)
    rule = IrisQualityRule()
    assert rule.failures(measure_eye(crop, points)) == []
    black = _paint_black(crop, points)
    assert any("sclera" in f for f in rule.failures(measure_eye(black, points)))
    skin = np.full_like(crop, (200, 150, 130))  # a flat skin-coloured cover over the whole crop
    assert any("flat" in f for f in rule.failures(measure_eye(skin, points)))
    blurred = _textured(cv2.GaussianBlur(_synthetic_eye()[0], (0, 0), 20), seed=1)
    assert any("sharpness" in f for f in rule.failures(measure_eye(blurred, points)))


def test_check_names_the_eye_and_returns_measures_for_both():
    crop, points = _synthetic_eye()
    crop = _textured(crop)
    black = _paint_black(crop, points)
    message, measures = IrisQualityRule().check([crop, black], [points, points])
    assert message.startswith("right eye: sclera") and "left eye" not in message
    assert set(measures) == {"left", "right"} and set(measures["left"]) == {"sclera", "flat", "sharpness"}
    assert IrisQualityRule().check([crop, crop], [points, points])[0] is None


def hide_eyes(rgb: np.ndarray, landmarks: np.ndarray, how: str) -> np.ndarray:
    """The photo with both eyes hidden: painted black, under a flat patch of cheek colour, behind dark
    glasses, or blurred to nothing."""
    out = rgb.copy()
    for eye in (LEFT_EYE, RIGHT_EYE):
        points = landmarks[eye]
        width = eye_width(points)
        cx, cy = points.mean(axis=0)
        if how == "black":
            paint = np.round((points - (cx, cy)) * 1.4 + (cx, cy)).astype(np.int32)
            cv2.fillPoly(out, [paint], (0, 0, 0))
        elif how == "skin":
            x0, y0, x1, y1 = eye_box(points, 0.15)
            cheek = rgb[
                int(cy + 0.8 * width) : int(cy + 1.2 * width), int(cx - 0.3 * width) : int(cx + 0.3 * width)
            ]
            out[max(0, y0) : y1, max(0, x0) : x1] = np.median(cheek.reshape(-1, 3), axis=0)
        elif how == "sunglasses":
            axes = (int(0.9 * width), int(0.6 * width))
            cv2.ellipse(out, (int(cx), int(cy)), axes, 0, 0, 360, (22, 24, 28), -1)
        elif how == "blur":
            x0, y0, x1, y1 = eye_box(points, 0.3)
            x0, y0 = max(0, x0), max(0, y0)
            out[y0:y1, x0:x1] = cv2.GaussianBlur(rgb, (0, 0), width / 4)[y0:y1, x0:x1]
    return out


@pytest.mark.skipif(
    not all(p.is_file() for p in PHOTOS), reason=f"the shared test photos are not here: {FACES} is absent"
)
def test_hidden_eyes_get_their_status_and_open_ones_stay_ok(tmp_path):
    from irisgan.extraction.loop import run_extraction

    landmarker = FaceLandmarker()
    expected = {}
    for photo in PHOTOS:
        rgb = read_image(photo)
        landmarks = landmarker.landmarks(rgb, landmarker.detect(rgb)[0].box)
        folder = tmp_path / "faces" / photo.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for how in ("open", *HIDINGS):
            image = rgb if how == "open" else hide_eyes(rgb, landmarks, how)
            name = f"{photo.stem}_{how}.jpg"
            cv2.imwrite(
                str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            expected[name] = "ok" if how == "open" else "eyes_hidden"
    out = tmp_path / "out"
    run_extraction(extraction_config(tmp_path / "faces", out))
    records = {Path(r["path"]).name: r for r in manifest_lines(out)}
    assert {name: r["status"] for name, r in records.items()} == expected
    for name, record in records.items():
        assert set(record["eye_quality"]) == {"left", "right"}
        assert (record["pair"] is None) == (expected[name] != "ok")
        if expected[name] != "ok":
            assert "eye:" in record["message"]
