"""Rendering one synthetic iris crop (``render_iris``) from the parameters that fix it (``EyeParams``):
sclera and eyelid skin at the corners, a dark limbus, an iris with radial fibre texture, a dark pupil and
corneal highlights. ``irisgan.synthetic.pairs`` draws the parameters of both eyes of a face (and the
GAN cues) and joins two crops into a pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Each eye is rendered on a square canvas twice the width it ends up with in the 96x96 pair
# (join_pair squeezes two squares side by side into one square), like an extractor crop.
EYE_CANVAS = 96


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
PROFILE_FREQUENCIES = np.arange(1, 61)
_PROFILE_COS = np.cos(
    np.outer(np.arange(_PROFILE_SAMPLES) * (2 * np.pi / _PROFILE_SAMPLES), PROFILE_FREQUENCIES)
)
_PROFILE_SIN = np.sin(
    np.outer(np.arange(_PROFILE_SAMPLES) * (2 * np.pi / _PROFILE_SAMPLES), PROFILE_FREQUENCIES)
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
