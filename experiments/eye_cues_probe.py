"""Probe: do hand-made eye cues (highlight agreement, iris colour/texture/pupil difference between the eyes)
separate the families of faces_train, and would they generalise across families where the RAN does not?

    python experiments/eye_cues_probe.py data/faces_cache/<key>     # a cache that data=faces wrote

Each iris is cut from the photo at its own pixels around the circle the locator found (manifest.jsonl) and
resampled to a common 64-px grid (+-1.25 iris radii); the cues compare the two eyes there. The table gives
each cue's AUC per GAN family against all real photos (0.5: no signal; below 0.5: the GAN eyes agree
*better* than the real ones), per real source against all generated photos, and a logistic regression on
all cues, trained without the family it is tested on (leave-one-family-out, like the study). Results:
``experiments/results/eye_cues.md``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from cross_generator import DIFFUSION, FAMILIES, REAL_SOURCES
from study_stats import auroc

from irisgan.models.face_cue import fit_logistic

RESULTS = Path(__file__).resolve().parent / "results"

GRID = 64
SPAN = 1.25  # the normalised crop spans +-SPAN iris radii around the centre


def norm_iris(image: np.ndarray, circle) -> np.ndarray:
    cx, cy, r = circle
    half = SPAN * r
    scale = GRID / (2 * half)
    # an affine map from photo to grid; INTER_AREA-like smoothing when shrinking via a pre-blur
    m = np.array([[scale, 0, -(cx - half) * scale], [0, scale, -(cy - half) * scale]], np.float32)
    src = image
    if scale < 0.7:
        k = max(1, int(round(0.5 / scale)))
        src = cv2.blur(image, (2 * k + 1, 2 * k + 1)) if k > 1 else image
    return cv2.warpAffine(src, m, (GRID, GRID), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


YY, XX = np.mgrid[0:GRID, 0:GRID]
RR = np.hypot(XX + 0.5 - GRID / 2, YY + 0.5 - GRID / 2) / (GRID / 2 / SPAN)
DISC = RR < 0.95
RING = (RR > 0.45) & (RR < 0.9)


def eye_parts(crop: np.ndarray) -> dict:
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = gray[DISC]
    med, top = np.median(inside), inside.max()
    thr = max(med + 0.55 * (top - med), med + 35)
    highlight = DISC & (gray >= thr)
    dark = np.percentile(inside, 5)
    pupil = (RR < 0.6) & (gray <= dark + 0.3 * (med - dark))
    ring = RING & ~highlight
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    return {
        "gray": gray,
        "highlight": highlight,
        "pupil": pupil,
        "lab": lab[ring].mean(0) if ring.any() else np.zeros(3),
        "lab_std": lab[ring].std(0) if ring.any() else np.zeros(3),
        "texture": float(np.abs(lap[ring]).mean()) if ring.any() else 0.0,
        "contrast": float(top - med),
    }


def features(image: np.ndarray, left, right) -> dict[str, float]:
    a, b = eye_parts(norm_iris(image, left)), eye_parts(norm_iris(image, right))
    ha, hb = a["highlight"], b["highlight"]
    union = (ha | hb).sum()
    iou = (ha & hb).sum() / union if union else 1.0
    # highlight masks compared up to a small shift (the locator's centre error)
    best = iou
    for dx in (-2, 0, 2):
        for dy in (-2, 0, 2):
            hs = np.roll(np.roll(hb, dy, 0), dx, 1)
            u = (ha | hs).sum()
            best = max(best, (ha & hs).sum() / u if u else 1.0)

    def centroid(m):
        return np.array([XX[m].mean(), YY[m].mean()]) / (GRID / 2 / SPAN) if m.any() else None

    ca, cb = centroid(ha), centroid(hb)
    dist = float(np.linalg.norm(ca - cb)) if ca is not None and cb is not None else 1.0
    area_a, area_b = ha.sum(), hb.sum()
    pa, pb = a["pupil"].sum(), b["pupil"].sum()
    # the eyes' grey images correlated (the same structure: lids, highlights, pupil)
    ga, gb = a["gray"][DISC], b["gray"][DISC]
    corr = float(np.corrcoef(ga, gb)[0, 1]) if ga.std() > 0 and gb.std() > 0 else 0.0
    return {
        "hl_iou": float(iou),
        "hl_iou_shift": float(best),
        "hl_dist": dist,
        "hl_area_diff": float(abs(np.log1p(area_a) - np.log1p(area_b))),
        "hl_contrast_diff": abs(np.log1p(a["contrast"]) - np.log1p(b["contrast"])),
        "lab_L_diff": float(abs(a["lab"][0] - b["lab"][0])),
        "lab_ab_diff": float(np.linalg.norm(a["lab"][1:] - b["lab"][1:])),
        "lab_std_diff": float(np.abs(a["lab_std"] - b["lab_std"]).sum()),
        "texture_diff": abs(np.log1p(a["texture"]) - np.log1p(b["texture"])),
        "pupil_diff": float(abs(np.log1p(pa) - np.log1p(pb))),
        "radius_diff": float(abs(np.log(left[2] / right[2]))),
        "gray_corr": corr,
        "texture_mean": (a["texture"] + b["texture"]) / 2,
        "contrast_mean": (a["contrast"] + b["contrast"]) / 2,
    }


def logistic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    return fit_logistic(x, y)


def logistic_score(model, x: np.ndarray) -> np.ndarray:
    mean, scale, weight, bias = model
    return ((x - mean) / scale) @ weight + bias


def table(rows: list[dict]) -> str:
    feats = [k for k in rows[0] if k not in ("photo", "label", "generator")]
    gen = np.array([r["generator"] for r in rows])
    y = np.array([r["label"] for r in rows])
    x = np.array([[r[f] for f in feats] for r in rows], dtype=np.float64)
    groups = {**FAMILIES, **DIFFUSION}
    fam_cols = list(groups)
    real_cols = list(REAL_SOURCES)
    lines = [
        "| cue | " + " | ".join(fam_cols) + " | " + " | ".join(real_cols) + " |",
        "|---|" + "---|" * (len(fam_cols) + len(real_cols)),
    ]
    for j, f in enumerate(feats):
        cells = []
        for name in fam_cols:
            m = (y == 0) | np.isin(gen, groups[name])
            cells.append(f"{auroc(x[m, j], y[m]):.3f}")
        for name in real_cols:
            m = (y == 1) | np.isin(gen, REAL_SOURCES[name])
            cells.append(f"{auroc(x[m, j], y[m]):.3f}")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    # all cues together, the tested family (or real source) left out of the fit
    cells = []
    for name in fam_cols:
        held = np.isin(gen, groups[name])
        model = logistic_fit(x[~held], y[~held])
        m = (y == 0) | held
        cells.append(f"{auroc(logistic_score(model, x[m]), y[m]):.3f}")
    for name in real_cols:
        held = np.isin(gen, REAL_SOURCES[name])
        model = logistic_fit(x[~held], y[~held])
        m = (y == 1) | held
        cells.append(f"{auroc(logistic_score(model, x[m]), y[m]):.3f}")
    lines.append("| **all cues, logistic regression, tested family left out** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    cache = Path(sys.argv[1])
    gen = {}
    for row in csv.DictReader(open(cache / "faces.csv")):
        gen[row["photo"]] = row["generator"]
    rows = []
    for line in open(cache / "manifest.jsonl"):
        d = json.loads(line)
        if (
            d["status"] != "ok"
            or "circle" not in (d["iris"]["left"] or {})
            or "circle" not in (d["iris"]["right"] or {})
        ):
            continue
        img = cv2.cvtColor(cv2.imread(d["path"]), cv2.COLOR_BGR2RGB)
        f = features(img, d["iris"]["left"]["circle"], d["iris"]["right"]["circle"])
        rows.append({"photo": d["path"], "label": int(d["label"]), "generator": gen[d["path"]], **f})
    RESULTS.mkdir(exist_ok=True, parents=True)
    per_photo = RESULTS.parents[1] / "outputs" / "eye_cues.csv"  # every photo's cues, for a closer look
    per_photo.parent.mkdir(exist_ok=True, parents=True)
    with open(per_photo, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    text = (
        f"# Hand-made eye cues on faces_train ({len(rows)} photos with both iris circles)\n\n"
        "AUC of each cue (a difference between the two eyes, or their mean) per GAN family against all real\n"
        "photos, and per real source against all generated photos; the last row fits all cues together\n"
        "without the tested family or source. Command: `python experiments/eye_cues_probe.py CACHE`.\n\n"
        + table(rows)
        + "\n"
    )
    (RESULTS / "eye_cues.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
