"""BCE+AUC against BCE over several batches of the study's runs, and how far one run moves on another machine.

    python experiments/loss_pairs.py experiments/results/generalisation.csv experiments/results/generalisation_bce.csv \
        --replicate experiments/results/generalisation_subjects.csv

Each CSV is one batch of ``cross_generator.py`` (its ``--name``): runs made by one code version on one machine.
A BCE+AUC run pairs with the BCE run of the same variant, ratio, seed and held-out fold *of the same batch* only:
the same seed on another machine does not give the same network (most likely because kernels round differently
on other CPU kinds, AVX-512/AMX or AVX2 only, and early stopping amplifies it), so a pair across batches would mix
the loss with the machine. Paired differences in test AUC per group of folds (unseen GAN families, unseen diffusion, held-out real
sources, whose test AUC is the source against 25% of every generated family), with 95% bootstrap intervals.

``--replicate CSV``: runs of that batch that a given batch repeats (same variant, loss, ratio, seed and fold) are
compared: the spread a reader should expect between two machines for one seed.
Results: ``experiments/results/loss_pairs.md``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from cross_generator import DIFFUSION, FAMILIES, REAL_SOURCES, RESULTS
from study_stats import paired_difference, write_results

GROUPS = {
    "unseen GAN families": set(FAMILIES),
    "unseen diffusion": set(DIFFUSION),
    "GAN and diffusion folds": set(FAMILIES) | set(DIFFUSION),
    "held-out real sources": set(REAL_SOURCES),
}
Key = tuple[str, str, int, str]  # variant, ratio, seed, family


def read_batch(path: Path) -> dict[tuple[str, Key], float]:
    """(loss, (variant, ratio, seed, family)) -> test AUC of one results CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"variant", "loss", "ratio", "seed", "family", "test_auc"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: not a cross_generator results CSV (missing {sorted(missing)})")
    return {
        (r["loss"], (r["variant"], r["ratio"], int(r["seed"]), r["family"])): float(r["test_auc"])
        for r in rows
    }


def loss_pairs(batches: dict[str, dict]) -> list[tuple[str, Key, float]]:
    """(batch, key, BCE+AUC minus BCE) for every matched pair inside a batch."""
    out = []
    for name, auc in batches.items():
        for (loss, key), value in sorted(auc.items()):
            if loss == "bce_auc" and ("bce", key) in auc:
                out.append((name, key, value - auc[("bce", key)]))
    return out


def lines_for(batches: dict[str, dict], replicate: dict[str, dict]) -> list[str]:
    pairs = loss_pairs(batches)
    if not pairs:
        raise ValueError("no BCE+AUC run has a BCE twin in the same batch")
    lines = [
        "# BCE+AUC against BCE, over batches of matched runs",
        "",
        "BCE+AUC minus BCE in test AUC; a pair is one variant, ratio, seed and held-out fold, both runs from one",
        "batch (one machine, one code version). Batches: "
        + ", ".join(f"`{n}` ({sum(1 for p in pairs if p[0] == n)} pairs)" for n in batches)
        + ".",
        "",
        "| variant, ratio | folds | matched runs | mean | 95% interval | BCE+AUC ahead | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    settings = sorted({k[:2] for _, k, _ in pairs})
    for setting in settings:
        for group, folds in GROUPS.items():
            diffs = [d for _, k, d in pairs if k[:2] == setting and k[3] in folds]
            if not diffs:
                continue
            st = paired_difference(diffs)
            lines.append(
                f"| {', '.join(setting)} | {group} | {st['n']} | {st['mean']:+.3f} | [{st['lo']:+.3f}, {st['hi']:+.3f}]"
                f" | {st['a_wins']}/{st['n']} | {st['verdict']} |"
            )
    lines += [
        "",
        "Per pair:",
        "",
        "| batch | variant, ratio | seed | fold | BCE+AUC - BCE |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {k[0]}, {k[1]} | {k[2]} | {k[3]} | {d:+.3f} |" for n, k, d in pairs]
    for ref_name, ref in replicate.items():
        for name, auc in batches.items():
            common = sorted(k for k in auc if k in ref)
            if name == ref_name or not common:
                continue
            deltas = [auc[k] - ref[k] for k in common]
            absolute = [abs(d) for d in deltas]
            lines += [
                "",
                f"## The same runs in two batches: `{name}` against `{ref_name}`",
                "",
                f"{len(common)} runs with the same variant, loss, ratio, seed and fold, made on another machine (and, "
                "between sessions far apart, by another code version). Mean |difference| in test AUC "
                f"{statistics.mean(absolute):.3f}, largest {max(absolute):.3f}; mean difference {statistics.mean(deltas):+.3f}.",
                "",
                "| loss | variant, ratio | seed | fold | here | there | difference |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {k[0]} | {k[1][0]}, {k[1][1]} | {k[1][2]} | {k[1][3]} | {auc[k]:.3f} | {ref[k]:.3f} | {auc[k] - ref[k]:+.3f} |"
                for k in common
            ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "batches", nargs="+", type=Path, help="results CSVs of cross_generator.py, one per batch"
    )
    parser.add_argument(
        "--replicate", nargs="*", type=Path, default=[], help="earlier batches the runs repeat"
    )
    parser.add_argument("--name", default="loss_pairs", help=f"results file: {RESULTS}/NAME.md")
    args = parser.parse_args()
    batches = {p.stem: read_batch(p) for p in args.batches}
    replicate = {p.stem: read_batch(p) for p in args.replicate}
    write_results(f"{args.name}.md", lines_for(batches, replicate))


if __name__ == "__main__":
    main()
