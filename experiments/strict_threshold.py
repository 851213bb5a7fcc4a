"""Would a stricter threshold keep unseen real sources below 10% false positives, and at what cost?

    python experiments/strict_threshold.py --runs outputs/experiments/generalisation --variant augment

For every finished fold of ``experiments/cross_generator.py`` (one variant, loss ``bce_auc``, balanced, seed 0)
its best checkpoint scores its validation and test pairs. Three thresholds, all chosen on the validation
pairs: the stored one (``gmean``), and the lowest that keeps every real source *seen in training* at or
below 10% and 5% false positives. The table gives, at each, the worst false-positive rate of the real
sources in the test set (for a real-source fold: the held-out source) and the share of the test set's
generated photos called GAN (for a GAN fold: the held-out family). Results: ``results/strict_threshold.md``
(``augment``) and ``results/strict_threshold_<variant>.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from cross_generator import FOLDS, RESULTS, ROOT, _project_path, fold_generators, run_name

from irisgan.data.pairs import load_pairs
from irisgan.inference import load_classifier, score_pairs

LIMITS = {"stored (gmean)": None, "seen sources FPR <= 10%": 0.10, "seen sources FPR <= 5%": 0.05}


def fold_rows(folder: Path, fold: str) -> list[str]:
    metrics = json.loads((folder / "metrics.json").read_text())
    model = load_classifier(folder / "checkpoints" / "best.ckpt")
    scored = {}
    for part in ("val", "test"):
        csv = _project_path(folder, metrics["data_csvs"][part])
        images, labels, _ = load_pairs(csv, threads=1)
        scored[part] = (score_pairs(model, images), labels.numpy(), np.array(fold_generators(str(csv))))
    (vs, vy, vg), (ts, ty, tg) = scored["val"], scored["test"]
    rows = []
    for name, limit in LIMITS.items():
        if limit is None:
            threshold = float(model.threshold)
        else:
            threshold = max(float(np.quantile(vs[vg == g], 1 - limit)) for g in set(vg[vy == 0]))
        worst_fpr = max(float((ts[tg == g] >= threshold).mean()) for g in set(tg[ty == 0]))
        recall = float((ts[ty == 1] >= threshold).mean())
        rows.append(f"| {fold} | {name} | {threshold:.2f} | {worst_fpr:.2f} | {recall:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "experiments" / "generalisation")
    parser.add_argument("--variant", default="augment")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shown = str(args.runs)  # the run folders as their checkout names them, not this machine's absolute path
    shown = shown[shown.find("outputs/") :] if "outputs/" in shown else shown
    lines = [
        "# A stricter threshold on the held-out folds",
        "",
        f"Variant `{args.variant}`, bce_auc, balanced, seed 0; runs in `{shown}`. Command: "
        f"`python experiments/strict_threshold.py --variant {args.variant}`.",
        "",
        "| held out | threshold (chosen on validation) | value | worst real-source FPR in the test set | "
        "test GAN photos called GAN |",
        "|---|---|---|---|---|",
    ]
    for fold in FOLDS:
        folder = args.runs / run_name(args.variant, "bce_auc", "balanced", 0, fold)
        if (folder / "metrics.json").is_file():
            lines += fold_rows(folder, fold)
            print(lines[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # augment's table came first and keeps its name; every other variant gets a file of its own
    name = "strict_threshold" if args.variant == "augment" else f"strict_threshold_{args.variant}"
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
