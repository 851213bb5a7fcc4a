"""Probe: how vivid is a face, and does it tell an unseen diffusion model's faces from real photos?

    python experiments/vivid_probe.py --runs outputs/experiments/generalisation --variant context --seeds 0,1,2,3

Many diffusion faces look over-processed: more saturated, more local contrast, sharper than a photograph
(``irisgan.data.degrade.vivid``). A face's vividness is a logistic regression on the shipped cue's features
(dlib's descriptor and the inner layers of its network) that tells each real training photo of a fold from a
vivid copy of it (``vivid_copy``). It learns the look alone: each copy shows the same face as its photo. It never
sees a generated face.

For each fold (its four iris networks as one ensemble, the shipped recipe's cue, the 3% rule and its uncertain
band), reported:
- the vividness's AUC of the held-out photos against the test set's other photos;
- **as a rule**, as the unfamiliar rule does: a face more vivid than ``--quantile`` of the real validation photos
  is never called real with confidence. The shares flagged, and the shares called real before and after;
- **as a part of the score**: the fused score plus the vividness beyond that bound, each in standard deviations
  of the real validation photos (a hinge, so that a face no more vivid than most real photos keeps its score).
  The fold's AUC, and at the 3% rule (chosen again on the validation photos with the part) the held-out family's
  share caught or the held-out source's false positives.
- with the shipped unfamiliar rule too (``novelty_probe.py``): the shares called real when neither flag is up.

Results: ``experiments/results/vivid.md``.
"""

from __future__ import annotations

import sys

import cross_generator as study
import numpy as np
from face_descriptor_probe import descriptors, fold_measures, vivid_copies
from face_features_probe import probe_arguments, study_folders
from study_stats import auroc, write_results

from irisgan.models.face_cue import FaceCue, FaceView, fit_vividness
from irisgan.training.metrics import source_threshold

VIEW = FaceView(inner=True)  # what the shipped cue reads
COLUMNS = (
    "vividness AUC", "flagged: held-out / familiar real", "held-out called real", "familiar real called real",
    "held-out / familiar real called real, with the unfamiliar rule too",
    "AUC with the part", "at the 3% rule with the part",
)  # fmt: skip


def vividness(cue: FaceCue, fit: list, desc: dict, copies: dict, l2: float):
    """The score of how vivid a face looks (``FaceCue.vividness``), its probe fitted as ``irisgan.ensemble`` fits
    it (``fit_vividness``): the fold's real training photos (0) against their vivid copies (1)."""
    real = [r["photo"] for r in fit if int(r["label"]) == 0]
    cue.vivid = fit_vividness(np.stack([desc[p] for p in real]), np.stack([copies[p] for p in real]), l2)
    return cue.vividness


