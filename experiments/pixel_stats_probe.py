"""Probe: do the face's pixel statistics (camera noise, residual co-occurrences) add to the shipped detector's
score on the families and sources the study holds out, and do they see the unseen diffusion faces?

    python experiments/pixel_stats_probe.py --runs outputs/experiments/generalisation --variant context

A camera leaves noise whose strength follows the brightness (shot noise), and a generator need not; steganalysis
reads such traces from the co-occurrences of neighbouring pixels' differences (SPAM, Pevný et al. 2010). None of
the shipped detector's parts reads them: dlib's face network sees the face at 150 px. Each photo's face (the
landmarks' box) is described twice, at the photo's own pixels (``native``) and shrunk to 256 px (``fixed``, so
that the photo's size cannot be read off):

- the noise level function: the log standard deviation of the grey residual (the image less its 3 x 3 median) in
  each of eight brightness bins, its overall log standard deviation, log kurtosis and share of flat pixels;
- the co-occurrences of neighbouring horizontal (and vertical) differences, clipped to ±3: 49 log frequencies;
- the correlations of the three colour channels' residuals.

``nlf`` is the first group alone (native), ``spam`` the second (fixed). Each is a logistic regression on the
fold's training photos (two L2 penalties), standardised on its validation photos, scored alone and added to the
shipped detector's score (``shipped``: the descriptor and inner-feature cue with the fold run's iris logit), as
the inner features were. Results: ``experiments/results/pixel_stats.md``.
"""

from __future__ import annotations

import cv2
import numpy as np
from face_descriptor_probe import descriptors
from face_features_probe import auc_table, evaluated, fold_split, probe_arguments, record_aucs, study_folders
from study_stats import paired_line, write_results

from irisgan.extraction.descriptors import photo_descriptors
from irisgan.extraction.manifest import read_manifest
from irisgan.models.face_cue import FaceView, fit_face_cue, fit_logistic

CACHE = "face_pixels_v1.npz"
CLIP, BINS = 3, 8
NLF = BINS + 3
WIDTH = NLF + (2 * CLIP + 1) ** 2 + 3  # one description: noise level, co-occurrences, channel correlations
L2S = (1e-2, 1.0)


def residual(channel: np.ndarray) -> np.ndarray:
    return channel.astype(np.float32) - cv2.medianBlur(np.ascontiguousarray(channel), 3).astype(np.float32)


def pixel_stats(rgb: np.ndarray) -> np.ndarray:
    """One description (``WIDTH`` numbers) of an RGB uint8 image."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    r = residual(grey)
    bins = np.clip(
        np.digitize(cv2.blur(grey.astype(np.float32), (5, 5)), np.linspace(0, 256, BINS + 1)) - 1, 0, BINS - 1
    )
    overall = np.log(r.std() + 1e-3)
    # a bin with too few pixels to measure takes the overall level
    level = [np.log(r[bins == b].std() + 1e-3) if (bins == b).sum() >= 200 else overall for b in range(BINS)]
    kurtosis = ((r - r.mean()) ** 4).mean() / (r.var() ** 2 + 1e-6)
    flat = (np.abs(r) < 0.5).mean()
    pairs = []
    signed = grey.astype(np.int16)
    for d in (np.diff(signed, axis=1), np.diff(signed, axis=0).T):
        d = np.clip(d, -CLIP, CLIP) + CLIP
        codes = d[:, :-1] * (2 * CLIP + 1) + d[:, 1:]
        counts = np.bincount(codes.ravel(), minlength=(2 * CLIP + 1) ** 2).astype(np.float64)
        pairs.append(counts / counts.sum())
    channels = [residual(c).ravel() for c in rgb.transpose(2, 0, 1)]
    correlations = [np.corrcoef(channels[a], channels[b])[0, 1] for a, b in ((0, 1), (1, 2), (0, 2))]
    return np.r_[level, overall, np.log(kurtosis), flat, np.log(np.mean(pairs, 0) + 1e-5), correlations]


def photo_pixels(image: np.ndarray, face_box, landmarks) -> np.ndarray:
    """The face's description at the photo's own pixels, then at 256 px, then the log of the box's side."""
    points = np.asarray(landmarks, np.float64)
    cx, cy = points.mean(0)
    half = 0.5 * max(np.ptp(points[:, 0]), np.ptp(points[:, 1]))
    h, w = image.shape[:2]
    crop = np.ascontiguousarray(
        image[
            int(max(cy - half, 0)) : int(min(cy + half, h)), int(max(cx - half, 0)) : int(min(cx + half, w))
        ]
    )
    fixed = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)
    return np.r_[pixel_stats(crop), pixel_stats(fixed), np.log(2 * half)].astype(np.float32)


