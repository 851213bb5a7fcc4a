"""Probe: does "an unfamiliar face is never a confident real" keep unseen generators from passing as real, and
what does it cost the real photos, on the families and sources the study holds out?

    python experiments/novelty_probe.py --runs outputs/experiments/generalisation --variant context --seeds 0,1,2,3

A detector trained on GAN faces calls most faces of an unseen diffusion model real (the study's diffusion fold:
AUC 0.47). Such faces lie farther from the training faces than the validation photos do: the face cue's novelty
(``FaceCue.novelty``, the mean distance of a face's inner features to its 10 nearest training photos of either
class) ranks them above the real test photos. A face farther out than ``--novelty-quantile`` of the real
validation photos is unfamiliar (``irisgan.ensemble`` sets the bound so), and the decision rule
(``irisgan.inference.DecisionRule``) then leaves it uncertain unless it is confidently GAN.

For each fold and seed (the fold's own training, validation and test photos; the held-out family or source never
seen), the shipped recipe's cue is fitted and the fused score decided under the 3% rule and its uncertain band,
as ``irisgan.ensemble`` chooses them, with and without the unfamiliar rule. Reported per fold, averaged over the
seeds: the novelty's AUC of the held-out photos against the other test photos, the share flagged of the held-out
photos and of the familiar real test photos, and the share of each called real with confidence, before and after.
Results: ``experiments/results/novelty.md``.
"""

from __future__ import annotations

import sys

import cross_generator as study
import numpy as np
from face_descriptor_probe import descriptors, fold_measures
from face_features_probe import probe_arguments, study_folders
from study_stats import auroc, write_results

from irisgan.models.face_cue import FaceView

COLUMNS = (
    "novelty AUC", "held-out flagged", "familiar real flagged", "held-out called real (before -> after)",
    "familiar real called real (before -> after)",
)  # fmt: skip


def fold_row(folders: list, fold: str, desc: dict, quantile: float) -> dict[str, float] | None:
    """One fold's measures, its runs' iris networks as one ensemble (None when one is not evaluated yet)."""
    measured = fold_measures(folders, desc, source_fpr=0.03)
    if measured is None:
        return None
    fused = measured["fused"]
    val, test = measured["rows"]["val"], measured["rows"]["test"]  # the runs share the split: the cue is one
    x = lambda rows: np.stack([desc[r["photo"]] for r in rows])  # noqa: E731
    cue = measured["cue"]
    labels = np.array([int(r["label"]) for r in test])
    if not np.array_equal(labels, fused["labels"]):
        raise ValueError(f"{folders[0]}: the probe's test photos are not fold_measures'")
    val_real = np.array([int(r["label"]) for r in val]) == 0
    bound = np.quantile(cue.novelty(x(val))[val_real], quantile)  # as irisgan.ensemble sets max_novelty
    novelty = cue.novelty(x(test))
    unfamiliar = novelty > bound
    if fold in study.REAL_SOURCES:
        held_out, _, _ = study.source_masks(labels, fused["generators"], study.REAL_SOURCES[fold])
    else:
        held_out = labels == 1
    familiar_real = (labels == 0) & ~held_out
    real_call = fused["scores"] < fused["band"][0]  # below the band: a confident real
    return {
        "novelty AUC": auroc(novelty, held_out.astype(int)),
        "held-out flagged": unfamiliar[held_out].mean(),
        "familiar real flagged": unfamiliar[familiar_real].mean() if familiar_real.any() else np.nan,
        "held-out before": real_call[held_out].mean(),
        "held-out after": (real_call & ~unfamiliar)[held_out].mean(),
        "familiar before": real_call[familiar_real].mean() if familiar_real.any() else np.nan,
        "familiar after": (real_call & ~unfamiliar)[familiar_real].mean() if familiar_real.any() else np.nan,
    }


def main() -> None:
    parser = probe_arguments(__doc__)
    parser.add_argument(
        "--seeds", default="0,1,2,3", help="the seeds whose runs are measured, each on its own"
    )
    parser.add_argument("--novelty-quantile", type=float, default=0.95, help="as irisgan.ensemble's")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="each fold's seeds as one iris ensemble, as the detector has four",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    folds, _, cache = study_folders(args.runs, args.variant, seeds[0])
    desc = descriptors(cache, view=FaceView(inner=True))  # what the shipped cue reads
    pct = lambda v: "-" if np.isnan(v) else f"{100 * v:.0f}%"  # noqa: E731
    how = (
        "their iris networks as one ensemble"
        if args.ensemble
        else "each seed's fold run on its own, its mean shown"
    )
    lines = [
        "# Unfamiliar faces: never a confident real, on the study's folds",
        "",
        f"Folds of `{args.variant}`, seeds {args.seeds} ({how}); a face is",
        f"unfamiliar beyond the {args.novelty_quantile:.0%} quantile of the real validation photos' novelty. Command:",
        f"`python experiments/novelty_probe.py --runs RUNS --variant {args.variant} --seeds {args.seeds} "
        f"--novelty-quantile {args.novelty_quantile:g}{' --ensemble' if args.ensemble else ''}`. The held-out",
        "photos are the held-out family's (or source's); the familiar real photos are the test set's other real",
        "photos (none on a real-source fold, whose test reals are all held out). 'Called real': below the",
        "uncertain band of the 3% rule, as `irisgan.ensemble` chooses it. The novelty and the flags depend on the",
        "fold's split alone, which every seed shares; the calls depend on each seed's iris network too.",
        "",
        "| held out | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for fold in folds:
        rows = []
        runs = [args.runs / study.run_name(args.variant, "bce_auc", "balanced", s, fold) for s in seeds]
        for group in [runs] if args.ensemble else [[r] for r in runs]:
            found = all((r / "metrics.json").is_file() for r in group)
            row = fold_row(group, fold, desc, args.novelty_quantile) if found else None
            if row is None:
                print(f"{fold}, {[r.name for r in group]}: not evaluated yet, skipped", file=sys.stderr)
                continue
            rows.append(row)
        if not rows:
            continue
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        lines.append(
            f"| {fold} | {m['novelty AUC']:.3f} | {pct(m['held-out flagged'])} | {pct(m['familiar real flagged'])} | "
            f"{pct(m['held-out before'])} -> {pct(m['held-out after'])} | "
            f"{pct(m['familiar before'])} -> {pct(m['familiar after'])} |"
        )
        print(lines[-1], flush=True)
    suffix = ("" if args.novelty_quantile == 0.95 else f"_q{args.novelty_quantile:g}") + (
        "_ensemble" if args.ensemble else ""
    )
    write_results(f"novelty{suffix}.md", lines)


if __name__ == "__main__":
    main()
