"""Extraction yield per generator: which share of each source's photos gave an iris pair, and why not.

    python experiments/extraction_yield.py OUT_DIR SOURCES_CSV [--by generator|source]

``OUT_DIR`` is an ``irisgan.extract`` output folder (its ``manifest.jsonl`` and ``summary.json``);
``SOURCES_CSV`` lists ``path,label,generator[,source]`` with paths relative to the CSV's folder (as
``../shared/data/faces_train/sources.csv`` does). Prints a markdown table: one row per generator (or
source), real rows first, with photos, pairs, yield (status ``ok`` / photos) and the count of every
status; then one row per class, and the run's photos/s from ``summary.json``. A yield that differs by
class biases everything trained or measured on the pairs, so the class rows matter as much as the rest.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from irisgan.extraction.manifest import read_manifest  # noqa: E402
from irisgan.extraction.pipeline import STATUSES  # noqa: E402

CLASS_NAMES = {0: "real", 1: "fake"}


def read_sources(csv_path: Path, column: str) -> dict[str, tuple[int, str]]:
    """Resolved photo path -> (label, the value of ``column``) from a sources CSV."""
    rows = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label", column} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: no column {sorted(missing)} (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            if str(row["label"]) not in ("0", "1"):
                raise ValueError(f"{csv_path}:{line}: label {row['label']!r} is not 0 or 1")
            path = str((csv_path.parent / row["path"]).resolve())
            rows[path] = (int(row["label"]), row[column])
    return rows


def yield_table(out_dir: Path, sources_csv: Path, column: str = "generator") -> str:
    """The markdown table (and a photos/s line) for one extraction output folder."""
    records = read_manifest(out_dir)
    sources = read_sources(sources_csv, column)
    groups: dict[tuple[int, str], Counter] = {}
    classes: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for path, (label, group) in sources.items():
        record = records.get(path)
        status = record["status"] if record else "not_extracted"
        groups.setdefault((label, group), Counter())[status] += 1
        classes[label][status] += 1
    unlisted = sum(1 for path in records if path not in sources)
    seen = {s for counts in classes.values() for s in counts}
    statuses = [s for s in STATUSES if s in seen] + sorted(seen - set(STATUSES))

    def row(name: str, label: int, counts: Counter) -> str:
        total = sum(counts.values())
        ok = counts.get("ok", 0)
        rate = f"{100.0 * ok / total:.1f}%" if total else "-"
        cells = [
            name,
            CLASS_NAMES[label],
            str(total),
            str(ok),
            rate,
            *(str(counts.get(s, 0)) for s in statuses),
        ]
        return "| " + " | ".join(cells) + " |"

    lines = [
        f"| {column} | class | photos | pairs | yield | " + " | ".join(statuses) + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(statuses),
    ]
    for (label, group), counts in sorted(groups.items()):
        lines.append(row(f"`{group}`", label, counts))
    for label, counts in classes.items():
        lines.append(row(f"**all {CLASS_NAMES[label]}**", label, counts))
    summary_path = out_dir / "summary.json"
    if summary_path.is_file():
        run = json.loads(summary_path.read_text()).get("this_run", {})
        lines.append(
            f"\nLast run: {run.get('processed')} photos in {run.get('seconds')} s "
            f"({run.get('photos_per_second')} photos/s)."
        )
    if unlisted:
        lines.append(f"\n{unlisted} photos in the manifest are not in {sources_csv.name} (not counted).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="an irisgan.extract output folder")
    parser.add_argument("sources_csv", type=Path, help="path,label,generator[,source] CSV of the photos")
    parser.add_argument("--by", default="generator", help="the CSV column to group by (default: generator)")
    args = parser.parse_args(argv)
    if not (args.out_dir / "manifest.jsonl").is_file():
        parser.error(f"{args.out_dir}: no manifest.jsonl (not an extraction output folder)")
    print(yield_table(args.out_dir, args.sources_csv, args.by))


if __name__ == "__main__":
    main()
