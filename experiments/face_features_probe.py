"""Probe: does anything else about the face add to the face cue on the families and sources the study holds out?

    python experiments/face_features_probe.py --runs outputs/experiments/generalisation --variant context

The face cue (dlib's 128-d descriptor: a logistic regression plus a nearest-neighbour score) carries the shipped
detector. This probe measures, on each fold of the leave-one-out study (the fold's own training, validation and
test photos; the held-out family or real source never seen), what other views of the same face add:

- ``mirror``: the descriptor of the mirrored aligned face, averaged with the plain one (test-time augmentation);
- ``spectrum``: the radial power spectrum of the aligned face (256 px, grey), the trace of a generator's
  upsampling (Durall et al. 2020); ``spectrum_crop``: the same of the landmarks' box at the photo's framing;
- ``geometry``: the 68 landmarks, centred, levelled and scaled by the eye distance;
- ``one_class``: minus the Mahalanobis distance of the descriptor to the real training faces (GAN faces are
  said to be more average); ``qda``: that distance minus the one to the generated training faces;
- ``stacked``: the cue's two parts and the fold run's iris logit weighted by a logistic regression on the
  fold's validation photos, instead of summed alike;
- ``texture_<colour>_<stages>_l2<penalty>``: ImageNet MobileNetV2's early layers on the aligned face (224 px; grey
  or colour), the maps of blocks 4, 7 and 14 averaged over the image (``low``: all three), under three L2
  penalties; ``texture_grey_low_l20.01`` is the package's optional texture part (``irisgan.extraction.texture``);
- ``cue+texture_aug``: that texture part fitted on every training photo together with a blurred (σ 2 px) and a
  shrunk-to-a-quarter-and-enlarged copy of it, labelled as the photo; ``(test blurred)``: the texture of the test
  photos' blurred copies, the descriptor left as it was, which is how far blur moves the score.

``cue`` here is the descriptor's cue alone (the logistic regression and the nearest-neighbour score), as shipped
before the ninth round, so that each view is measured against it.

Each extra block is a logistic regression on the fold's training photos, standardised on its validation photos
and added to the cue's standardised score (``cue+<block>``), as the shipped detector adds the iris logit.
Results: ``experiments/results/face_features.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cross_generator as study
import numpy as np
import torch
from face_descriptor_probe import descriptors, ran_val_scores, rows_of
from study_stats import auroc, paired_line, write_results

from irisgan.data.degrade import degrade
from irisgan.extraction.descriptors import photo_descriptors
from irisgan.extraction.manifest import read_manifest
from irisgan.extraction.texture import CHIP, face_texture, load_trunk
from irisgan.models.face_cue import TEXTURE_L2, fit_face_cue, fit_logistic, logit

COPIES = ("blur2", "resize0.25")  # processed copies of each photo (irisgan.data.degrade)
FEATURES = "face_views_v2.npz"  # the blocks below side by side (face_views.npz: an older layout)


def radial_spectrum(gray: np.ndarray, size: int = 256, bins: int = 48) -> np.ndarray:
    """Log of the mean power per ring of a grey image's Hann-windowed spectrum (``size`` px), less the mean of
    its lowest rings, so that contrast cancels."""
    import cv2

    g = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.fft.fftshift(np.abs(np.fft.fft2((g - g.mean()) * window)) ** 2)
    yy, xx = np.indices(power.shape)
    ring = np.digitize(np.hypot(yy - size / 2, xx - size / 2).ravel(), np.linspace(0, size / 2, bins + 1)) - 1
    inside = (ring >= 0) & (ring < bins)
    profile = np.bincount(ring[inside], power.ravel()[inside], bins) / np.maximum(
        np.bincount(ring[inside], None, bins), 1
    )
    logs = np.log(profile + 1e-12)
    return logs - logs[1:8].mean()


def levelled_landmarks(points: np.ndarray) -> np.ndarray:
    """The 68 landmarks centred on their mean, rotated so that the eyes are level, in eye distances."""
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    angle = -np.arctan2(right[1] - left[1], right[0] - left[0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return ((points - points.mean(0)) @ rotation.T / np.linalg.norm(right - left)).ravel()


def photo_features(image: np.ndarray, face_box, landmarks) -> dict[str, np.ndarray]:
    """The extra blocks of one manifest record's photo."""
    import cv2
    import dlib

    from irisgan.extraction.faces import _cached_model, face_models_dir

    net = _cached_model(
        dlib.face_recognition_model_v1,
        face_models_dir() / "dlib_face_recognition_resnet_model_v1.dat",
        "dlib's face recognition model",
    )
    points = np.asarray(landmarks, np.float64)
    x0, y0, x1, y1 = (int(round(v)) for v in face_box)
    shape = dlib.full_object_detection(
        dlib.rectangle(x0, y0, x1, y1), [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    )
    chip = dlib.get_face_chip(image, shape, 150, 0.25)  # what the descriptor sees
    aligned = dlib.get_face_chip(image, shape, 256, 0.25)
    cx, cy = points.mean(0)
    half = 0.5 * max(np.ptp(points[:, 0]), np.ptp(points[:, 1]))
    h, w = image.shape[:2]
    crop = image[
        int(max(cy - half, 0)) : int(min(cy + half, h)), int(max(cx - half, 0)) : int(min(cx + half, w))
    ]
    grey = lambda rgb: cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)  # noqa: E731
    colour = torch.from_numpy(dlib.get_face_chip(image, shape, CHIP, 0.25)).permute(2, 0, 1)[None]
    with torch.inference_mode():  # the trunk on the colour chip, without the grey step
        rgb_texture = load_trunk().pooled_taps(colour).numpy()[0].astype(np.float32)
    return {
        "texture_grey": face_texture(image, face_box, points),
        # the same of a blurred and of a shrunk-and-enlarged copy: how processing moves it, and augmentation
        **{f"texture_grey_{d}": face_texture(degrade(image, d), face_box, points) for d in COPIES},
        "texture_rgb": rgb_texture,
        "mirror": np.array(net.compute_face_descriptor(np.ascontiguousarray(chip[:, ::-1])), np.float32),
        "spectrum": radial_spectrum(grey(aligned)).astype(np.float32),
        "spectrum_crop": radial_spectrum(grey(crop)).astype(np.float32),
        "geometry": levelled_landmarks(points).astype(np.float32),
    }


