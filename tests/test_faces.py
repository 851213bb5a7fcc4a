"""Decoding odd image files, dlib faces and landmarks, eye crops, the training-free iris locator."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from irisgan.extraction.faces import (
    LEFT_EYE,
    RIGHT_EYE,
    FaceLandmarker,
    UnreadableImageError,
    cheek_lightness,
    crop_with_padding,
    decode_image,
    eye_box,
    eye_openness,
    face_descriptor,
    face_models_dir,
    read_image,
)
from irisgan.extraction.iris_locator import HoughIrisLocator, SegmenterIrisLocator

# A Yonsei photo of a turned face in which HOG finds no face at any of the extractor's sizes.
TURNED_FACE = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "faces_train"
    / "real"
    / "yonsei-real_00091.jpg"
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_plain_jpeg_and_png_decode_to_rgb(astronaut):
    for fmt in ("JPEG", "PNG"):
        rgb = decode_image(_encode(Image.fromarray(astronaut), fmt, quality=95))
        assert rgb.shape == astronaut.shape and rgb.dtype == np.uint8
        # RGB order, not OpenCV's BGR: the astronaut's suit is white, her flag patch red-ish
        assert np.abs(rgb.astype(int) - astronaut.astype(int)).mean() < 3


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA"])
def test_other_modes_become_rgb(astronaut, mode):
    image = Image.fromarray(astronaut).convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    rgb = decode_image(_encode(image, fmt))
    assert rgb.shape == astronaut.shape and rgb.dtype == np.uint8
    assert rgb.std() > 20  # an image, not a flat fill


def test_transparent_pixels_become_white(astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:10, :10] = 0  # fully transparent black
    rgb = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (rgb[:10, :10] == 255).all()


def test_16_bit_pngs_are_scaled_not_clipped(astronaut):
    rgb16 = astronaut.astype(np.uint16) * 257
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    rgb = decode_image(png.tobytes())
    assert np.abs(rgb.astype(int) - astronaut.astype(int)).max() <= 1
    gray16 = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    gray = decode_image(_encode(Image.fromarray(gray16), "PNG"))
    assert gray.shape == astronaut.shape and 60 < gray.mean() < 200  # scaled, not saturated to 255


def test_exif_rotation_is_applied(astronaut):
    sideways = np.ascontiguousarray(np.rot90(astronaut))  # turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rgb = decode_image(_encode(Image.fromarray(sideways), "JPEG", exif=exif, quality=95))
    assert rgb.shape == astronaut.shape
    assert np.abs(rgb.astype(int) - astronaut.astype(int)).mean() < 5


@pytest.mark.parametrize(
    "payload",
    [b"this is not an image\n", b"", b"\xff\xd8\xff\xe0" + b"\x00" * 50],
    ids=["text", "empty", "jpeg-header-only"],
)
def test_non_images_raise_unreadable(payload):
    with pytest.raises(UnreadableImageError, match="bad.jpg"):
        decode_image(payload, "bad.jpg")


def test_truncated_jpeg_and_png_raise_unreadable(astronaut):
    for fmt in ("JPEG", "PNG"):
        whole = _encode(Image.fromarray(astronaut), fmt)
        with pytest.raises(UnreadableImageError):
            decode_image(whole[: len(whole) // 2], f"cut.{fmt}")


def test_models_ship_with_face_recognition_models():
    models = face_models_dir()
    assert (models / "shape_predictor_68_face_landmarks.dat").is_file()


def test_astronaut_face_eyes_and_landmarks(astronaut, landmarker):
    faces = landmarker.detect(astronaut)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # her face, not the flag or the helmet
    landmarks = landmarker.landmarks(astronaut, faces[0].box)
    assert landmarks.shape == (68, 2)
    left, right = landmarks[LEFT_EYE], landmarks[RIGHT_EYE]
    assert left[:, 0].max() < right[:, 0].min()  # 36-41 is the image-left eye
    assert 0.2 < eye_openness(left) < 0.5 and 0.2 < eye_openness(right) < 0.5


def test_detection_copy_scale(landmarker):
    assert landmarker.detection_scale(1024, 1024) == 0.5
    assert landmarker.detection_scale(400, 300) == 1.0
    assert landmarker.detection_scale(40, 40) == 256 / 40


def test_eye_box_is_square_around_the_eye_and_crop_pads():
    points = np.array([[100, 50], [110, 45], [120, 45], [130, 50], [120, 55], [110, 55]], np.float32)
    x0, y0, x1, y1 = eye_box(points, margin=0.25)
    assert x1 - x0 == y1 - y0 == 45  # 30 px wide eye x 1.5
    assert x0 < 100 and x1 > 130 and y0 < 45 and y1 > 55
    image = np.arange(20 * 20 * 3, dtype=np.uint8).reshape(20, 20, 3)
    crop = crop_with_padding(image, (-5, -5, 10, 10))
    assert crop.shape == (15, 15, 3)
    assert (crop[:5, 5] == image[0, 0]).all()  # replicated edge


def test_cheek_lightness_reads_the_cheeks_between_lids_and_mouth(astronaut, landmarker):
    landmarks = np.zeros((68, 2))
    landmarks[36], landmarks[45] = (30, 40), (70, 40)  # outer eye corners
    landmarks[41], landmarks[46] = (35, 45), (65, 45)  # lower lids
    landmarks[48], landmarks[54] = (38, 75), (62, 75)  # mouth corners
    image = np.full((100, 100, 3), 230, np.uint8)
    image[50:70, 25:75] = 40  # dark cheeks on a bright photo
    assert cheek_lightness(image, landmarks) < 80
    image[50:70, 25:75] = 230
    assert cheek_lightness(image, landmarks) > 200
    assert np.isnan(cheek_lightness(image, landmarks + 500))  # landmarks outside the photo: no patch
    # a real face: a shadow over the whole photo makes it darker-looking
    box = landmarker.detect(astronaut)[0].box
    points = landmarker.landmarks(astronaut, box)
    lit = cheek_lightness(astronaut, points)
    assert 100 < lit < 255 and cheek_lightness((astronaut * 0.5).astype(np.uint8), points) < lit - 30


def _synthetic_eye(open_eye: bool = True, iris_center=(60, 60)) -> tuple[np.ndarray, np.ndarray]:
    """Skin, an almond of sclera and a dark iris disk: a 120x120 eye crop and its six landmarks."""
    crop = np.full((120, 120, 3), (200, 150, 130), np.uint8)
    half_height = 13 if open_eye else 2
    points = np.array(
        [
            [20, 60],
            [45, 60 - half_height],
            [75, 60 - half_height],
            [100, 60],
            [75, 60 + half_height],
            [45, 60 + half_height],
        ],
        np.float32,
    )
    eye = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(eye, [points.astype(np.int32)], 1)
    iris = np.zeros_like(eye)
    cv2.circle(iris, iris_center, 17, 1, -1)
    crop[eye > 0] = (235, 235, 235)
    crop[(eye > 0) & (iris > 0)] = (90, 60, 40)
    return crop, points


def test_hough_locator_finds_a_synthetic_iris():
    crop, points = _synthetic_eye(iris_center=(68, 58))
    found = HoughIrisLocator().locate([crop], [points])[0]
    assert found is not None
    cx, cy, radius = found.circle
    assert abs(cx - 68) <= 3 and abs(cy - 58) <= 4 and 13 <= radius <= 21


def test_hough_locator_rejects_closed_and_irisless_eyes():
    closed, closed_points = _synthetic_eye(open_eye=False)
    blank, blank_points = _synthetic_eye()
    blank[:] = (200, 150, 130)  # no sclera, no iris: e.g. sunglasses or skin
    assert HoughIrisLocator().locate([closed, blank], [closed_points, blank_points]) == [None, None]


def test_hough_locator_on_astronaut(astronaut, landmarker):
    face = landmarker.detect(astronaut)[0]
    landmarks = landmarker.landmarks(astronaut, face.box)
    crops, points = [], []
    for eye in (LEFT_EYE, RIGHT_EYE):
        box = eye_box(landmarks[eye], 0.25)
        crops.append(crop_with_padding(astronaut, box))
        points.append(landmarks[eye] - np.array(box[:2], np.float32))
    for eye_points, found in zip(points, HoughIrisLocator().locate(crops, points), strict=True):
        assert found is not None
        cx, cy, _ = found.circle
        assert eye_points[0, 0] < cx < eye_points[3, 0]  # between the eye corners
        assert eye_points[:, 1].min() - 3 < cy < eye_points[:, 1].max() + 3


def test_hough_locator_finds_an_iris_in_a_dark_photo():
    crop, points = _synthetic_eye(iris_center=(62, 60))
    dark = (crop * 0.15).astype(np.uint8)  # sclera at 35 of 255: an eye in shadow
    found = HoughIrisLocator().locate_one(dark, points)
    assert found is not None
    assert abs(found.circle[0] - 62) <= 3 and abs(found.circle[1] - 60) <= 4
    # Without the brightening the same eye has too little contrast; a black eye stays black.
    assert HoughIrisLocator(max_gain=1.0).locate_one(dark, points) is None
    assert HoughIrisLocator().locate_one(np.zeros_like(crop), points) is None


def test_segmenter_locator_wraps_the_segmenter_api(monkeypatch):
    """The wrapper turns IrisSegmenter.predict's IrisDetection objects into IrisLocations, batched."""
    import sys
    import types
    from dataclasses import dataclass

    @dataclass
    class IrisDetection:
        box: tuple
        mask: np.ndarray
        score: float

    calls = []

    class IrisSegmenter:
        @classmethod
        def from_checkpoint(cls, path, device, score_threshold):
            calls.append(("load", path, device, score_threshold))
            return cls()

        def predict(self, crops):
            calls.append(("predict", len(crops)))
            return [
                IrisDetection((1, 2, 11, 12), np.ones((20, 20), bool), 0.9) if c.mean() > 0 else None
                for c in crops
            ]

    module = types.ModuleType("irisgan.extraction.iris_segmenter")
    module.IrisSegmenter = IrisSegmenter
    monkeypatch.setitem(sys.modules, "irisgan.extraction.iris_segmenter", module)
    locator = SegmenterIrisLocator(ckpt="seg.ckpt", score_threshold=0.7, batch_size=2)
    locator.prepare("cpu")
    crops = [np.ones((20, 20, 3), np.uint8)] * 2 + [np.zeros((20, 20, 3), np.uint8)]
    found = locator.locate(crops, [None] * 3)
    assert calls == [("load", "seg.ckpt", "cpu", 0.7), ("predict", 2), ("predict", 1)]
    assert found[2] is None and found[0].box == (1.0, 2.0, 11.0, 12.0) and found[0].mask.shape == (20, 20)
    assert found[0].size == 10.0


