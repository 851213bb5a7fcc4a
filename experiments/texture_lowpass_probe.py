"""Probe: does the face's texture part survive blur and resampling if it only sees a low-passed face?

    python experiments/texture_lowpass_probe.py --runs outputs/experiments/generalisation --variant context \
        [--sample-csv DIR/extracted/pairs.csv --model-split data/faces_cache/<key>/splits/<split>]

The optional texture part of the face cue (``irisgan.extraction.texture``: ImageNet MobileNetV2's early blocks on
the grey aligned face) lifts unseen GAN families on the study's folds, but a blurred or resampled GAN photo moves
it towards "real", and CelebA-HQ's super-resolved real photos look generated to it (experiments/README.md, ninth
round). Both are fine detail. Here the aligned face (224 px) is first shrunk to ``R`` px (area filter) and enlarged
back, so that the trunk sees only what survives that low-pass; R = 224 is the package's texture part. For each R,
on each fold of seed 0's splits: the texture probe alone and added to the descriptor's cue (each standardised on
the fold's validation photos), and how far a blurred (σ 2 px) or shrunk-to-a-quarter-and-enlarged copy of the test
GAN photos moves the texture score (validation standard deviations). ``--sample-csv``: a pairs CSV of photos from
outside faces_train (``evaluate faces=../shared/data/faces`` writes one), scored by probes fitted on the shipped
detector's training split (``--model-split``), with the mean texture score of its real and GAN photos.
Results: ``experiments/results/texture_lowpass.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cross_generator as study
import numpy as np
import torch
from face_descriptor_probe import descriptors, rows_of
from study_stats import auroc, write_results

from irisgan.data.degrade import degrade
from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.descriptors import find_manifest, photo_descriptors
from irisgan.extraction.manifest import read_manifest
from irisgan.extraction.texture import CHIP, TEXTURE_SIZE, aligned_grey_face, load_trunk
from irisgan.models.face_cue import TEXTURE_L2, FaceView, fit_face_cue, fit_logistic

SIZES = (224, 112, 64)  # R: the low-pass's side (224: none)
COPIES = ("clean", "blur2", "resize0.25")
CACHE = "face_texture_lowpass.npz"


def lowpass_textures(image: np.ndarray, face_box, landmarks) -> np.ndarray:
    """(len(COPIES) * len(SIZES) * TEXTURE_SIZE,) texture features of a photo and its processed copies, each
    aligned face low-passed to every R."""
    import cv2

    chips = []
    for copy in COPIES:
        grey = aligned_grey_face(image if copy == "clean" else degrade(image, copy), face_box, landmarks)
        for r in SIZES:
            small = cv2.resize(grey, (r, r), interpolation=cv2.INTER_AREA)
            chips.append(
                grey if r == CHIP else cv2.resize(small, (CHIP, CHIP), interpolation=cv2.INTER_LINEAR)
            )
    with torch.inference_mode():
        return load_trunk()(torch.from_numpy(np.stack(chips))).numpy().ravel().astype(np.float32)


def textures(extraction: Path) -> dict[str, np.ndarray]:
    """Photo path -> (copy, R, feature) array, cached in the extraction folder by fingerprint."""
    records = [r for r in read_manifest(extraction).values() if r.get("landmarks") and r.get("face_box")]
    x = photo_descriptors(records, extraction / CACHE, lowpass_textures)
    shaped = x.reshape(len(records), len(COPIES), len(SIZES), TEXTURE_SIZE)
    return {r["path"]: v for r, v in zip(records, shaped, strict=True)}


def probe(fit_x, fit_y, val_x):
    """The texture probe fitted on training photos, as a function scoring in validation standard deviations."""
    mean, scale, weight, bias = fit_logistic(fit_x, fit_y, TEXTURE_L2)
    logit = lambda t: ((t - mean) / scale) @ weight + bias  # noqa: E731
    v = logit(val_x)
    return lambda t: (logit(t) - v.mean()) / v.std()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, required=True, help="the study's run folders")
    parser.add_argument("--variant", default="context")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-csv", type=Path, help="pairs CSV of photos from outside faces_train")
    parser.add_argument(
        "--model-split", type=Path, help="folder of the shipped detector's train.csv and val.csv"
    )
    args = parser.parse_args()
    folds = {**study.FAMILIES, **study.DIFFUSION, **study.REAL_SOURCES}
    run = lambda f: args.runs / study.run_name(args.variant, "bce_auc", "balanced", args.seed, f)  # noqa: E731
    first = next(run(f) for f in folds if (run(f) / "metrics.json").is_file())
    cache = study._project_path(first, json.loads((first / "metrics.json").read_text())["data_csvs"]["fit"])
    cache = cache.parents[2]
    desc, tex = descriptors(cache, 0.25, FaceView()), textures(cache)
    res: dict = {}
    for fold in folds:
        if not (run(fold) / "metrics.json").is_file():
            continue
        csvs = json.loads((run(fold) / "metrics.json").read_text())["data_csvs"]
        fit, val, test = (
            [r for r in rows_of(run(fold), csvs[k]) if r["photo"] in desc] for k in ("fit", "val", "test")
        )
        xs = lambda rows: np.stack([desc[r["photo"]] for r in rows])  # noqa: E731
        ys = lambda rows: np.array([int(r["label"]) for r in rows])  # noqa: E731
        ts = lambda rows, c, i: np.stack([tex[r["photo"]][c, i] for r in rows])  # noqa: E731
        y, gens = ys(test), np.array([r.get("generator") or "" for r in test])
        if fold in study.REAL_SOURCES:  # the held-out source's photos against the GAN photos
            own, gan, _ = study.source_masks(y, gens, study.REAL_SOURCES[fold])
            keep = own | gan
        else:
            keep = np.ones(len(y), bool)
        score = lambda s, keep=keep, y=y: auroc(s[keep], y[keep])  # noqa: E731
        cue = fit_face_cue(xs(fit), ys(fit), xs(val), np.full(len(val), 0.5)).face_part(xs(test))
        res["cue", fold] = score(cue)
        for i, r in enumerate(SIZES):
            z = probe(ts(fit, 0, i), ys(fit), ts(val, 0, i))
            clean = z(ts(test, 0, i))
            res["texture", r, fold], res["cue + texture", r, fold] = score(clean), score(cue + clean)
            res["shift", r, fold] = [
                float(np.mean(z(ts(test, c, i))[y == 1] - clean[y == 1])) for c in (1, 2)
            ]
        print(fold, {k[:2]: v for k, v in res.items() if k[-1] == fold}, flush=True)
    present = [f for f in folds if ("cue", f) in res]
    gan = [f for f in study.FAMILIES if f in present]

    def row(name: str, key: tuple) -> str:
        g = [res[(*key, f)] for f in gan]
        cells = [f"{np.mean(g):.3f} / {min(g):.3f}"] + [
            f"{res[(*key, f)]:.3f}" for f in present if f not in study.FAMILIES
        ]
        return f"| {name} | " + " | ".join(cells) + " |"

    others = [f for f in present if f not in study.FAMILIES]
    lines = [
        "# The texture part behind a low-pass",
        "",
        f"Variant `{args.variant}`, seed {args.seed}'s splits. AUC of each fold's held-out photos (a held-out source:",
        "its real photos against the GAN photos). `texture R`: the texture probe on the aligned face shrunk to R px",
        "and enlarged back (224: the package's texture part); `cue + texture R`: added to the descriptor's cue.",
        "Command: `python experiments/texture_lowpass_probe.py --runs RUNS`.",
        "",
        "| score | GAN mean / worst | " + " | ".join(others) + " |",
        "|---|---|" + "---|" * len(others),
        row("cue", ("cue",)),
        *(row(f"texture {r}", ("texture", r)) for r in SIZES),
        *(row(f"cue + texture {r}", ("cue + texture", r)) for r in SIZES),
        "",
        "How far a processed copy of the test GAN photos moves the texture score (validation sd; blur σ 2 /",
        "a quarter and back), per fold:",
        "",
        "| R | " + " | ".join(present) + " |",
        "|---|" + "---|" * len(present),
        *(
            f"| {r} | " + " | ".join("{:+.2f} / {:+.2f}".format(*res["shift", r, f]) for f in present) + " |"
            for r in SIZES
        ),
    ]
    if args.sample_csv and args.model_split:
        split_rows = {k: read_pairs_csv(args.model_split / f"{k}.csv") for k in ("train", "val")}
        by_pair = {
            (cache / r["pair"]).resolve(): r["path"] for r in read_manifest(cache).values() if r.get("pair")
        }
        photo = lambda k: [by_pair[(args.model_split / r["path"]).resolve()] for r in split_rows[k]]  # noqa: E731
        labels = {k: np.array([int(r["label"]) for r in split_rows[k]]) for k in split_rows}
        sample_rows = read_pairs_csv(args.sample_csv)
        sample_tex = textures(find_manifest(args.sample_csv))
        sample_desc = descriptors(find_manifest(args.sample_csv), 0.25, FaceView())
        y_sample = np.array([int(r["label"]) for r in sample_rows])
        fit_x = np.stack([desc[p] for p in photo("train")])
        cue = fit_face_cue(fit_x, labels["train"], np.stack([desc[p] for p in photo("val")]), np.full(1, 0.5))
        cue_s = cue.face_part(np.stack([sample_desc[r["source"]] for r in sample_rows]))
        lines += [
            "",
            f"Photos from outside faces_train (`{args.sample_csv}`, {len(y_sample)} photos), probes fitted on the shipped",
            f"detector's training split (`{args.model_split}`): AUC, and the mean texture score of its real and GAN",
            f"photos (validation sd). The descriptor's cue alone: AUC {auroc(cue_s, y_sample):.3f}.",
            "",
            "| R | texture AUC | cue + texture AUC | real photos | GAN photos |",
            "|---|---|---|---|---|",
        ]
        for i, r in enumerate(SIZES):
            z = probe(
                np.stack([tex[p][0, i] for p in photo("train")]),
                labels["train"],
                np.stack([tex[p][0, i] for p in photo("val")]),
            )
            s = z(np.stack([sample_tex[r_["source"]][0, i] for r_ in sample_rows]))
            lines.append(
                f"| {r} | {auroc(s, y_sample):.3f} | {auroc(cue_s + s, y_sample):.3f} | "
                f"{s[y_sample == 0].mean():+.2f} | {s[y_sample == 1].mean():+.2f} |"
            )
    write_results("texture_lowpass.md", lines)


if __name__ == "__main__":
    main()