# each block's width, in the order the cache keeps them side by side
BLOCKS = {
    "mirror": 128, "spectrum": 48, "spectrum_crop": 48, "geometry": 136, "texture_grey": 152,
    **{f"texture_grey_{d}": 152 for d in COPIES}, "texture_rgb": 152,
}  # fmt: skip


def features(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """Block -> photo path -> features, for every manifest photo with landmarks (cached in the extraction
    folder by the package's own descriptor cache, keyed by fingerprint: a photo missing from it is computed)."""
    records = [r for r in read_manifest(cache).values() if r.get("landmarks") and r.get("face_box")]

    def describe(image: np.ndarray, face_box, landmarks) -> np.ndarray:
        blocks = photo_features(image, face_box, landmarks)
        return np.concatenate([blocks[b] for b in BLOCKS])

    x = photo_descriptors(records, cache / FEATURES, describe)
    edges = np.cumsum([0, *BLOCKS.values()])
    return {
        b: {r["path"]: v[lo:hi] for r, v in zip(records, x, strict=True)}
        for b, lo, hi in zip(BLOCKS, edges[:-1], edges[1:], strict=True)
    }


def standardised(train: Callable, val: np.ndarray, test: np.ndarray) -> np.ndarray:
    """A score of the test photos in standard deviations of its validation scores, from their mean."""
    v = train(val)
    return (train(test) - v.mean()) / (v.std() + 1e-9)


def mahalanobis(reference: np.ndarray, shrink: float = 0.1) -> Callable[[np.ndarray], np.ndarray]:
    """Distance to ``reference``'s mean under its covariance shrunk towards a multiple of the identity."""
    mean, cov = reference.mean(0), np.cov(reference.T)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    precision = np.linalg.inv(cov)
    return lambda x: np.sqrt(np.einsum("ij,jk,ik->i", x - mean, precision, x - mean))


def probe_arguments(doc: str) -> argparse.ArgumentParser:
    """The command line every probe of the study's folds shares: its runs, variant and seed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="the study's run folders")
    parser.add_argument("--variant", default="context")
    parser.add_argument("--seed", type=int, default=0, help="the runs whose splits and iris scores are used")
    return parser


def study_folders(
    runs: Path, variant: str, seed: int, subjects: bool = False
) -> tuple[dict, dict[str, Path], Path]:
    """The study's folds (GAN families, diffusion, real sources, and with ``subjects`` the diffusion family's
    subject folds), each one's run folder of ``variant`` and ``seed``, and the extraction folder whose photos
    their splits hold."""
    folds = {
        **study.FAMILIES,
        **study.DIFFUSION,
        **study.REAL_SOURCES,
        **(study.SUBJECTS if subjects else {}),
    }
    folders = {f: runs / study.run_name(variant, "bce_auc", "balanced", seed, f) for f in folds}
    first = next(f for f in folders.values() if (f / "metrics.json").is_file())
    fit_csv = json.loads((first / "metrics.json").read_text())["data_csvs"]["fit"]
    return folds, folders, study._project_path(first, fit_csv).parents[2]


def fold_split(folder: Path, desc: dict) -> tuple[list, list, list, np.ndarray, np.ndarray]:
    """A fold run's training, validation and test rows whose photos ``desc`` knows, and the run's P(GAN) of the
    validation and test rows kept."""
    csvs = json.loads((folder / "metrics.json").read_text())["data_csvs"]
    known = lambda rows: np.array([r["photo"] in desc for r in rows])  # noqa: E731
    fit, val, test = (
        [r for r in rows_of(folder, csvs[k]) if r["photo"] in desc] for k in ("fit", "val", "test")
    )
    ran_test, _, test_csv = study.fold_scores(folder)
    ran_val = ran_val_scores(folder, csvs["val"])[known(rows_of(folder, csvs["val"]))]
    return fit, val, test, ran_val, ran_test[known(rows_of(folder, test_csv))]


def fold_variants(
    folder: Path, desc: dict, blocks: dict
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each method's scores of the fold's test photos, their labels and generators."""
    fit, val, test, ran_val, ran_test = fold_split(folder, desc)
    x = lambda rows, d=desc: np.stack([d[r["photo"]] for r in rows])  # noqa: E731
    y = lambda rows: np.array([int(r["label"]) for r in rows])  # noqa: E731
    yf, yv = y(fit), y(val)
    cue = fit_face_cue(x(fit), yf, x(val), ran_val)
    cue_test = standardised(cue.face_part, x(val), x(test))
    out = {"cue": cue_test}
    averaged = {p: (desc[p] + blocks["mirror"][p]) / 2 for p in desc}
    mirrored = fit_face_cue(x(fit, averaged), yf, x(val, averaged), ran_val)
    out["mirror"] = standardised(mirrored.face_part, x(val, averaged), x(test, averaged))
    for name in ("spectrum", "spectrum_crop", "geometry"):
        mean, scale, weight, bias = fit_logistic(x(fit, blocks[name]), yf, 1e-2)
        score = lambda f, m=mean, s=scale, w=weight, b=bias: ((f - m) / s) @ w + b  # noqa: E731
        out[name] = standardised(score, x(val, blocks[name]), x(test, blocks[name]))
        out[f"cue+{name}"] = cue_test + out[name]
    stages = {"4": slice(0, 24), "7": slice(24, 56), "14": slice(56, 152), "low": slice(0, 152)}
    for colour in ("grey", "rgb"):
        for stage, cut in stages.items():
            for l2 in (TEXTURE_L2, 0.1, 1.0):
                block = {p: v[cut] for p, v in blocks[f"texture_{colour}"].items()}
                mean, scale, weight, bias = fit_logistic(x(fit, block), yf, l2)
                score = lambda f, m=mean, s=scale, w=weight, b=bias: ((f - m) / s) @ w + b  # noqa: E731
                name = f"texture_{colour}_{stage}_l2{l2:g}"
                out[name] = standardised(score, x(val, block), x(test, block))
                out[f"cue+{name}"] = cue_test + out[name]
    # the package's texture part, and one fitted on each training photo with its processed copies (labelled as the
    # photo); both also scored on the test photos' blurred copies, the descriptor left as it was
    plain, copies = blocks["texture_grey"], [blocks[f"texture_grey_{d}"] for d in COPIES]
    for name, fitted in (
        ("texture", fit_logistic(x(fit, plain), yf, TEXTURE_L2)),
        ("texture_aug", fit_logistic(np.concatenate([x(fit, b) for b in (plain, *copies)]), np.tile(yf, 3), TEXTURE_L2)),
    ):  # fmt: skip
        score = lambda f, m=fitted[0], s=fitted[1], w=fitted[2], b=fitted[3]: ((f - m) / s) @ w + b  # noqa: E731
        v = score(x(val, plain))
        z = lambda f, score=score, v=v: (score(f) - v.mean()) / (v.std() + 1e-9)  # noqa: E731
        out[f"cue+{name}"] = cue_test + z(x(test, plain))
        out[f"cue+{name} (test blurred)"] = cue_test + z(x(test, blocks["texture_grey_blur2"]))
    real_d, fake_d = mahalanobis(x(fit)[yf == 0]), mahalanobis(x(fit)[yf == 1])
    out["one_class"] = standardised(lambda f: -real_d(f), x(val), x(test))
    out["qda"] = standardised(lambda f: real_d(f) - fake_d(f), x(val), x(test))
    out["cue+one_class"], out["cue+qda"] = cue_test + out["one_class"], cue_test + out["qda"]

    def parts(d: np.ndarray, ran_p: np.ndarray) -> np.ndarray:
        (fm, fs), (km, ks), (rm, rs) = cue.face_logit, cue.knn_score, cue.ran_logit
        return np.c_[(cue.face_logits(d) - fm) / fs, (cue.knn_scores(d) - km) / ks, (logit(ran_p) - rm) / rs]

    out["fused"] = parts(x(test), ran_test).sum(1)
    _, scale, weight, _ = fit_logistic(parts(x(val), ran_val), yv, 1e-2)
    out["stacked"] = parts(x(test), ran_test) @ (weight / scale)
    return out, y(test), np.array([r.get("generator") or "" for r in test])


