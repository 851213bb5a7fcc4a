"""Common image degradations, for robustness tests and for training-time augmentation.

The same functions serve both, as in CNNDetection (Wang et al. 2020), which trains with blur and JPEG to
survive them at test time. They act on RGB uint8 images (an iris pair or a whole photo).

Photo-level degradations (``PHOTO_DEGRADATIONS``, ``write_degraded_photo``) change the photo file a user
would have, before the whole pipeline runs on it: a re-encode, a smaller copy (``shrink``: down-scaled, not
scaled back up), a grayscale copy (saved as a one-channel file), a colour cast (white balance). An adversary's
other one-step edits are named too (``ADVERSARY_DEGRADATIONS``): sharpening, a gamma curve, a tighter crop, a
small rotation and an enlarged copy. ``vivid`` is the over-processed look of many diffusion faces (more saturation,
local contrast and sharpening); ``vivid_copy`` draws its strengths from a photo's pixels, to make pseudo-generated
copies of real photos for the face cue (``irisgan.ensemble --face-vivid``).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import cv2
import numpy as np

# name -> (kind, parameter). Robustness reports use these names as rows.
DEGRADATIONS: dict[str, tuple[str, float]] = {
    "clean": ("none", 0.0),
    "jpeg90": ("jpeg", 90),
    "jpeg70": ("jpeg", 70),
    "jpeg50": ("jpeg", 50),
    "blur1": ("blur", 1.0),
    "blur2": ("blur", 2.0),
    "resize0.5": ("resize", 0.5),
    "resize0.25": ("resize", 0.25),
    "noise5": ("noise", 5.0),
    "noise10": ("noise", 10.0),
    "shrink0.5": ("shrink", 0.5),
    "shrink0.25": ("shrink", 0.25),
    "grayscale": ("grayscale", 0.0),
    "cast0.15": ("cast", 0.15),
    "sharpen1": ("sharpen", 1.0),
    "gamma0.7": ("gamma", 0.7),
    "gamma1.4": ("gamma", 1.4),
    "crop0.8": ("crop", 0.8),
    "rotate5": ("rotate", 5.0),
    "upscale2": ("upscale", 2.0),
    "saturate1.3": ("saturate", 1.3),
    "clahe2": ("clahe", 2.0),
    "vivid1": ("vivid", 1.0),
}
KINDS = ("jpeg", "blur", "resize", "noise")  # what training-time augmentation draws from
RESIZING = ("shrink", "crop", "upscale")  # kinds that change the photo's size: photo-level only
PHOTO_KINDS = (
    *KINDS,
    "grayscale",
    "cast",
    "sharpen",
    "gamma",
    "rotate",
    "saturate",
    "clahe",
    "vivid",
    *RESIZING,
)
# What `evaluate photo_robustness=true` runs through the whole pipeline by default.
PHOTO_DEGRADATIONS = (
    "clean",
    "jpeg90",
    "jpeg70",
    "jpeg50",
    "shrink0.5",
    "shrink0.25",
    "grayscale",
    "cast0.15",
)
# Edits that keep the photo looking the same to a person: what someone hiding a GAN face would try next.
ADVERSARY_DEGRADATIONS = ("noise5", "sharpen1", "gamma0.7", "gamma1.4", "crop0.8", "rotate5", "upscale2")
# A real photo edited to look generated: what the vivid pseudo-fakes could make the detector call GAN.
VIVID_DEGRADATIONS = ("saturate1.3", "clahe2", "vivid1")
# vivid_copy's strengths, each drawn uniformly: saturation gain, CLAHE clip limit, unsharp amount.
VIVID_RANGES = ((1.1, 1.5), (1.0, 3.0), (0.3, 0.9))


def parse(name: str) -> tuple[str, float]:
    """``jpeg70`` -> ("jpeg", 70.0); names outside the table work too (``blur1.5``, ``resize0.3``)."""
    if name in DEGRADATIONS:
        return DEGRADATIONS[name]
    m = re.fullmatch(
        r"(jpeg|blur|resize|noise|shrink|cast|sharpen|gamma|crop|rotate|upscale|saturate|clahe|vivid)([0-9.]+)",
        name,
    )
    if not m:
        raise ValueError(
            f"unknown degradation {name!r}; use one of {list(DEGRADATIONS)} or KIND+VALUE with KIND in "
            f"{[k for k in PHOTO_KINDS if k != 'grayscale']}"
        )
    return m.group(1), float(m.group(2))


def apply(image: np.ndarray, kind: str, value: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Degrade one RGB uint8 image."""
    if kind == "none":
        return image
    if kind == "jpeg":
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(value)]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), sigmaX=float(value)) if value > 0 else image
    if kind == "resize":
        h, w = image.shape[:2]
        small = cv2.resize(
            image, (max(1, round(w * value)), max(1, round(h * value))), interpolation=cv2.INTER_AREA
        )
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if kind == "noise":
        rng = rng or np.random.default_rng()
        noisy = image.astype(np.float32) + rng.normal(0.0, value, image.shape).astype(np.float32)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    if kind == "shrink":
        h, w = image.shape[:2]
        size = (max(1, round(w * value)), max(1, round(h * value)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if kind == "grayscale":  # BT.601 luma in all three channels, as a grayscale file decodes
        return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if kind == "cast":  # a warm white balance: red up, blue down by ``value``
        gains = np.array([1.0 + value, 1.0, 1.0 - value], np.float32)
        return np.clip(image.astype(np.float32) * gains, 0, 255).round().astype(np.uint8)
    if kind == "sharpen":  # unsharp mask: the image plus ``value`` times its detail above a σ 1.5 blur
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=1.5).astype(np.float32)
        sharp = image.astype(np.float32) * (1 + value) - blurred * value
        return np.clip(sharp, 0, 255).round().astype(np.uint8)
    if kind == "saturate":  # the HSV saturation times ``value``
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * value, 0, 255)
        return cv2.cvtColor(hsv.round().astype(np.uint8), cv2.COLOR_HSV2RGB)
    if kind == "clahe":  # local contrast: CLAHE on the lightness, clip limit ``value``, 8 x 8 tiles
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clipLimit=float(value), tileGridSize=(8, 8)).apply(lab[..., 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if kind == "vivid":  # the three at once, ``value`` 1: saturation 1.3, CLAHE clip 2, sharpening 0.6
        return vivid(image, 1 + 0.3 * value, 2 * value, 0.6 * value)
    if kind == "gamma":  # a tone curve: below 1 brightens the shadows, above 1 darkens them
        table = (255 * (np.arange(256) / 255) ** value).round().astype(np.uint8)
        return cv2.LUT(image, table)
    if kind == "rotate":  # ``value`` degrees anticlockwise about the centre, the borders mirrored
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), value, 1.0)
        return cv2.warpAffine(
            image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    if kind == "crop":  # the centre ``value`` of each side
        h, w = image.shape[:2]
        ch, cw = max(1, round(h * value)), max(1, round(w * value))
        top, left = (h - ch) // 2, (w - cw) // 2
        return np.ascontiguousarray(image[top : top + ch, left : left + cw])
    if kind == "upscale":
        h, w = image.shape[:2]
        size = (max(1, round(w * value)), max(1, round(h * value)))
        return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    raise ValueError(f"unknown degradation kind {kind!r}; valid: {PHOTO_KINDS}")


def vivid(image: np.ndarray, saturation: float, clip: float, amount: float) -> np.ndarray:
    """More saturation, then local contrast, then sharpening: the look of many diffusion faces."""
    out = apply(image, "saturate", saturation)
    out = apply(out, "clahe", clip) if clip > 0 else out
    return apply(out, "sharpen", amount)


def vivid_copy(image: np.ndarray) -> np.ndarray:
    """A vivid copy of a photo with strengths drawn from ``VIVID_RANGES`` by a generator seeded with the photo's
    pixels: the same photo always gets the same copy, without a key to carry."""
    rng = np.random.default_rng(zlib.crc32(np.ascontiguousarray(image).tobytes()))
    return vivid(image, *(rng.uniform(lo, hi) for lo, hi in VIVID_RANGES))


def degrade(image: np.ndarray, name: str, rng: np.random.Generator | None = None) -> np.ndarray:
    kind, value = parse(name)
    return apply(image, kind, value, rng)


def degrade_batch(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """Degrade (N, 3, H, W) uint8 pairs (a test set), deterministically from ``seed``."""
    if parse(name)[0] in RESIZING:
        raise ValueError(
            f"{name} changes the image size: a photo-level degradation (evaluate photo_degradations)"
        )
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = degrade(np.ascontiguousarray(img.transpose(1, 2, 0)), name, rng).transpose(2, 0, 1)
    return out


def write_degraded_photo(source: str | Path, name: str, out_stem: Path, seed: int = 0) -> Path:
    """Write ``source`` degraded by ``name`` as a new photo file ``out_stem`` + suffix; returns its path.

    ``clean`` copies the file's bytes; ``jpegQ`` re-encodes the photo as JPEG at quality Q; ``grayscale`` writes
    a one-channel PNG; the others a lossless PNG, so that only the named change reaches the pipeline.
    """
    from irisgan.data.pairs_format import write_bytes_atomic
    from irisgan.extraction.faces import read_image

    source, out_stem = Path(source), Path(out_stem)
    kind, value = parse(name)
    # the stem may hold dots of its own (``trunc-0.7_seed1``): the suffix is appended, never swapped in
    suffixed = lambda suffix: out_stem.parent / (out_stem.name + suffix)  # noqa: E731
    if kind == "none":
        path = suffixed(source.suffix.lower())
        write_bytes_atomic(path, source.read_bytes())
        return path
    rgb = read_image(source)
    if kind == "jpeg":
        path, params, image = suffixed(".jpg"), [cv2.IMWRITE_JPEG_QUALITY, int(value)], rgb
    else:
        path, params = suffixed(".png"), []
        image = apply(rgb, kind, value, np.random.default_rng(seed))
    if kind == "grayscale":
        image = image[..., 0]
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise RuntimeError(f"{source}: encoding the {name} copy failed")
    write_bytes_atomic(path, buf.tobytes())
    return path


class RandomDegradation:
    """Training-time augmentation: with probability ``p`` one degradation of a random kind and strength
    (JPEG quality 30-95, blur sigma 0-2, down-up scaling 0.25-0.9, noise sigma 0-10)."""

    RANGES = {"jpeg": (30, 95), "blur": (0.0, 2.0), "resize": (0.25, 0.9), "noise": (0.0, 10.0)}

    def __init__(self, p: float = 0.5, kinds: list[str] | tuple[str, ...] = KINDS) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"degradation probability must be in [0, 1], got {p}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown degradation kinds {sorted(unknown)}; valid: {KINDS}")
        self.p, self.kinds = p, tuple(kinds)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.kinds or rng.random() >= self.p:
            return image
        kind = self.kinds[rng.integers(len(self.kinds))]
        lo, hi = self.RANGES[kind]
        return apply(image, kind, rng.uniform(lo, hi), rng)
