"""Drawing one synthetic periocular image and its class masks (``render_periocular``), for
``irisgan.synthetic.eyes``, which caches a set of them in the UBIPR format.

``SyntheticEyesParams`` (what determines a set) and ``GENERATOR_VERSION`` live here, beside the drawing
they describe, so that the renderer needs nothing from the generator that caches its output.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from irisgan.synthetic.common import (
    EYE_IMAGE_HAIR_TONES,
    EYE_IMAGE_IRIS_TONES,
    EYE_IMAGE_SKIN_TONES,
    rgb255,
)

GENERATOR_VERSION = 1  # bump whenever the drawing changes, so stale caches are not reused


@dataclass(frozen=True)
class SyntheticEyesParams:
    """What determines a synthetic set; every field is part of the cache folder's name."""

    count: int = 2400
    image_size: int = 128
    seed: int = 0
    closed_eye_fraction: float = 0.03  # eyes drawn shut: no iris mask, skipped (and counted) by the loader

    def folder_name(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return (
            f"synthetic_eyes_v{GENERATOR_VERSION}_n{self.count}_s{self.image_size}_seed{self.seed}_{digest}"
        )


# The palettes in the 0-255 units the drawing uses.
SKIN_TONES = rgb255(EYE_IMAGE_SKIN_TONES)
IRIS_TONES = rgb255(EYE_IMAGE_IRIS_TONES)
HAIR_TONES = rgb255(EYE_IMAGE_HAIR_TONES)


# ----------------------------------------------------------------------------------------------
# Drawing. Everything is drawn at 1.5x the output size on a 1.35x larger canvas (so the final
# rotation never shows an empty border), then warped, shrunk with area averaging (anti-aliasing)
# and degraded. Coordinates are in pixels of that canvas; ``w`` is the eye opening's width.
# ----------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a few random values bicubically enlarged."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _strokes(layer: np.ndarray, polylines: np.ndarray, value: float, thickness: int) -> None:
    """Draw many anti-aliased open polylines (n x points x 2, float pixel coordinates) in one call."""
    if len(polylines):
        cv2.polylines(layer, list(polylines.round().astype(np.int32)), False, value, thickness, cv2.LINE_AA)


def _jitter_color(rng: np.random.Generator, palette: np.ndarray, spread: float) -> np.ndarray:
    base = palette[rng.integers(len(palette))]
    return np.clip(base * rng.uniform(1 - spread, 1 + spread) + rng.normal(0, 8, 3), 0, 255).astype(
        np.float32
    )


def _lid_curves(rng: np.random.Generator, w: float, open_ratio: float):
    """Upper and lower lid as functions of u in [-1, 1] (u = -1 at the inner corner): offsets from the
    corner line, negative = up. The upper lid arches higher and peaks towards the nose; the lower is flatter."""
    height = w * open_ratio
    upper_share = rng.uniform(0.55, 0.72)
    up_h, lo_h = height * upper_share, height * (1 - upper_share)
    up_skew, lo_skew = rng.uniform(-0.25, 0.05), rng.uniform(0.0, 0.3)
    up_pow, lo_pow = rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.4)

    def upper(u):
        return -up_h * np.power(np.clip(1 - u**2, 0, 1), up_pow) * (1 + up_skew * u) / (1 + abs(up_skew))

    def lower(u):
        return lo_h * np.power(np.clip(1 - u**2, 0, 1), lo_pow) * (1 + lo_skew * u) / (1 + abs(lo_skew))

    return upper, lower