def test_segmenter_locator_needs_a_checkpoint():
    with pytest.raises(ValueError, match="locator.ckpt"):
        SegmenterIrisLocator(ckpt="")


def test_cheap_first_detection_pass_agrees_and_falls_back(astronaut, landmarker):
    fast = FaceLandmarker(detect_first_side=256)
    head = cv2.resize(astronaut[40:220, 135:315], (1024, 1024), interpolation=cv2.INTER_CUBIC)  # face ~500 px
    first, full = fast.detect(head), landmarker.detect(head)
    assert len(first) == len(full) == 1
    assert np.abs(np.subtract(first[0].box, full[0].box)).max() < 0.1 * (full[0].box[2] - full[0].box[0])
    # The astronaut's face is too small for a 256 px copy of a 1024 px photo: the full pass finds it.
    whole = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    assert fast._detect_at(whole, 256 / 1024) == []
    assert len(fast.detect(whole)) == 1 and len(fast.detect(whole, exhaustive=True)) == 1


@pytest.mark.skipif(
    not TURNED_FACE.is_file(), reason=f"the faces_train photos are not here: {TURNED_FACE} is absent"
)
def test_cnn_fallback_finds_the_face_hog_misses():
    rgb = read_image(TURNED_FACE)
    assert FaceLandmarker(detect_first_side=256).detect(rgb) == []
    with_fallback = FaceLandmarker(detect_first_side=256, fallback="cnn")
    faces = with_fallback.detect(rgb)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    eyes = with_fallback.landmarks(rgb, faces[0].box)[36:48]
    assert (
        (eyes[:, 0] > x0).all()
        and (eyes[:, 0] < x1).all()
        and (eyes[:, 1] > y0).all()
        and (eyes[:, 1] < y1).all()
    )