def held_out_aucs(fold: str, scores: dict[str, np.ndarray], y: np.ndarray, generators: np.ndarray) -> dict:
    """Each method's AUC on a fold's test photos: the held-out family against the real photos; on a real-source
    fold, the held-out source against the test set's GAN photos."""
    out = {}
    for method, s in scores.items():
        if fold in study.REAL_SOURCES:
            own, gan, _ = study.source_masks(y, generators, study.REAL_SOURCES[fold])
            s, labels = np.r_[s[own], s[gan]], np.r_[np.zeros(own.sum()), np.ones(gan.sum())]
        else:
            labels = y
        out[method] = auroc(s, labels)
    return out


def evaluated(folders: dict[str, Path]):
    """(fold, run folder) of each fold whose run is evaluated; the others are named on stderr and skipped."""
    for fold, folder in folders.items():
        if study.fold_scores(folder) is None:
            print(f"{fold}: not evaluated yet, skipped", file=sys.stderr)
            continue
        yield fold, folder


def record_aucs(
    auc: dict, fold: str, scores: dict[str, np.ndarray], y: np.ndarray, generators: np.ndarray
) -> None:
    """Each method's held-out AUC on one fold (``held_out_aucs``) into ``auc`` by (method, fold), and a line of
    them on stdout."""
    for method, a in held_out_aucs(fold, scores, y, generators).items():
        auc[method, fold] = a
    print(fold, " ".join(f"{m}={auc[m, fold]:.3f}" for m in scores), flush=True)


