"""The embedded default data set for the classifier: synthetic iris pairs, real-like and GAN-like.

Each pair is two rendered iris crops (sclera and eyelid skin at the corners, a dark limbus, an iris
with radial fibre texture, a dark pupil, a corneal highlight from a light shared by the two eyes),
joined with ``join_pair`` exactly as the extractor joins real crops, and written in the iris-pairs
format (``pairs.csv`` with ``path,label,cues``).

Real pairs: both eyes share iris colour and texture style, round pupils of similar size, and
highlights of one shape at one position relative to the iris (one light), up to natural jitter.
GAN-like pairs carry 1-3 cue families (up to 4 at low difficulty) reported for GAN faces (Guo et al. 2022 and the works it cites):
``highlight`` (the two eyes' highlights differ in position, number or shape), ``pupil``
(irregular, non-elliptical outline), ``colour`` (the irises differ in colour), and one texture
artifact: ``checkerboard`` (periodic up-sampling pattern), ``blotchy`` (smeared, blob-like iris
texture) or ``seam`` (a blending seam at the limbus).

``difficulty`` in [0, 1] shrinks the cue magnitudes and widens the natural variation of real pairs
(highlight jitter, pupil size and lighting differences between the eyes) so that the classes overlap;
the photographic nuisances (exposure, colour cast, blur, noise, JPEG loss, framing, eyelids) apply to
both classes alike, so no global image statistic gives the label away.

Pair ``i`` of a set is a function of ``(seed, split, i)`` alone; a set is cached on disk under a
folder named after all its parameters and ``GENERATOR_VERSION`` (``irisgan.data.synthetic_common``:
an interrupted or damaged set is redone rather than half-used).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from irisgan.data.pairs_format import (
    PAIR_SIZE,
    join_pair,
    read_pairs_csv,
    write_bytes_atomic,
    write_image_atomic,
    write_pairs_csv,
)
from irisgan.data.synthetic_common import IRIS_CROP_SKIN_TONES, ensure_cached

log = logging.getLogger(__name__)

# Bump whenever the rendering changes: the version is part of the cache folder name, so a new
# generator never reuses pairs that an older one wrote.
GENERATOR_VERSION = 3

# Each eye is rendered on a square canvas twice the width it ends up with in the 96x96 pair
# (join_pair squeezes two squares side by side into one square), like an extractor crop.
EYE_CANVAS = 96

CUE_FAMILIES = ("highlight", "pupil", "colour", "texture")
TEXTURE_ARTIFACTS = ("checkerboard", "blotchy", "seam")

# (outer iris, inner iris around the pupil), RGB in [0, 1].
IRIS_COLOURS = {
    "brown": ((0.30, 0.19, 0.11), (0.24, 0.14, 0.08)),
    "dark_brown": ((0.17, 0.11, 0.07), (0.13, 0.08, 0.05)),
    "blue": ((0.34, 0.42, 0.50), (0.40, 0.44, 0.46)),
    "green": ((0.30, 0.36, 0.26), (0.40, 0.34, 0.20)),
    "hazel": ((0.34, 0.30, 0.18), (0.38, 0.24, 0.12)),
    "grey": ((0.40, 0.42, 0.43), (0.36, 0.36, 0.34)),
}
SPLIT_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class Highlight:
    """One corneal reflection, placed relative to the iris centre in units of the iris radius."""

    dx: float
    dy: float
    radius: float  # in iris radii
    aspect: float  # height / width
    angle: float  # radians
    squareness: float  # superellipse exponent: 2 = ellipse, larger = a window-like rounded rectangle
    intensity: float


@dataclass
class EyeParams:
    """Everything that fixes one rendered iris crop. Coordinates are in half-canvas units ([-1, 1])."""

    centre: tuple[float, float]
    iris_radius: float
    aspect: float  # horizontal squash of the iris (gaze / head pose)
    pupil_ratio: float  # pupil radius / iris radius
    pupil_offset: tuple[float, float]  # in iris radii
    pupil_harmonics: np.ndarray  # (k, amplitude, phase) rows: outline radius * (1 + sum a cos(k t + p))
    outer_colour: np.ndarray
    inner_colour: np.ndarray
    collarette: float  # radius (in iris radii) where the inner colour gives way to the outer one
    fibre_amplitudes: np.ndarray  # (layers, frequencies): the fibres' angular spectrum, a texture "style"
    fibre_phases: np.ndarray  # (layers, frequencies): the actual pattern, different in every iris
    fibre_twist: np.ndarray  # (layers,) angular drift from pupil to limbus, in turns: slanted fibres
    fibre_contrast: float
    crypt_noise: np.ndarray  # small grid of noise, up-sampled into dark crypts and light patches
    crypt_contrast: float
    limbus_darkening: float
    limbus_softness: float  # width of the iris edge in iris radii
    sclera: np.ndarray
    skin: np.ndarray
    upper_lid: tuple[float, float, float]  # (height at apex, curvature, apex offset)
    lower_lid: tuple[float, float, float]
    highlights: list[Highlight]
    gain: np.ndarray  # per-channel exposure of this eye (lighting can differ between the eyes)
    checker_amplitude: float = 0.0
    checker_period: int = 4
    blotch_mix: float = 0.0
    blotch_noise: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 3)))
    seam_amplitude: float = 0.0
    seam_colour: np.ndarray = field(default_factory=lambda: np.ones(3))


def _smooth_step(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _coverage(signed_distance: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased inside-ness of a shape from a signed distance (positive inside)."""
    return np.clip(0.5 + signed_distance / width, 0.0, 1.0)