def render_periocular(
    rng: np.random.Generator, params: SyntheticEyesParams
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One synthetic eye crop: (RGB uint8 SxSx3, {"iris", "sclera", "eyebrow": bool SxS})."""
    out_size = params.image_size
    work = int(1.5 * out_size)  # drawing resolution of the final view
    canvas = int(work * 1.35)
    centre = np.array([canvas / 2, canvas / 2])
    # The extractor cuts a square of side eye width x (1 + 2 x margin) around the eye: the opening spans
    # 67% of the crop at its default margin 0.25, 56% at 0.4; the range covers other margins too.
    w = work * rng.uniform(0.45, 0.8)
    inner_on_left = rng.random() < 0.5  # which side the nose is on
    closed = rng.random() < params.closed_eye_fraction
    open_ratio = rng.uniform(0.02, 0.09) if closed else rng.uniform(0.26, 0.46)
    tilt = rng.uniform(-0.06, 0.1) * w  # outer corner a little higher than the inner one, usually

    ys, xs = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    side = -1.0 if inner_on_left else 1.0  # u = side * (x - cx) / (w / 2) runs from inner (-1) to outer (+1)
    u_map = side * (xs - centre[0]) / (w / 2)
    base_y = centre[1] - tilt * u_map / 2  # corner line, tilted
    upper, lower = _lid_curves(rng, w, open_ratio)
    inside_u = np.abs(u_map) < 1
    upper_y = base_y + upper(np.clip(u_map, -1, 1))
    lower_y = base_y + lower(np.clip(u_map, -1, 1))
    opening = inside_u & (ys > upper_y) & (ys < lower_y)

    # --- skin -------------------------------------------------------------------------------
    skin = _jitter_color(rng, SKIN_TONES, 0.12)
    img = np.empty((canvas, canvas, 3), np.float32)
    img[:] = skin
    img *= (1 + 0.06 * _smooth_noise(rng, (canvas, canvas), 5))[..., None]
    img += rng.normal(0, rng.uniform(1.5, 5), (canvas, canvas, 1)).astype(np.float32)  # pores
    # Eye socket: darker above the lid crease and under the eye (dark circles), a soft ellipse.
    socket = np.exp(-(((xs - centre[0]) / (0.75 * w)) ** 2 + ((ys - centre[1]) / (0.45 * w)) ** 2))
    img *= (1 - rng.uniform(0.03, 0.2) * socket)[..., None]
    # Lid crease: a dark soft curve above the upper lid.
    crease_gap = w * rng.uniform(0.06, 0.2)
    crease_y = base_y + 1.15 * upper(np.clip(u_map * 0.95, -1, 1)) - crease_gap
    crease = np.exp(-(((ys - crease_y) / (w * rng.uniform(0.015, 0.04))) ** 2)) * (np.abs(u_map) < 1.05)
    img *= (1 - rng.uniform(0.1, 0.4) * crease)[..., None]
    if rng.random() < 0.3:  # eye shadow make-up on the upper lid
        shadow_color = _jitter_color(rng, HAIR_TONES, 0.3) if rng.random() < 0.6 else rng.uniform(60, 200, 3)
        lid_zone = (ys < upper_y) & (ys > crease_y - crease_gap) & (np.abs(u_map) < 1.15)
        lid_zone = cv2.GaussianBlur(lid_zone.astype(np.float32), (0, 0), w * 0.05)
        alpha = rng.uniform(0.2, 0.6) * lid_zone
        img = img * (1 - alpha[..., None]) + shadow_color * alpha[..., None]
    # Under-eye wrinkles: a few faint arcs.
    for _ in range(rng.integers(0, 4)):
        dy = w * rng.uniform(0.05, 0.3)
        wrinkle_y = base_y + lower(np.clip(u_map, -1, 1)) * 1.2 + dy
        wrinkle = np.exp(-(((ys - wrinkle_y) / (w * 0.008 + 1)) ** 2)) * (
            np.abs(u_map) < rng.uniform(0.4, 1.1)
        )
        img *= (1 - rng.uniform(0.03, 0.12) * wrinkle)[..., None]

    # --- eyebrow ------------------------------------------------------------------------------
    brow_mask = np.zeros((canvas, canvas), np.uint8)
    brow_color = _jitter_color(rng, HAIR_TONES, 0.25)
    brow_lift = w * rng.uniform(0.35, 0.75)
    brow_arch = w * rng.uniform(0.05, 0.2)
    brow_thick = w * rng.uniform(0.07, 0.16)
    us = np.linspace(-1.25, 1.35, 40)
    mid_y = centre[1] - brow_lift - brow_arch * (1 - ((us - 0.2) / 1.3) ** 2)
    thick = brow_thick * np.interp(us, [-1.25, 0.3, 1.35], [1.3, 1.0, 0.35])
    brow_x = centre[0] + side * us * w / 2
    top = np.stack([brow_x, mid_y - thick / 2], 1)
    bottom = np.stack([brow_x, mid_y + thick / 2], 1)
    cv2.fillPoly(brow_mask, [np.concatenate([top, bottom[::-1]]).round().astype(np.int32)], 1)
    brow_density = np.zeros((canvas, canvas), np.float32)
    n_hairs = int(rng.uniform(150, 400))  # hair strokes, pointing outwards and a little up
    k = rng.integers(len(us), size=n_hairs)
    hair_start = np.stack([brow_x[k], mid_y[k] + rng.uniform(-0.5, 0.5, n_hairs) * thick[k]], 1)
    hair_angle = np.arctan2(-rng.uniform(0.2, 0.6, n_hairs), side)
    hair_end = hair_start + (w * rng.uniform(0.05, 0.12, n_hairs))[:, None] * np.stack(
        [np.cos(hair_angle), np.sin(hair_angle)], 1
    )
    _strokes(brow_density, np.stack([hair_start, hair_end], 1), 1.0, 1)
    brow_density = np.clip(cv2.GaussianBlur(brow_density, (0, 0), 0.7) * 1.5, 0, 1)
    brow_alpha = np.clip(
        0.55 * cv2.GaussianBlur(brow_mask.astype(np.float32), (0, 0), 2.0) + 0.6 * brow_density, 0, 1
    ) * rng.uniform(0.6, 1.0)
    img = img * (1 - brow_alpha[..., None]) + brow_color * brow_alpha[..., None]

    # --- eyeball: sclera, iris, pupil, highlight -----------------------------------------------
    sclera_color = np.clip(
        np.array([235, 225, 220], np.float32) * rng.uniform(0.6, 0.97)
        + rng.normal(0, 6, 3)
        + np.array([0, -5, -8]) * rng.uniform(0, 2),
        0,
        255,
    )
    eyeball = np.empty_like(img)
    eyeball[:] = sclera_color
    # Sclera darkens towards the corners (the ball curves away from the light).
    eyeball *= (1 - rng.uniform(0.15, 0.4) * np.clip(np.abs(u_map), 0, 1) ** 2)[..., None]
    if rng.random() < 0.3:  # a few red vessels
        for _ in range(rng.integers(2, 6)):
            x0 = centre[0] + side * rng.uniform(0.4, 0.95) * rng.choice([-1, 1]) * w / 2
            pts = np.array([[x0, centre[1] + rng.uniform(-0.1, 0.1) * w]])
            for _ in range(4):
                pts = np.vstack([pts, pts[-1] + rng.normal(0, w * 0.04, 2)])
            cv2.polylines(eyeball, [pts.round().astype(np.int32)], False, (190, 80, 80), 1, cv2.LINE_AA)

    iris_r = w * rng.uniform(0.19, 0.25)
    gaze = rng.uniform(-0.18, 0.18) * w
    # Vertically the iris sits a little above the middle of the opening, so the upper lid covers its top.
    opening_mid = (upper(np.array(0.0)) + lower(np.array(0.0))) / 2
    iris_c = np.array(
        [
            centre[0] + gaze,
            centre[1] - tilt * side * gaze / w + opening_mid + rng.uniform(-0.35, 0.1) * iris_r,
        ]
    )
    dx, dy = xs - iris_c[0], ys - iris_c[1]
    radius = np.sqrt(dx**2 + dy**2) / iris_r  # 1 at the limbus
    theta = np.arctan2(dy, dx)
    iris_disk = radius <= 1
    iris_color = _jitter_color(rng, IRIS_TONES, 0.2)
    streaks = np.zeros_like(theta)
    for _ in range(4):  # radial fibres: angular noise at several frequencies
        k = rng.integers(20, 90)
        streaks += np.sin(k * theta + rng.uniform(0, 2 * np.pi) + rng.uniform(0, 3) * radius) / 4
    texture = 1 + rng.uniform(0.08, 0.25) * streaks
    collarette = 1 + rng.uniform(0.0, 0.35) * np.exp(-(((radius - rng.uniform(0.45, 0.6)) / 0.12) ** 2))
    limbal = 1 - rng.uniform(0.3, 0.7) * np.clip((radius - 0.8) / 0.2, 0, 1) ** 1.5
    iris_shade = (texture * collarette * limbal)[..., None] * iris_color
    if rng.random() < 0.35:  # heterochromia-free second tone near the pupil (hazel)
        inner_tone = _jitter_color(rng, IRIS_TONES, 0.2)
        mix = np.clip(1 - radius / rng.uniform(0.4, 0.7), 0, 1)[..., None]
        iris_shade = iris_shade * (1 - mix) + inner_tone * texture[..., None] * mix
    iris_edge = np.clip((1.0 - radius) * iris_r / 1.2, 0, 1)[..., None]  # ~1 px soft limbus
    eyeball = eyeball * (1 - iris_edge) + iris_shade * iris_edge
    pupil_r = rng.uniform(0.25, 0.5)
    pupil_stretch = rng.uniform(0.95, 1.05)
    pupil_radius = np.sqrt((dx * pupil_stretch) ** 2 + (dy / pupil_stretch) ** 2) / (iris_r * pupil_r)
    pupil_alpha = np.clip((1 - pupil_radius) * iris_r * pupil_r / 1.0, 0, 1)[..., None]
    eyeball = eyeball * (1 - pupil_alpha) + rng.uniform(5, 25) * pupil_alpha
    # Upper-lid shadow: the top of the visible ball is darker.
    lid_shadow = np.clip(1 - (ys - upper_y) / (w * rng.uniform(0.08, 0.2)), 0, 1)
    eyeball *= (1 - rng.uniform(0.25, 0.65) * lid_shadow)[..., None]
    for _ in range(rng.choice([0, 1, 1, 1, 2])):  # corneal highlights (window or ring light reflections)
        hc = iris_c + rng.uniform(-0.55, 0.55, 2) * iris_r
        hr = iris_r * rng.uniform(0.06, 0.2)
        hmask = np.zeros((canvas, canvas), np.float32)
        if rng.random() < 0.6:
            cv2.circle(hmask, tuple(hc.round().astype(int)), max(1, int(hr)), 1.0, -1, cv2.LINE_AA)
        else:
            half = np.array([hr * rng.uniform(0.6, 1.4), hr * rng.uniform(0.6, 1.4)])
            cv2.rectangle(
                hmask, tuple((hc - half).round().astype(int)), tuple((hc + half).round().astype(int)), 1.0, -1
            )
        hmask = cv2.GaussianBlur(hmask, (0, 0), 0.8) * rng.uniform(0.6, 1.0)
        eyeball = eyeball * (1 - hmask[..., None]) + 250 * hmask[..., None]

    open_alpha = cv2.GaussianBlur(opening.astype(np.float32), (0, 0), 1.0)[..., None]
    img = img * (1 - open_alpha) + eyeball * open_alpha
    # Caruncle: a pink spot at the inner corner.
    inner_corner = np.array([centre[0] - side * w / 2, centre[1] + tilt / 2])
    caruncle = np.exp(
        -(
            ((xs - inner_corner[0] - side * w * 0.05) / (w * 0.05)) ** 2
            + ((ys - inner_corner[1]) / (w * 0.035)) ** 2
        )
    )
    img = img * (1 - 0.6 * caruncle[..., None]) + np.array([200, 120, 115]) * 0.6 * caruncle[..., None]

    # --- lid margins and lashes ------------------------------------------------------------------
    u_line = np.linspace(-1, 1, 60)
    line_x = centre[0] + side * u_line * w / 2
    line_base = centre[1] - tilt * u_line / 2
    upper_pts = np.stack([line_x, line_base + upper(u_line)], 1)
    lower_pts = np.stack([line_x, line_base + lower(u_line)], 1)
    lash_color = np.clip(brow_color * rng.uniform(0.3, 0.8), 0, 255)
    lash_layer = np.zeros((canvas, canvas), np.float32)
    liner = max(1, int(w * rng.uniform(0.02, 0.06)))
    cv2.polylines(lash_layer, [upper_pts.round().astype(np.int32)], False, 1.0, liner, cv2.LINE_AA)
    if rng.random() < 0.5:
        cv2.polylines(
            lash_layer,
            [lower_pts[10:].round().astype(np.int32)],
            False,
            rng.uniform(0.3, 0.8),
            max(1, liner // 2),
            cv2.LINE_AA,
        )
    n_lashes = int(rng.uniform(30, 130))
    lash_len = w * rng.uniform(0.04, 0.13)
    k = rng.integers(8, len(u_line), size=n_lashes)  # fewer near the inner corner
    lash_start = upper_pts[k]
    # Lashes fan out towards the outer corner and curl up at the tip.
    lash_angle = -math.pi / 2 + side * rng.uniform(0.1, 0.9, n_lashes) * (0.3 + u_line[k])
    bend = np.stack([np.cos(lash_angle), np.sin(lash_angle)], 1)
    length = (lash_len * rng.uniform(0.6, 1.2, n_lashes))[:, None]
    lash_mid = lash_start + bend * length * 0.6
    lash_tip = lash_mid + np.array([side * 0.25, -0.1]) * length * 0.5 + bend * length * 0.4
    lashes = np.stack([lash_start, lash_mid, lash_tip], 1)
    thick_lash = rng.random(n_lashes) < 1 / 3
    _strokes(lash_layer, lashes[~thick_lash], 1.0, 1)
    _strokes(lash_layer, lashes[thick_lash], 1.0, 2)
    n_lower = int(rng.uniform(0, 20))  # short lower lashes
    lower_start = lower_pts[rng.integers(15, len(u_line), size=n_lower)]
    lower_end = lower_start + np.array([side * 0.2, 1.0]) * (w * rng.uniform(0.02, 0.06, n_lower))[:, None]
    _strokes(lash_layer, np.stack([lower_start, lower_end], 1), 0.7, 1)
    lash_alpha = np.clip(lash_layer, 0, 1)[..., None] * rng.uniform(0.7, 1.0)
    img = img * (1 - lash_alpha) + lash_color * lash_alpha
    # Lower lid rim: a thin lighter, pinker band (the waterline) just below the opening.
    rim = np.exp(-(((ys - lower_y - w * 0.012) / (w * 0.01 + 0.5)) ** 2)) * inside_u
    img = img * (1 - 0.35 * rim[..., None]) + np.array([210, 150, 140]) * 0.35 * rim[..., None]

    if rng.random() < 0.07:  # a glasses frame crossing the crop
        frame = np.zeros((canvas, canvas), np.float32)
        fc = centre + rng.normal(0, 0.15, 2) * w
        axes = (int(w * rng.uniform(0.9, 1.4)), int(w * rng.uniform(0.6, 0.9)))
        cv2.ellipse(
            frame,
            tuple(fc.round().astype(int)),
            axes,
            rng.uniform(-8, 8),
            0,
            360,
            1.0,
            max(1, int(w * rng.uniform(0.015, 0.06))),
            cv2.LINE_AA,
        )
        frame_color = rng.uniform(20, 200, 3)
        img = img * (1 - frame[..., None]) + frame_color * frame[..., None]

    # --- lighting, framing, camera ----------------------------------------------------------------
    gx, gy = rng.normal(0, 0.25, 2)
    light = 1 + gx * (xs - centre[0]) / canvas + gy * (ys - centre[1]) / canvas
    img *= (light * rng.uniform(0.65, 1.2))[..., None]
    img = img * rng.uniform(0.93, 1.07, 3)  # white balance
    grey = img.mean(2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.7, 1.15)  # saturation

    angle_deg = rng.uniform(-15, 15)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.normal(0, 0.05, 2) * work
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, scale)
    m[:, 2] += np.array([work / 2, work / 2]) - centre + shift  # canvas centre -> view centre (+ shift)
    view = cv2.warpAffine(img, m, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    image = cv2.resize(view, (out_size, out_size), interpolation=cv2.INTER_AREA)
    blur = rng.choice([0.0, rng.uniform(0.3, 1.2)], p=[0.4, 0.6])
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    image = image + rng.normal(0, rng.uniform(0, 5), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # JPEG loss, as in web photos
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(40, 95))])
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)

    iris_visible = iris_disk & opening
    class_masks = {"iris": iris_visible, "sclera": opening & ~iris_disk, "eyebrow": brow_mask.astype(bool)}
    masks = {}
    for name, mask in class_masks.items():
        warped = cv2.warpAffine(mask.astype(np.float32), m, (work, work), flags=cv2.INTER_LINEAR)
        masks[name] = cv2.resize(warped, (out_size, out_size), interpolation=cv2.INTER_AREA) > 0.5
    # A sliver of iris (a closed or nearly closed eye) is not something to ask the segmenter to find.
    if masks["iris"].sum() < 0.004 * out_size * out_size:
        masks["iris"][:] = False
    return image, masks