def auc_table(auc: dict[tuple[str, str], float], folds: dict) -> tuple[list[str], list[str], list[str]]:
    """The methods and the folds measured (those with a ``cue``), and a markdown table of their AUCs with each
    method's GAN mean and worst."""
    methods = list(dict.fromkeys(m for m, _ in auc))
    measured = [f for f in folds if ("cue", f) in auc]
    lines = [
        "| method | " + " | ".join(measured) + " | GAN mean | GAN worst |",
        "|---|" + "---|" * (len(measured) + 2),
    ]
    for m in methods:
        gan = [auc[m, f] for f in study.FAMILIES if f in measured]
        lines.append(
            f"| {m} | " + " | ".join(f"{auc[m, f]:.3f}" for f in measured)
            + f" | {np.mean(gan):.3f} | {min(gan):.3f} |"
        )  # fmt: skip
    return methods, measured, lines


def main() -> None:
    args = probe_arguments(__doc__).parse_args()
    folds, folders, cache = study_folders(args.runs, args.variant, args.seed)
    desc = descriptors(cache)  # the descriptor alone
    blocks = features(cache)
    auc: dict[tuple[str, str], float] = {}
    shift: dict[tuple[str, str], float] = {}
    for fold, folder in evaluated(folders):
        scores, y, generators = fold_variants(folder, desc, blocks)
        for name in ("texture", "texture_aug"):  # how far blur moves the GAN photos' score (validation sd)
            blurred = scores[f"cue+{name} (test blurred)"] - scores[f"cue+{name}"]
            shift[name, fold] = float(np.mean(blurred[y == 1]))
        record_aucs(auc, fold, scores, y, generators)
    methods, measured, table = auc_table(auc, folds)
    lines = [
        "# Other views of the face beside the face cue, on the study's folds",
        "",
        f"Folds of `{args.variant}` (seed {args.seed}: its splits, and its iris scores for `fused` and `stacked`).",
        f"Command: `python experiments/face_features_probe.py --runs RUNS --variant {args.variant}`. What each",
        "method is: the script's docstring. AUC of the held-out family against the held-out real photos; on a",
        "real-source fold, of the held-out source against the test set's GAN photos.",
        "",
        *table,
    ]
    lines += [
        "",
        "Mean change of the GAN photos' score when the test photos' texture is taken from their blurred copies (σ 2",
        "px), in validation standard deviations:",
        "",
        *(
            f"- {name}: " + ", ".join(f"{f} {shift[name, f]:+.2f}" for f in measured)
            for name in ("texture", "texture_aug")
        ),
    ]
    lines += ["", "Paired differences over the folds (95% bootstrap interval; wins):", ""]
    for m, base in [(m, "cue") for m in methods if m not in ("cue", "fused", "stacked")] + [
        ("stacked", "fused")
    ]:
        lines.append(paired_line(f"{m} minus {base}", [auc[m, f] - auc[base, f] for f in measured]))
    write_results("face_features.md", lines)


if __name__ == "__main__":
    main()
