"""Would an iris-only and a context member together beat either? Scores the study's finished folds, no training.

    python experiments/margin_ensemble.py --runs outputs/experiments/generalisation

For every fold and seed that both variants ran (same split, so the same test photos, matched by photo),
the test AUC of each run alone, of their mean P(GAN) (a two-member ensemble with two crop margins) and, where
a variant has two seeds of the fold, of its own two-seed ensemble: the fair comparison, since any two
members average out some noise. On held-out real sources the AUC is the source against the GAN photos, as in
the study's table. Results: ``experiments/results/margin_ensemble.md``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import cross_generator as cg
import numpy as np
from study_stats import auroc

from irisgan.data.pairs_format import read_pairs_csv


def photo_scores(folder: Path) -> dict[str, tuple[float, int, str]] | None:
    """P(GAN), label and generator of each test photo of a fold (None before it was evaluated)."""
    scored = cg.fold_scores(folder)
    if scored is None:
        return None
    scores, _, csv_path = scored
    return {
        r["photo"]: (float(s), int(r["label"]), r["generator"])
        for r, s in zip(read_pairs_csv(csv_path), scores)
    }


def fold_auc(runs: list[dict], fold: str) -> float:
    """AUC of the members' mean score over the photos every member scored."""
    photos = sorted(set.intersection(*(set(r) for r in runs)))
    labels = np.array([runs[0][p][1] for p in photos])
    gens = np.array([runs[0][p][2] for p in photos])
    keep = np.ones(len(photos), bool)
    if fold in cg.REAL_SOURCES:  # the source against the GAN photos, diffusion apart
        real, gan, _ = cg.source_masks(labels, gens, cg.REAL_SOURCES[fold])
        keep = real | gan
    mean = np.mean([[r[p][0] for p in photos] for r in runs], axis=0)
    return auroc(mean[keep], labels[keep])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=cg.ROOT / "outputs" / "experiments" / "generalisation")
    parser.add_argument("--a", default="augment", help="first variant (its crop margin)")
    parser.add_argument("--b", default="context", help="second variant")
    parser.add_argument("--out", type=Path, default=cg.RESULTS / "margin_ensemble.md")
    args = parser.parse_args()
    # each run is read once: the two-seed columns reuse the runs of the single columns
    load = functools.cache(
        lambda v, s, f: photo_scores(args.runs / cg.run_name(v, "bce_auc", "balanced", s, f))
    )
    lines = [
        f"# Two crop margins in one ensemble: `{args.a}` + `{args.b}`",
        "",
        f"Command: `python experiments/margin_ensemble.py --a {args.a} --b {args.b}`. Test AUC of each fold "
        "(bce_auc, balanced); the ensemble averages the two runs' P(GAN) photo by photo. Two-seed columns: the "
        "same variant's seeds 0 and 1 averaged.",
        "",
        f"| fold | seed | {args.a} | {args.b} | {args.a} + {args.b} | {args.a} two seeds | {args.b} two seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    gains = []
    for fold in cg.FOLDS:
        for seed in (0, 1):
            a, b = load(args.a, seed, fold), load(args.b, seed, fold)
            if a is None or b is None:
                continue
            cells = [fold_auc([a], fold), fold_auc([b], fold), fold_auc([a, b], fold)]
            for v in (args.a, args.b):
                seeds = [load(v, s, fold) for s in (0, 1)]
                cells.append(fold_auc(seeds, fold) if seed == 0 and None not in seeds else None)
            gains.append(cells[2] - max(cells[:2]))
            lines.append(
                f"| {fold} | {seed} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |"
            )
    if gains:
        lines += ["", f"Ensemble minus the better member: mean {np.mean(gains):+.3f} over {len(gains)} runs, "
                  f"ahead in {sum(g > 0 for g in gains)}."]  # fmt: skip
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