def test_cnn_fallback_is_not_run_where_hog_finds_a_face(astronaut, landmarker, monkeypatch):
    with_fallback = FaceLandmarker(fallback="cnn")
    assert pickle.loads(pickle.dumps(with_fallback))._fallback is None  # workers load their own copy
    with_fallback.load()

    def refuse(*args, **kwargs):
        raise AssertionError("the CNN fallback ran on a photo where HOG found a face")

    monkeypatch.setattr(with_fallback, "_fallback", refuse)
    assert [f.box for f in with_fallback.detect(astronaut)] == [f.box for f in landmarker.detect(astronaut)]
    with pytest.raises(ValueError, match="fallback"):
        FaceLandmarker(fallback="mtcnn")


def test_face_descriptor_is_one_identity_through_grey_and_shrinking(astronaut, landmarker):
    """dlib's 128-d descriptor (the face descriptor probe's feature): a grey or half-size copy of a face stays
    well within dlib's same-person distance (0.6); landmarks of the wrong shape are an error."""
    [face] = landmarker.detect(astronaut)
    points = landmarker.landmarks(astronaut, face.box)
    d = face_descriptor(astronaut, face.box, points)
    assert d.shape == (128,) and d.dtype == np.float32 and np.isfinite(d).all()
    np.testing.assert_array_equal(d, face_descriptor(astronaut, face.box, points))  # deterministic
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert np.linalg.norm(face_descriptor(grey, face.box, points) - d) < 0.3
    half = cv2.resize(astronaut, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert np.linalg.norm(face_descriptor(half, np.array(face.box) * 0.5, points * 0.5) - d) < 0.3
    with pytest.raises(ValueError, match="68 landmarks"):
        face_descriptor(astronaut, face.box, points[:5])


def test_face_texture_comes_with_the_package_and_is_the_same_for_a_grey_copy(astronaut, landmarker, tmp_path):
    """The texture view of the face cue: ImageNet MobileNetV2's first blocks on the grey aligned face, with
    weights shipped in the package (no download), the same for a grey copy, and joined after the descriptor."""
    from irisgan.extraction.texture import (
        TEXTURE_SIZE,
        TRUNK,
        export_trunk,
        face_features,
        face_texture,
        load_trunk,
    )

    assert TRUNK.is_file()
    assert load_trunk() is load_trunk()  # one per process
    [face] = landmarker.detect(astronaut)
    points = landmarker.landmarks(astronaut, face.box)
    t = face_texture(astronaut, face.box, points)
    assert t.shape == (TEXTURE_SIZE,) and t.dtype == np.float32 and np.isfinite(t).all()
    np.testing.assert_array_equal(t, face_texture(astronaut, face.box, points))
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    # grey before or after the alignment's resampling: the same features up to rounding
    np.testing.assert_allclose(face_texture(grey, face.box, points), t, atol=0.03)
    np.testing.assert_allclose(
        face_texture(grey[..., 0], face.box, points), face_texture(grey, face.box, points)
    )
    features = face_features(astronaut, face.box, points)
    np.testing.assert_array_equal(features[:128], face_descriptor(astronaut, face.box, points))
    np.testing.assert_array_equal(features[128:], t)
    with pytest.raises(ValueError, match="68 landmarks"):
        face_texture(astronaut, face.box, points[:5])
    with pytest.raises(FileNotFoundError, match="texture weights are missing"):
        load_trunk(tmp_path / "none.pt")
    (tmp_path / "other.pth").write_bytes(b"not the file")
    with pytest.raises(ValueError, match="mobilenet_v2-b0353104.pth"):
        export_trunk(tmp_path / "other.pth", tmp_path / "trunk.pt")
