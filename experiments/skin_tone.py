"""Does a held-out real source's score follow the subject's skin tone? Scores the study's finished folds.

    python experiments/skin_tone.py data/faces_cache/<key> --runs outputs/experiments/generalisation

Skin tone here is the median L* (CIELAB, 0-255 as OpenCV scales it) of two cheek patches, each between the
lower lid and the mouth corner, found from the 68 landmarks the extraction cache's ``manifest.jsonl`` keeps;
"darker" is L* below ``--dark`` (120). For every held-out-real-source run of the study, its Spearman
correlation between that brightness and P(GAN) over the source's photos, and the mean P(GAN) and the share
called GAN at the run's stored threshold of the darker and the lighter subjects. A detector whose false
alarms fall on darker-skinned subjects is unfair as well as wrong. Results: ``experiments/results/skin_tone.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cross_generator as cg
import cv2
import numpy as np
from scipy.stats import spearmanr

from irisgan.data.pairs_format import read_pairs_csv

CHEEKS = ((41, 48), (46, 54))  # (lower-lid landmark, mouth-corner landmark) of each cheek


def cheek_brightness(image: np.ndarray, landmarks: np.ndarray) -> float:
    """Median L* of two small cheek patches (their side 12% of the outer eye-corner distance)."""
    lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0]
    r = max(2, int(0.06 * np.linalg.norm(landmarks[45] - landmarks[36])))
    patches = []
    for lid, mouth in CHEEKS:
        x, y = (0.45 * landmarks[lid] + 0.55 * landmarks[mouth]).astype(int)
        patches.append(np.median(lightness[max(0, y - r) : y + r, max(0, x - r) : x + r]))
    return float(np.mean(patches))


def photo_brightness(cache: Path) -> dict[str, float]:
    """Cheek L* of every photo the cache found a face and landmarks in, keyed by the photo's path."""
    out = {}
    for line in (cache / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("status") != "ok" or not record.get("landmarks"):
            continue
        image = cv2.imread(record["path"])
        if image is not None:
            out[record["path"]] = cheek_brightness(image, np.asarray(record["landmarks"], float))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "cache", type=Path, help="a data=faces extraction cache of faces_train (manifest.jsonl)"
    )
    parser.add_argument("--runs", type=Path, default=cg.ROOT / "outputs" / "experiments" / "generalisation")
    parser.add_argument("--dark", type=float, default=120.0, help="cheek L* below which a subject is darker")
    parser.add_argument("--out", type=Path, default=cg.RESULTS / "skin_tone.md")
    args = parser.parse_args()
    brightness = photo_brightness(args.cache)
    lines = [
        "# Held-out real sources: score against skin tone",
        "",
        f"Command: `python experiments/skin_tone.py {args.cache} --runs {args.runs}`. Cheek L* from the "
        f"landmarks ({len(brightness)} photos); darker: L* < {args.dark:.0f}. Spearman: cheek L* against P(GAN) "
        "over the source's photos (negative: the darker the skin, the more GAN-like the score).",
        "",
        "| run | source photos | darker | Spearman | mean P(GAN), darker / lighter | called GAN at threshold, darker "
        "/ lighter |",
        "|---|---|---|---|---|---|",
    ]
    for folder in sorted(args.runs.glob("*__real-*")):
        variant, loss, ratio, seed, fold = folder.name.split("__")
        scored = cg.fold_scores(folder) if fold in cg.REAL_SOURCES else None
        if scored is None:
            continue
        scores, _, csv_path = scored
        pairs = [
            (brightness[r["photo"]], float(s))
            for r, s in zip(read_pairs_csv(csv_path), scores)
            if r["generator"] in cg.REAL_SOURCES[fold] and r["photo"] in brightness
        ]
        if len(pairs) < 3:
            continue
        light, p = np.array(pairs).T
        dark = light < args.dark
        threshold = cg.fold_threshold(folder)
        cell = lambda v: "-" if not len(v) else f"{v.mean():.2f}"  # noqa: E731
        lines.append(
            f"| {variant} {seed} {fold} | {len(p)} | {int(dark.sum())} | {spearmanr(light, p)[0]:+.2f} "
            f"| {cell(p[dark])} / {cell(p[~dark])} | {cell(p[dark] >= threshold)} / {cell(p[~dark] >= threshold)} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
