"""Face photos to eye crops: robust image decoding, dlib face detection, 68 landmarks, eye crops.

Decoding takes the fast path (OpenCV) for plain 8-bit RGB/gray JPEG and PNG files with no EXIF
rotation, and PIL for everything else (EXIF-rotated, RGBA, CMYK, 16-bit, palette, TIFF...), so odd
files are converted instead of mis-read. Anything neither can decode raises ``UnreadableImageError``.

Faces are detected on a copy scaled to at most ``detect_max_side`` pixels (HOG cost grows with the
pixel count and 1024x1024 face photos do not need more), the 68 landmarks are then fitted on the
full-resolution image. dlib numbers the landmarks from the image's point of view: 36-41 are the
image-left eye (the subject's right eye), 42-47 the image-right eye.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
LEFT_EYE = slice(36, 42)  # image-left eye (subject's right), goes on the left of the pair
RIGHT_EYE = slice(42, 48)
EXIF_ORIENTATION = 0x0112
SEVERAL_FACES_CHOICES = ("largest", "reject")
DETECTOR_CHOICES = ("hog", "cnn")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


class UnreadableImageError(ValueError):
    """The bytes are not an image either OpenCV or PIL can decode completely."""


# --------------------------------------------------------------------------------------------- decoding


def _cv2_can_decode(pil_image: Image.Image, data: bytes) -> bool:
    """True where OpenCV decodes these bytes exactly as PIL would (and 2-3x faster)."""
    if pil_image.format not in ("JPEG", "PNG") or pil_image.mode not in ("RGB", "L"):
        return False
    if pil_image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return False
    # libjpeg decodes a truncated JPEG silently (grey bottom rows); PIL raises, so send those to PIL.
    tail = data[-64:]
    if pil_image.format == "JPEG":
        return b"\xff\xd9" in tail
    return b"IEND" in tail


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent parts become white rather than whatever colour the encoder left under alpha 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes to an upright HxWx3 uint8 RGB array; ``UnreadableImageError`` otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if _cv2_can_decode(probe, data):
                flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
                rgb = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
                if rgb is not None:
                    return rgb
            probe.load()  # raises on truncated data, unlike libjpeg
            rgb = _pil_to_rgb(probe)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{name}: {type(error).__name__}: {error}") from error
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UnreadableImageError(f"{name}: decoded to an empty image of shape {rgb.shape}")
    return rgb


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableImageError(f"{path}: {error}") from error
    return decode_image(data, str(path))


# --------------------------------------------------------------------------------------------- faces


def face_models_dir() -> Path:
    """The ``models/`` folder of the ``face_recognition_models`` package (dlib's .dat files)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "face_recognition_models is not installed; `pip install face-recognition-models` "
            "(it ships dlib's 68-point landmark model)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


_MODELS: dict[tuple[object, str], object] = {}


def _cached_model(loader, path: Path, what: str):
    """One dlib model object per file and process: every extraction run in a process shares it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    key = (loader, str(path.resolve()))
    if key not in _MODELS:
        _MODELS[key] = loader(str(path))
    return _MODELS[key]


@dataclass
class FaceDetection:
    box: Box  # full-resolution pixel coordinates
    score: float

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


class FaceLandmarker:
    """dlib face detector (HOG, or the CNN/MMOD one) plus the 68-point shape predictor.

    ``fallback="cnn"`` runs the CNN (MMOD) detector on a ``fallback_side`` copy of the photos in
    which the main detector found no face: HOG misses turned, tilted and partly covered faces that
    MMOD finds, and running MMOD only there keeps HOG's speed on the rest.

    The dlib models load on first use, so an instance can be built in the main process and
    pickled to DataLoader workers cheaply; each worker then loads its own copy.
    """

    def __init__(
        self,
        detector: str = "hog",
        detect_max_side: int = 512,
        detect_min_side: int = 256,
        detect_first_side: int | None = None,
        upsample: int = 0,
        min_score: float = 0.3,
        cnn_weights: str | None = None,
        predictor_path: str | None = None,
        fallback: str | None = None,
        fallback_side: int = 256,
    ) -> None:
        if detector not in DETECTOR_CHOICES:
            raise ValueError(f"face detector {detector!r} is not one of {DETECTOR_CHOICES}")
        if fallback not in (None, *DETECTOR_CHOICES):
            raise ValueError(f"face fallback {fallback!r} is not null or one of {DETECTOR_CHOICES}")
        if detect_min_side > detect_max_side:
            raise ValueError(f"detect_min_side {detect_min_side} > detect_max_side {detect_max_side}")
        self.detector_name = detector
        self.detect_max_side = int(detect_max_side)
        self.detect_min_side = int(detect_min_side)
        self.detect_first_side = int(detect_first_side) if detect_first_side else None
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.cnn_weights = cnn_weights
        self.predictor_path = predictor_path
        self.fallback = fallback if fallback != detector else None
        self.fallback_side = int(fallback_side)
        self._detector = None
        self._fallback = None
        self._predictor = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None, "_fallback": None, "_predictor": None}

    def load(self) -> None:
        """Load the dlib models (about a second for the 100 MB landmark model; cached per process)."""
        if self._predictor is not None:
            return
        import dlib

        models = face_models_dir()
        self._detector = self._load_detector(self.detector_name, models)
        if self.fallback:
            self._fallback = self._load_detector(self.fallback, models)
        predictor = (
            Path(self.predictor_path)
            if self.predictor_path
            else models / "shape_predictor_68_face_landmarks.dat"
        )
        self._predictor = _cached_model(dlib.shape_predictor, predictor, "68-point landmark model")

    def _load_detector(self, name: str, models: Path):
        import dlib

        if name == "cnn":
            weights = Path(self.cnn_weights) if self.cnn_weights else models / "mmod_human_face_detector.dat"
            return _cached_model(dlib.cnn_face_detection_model_v1, weights, "CNN face detector weights")
        return dlib.get_frontal_face_detector()

    def detection_scale(self, height: int, width: int) -> float:
        """Scale of the copy faces are detected on: down to ``detect_max_side``, up to ``detect_min_side``."""
        side = max(height, width)
        if side > self.detect_max_side:
            return self.detect_max_side / side
        if side < self.detect_min_side:
            # HOG finds no face under ~80 px; a small photo is enlarged so that its face is found
            # and the photo gets the more useful status `iris_too_small` rather than `no_face`.
            return self.detect_min_side / side
        return 1.0

    def detect(self, rgb: np.ndarray, exhaustive: bool = False) -> list[FaceDetection]:
        """Faces scoring at least ``min_score`` in an RGB image, full-resolution boxes, largest first.

        HOG scores real faces at about 0.5-3 and its false positives (a textured patch of the
        background, say) near 0: without the threshold such a patch can be the "largest face".
        With ``detect_first_side`` set, a cheap pass on a copy that small comes first (about 3x
        faster than 512 px for HOG); the full ``detect_max_side`` pass runs only where it finds no
        face, or always when ``exhaustive`` (to count every face, small ones included). Where that
        finds none either, the ``fallback`` detector looks at a ``fallback_side`` copy.
        """
        self.load()
        height, width = rgb.shape[:2]
        scale = self.detection_scale(height, width)
        if not exhaustive and self.detect_first_side and max(height, width) * scale > self.detect_first_side:
            faces = self._detect_at(rgb, self.detect_first_side / max(height, width))
            if faces:
                return faces
        faces = self._detect_at(rgb, scale)
        if not faces and self._fallback is not None:
            faces = self._detect_at(rgb, self.fallback_side / max(height, width), fallback=True)
        return faces

    def _detect_at(self, rgb: np.ndarray, scale: float, fallback: bool = False) -> list[FaceDetection]:
        height, width = rgb.shape[:2]
        small = rgb
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        detector = self._fallback if fallback else self._detector
        if (self.fallback if fallback else self.detector_name) == "cnn":
            found = [(d.rect, float(d.confidence)) for d in detector(small, self.upsample)]
        else:
            rects, scores, _ = detector.run(small, self.upsample, 0.0)
            found = list(zip(rects, (float(s) for s in scores), strict=True))
        faces = []
        for rect, score in found:
            box = (
                max(0, int(rect.left() / scale)),
                max(0, int(rect.top() / scale)),
                min(width, int(round((rect.right() + 1) / scale))),
                min(height, int(round((rect.bottom() + 1) / scale))),
            )
            if box[2] > box[0] and box[3] > box[1] and score >= self.min_score:
                faces.append(FaceDetection(box=box, score=score))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 68 landmarks (68x2 float32, x then y) of the face in ``box``, fitted at full resolution."""
        import dlib

        self.load()
        shape = self._predictor(rgb, dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------------------------- eyes


def face_descriptor(
    image: np.ndarray, face_box: Box, landmarks: np.ndarray, padding: float = 0.25
) -> np.ndarray:
    """dlib's 128-d face descriptor of an RGB photo's face (its recognition ResNet, trained on real faces to tell
    identities apart), the face aligned by its 68 landmarks (full-resolution pixel coordinates). ``padding``:
    the border around the aligned face, as a share of its size (dlib's default, 0.25, is what the network was
    trained with)."""
    import dlib

    points = np.asarray(landmarks)
    if points.shape != (68, 2):
        raise ValueError(f"face_descriptor needs the 68 landmarks as (68, 2), got {points.shape}")
    net = _cached_model(
        dlib.face_recognition_model_v1,
        face_models_dir() / "dlib_face_recognition_resnet_model_v1.dat",
        "dlib's face recognition model",
    )
    x0, y0, x1, y1 = (int(round(v)) for v in face_box)
    shape = dlib.full_object_detection(
        dlib.rectangle(x0, y0, x1, y1), [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    )
    return np.array(net.compute_face_descriptor(np.ascontiguousarray(image), shape, 0, padding), np.float32)


def eye_width(points: np.ndarray) -> float:
    """Corner-to-corner width of one eye's six landmarks."""
    return float(np.linalg.norm(points[3] - points[0]))


# (lower-lid landmark, mouth-corner landmark) of each cheek
CHEEKS = ((41, 48), (46, 54))
# cheek L* (OpenCV's 0-255 scale) below which a face counts as darker-looking
DARKER_LIGHTNESS = 120.0


def cheek_lightness(rgb: np.ndarray, points: np.ndarray) -> float:
    """Median L* (CIELAB, 0-255 as OpenCV scales it) of two small cheek patches, each between the lower lid and the
    mouth corner (their side 12% of the outer eye-corner distance). It reads the skin and the light together: a
    face in shadow is darker-looking too."""
    points = np.asarray(points, float)
    lightness = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)[..., 0]
    r = max(2, int(0.06 * np.linalg.norm(points[45] - points[36])))
    patches = []
    for lid, mouth in CHEEKS:
        x, y = (0.45 * points[lid] + 0.55 * points[mouth]).astype(int)
        patch = lightness[max(0, y - r) : y + r, max(0, x - r) : x + r]
        if patch.size:
            patches.append(np.median(patch))
    return float(np.mean(patches)) if patches else float("nan")


def eye_openness(points: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova & Cech 2016): lid distance over eye width, ~0.3 open, < 0.15 closed."""
    width = eye_width(points)
    if width <= 0:
        return 0.0
    lids = np.linalg.norm(points[1] - points[5]) + np.linalg.norm(points[2] - points[4])
    return float(lids / (2.0 * width))


def eye_box(points: np.ndarray, margin: float) -> Box:
    """Square box centred on one eye's landmarks, side = eye width x (1 + 2 x margin).

    Square and wider than the lids because the iris circle (about half the eye width) reaches above
    and below the visible eye opening, and its square crop with margin must fit inside the eye crop.
    """
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = max(1, int(round(side)))
    return (left, top, left + side, top + side)


def crop_with_padding(image: np.ndarray, box: Box) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` where the box may leave the image; outside pixels repeat the edge."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    inner = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    pads = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    if inner.size == 0:  # wholly outside: nothing to replicate
        return np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), dtype=image.dtype)
    if any(pads):
        inner = cv2.copyMakeBorder(inner, *pads, borderType=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(inner)