def _upsampled_noise(noise: np.ndarray, size: int) -> np.ndarray:
    """A small noise grid (h x w or h x w x c) smoothly up-sampled to size x size, flattened (c x N)."""
    out = cv2.resize(noise.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(1, -1) if out.ndim == 2 else out.reshape(-1, out.shape[2]).T


def _rgb(colour) -> np.ndarray:
    """A colour as a float32 column, to broadcast over flattened 3 x N images."""
    return np.asarray(colour, dtype=np.float32).reshape(3, 1)


def _blend(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """In place: image = image * (1 - alpha) + colour * alpha."""
    layer = colour - image
    layer *= alpha
    image += layer


# A fibre layer's angular profile is sum_f a_f cos(f t + phase_f) = C @ (a cos phase) - S @ (a sin phase).
_PROFILE_SAMPLES = 256
_PROFILE_FREQUENCIES = np.arange(1, 61)
_PROFILE_COS = np.cos(
    np.outer(np.arange(_PROFILE_SAMPLES) * (2 * np.pi / _PROFILE_SAMPLES), _PROFILE_FREQUENCIES)
)
_PROFILE_SIN = np.sin(
    np.outer(np.arange(_PROFILE_SAMPLES) * (2 * np.pi / _PROFILE_SAMPLES), _PROFILE_FREQUENCIES)
)


def render_iris(p: EyeParams, size: int = EYE_CANVAS) -> np.ndarray:
    """Render one iris crop as a float32 ``size`` x ``size`` x 3 RGB image (linear-ish, ~[0, 1])."""
    # Images are flattened channels-first (3 x N) and float32, scalars Python floats: numpy is several
    # times slower on a trailing axis of 3 and on float64 transcendentals, and 2400 pairs must be quick.
    pixel = 2.0 / size
    axis = (np.arange(size, dtype=np.float32) + 0.5) * pixel - 1.0
    u, v = (grid.ravel() for grid in np.meshgrid(axis, axis))  # u to the right, v downwards
    cx, cy = float(p.centre[0]), float(p.centre[1])
    R = float(p.iris_radius)
    x = (u - cx) / float(p.aspect)
    y = v - cy
    d = np.hypot(x, y) / R  # 1 at the limbus
    theta = np.arctan2(y, x)

    # Sclera, darker towards the corners of the crop.
    image = _rgb(p.sclera) * (1.0 - 0.3 * u**2 - 0.15 * v**2)

    # Iris: inner/outer colour zones, radial fibres, crypts and a dark limbus ring.
    collarette = float(p.collarette)
    zone = _smooth_step(collarette - 0.08, collarette + 0.08, d)
    base = _rgb(p.inner_colour) + (_rgb(p.outer_colour) - _rgb(p.inner_colour)) * zone
    fibres = np.zeros_like(d)
    for amplitudes, phases, twist in zip(p.fibre_amplitudes, p.fibre_phases, p.fibre_twist):
        # Each layer is an angular profile (random phases) swept along slanted radial lines.
        profile = _PROFILE_COS @ (amplitudes * np.cos(phases)) - _PROFILE_SIN @ (amplitudes * np.sin(phases))
        profile = (profile / (profile.std() + 1e-6)).astype(np.float32)
        position = (theta + float(2 * np.pi * twist) * d) * (_PROFILE_SAMPLES / (2 * np.pi))
        below = np.floor(position)
        weight = position - below
        below = below.astype(np.int64) % _PROFILE_SAMPLES
        fibres += profile[below] * (1.0 - weight) + profile[(below + 1) % _PROFILE_SAMPLES] * weight
    fibres *= 1.0 / np.sqrt(len(p.fibre_twist))
    crypts = _upsampled_noise(p.crypt_noise, size)[0]
    limbus = 1.0 - float(p.limbus_darkening) * _smooth_step(0.72, 1.0, d)
    texture = (
        1.0 + float(p.fibre_contrast) * fibres * (0.5 + 0.5 * d) + float(p.crypt_contrast) * crypts
    ) * limbus
    iris = base * texture
    if p.blotch_mix > 0:
        # GAN-like smeared texture: fibres replaced by soft colour blobs.
        smeared = base * (1.0 + _upsampled_noise(p.blotch_noise, size)) * limbus
        _blend(iris, smeared, float(p.blotch_mix))
    if p.seam_amplitude > 0:
        # A blending seam: a thin off-colour ring where a pasted iris meets the eye.
        ring = np.exp(-(((d - 0.96) / 0.05) ** 2))
        _blend(iris, _rgb(p.seam_colour), float(p.seam_amplitude) * ring)
    _blend(image, iris, _coverage(1.0 - d, max(float(p.limbus_softness), pixel / R)))

    # Pupil: round unless its outline carries harmonics.
    px = x - float(p.pupil_offset[0]) * R
    py = y - float(p.pupil_offset[1]) * R
    pupil_angle = np.arctan2(py, px)
    outline = np.ones_like(pupil_angle)
    for k, amplitude, phase in p.pupil_harmonics:
        outline += float(amplitude) * np.cos(float(k) * pupil_angle + float(phase))
    pupil_alpha = _coverage(float(p.pupil_ratio) * R * outline - np.hypot(px, py), 1.6 * pixel)
    _blend(image, 0.03 + 0.1 * base, pupil_alpha)

    # Corneal highlights, composited before the lids so that a lid can hide them.
    for h in p.highlights:
        hx = x - float(h.dx) * R
        hy = y - float(h.dy) * R
        ca, sa = float(np.cos(h.angle)), float(np.sin(h.angle))
        size_x = float(h.radius) * R
        qx = np.abs(ca * hx + sa * hy) / size_x
        qy = np.abs(-sa * hx + ca * hy) / (size_x * float(h.aspect))
        n = float(h.squareness)
        q = (qx**n + qy**n) ** (1.0 / n)
        core = _coverage((1.0 - q) * size_x, 1.4 * pixel)
        glow = 0.25 * np.exp(-((q / 1.8) ** 2))
        _blend(image, np.float32(0.98), float(h.intensity) * np.maximum(core, glow))

    if p.checker_amplitude > 0:
        # Up-sampling (transposed convolution) artifact: a faint periodic checkerboard.
        cells = (np.arange(size) // (p.checker_period // 2)) % 2
        checker = (cells[:, None] ^ cells[None, :]).astype(np.float32).ravel() * 2.0 - 1.0
        image *= 1.0 + float(p.checker_amplitude) * checker

    # Eyelids: an arched upper lid with a crease, a dark lash line and a shadow on the eye below it;
    # a flatter lower lid with a light wet rim.
    top_height, top_curve, top_apex = (float(a) for a in p.upper_lid)
    bottom_height, bottom_curve, bottom_apex = (float(a) for a in p.lower_lid)
    below_upper = v - (top_height + top_curve * (u - top_apex) ** 2)
    above_lower = (bottom_height - bottom_curve * (u - bottom_apex) ** 2) - v
    image *= 1.0 - 0.5 * np.exp(-np.maximum(below_upper, 0.0) / 0.1)
    skin = _rgb(p.skin)
    crease = 1.0 - 0.3 * np.exp(-(((below_upper + 0.3) / 0.08) ** 2))
    _blend(
        image, skin * (crease * (0.9 + 0.1 * np.cos(0.5 * np.pi * u))), _coverage(-below_upper, 1.5 * pixel)
    )
    lashes = np.exp(-(((below_upper + 0.04) / 0.06) ** 2)) * (
        0.7 + 0.3 * np.cos(41.0 * u + 13.0 * below_upper)
    )
    image *= 1.0 - 0.85 * lashes
    lower_skin = skin * (1.0 - 0.15 * _smooth_step(0.0, 0.3, -above_lower))
    _blend(lower_skin, _rgb((0.9, 0.7, 0.7)), 0.5 * np.exp(-(((above_lower + 0.04) / 0.035) ** 2)))
    _blend(image, lower_skin, _coverage(-above_lower, 1.5 * pixel))
    image *= _rgb(p.gain)
    return np.ascontiguousarray(image.reshape(3, size, size).transpose(1, 2, 0))


def _cue_scale(difficulty: float) -> float:
    return 1.5 - difficulty


def _natural_variation(difficulty: float) -> float:
    return 0.3 + 1.4 * difficulty


def _draw_highlights(rng: np.random.Generator) -> list[Highlight]:
    """Highlights of one light set-up, relative to the iris; shared by the two eyes of a real face."""
    light_angle = rng.uniform(-np.pi, np.pi)
    distance = rng.uniform(0.15, 0.55)
    shape = rng.choice(["dot", "ellipse", "window"], p=[0.5, 0.25, 0.25])
    squareness = {"dot": 2.0, "ellipse": 2.0, "window": rng.uniform(4.0, 8.0)}[shape]
    aspect = 1.0 if shape == "dot" else rng.uniform(0.45, 0.8)
    highlights = [
        Highlight(
            dx=distance * np.cos(light_angle),
            dy=distance * np.sin(light_angle) - 0.15,  # lights are mostly above the face
            radius=rng.uniform(0.06, 0.13),
            aspect=aspect,
            angle=rng.uniform(0, np.pi),
            squareness=squareness,
            intensity=rng.uniform(0.75, 1.0),
        )
    ]
    if rng.random() < 0.25:  # a second, weaker light
        second_angle = light_angle + rng.uniform(1.5, 4.5)
        highlights.append(
            Highlight(
                dx=0.5 * np.cos(second_angle),
                dy=0.5 * np.sin(second_angle),
                radius=rng.uniform(0.04, 0.07),
                aspect=1.0,
                angle=0.0,
                squareness=2.0,
                intensity=rng.uniform(0.4, 0.75),
            )
        )
    return highlights


def _jitter_highlights(
    rng: np.random.Generator, highlights: list[Highlight], amount: float
) -> list[Highlight]:
    """The same light seen in the other eye: a slightly different place and size (eye curvature, gaze)."""
    return [
        replace(
            h,
            dx=h.dx + rng.normal(0, 0.035 * amount),
            dy=h.dy + rng.normal(0, 0.035 * amount),
            radius=h.radius * (1.0 + rng.normal(0, 0.08 * amount)),
            intensity=float(np.clip(h.intensity * (1.0 + rng.normal(0, 0.08 * amount)), 0.3, 1.0)),
        )
        for h in highlights
    ]


def _draw_face(rng: np.random.Generator, difficulty: float) -> tuple[EyeParams, EyeParams]:
    """Two eyes of one real face: shared anatomy and light, independent fibre detail, natural jitter."""
    natural = _natural_variation(difficulty)
    colour_name = rng.choice(list(IRIS_COLOURS))
    outer, inner = (np.array(c) for c in IRIS_COLOURS[colour_name])
    tint = 1.0 + rng.normal(0, 0.08, 3)
    outer, inner = outer * tint * rng.uniform(0.75, 1.25), inner * tint * rng.uniform(0.75, 1.25)
    # Two fibre layers; the spectrum (a power law with a random slope, peaked at a random frequency)
    # is shared by the two eyes, the phases are not: real irises of one person look alike, not identical.
    frequencies = _PROFILE_FREQUENCIES
    fibre_amplitudes = np.stack(
        [
            frequencies ** rng.uniform(-0.6, 0.1)
            * np.exp(-(((frequencies - rng.uniform(10, 40)) / 25.0) ** 2))
            for _ in range(2)
        ]
    )
    fibre_amplitudes *= rng.uniform(0.5, 1.0, fibre_amplitudes.shape)
    fibre_twist = rng.uniform(-0.12, 0.12, 2)
    skin = IRIS_CROP_SKIN_TONES[rng.integers(len(IRIS_CROP_SKIN_TONES))] * (1.0 + rng.normal(0, 0.05, 3))
    sclera = np.array([0.86, 0.80, 0.78]) * rng.uniform(0.8, 1.05) * (1.0 + rng.normal(0, 0.03, 3))
    radius = rng.uniform(0.74, 0.92)
    pupil_ratio = rng.uniform(0.24, 0.45)
    gaze_squash = 1.0 - abs(rng.normal(0, 0.04))
    cover_top = rng.uniform(0.05, 0.4)
    cover_bottom = rng.uniform(-0.15, 0.2)
    lid_apex = rng.normal(0, 0.15)
    highlights = _draw_highlights(rng)

    eyes = []
    for side in (-1.0, 1.0):  # mirror-image anatomy: the lids' apexes lean towards the nose on both sides
        centre = (rng.normal(0, 0.05), rng.normal(0, 0.05))
        eye_radius = radius * (1.0 + rng.normal(0, 0.03))
        top = centre[1] - eye_radius * (1.0 - np.clip(cover_top + rng.normal(0, 0.05), -0.1, 0.5))
        bottom = centre[1] + eye_radius * (1.0 - np.clip(cover_bottom + rng.normal(0, 0.05), -0.3, 0.3))
        eyes.append(
            EyeParams(
                centre=centre,
                iris_radius=eye_radius,
                aspect=gaze_squash,
                pupil_ratio=float(np.clip(pupil_ratio * (1.0 + rng.normal(0, 0.03 * natural)), 0.15, 0.6)),
                pupil_offset=(rng.normal(0, 0.02), rng.normal(0, 0.02)),
                pupil_harmonics=np.array(
                    [[2.0, abs(rng.normal(0, 0.012 * natural)), rng.uniform(0, 2 * np.pi)]]
                ),
                outer_colour=outer * (1.0 + rng.normal(0, 0.02 * natural, 3)),
                inner_colour=inner * (1.0 + rng.normal(0, 0.02 * natural, 3)),
                collarette=float(rng.uniform(0.5, 0.7)),
                fibre_amplitudes=fibre_amplitudes,
                fibre_phases=rng.uniform(0, 2 * np.pi, fibre_amplitudes.shape),
                fibre_twist=fibre_twist,
                fibre_contrast=float(rng.uniform(0.1, 0.22)),
                crypt_noise=rng.normal(0, 1, (7, 7)),
                crypt_contrast=float(rng.uniform(0.05, 0.12)),
                limbus_darkening=float(rng.uniform(0.35, 0.65)),
                limbus_softness=float(rng.uniform(0.03, 0.06)),
                sclera=sclera,
                skin=skin,
                upper_lid=(top, rng.uniform(0.25, 0.6), centre[0] + side * lid_apex),
                lower_lid=(bottom, rng.uniform(0.1, 0.3), centre[0] - side * lid_apex),
                highlights=_jitter_highlights(rng, highlights, natural),
                gain=np.ones(3) * (1.0 + rng.normal(0, 0.04 * natural)),
            )
        )
    return eyes[0], eyes[1]


def _apply_highlight_cue(rng: np.random.Generator, eye: EyeParams, strength: float) -> None:
    """Make one eye's highlights disagree with the other's: moved, added/removed, or reshaped."""
    mode = rng.choice(["position", "number", "shape"])
    main = eye.highlights[0]
    if mode == "position":
        direction = rng.uniform(0, 2 * np.pi)
        shift = strength * rng.uniform(0.35, 0.7)
        eye.highlights = [
            replace(h, dx=h.dx + shift * np.cos(direction), dy=h.dy + shift * np.sin(direction))
            for h in eye.highlights
        ]
    elif mode == "number" and len(eye.highlights) > 1 and rng.random() < 0.5:
        eye.highlights = eye.highlights[:1]
    elif mode == "number":
        angle = rng.uniform(0, 2 * np.pi)
        eye.highlights = [
            *eye.highlights,
            replace(
                main,
                dx=main.dx + (0.2 + 0.35 * strength) * np.cos(angle),
                dy=main.dy + (0.2 + 0.35 * strength) * np.sin(angle),
                radius=main.radius * rng.uniform(0.6, 1.1),
                intensity=min(1.0, main.intensity * (0.3 + 0.8 * strength)),
            ),
        ]
    else:
        eye.highlights[0] = replace(
            main,
            radius=main.radius * (1.0 + strength * rng.choice([-0.5, 1.0])),
            aspect=main.aspect * (1.0 - 0.6 * strength) if main.aspect > 0.9 else 1.0,
            angle=main.angle + strength * rng.uniform(0.6, 1.5),
            squareness=2.0 if main.squareness > 2.0 else 2.0 + 6.0 * strength,
        )


def _apply_cues(rng: np.random.Generator, eyes: tuple[EyeParams, EyeParams], difficulty: float) -> list[str]:
    """Turn a real face's eyes into a GAN-like pair: 1-3 cue families, each at a random strength.

    Strengths are spread down to faint, so some GAN-like pairs are hard to tell from real ones. Below
    difficulty 0.5 a pair gets one more family with probability ``1 - 2 * difficulty`` (2-4 at 0.0); from
    0.5 up the draws are those of generator version 2.
    """
    scale = _cue_scale(difficulty)
    n_families = int(rng.integers(1, 4))
    if difficulty < 0.5 and rng.random() < 1.0 - 2.0 * difficulty:
        n_families += 1
    families = rng.choice(CUE_FAMILIES, size=n_families, replace=False)
    cues = []
    for family in CUE_FAMILIES:  # fixed order so the cue list reads the same way in every row
        if family not in families:
            continue
        strength = scale * rng.uniform(0.4, 1.0)
        one_eye = eyes[rng.integers(2)]
        both_or_one = eyes if rng.random() < 0.5 else (one_eye,)
        if family == "highlight":
            _apply_highlight_cue(rng, one_eye, strength)
            cues.append("highlight")
        elif family == "pupil":
            for eye in both_or_one:
                ks = rng.choice(np.arange(2, 7), size=3, replace=False)
                amplitudes = strength * rng.uniform(0.06, 0.14, 3)
                eye.pupil_harmonics = np.column_stack([ks, amplitudes, rng.uniform(0, 2 * np.pi, 3)])
            cues.append("pupil")
        elif family == "colour":
            # Towards one of the palette colours farthest from this iris, plus a hue twist.
            palette = [np.array(c) for c in IRIS_COLOURS.values()]
            farthest = np.argsort([-np.abs(outer - one_eye.outer_colour).sum() for outer, _ in palette])[:3]
            outer, inner = palette[farthest[rng.integers(3)]]
            mix = min(1.0, strength * rng.uniform(0.7, 1.0))
            hue_twist = 1.0 + strength * rng.normal(0, 0.25, 3)
            one_eye.outer_colour = (one_eye.outer_colour * (1 - mix) + outer * mix) * hue_twist
            one_eye.inner_colour = (one_eye.inner_colour * (1 - mix) + inner * mix) * hue_twist
            cues.append("colour")
        else:
            artifact = TEXTURE_ARTIFACTS[rng.integers(len(TEXTURE_ARTIFACTS))]
            for eye in both_or_one:
                if artifact == "checkerboard":
                    eye.checker_amplitude = strength * rng.uniform(0.15, 0.3)
                    eye.checker_period = int(rng.choice([6, 8]))
                elif artifact == "blotchy":
                    eye.blotch_mix = min(1.0, strength * rng.uniform(0.8, 1.0))
                    eye.blotch_noise = rng.normal(0, 0.5, (int(rng.integers(5, 10)),) * 2 + (3,))
                else:
                    eye.seam_amplitude = min(1.0, strength * rng.uniform(0.7, 1.0))
                    eye.seam_colour = [eye.sclera * 1.1, eye.outer_colour * 2.0, eye.skin][rng.integers(3)]
                    eye.limbus_softness = 0.01
            cues.append(artifact)
    return cues


def _photograph(rng: np.random.Generator, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Camera and compression nuisances shared by both classes, applied to the two crops together."""
    strip = np.concatenate([left, right], axis=1)
    contrast = float(rng.uniform(0.75, 1.2))
    exposure = float(rng.uniform(0.7, 1.3))
    cast = (1.0 + rng.normal(0, 0.06, 3)).astype(np.float32)
    strip = ((strip - 0.45) * contrast + 0.45) * (exposure * cast)
    strip = cv2.GaussianBlur(strip, (0, 0), float(rng.uniform(0.2, 1.2)))
    strip += float(rng.uniform(0.0, 0.025)) * rng.standard_normal(strip.shape, dtype=np.float32)
    strip8 = np.clip(strip * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(50, 96))
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(strip8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a synthetic pair")
        strip8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    width = left.shape[1]
    return join_pair(strip8[:, :width], strip8[:, width:], PAIR_SIZE)


def render_pair(rng: np.random.Generator, fake: bool, difficulty: float) -> tuple[np.ndarray, list[str]]:
    """One 96x96x3 uint8 pair and the list of cues applied (empty for real)."""
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    left, right = _draw_face(rng, difficulty)
    cues = _apply_cues(rng, (left, right), difficulty) if fake else []
    return _photograph(rng, render_iris(left), render_iris(right)), cues


def _split_key(split: str) -> int:
    # A stable hash (Python's hash() is salted per process): different splits get disjoint streams.
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:8], "little")


def pair_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of pair ``index``: a function of (seed, split, index) alone."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _split_key(split), int(index)]))


def is_fake_index(index: int, fake_fraction: float) -> bool:
    """Spread the fakes evenly over the indices (exactly floor(n * fraction) fakes among the first n)."""
    fraction = Fraction(fake_fraction).limit_denominator(10_000)
    fakes_before = index * fraction.numerator // fraction.denominator
    fakes_through = (index + 1) * fraction.numerator // fraction.denominator
    return fakes_through > fakes_before


def synthetic_set_dir(
    root: str | Path, n_pairs: int, fake_fraction: float, difficulty: float, seed: int, split: str
) -> Path:
    name = (
        f"synthetic_pairs-v{GENERATOR_VERSION}-{split}-n{n_pairs}"
        f"-fake{float(fake_fraction)!r}-difficulty{float(difficulty)!r}-seed{seed}"
    )
    return Path(root) / name


def _validate(
    n_pairs: int, fake_fraction: float, difficulty: float, seed: int, split: str, workers: int
) -> None:
    if not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    if not 0.0 <= fake_fraction <= 1.0:
        raise ValueError(f"fake_fraction must be in [0, 1], got {fake_fraction}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not SPLIT_PATTERN.fullmatch(split):
        raise ValueError(f"split must be letters, digits, '_' or '-' (it names a folder), got {split!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _render_and_write(job: tuple) -> dict:
    folder, index, fake, difficulty, seed, split = job
    image, cues = render_pair(pair_rng(seed, split, index), fake, difficulty)
    relative = f"images/{index:06d}.png"
    write_image_atomic(folder / relative, image)
    return {"path": relative, "label": int(fake), "cues": ";".join(cues)}


def ensure_synthetic_pairs(
    root: str | Path,
    n_pairs: int = 2400,
    fake_fraction: float = 0.5,
    difficulty: float = 0.5,
    seed: int = 0,
    split: str = "train",
    workers: int = 1,
) -> Path:
    """Generate (or reuse if already complete) the set under root/<a folder name derived from all
    parameters + a generator version>, return the path of its pairs.csv. ``workers`` > 1 renders in that
    many processes (each pair depends on its index alone, so the result is identical)."""
    _validate(n_pairs, fake_fraction, difficulty, seed, split, workers)
    folder = synthetic_set_dir(root, n_pairs, fake_fraction, difficulty, seed, split)
    stamp = {
        "generator": "synthetic_pairs",
        "version": GENERATOR_VERSION,
        "params": {
            "n_pairs": n_pairs,
            "fake_fraction": float(fake_fraction),
            "difficulty": float(difficulty),
            "seed": seed,
            "split": split,
        },
    }

    def generate(folder: Path) -> list[str]:
        log.info("generating %d synthetic iris pairs into %s", n_pairs, folder)
        started = time.perf_counter()
        jobs = [
            (folder, index, is_fake_index(index, fake_fraction), difficulty, seed, split)
            for index in range(n_pairs)
        ]
        if workers > 1 and n_pairs >= 256:  # below that, starting the processes costs more than it saves
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                rows = pool.map(_render_and_write, jobs, chunksize=64)
        else:
            rows = [_render_and_write(job) for job in jobs]
        write_pairs_csv(folder / "pairs.csv", rows)
        log.info("generated %d synthetic iris pairs in %.1f s", n_pairs, time.perf_counter() - started)
        return ["pairs.csv", *(row["path"] for row in rows)]

    return ensure_cached(folder, stamp, generate, "synthetic iris pairs") / "pairs.csv"


def save_contact_sheet(csv_path: str | Path, out_png: str | Path, columns: int = 8, rows: int = 4) -> Path:
    """A labelled grid of the first real and GAN-like pairs of a set (half of each), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path = Path(csv_path)
    table = read_pairs_csv(csv_path)
    per_class = columns * rows // 2
    reals = [r for r in table if r["label"] == "0"]
    fakes = [r for r in table if r["label"] == "1"]
    chosen = reals[:per_class] + fakes[:per_class]
    if not chosen:
        raise ValueError(f"{csv_path}: no pairs to show")
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.85), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, chosen):
        bgr = cv2.imread(str(csv_path.parent / row["path"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"{csv_path}: cannot read image {row['path']}")
        ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        title = "real" if row["label"] == "0" else "GAN: " + row.get("cues", "").replace(";", "\n")
        ax.set_title(title, fontsize=7, color="tab:green" if row["label"] == "0" else "tab:red")
    fig.tight_layout(pad=0.3)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    # A 256-colour palette keeps the sheet small enough to commit (about a fifth of full colour).
    sheet = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    encoded = io.BytesIO()
    sheet.save(encoded, format="png", optimize=True)
    write_bytes_atomic(out_png, encoded.getvalue())
    return out_png
