"""The embedded default data set for the classifier: synthetic iris pairs, real-like and GAN-like.

This module makes and caches a set; ``irisgan.synthetic.pair_render`` draws one pair and
``irisgan.synthetic.iris_render`` one iris crop. Each pair is two rendered iris crops (sclera and eyelid skin at the corners, a dark limbus, an iris
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
folder named after all its parameters and ``GENERATOR_VERSION`` (``irisgan.synthetic.common``:
an interrupted or damaged set is redone rather than half-used).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from irisgan.data.pairs_format import (
    read_pairs_csv,
    write_bytes_atomic,
    write_image_atomic,
    write_pairs_csv,
)
from irisgan.synthetic.common import ensure_cached
from irisgan.synthetic.pair_render import render_pair

log = logging.getLogger(__name__)

# Bump whenever the rendering changes: the version is part of the cache folder name, so a new
# generator never reuses pairs that an older one wrote.
GENERATOR_VERSION = 3

SPLIT_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


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
