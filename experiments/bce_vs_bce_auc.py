"""BCE versus BCE+AUC, balanced and imbalanced, over seeds: the paper's Table 2 layout.

    python experiments/bce_vs_bce_auc.py                      # quick preset (CPU): a reduced RAN, 40 min on 2 cores
    python experiments/bce_vs_bce_auc.py --preset paper-ran   # the paper-size RAN on the default synthetic data (GPU)
    python experiments/bce_vs_bce_auc.py --aggregate DIR      # only rebuild the table from a finished sweep

One Hydra multirun of the real training command (loss x train ratio x seed), then a table of test metrics
(mean +- std over seeds, at the checkpoint's validation-chosen threshold) written to
experiments/results/bce_vs_bce_auc_<preset>.md and .csv. "1:4" trains on one GAN pair per four real pairs
(``data.train_fake_to_real=0.25``); validation and test sets keep their natural balance.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "quick": [
        # A quarter of the paper RAN's FLOPs (0.25 vs 0.97 GFLOP a pair); the default data, epochs and AdamW.
        "model.net.stage_channels=[32,64,128]",
        "model.net.head_channels=256",
        "model.net.stem_channels=16",
    ],
    "paper-ran": [],  # the defaults: paper-size RAN, 4000 synthetic pairs, the stage's epochs
}
RATIOS = {"balanced": "null", "1:4": "0.25"}
COLUMNS = [
    ("acc", "test/acc_at_thr"),
    ("precision", "test/precision_at_thr"),
    ("recall", "test/recall_at_thr"),
    ("f1", "test/f1_at_thr"),
    ("auc", "test/auroc"),
]


def run_sweep(preset: str, seeds: list[int], extra: list[str]) -> Path:
    sweep_dir = ROOT / "outputs" / "experiments" / f"bce_vs_bce_auc_{preset}_{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [
        sys.executable,
        "-m",
        "irisgan.train",
        "-m",
        "stage=ran",
        "loss=bce,bce_auc",
        f"data.train_fake_to_real={','.join(RATIOS.values())}",
        f"seed={','.join(map(str, seeds))}",
        "logger=csv",
        f"hydra.sweep.dir={sweep_dir}",
        *PRESETS[preset],
        *extra,
    ]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return sweep_dir


def aggregate(sweep_dir: Path, preset: str, out_dir: Path = ROOT / "experiments" / "results") -> Path:
    groups: dict[tuple[str, str], list[dict]] = {}
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
        overrides = (metrics_file.parent / ".hydra" / "overrides.yaml").read_text()
        loss = "bce_auc" if "loss=bce_auc" in overrides else "bce"
        ratio = "1:4" if "train_fake_to_real=0.25" in overrides else "balanced"
        groups.setdefault((ratio, loss), []).append(json.loads(metrics_file.read_text()))
    if not groups:
        raise SystemExit(f"no finished runs (metrics.json) under {sweep_dir}")
    rows = []
    for (ratio, loss), runs in sorted(groups.items()):
        row = {"setting": ratio, "loss": loss, "seeds": len(runs)}
        for name, key in COLUMNS:
            values = [r[key] for r in runs if key in r]
            row[name] = statistics.mean(values)
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"bce_vs_bce_auc_{preset}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# BCE vs BCE+AUC ({preset} preset)",
        "",
        f"Sweep: `{sweep_dir.relative_to(ROOT) if sweep_dir.is_relative_to(ROOT) else sweep_dir}`. Test set: the held-out synthetic test "
        "set; metrics at the threshold chosen on validation data (G-mean); mean +- std over seeds.",
        "",
        "| setting | loss | seeds | Acc | Precision | Recall | F1 | AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r[n]:.3f} +- {r[n + '_std']:.3f}" for n, _ in COLUMNS)
        lines.append(f"| {r['setting']} | {r['loss']} | {r['seeds']} | {cells} |")
    md = out_dir / f"bce_vs_bce_auc_{preset}.md"
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return md


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--aggregate", type=Path, help="only aggregate this finished sweep folder")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "experiments" / "results")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer=gpu")
    args = parser.parse_args()
    sweep_dir = args.aggregate or run_sweep(
        args.preset, [int(s) for s in args.seeds.split(",")], args.overrides
    )
    aggregate(sweep_dir, args.preset, args.results_dir)


if __name__ == "__main__":
    main()
