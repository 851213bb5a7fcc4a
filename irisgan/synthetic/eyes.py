"""A synthetic periocular image generator writing the UBIPR format, the segmenter's embedded default.

Each image is a square eye crop framed like the extractor's crops of real face photos (an eye crop
around dlib landmarks 36-41 or 42-47 with a margin: the eye opening spans about half the crop, the
eyebrow often enters at the top). It is drawn from parts: skin with pores, shading and wrinkles, an
eyebrow of hair strokes, an almond eye opening between two lids, sclera, an iris with radial texture
and a dark limbal ring, partly hidden by the lids and shadowed by the upper one, a pupil, corneal
highlights, lash line and lashes, sometimes make-up or a glasses frame. A random similarity transform
(scale, rotation, shift), lighting, colour cast, blur, noise and JPEG loss follow. A few eyes are
drawn (nearly) closed, with no visible iris: a real data set has those and the loader must skip them.

Masks are colour-coded RGB PNGs (``CLASS_COLORS``): iris (pupil included, as in UBIPR), sclera,
eyebrow. Generation is deterministic from ``seed`` (image ``i`` uses its own generator seeded with
``(seed, i)``) and cached on disk (``irisgan.synthetic.common``): the folder name carries the
version and the parameters (``SyntheticEyesParams``, defined beside the drawing in
``irisgan.synthetic.periocular_render``). The DataModule over a cached set is
``irisgan.data.ubipr.SyntheticEyesDataModule``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from irisgan.data.pairs_format import write_bytes_atomic, write_image_atomic
from irisgan.synthetic.common import ensure_cached
from irisgan.synthetic.periocular_render import GENERATOR_VERSION, SyntheticEyesParams, render_periocular

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"

CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "iris": (0, 255, 0),
    "sclera": (255, 0, 0),
    "eyebrow": (0, 0, 255),
}


def generate_synthetic_eyes(cache_dir: str | Path, params: SyntheticEyesParams) -> Path:
    """Write (or reuse) the synthetic set under ``cache_dir``; return its root (``images/``, ``masks/``)."""
    stamp = {"generator": "synthetic_eyes", "version": GENERATOR_VERSION, "params": asdict(params)}

    def generate(root: Path) -> list[str]:
        log.info("generating %d synthetic eye images into %s", params.count, root)
        names, written = [], []
        for i in range(params.count):
            name = f"eye_{i:05d}"
            image, masks = render_periocular(np.random.default_rng([params.seed, i]), params)
            for folder, picture in (("images", image), ("masks", encode_class_mask(masks))):
                write_image_atomic(root / folder / f"{name}.png", picture)
                written.append(f"{folder}/{name}.png")
            names.append(name)
        index = {
            "version": GENERATOR_VERSION,
            "params": asdict(params),
            "names": names,
            "class_colors": {k: list(v) for k, v in CLASS_COLORS.items()},
        }
        write_bytes_atomic(root / INDEX_NAME, json.dumps(index, indent=1).encode())
        return [*written, INDEX_NAME]

    return ensure_cached(Path(cache_dir) / params.folder_name(), stamp, generate, "synthetic eye images")


def encode_class_mask(masks: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean masks per class -> one RGB colour-coded mask (later classes drawn over earlier ones)."""
    height, width = next(iter(masks.values())).shape
    rgb = np.zeros((height, width, 3), np.uint8)
    for name in ("eyebrow", "sclera", "iris"):
        rgb[masks[name]] = CLASS_COLORS[name]
    return rgb


def sample_sheet(count: int = 16, image_size: int = 128, seed: int = 0, per_row: int = 8) -> np.ndarray:
    """A picture of ``count`` synthetic eyes (top rows) and their colour-coded masks blended in (bottom
    rows), to compare with real eye crops by eye."""
    params = SyntheticEyesParams(count=count, image_size=image_size, seed=seed)
    images, overlays = [], []
    for i in range(count):
        image, masks = render_periocular(np.random.default_rng([seed, i]), params)
        images.append(image)
        overlays.append((0.55 * image + 0.45 * encode_class_mask(masks)).astype(np.uint8))
    rows = [
        np.concatenate(tiles[r : r + per_row], axis=1)
        for tiles in (images, overlays)
        for r in range(0, count, per_row)
    ]
    return np.concatenate(rows, axis=0)


if __name__ == "__main__":
    # python -m irisgan.synthetic.eyes [out=PNG] [count=16] [seed=0]: a sample sheet of the generator
    import sys

    args = dict(arg.split("=", 1) for arg in sys.argv[1:])
    out = args.get("out", "synthetic_eyes.png")
    write_image_atomic(out, sample_sheet(int(args.get("count", 16)), seed=int(args.get("seed", 0))))
    print(out)
