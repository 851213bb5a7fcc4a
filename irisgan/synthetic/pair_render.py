"""One synthetic iris pair, real-like or GAN-like (``render_pair``): the parameters of a face's two eyes
(one light, one iris colour and texture style), the GAN cue families planted in a fake one, the
photographic nuisances both classes share, and the two rendered crops joined as the extractor joins them.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from irisgan.data.pairs_format import PAIR_SIZE, join_pair
from irisgan.synthetic.common import IRIS_CROP_SKIN_TONES
from irisgan.synthetic.iris_render import PROFILE_FREQUENCIES, EyeParams, Highlight, render_iris

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
    frequencies = PROFILE_FREQUENCIES
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