BLOCKS = {  # name -> columns of photo_pixels
    "native": slice(0, WIDTH),
    "fixed": slice(WIDTH, 2 * WIDTH),
    "nlf": slice(0, NLF),
    "spam": slice(WIDTH + NLF, 2 * WIDTH - 3),
    "both": slice(0, 2 * WIDTH),
}


def main() -> None:
    parser = probe_arguments(__doc__)
    args = parser.parse_args()
    folds, folders, cache = study_folders(args.runs, args.variant, args.seed)
    desc = descriptors(cache, view=FaceView(inner=True))  # what the shipped cue reads
    records = [r for r in read_manifest(cache).values() if r.get("landmarks") and r.get("face_box")]
    pixels = dict(
        zip(
            [r["path"] for r in records], photo_descriptors(records, cache / CACHE, photo_pixels), strict=True
        )
    )
    auc: dict[tuple[str, str], float] = {}
    for fold, folder in evaluated(folders):
        fit, val, test, ran_val, ran_test = fold_split(folder, desc)
        x = lambda rows, d=desc: np.stack([d[r["photo"]] for r in rows])  # noqa: E731
        yf = np.array([int(r["label"]) for r in fit])
        cue = fit_face_cue(x(fit), yf, x(val), ran_val)
        shipped = cue.face_part(x(test)) + cue.iris_part(ran_test)
        scores = {"cue": shipped}  # named so for auc_table, which measures against "cue"
        for name, cols in BLOCKS.items():
            block = {p: v[cols] for p, v in pixels.items()}
            for l2 in L2S:
                mean, scale, weight, bias = fit_logistic(x(fit, block), yf, l2)
                v = ((x(val, block) - mean) / scale) @ weight + bias
                alone = ((((x(test, block) - mean) / scale) @ weight + bias) - v.mean()) / v.std()
                scores[f"{name}_l2{l2:g}"], scores[f"shipped+{name}_l2{l2:g}"] = alone, shipped + alone
        y = np.array([int(r["label"]) for r in test])
        generators = np.array([r.get("generator") or "" for r in test])
        record_aucs(auc, fold, scores, y, generators)
    methods, measured, table = auc_table(auc, folds)
    table[2] = table[2].replace("| cue |", "| shipped |", 1)
    lines = [
        "# The face's pixel statistics beside the shipped detector, on the study's folds",
        "",
        f"Folds of `{args.variant}` (seed {args.seed}: its splits, and its iris scores for `shipped`).",
        f"Command: `python experiments/pixel_stats_probe.py --runs RUNS --variant {args.variant}`. What each",
        "method is: the script's docstring. AUC of the held-out family against the held-out real photos; on a",
        "real-source fold, of the held-out source against the test set's GAN photos.",
        "",
        *table,
        "",
        "Paired differences over the folds (95% bootstrap interval; wins):",
        "",
    ]
    for m in methods:
        if m.startswith("shipped+"):
            lines.append(paired_line(f"{m} minus shipped", [auc[m, f] - auc["cue", f] for f in measured]))
    write_results("pixel_stats.md", lines)


if __name__ == "__main__":
    main()
