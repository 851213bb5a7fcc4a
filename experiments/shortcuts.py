"""Shortcut check: how well does a trivial property of a photo or its pair tell the classes apart?

    python experiments/shortcuts.py CACHE_DIR     # a data=faces cache folder: data/faces_cache/<key>

A detector can score well by learning where a photo came from instead of what a GAN eye looks like:
photo size, face size, the sharpness or brightness of the iris crops. For each such property this prints
the AUC of the property alone, for every GAN generator against all real photos and every real source
against all GAN photos, as ``max(AUC, 1 - AUC)`` (a shortcut works in either direction). A property near
1.0 for a group is a shortcut the network can take there: augmentation must remove it, or that group's
number is not about eyes. Writes ``experiments/results/shortcuts.md``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study_stats import auroc  # noqa: E402

from irisgan.extraction.manifest import read_manifest  # noqa: E402

RESULTS = ROOT / "experiments" / "results"


def pair_properties(pair_path: Path) -> dict[str, float]:
    """Sharpness (variance of the Laplacian), brightness and colourfulness of the 96x96 iris pair."""
    bgr = cv2.imread(str(pair_path))
    if bgr is None:
        raise FileNotFoundError(f"pair image unreadable: {pair_path}")
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return {
        "pair sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),
        "pair brightness": float(gray.mean()),
        "pair saturation": float(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[..., 1].mean()),
    }


def photo_properties(record: dict) -> dict[str, float]:
    """Properties of the photo the manifest recorded: its size, the face's and the irises' size in pixels."""
    box = record["face_box"]
    radii = [record["iris"][side]["circle"][2] for side in ("left", "right")]
    return {
        "photo width": float(record["image_size"][1]),
        "face width (px)": float(box[2] - box[0]),
        "iris radius (px)": float(np.mean(radii)),
        "face detector score": float(record.get("face_score") or 0.0),
    }


def collect(cache: Path) -> list[dict]:
    manifest = read_manifest(cache)
    rows = []
    with open(cache / "faces.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] != "ok":
                continue
            record = manifest[r["photo"]]
            rows.append(
                {
                    "label": int(r["label"]),
                    "group": r["generator"],
                    **photo_properties(record),
                    **pair_properties(cache / r["path"]),
                }
            )
    return rows


def table(rows: list[dict]) -> list[str]:
    props = [k for k in rows[0] if k not in ("label", "group")]
    labels = np.array([r["label"] for r in rows])
    groups = sorted({(r["label"], r["group"]) for r in rows})
    lines = [
        "| group | n | " + " | ".join(props) + " |",
        "|---|---|" + "---|" * len(props),
    ]
    for label, group in [(None, "all")] + groups:
        if label is None:
            keep = np.ones(len(rows), bool)
        else:  # the group against every photo of the other class
            keep = np.array([(r["group"] == group) or (r["label"] != label) for r in rows])
        n = int(keep.sum() if label is None else sum(r["group"] == group for r in rows))
        cells = []
        for p in props:
            values = np.array([r[p] for r in rows])[keep]
            auc = auroc(values, labels[keep])
            cells.append(f"{max(auc, 1 - auc):.2f}")
        name = group if label is None else f"{'GAN' if label else 'real'}: {group}"
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "cache", type=Path, help="a data=faces cache folder (faces.csv, manifest.jsonl, pairs/)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "shortcuts.md")
    args = parser.parse_args()
    if not (args.cache / "faces.csv").is_file():
        raise SystemExit(
            f"{args.cache}: no faces.csv; pass a data=faces cache folder (data/faces_cache/<key>)"
        )
    rows = collect(args.cache)
    lines = [
        "# Shortcut check: one trivial property against the label",
        "",
        f"`python experiments/shortcuts.py {args.cache}`: {len(rows)} photos with a pair. Each cell is",
        "max(AUC, 1 - AUC) of the property alone: the group against every photo of the other class (the `all`",
        "row: every GAN photo against every real one). 0.5 means the property says nothing; near 1.0 it is a",
        "shortcut.",
        "",
        *table(rows),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