def fold_row(runs: list, fold: str, desc: dict, copies: dict, quantile: float, l2: float) -> dict | None:
    """One fold's measures (None when one of its runs is not evaluated yet)."""
    measured = fold_measures(runs, desc, source_fpr=0.03)
    if measured is None:
        return None
    fused = measured["fused"]
    fit, val, test = (measured["rows"][k] for k in ("fit", "val", "test"))
    x = lambda rows: np.stack([desc[r["photo"]] for r in rows])  # noqa: E731
    cue = measured["cue"]
    score = vividness(cue, fit, desc, copies, l2)
    yv, labels = fused["val_labels"], fused["labels"]
    if not np.array_equal(np.array([int(r["label"]) for r in test]), labels):
        raise ValueError(f"{runs[0]}: the probe's test photos are not fold_measures'")
    v_val, v_test = score(x(val)), score(x(test))
    bound = np.quantile(v_val[yv == 0], quantile)
    flagged = v_test > bound
    # the shipped rule beside it: an unfamiliar face (novelty_probe.py) is never called real either
    unfamiliar = cue.novelty(x(test)) > np.quantile(cue.novelty(x(val))[yv == 0], 0.95)
    if fold in study.REAL_SOURCES:
        held_out, gan, _ = study.source_masks(labels, fused["generators"], study.REAL_SOURCES[fold])
    else:
        held_out, gan = labels == 1, labels == 1
    familiar = (labels == 0) & ~held_out
    real_call = fused["scores"] < fused["band"][0]
    # the part: both in sd of the real validation photos, the vividness counted beyond the bound only
    ref_f, ref_v = fused["val_scores"][yv == 0], v_val[yv == 0]
    z = lambda v, ref: (v - ref.mean()) / ref.std()  # noqa: E731
    hinge = lambda f, v: z(f, ref_f) + np.maximum(0.0, z(v, ref_v) - z(bound, ref_v))  # noqa: E731
    with_val, with_test = hinge(fused["val_scores"], v_val), hinge(fused["scores"], v_test)
    strict = source_threshold(with_val, yv, fused["val_sources"], 0.03)
    if fold in study.REAL_SOURCES:  # the held-out source against the GAN photos; its false positives
        pick = held_out | gan
        auc = (auroc(fused["scores"][pick], labels[pick]), auroc(with_test[pick], labels[pick]))
        rule = (np.mean(fused["scores"][held_out] >= fused["strict"]), np.mean(with_test[held_out] >= strict))
    else:  # the held-out family against the test reals; its share caught
        auc = (auroc(fused["scores"], labels), auroc(with_test, labels))
        rule = (np.mean(fused["scores"][held_out] >= fused["strict"]), np.mean(with_test[held_out] >= strict))
    mean = lambda m: float(m.mean()) if m.any() else np.nan  # noqa: E731
    return {
        "auc": auroc(np.r_[v_test[held_out], v_test[~held_out]], np.r_[np.ones(held_out.sum()), np.zeros((~held_out).sum())]),
        "flag_held": flagged[held_out].mean(), "flag_familiar": mean(flagged[familiar]),
        "held_before": real_call[held_out].mean(), "held_after": (real_call & ~flagged)[held_out].mean(),
        "fam_before": mean(real_call[familiar]), "fam_after": mean((real_call & ~flagged)[familiar]),
        "held_both": (real_call & ~flagged & ~unfamiliar)[held_out].mean(),
        "fam_both": mean((real_call & ~flagged & ~unfamiliar)[familiar]),
        "auc_before": auc[0], "auc_after": auc[1], "rule_before": rule[0], "rule_after": rule[1],
    }  # fmt: skip


def main() -> None:
    parser = probe_arguments(__doc__)
    parser.add_argument("--seeds", default="0,1,2,3", help="the fold's runs, scored as one iris ensemble")
    parser.add_argument(
        "--quantile", type=float, default=0.95, help="of the real validation photos' vividness"
    )
    parser.add_argument("--l2", type=float, default=0.01, help="the vividness regression's L2 penalty")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    folds, _, cache = study_folders(args.runs, args.variant, seeds[0], subjects=True)
    desc = descriptors(cache, view=VIEW)
    copies = vivid_copies(cache, VIEW)
    pct = lambda v: "-" if np.isnan(v) else f"{100 * v:.0f}%"  # noqa: E731
    lines = [
        "# How vivid a face is: a rule and a part of the score, on the study's folds",
        "",
        f"Folds of `{args.variant}`, seeds {args.seeds} as one iris ensemble, the shipped recipe's cue. Command:",
        f"`python experiments/vivid_probe.py --runs RUNS --variant {args.variant} --seeds {args.seeds} --quantile "
        f"{args.quantile:g} --l2 {args.l2:g}`.",
        f"Vividness: real training photos against their vivid copies; the bound: {args.quantile:.0%} of the real",
        "validation photos. 'Called real': below the uncertain band of the 3% rule, before -> after the rule",
        "(flagged faces never called real). 'With the part': the fused score plus the vividness beyond the bound.",
        "On a real-source fold, the AUC is the held-out source's against the GAN photos and the last column its",
        "false positives; on the other folds, the held-out family's AUC and its share caught.",
        "",
        "| held out | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for fold in folds:
        runs = [args.runs / study.run_name(args.variant, "bce_auc", "balanced", s, fold) for s in seeds]
        row = None
        if all((r / "metrics.json").is_file() for r in runs):
            row = fold_row(runs, fold, desc, copies, args.quantile, args.l2)
        if row is None:
            print(f"{fold}: not evaluated yet, skipped", file=sys.stderr)
            continue
        lines.append(
            f"| {fold} | {row['auc']:.3f} | {pct(row['flag_held'])} / {pct(row['flag_familiar'])} | "
            f"{pct(row['held_before'])} -> {pct(row['held_after'])} | "
            f"{pct(row['fam_before'])} -> {pct(row['fam_after'])} | "
            f"{pct(row['held_both'])} / {pct(row['fam_both'])} | "
            f"{row['auc_before']:.3f} -> {row['auc_after']:.3f} | "
            f"{pct(row['rule_before'])} -> {pct(row['rule_after'])} |"
        )
        print(lines[-1], flush=True)
    write_results("vivid.md", lines)


if __name__ == "__main__":
    main()
