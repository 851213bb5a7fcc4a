"""The extraction manifest: one JSON line per input photo, appended and fsynced as results arrive, merged
and turned into ``pairs.csv`` and ``summary.json`` at the end of a run.

A rerun reads it back to skip the photos already done (``read_manifest``); a pair file is written before
its manifest line, so an interrupted run loses at most the photos in flight.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from irisgan.data.pairs_format import write_bytes_atomic, write_pairs_csv
from irisgan.extraction.overlays import write_contact_sheet
from irisgan.extraction.photos import CLASS_LABELS, CLASS_NAMES, NOT_AN_IMAGE, Ignored, PhotoInput
from irisgan.extraction.pipeline import STAGES, STATUSES

MANIFEST = "manifest.jsonl"
PENDING = "pending.json"


def read_manifest(out_dir: str | Path) -> dict[str, dict]:
    """Latest record per photo path from ``manifest.jsonl`` and any per-process parts.

    A line cut short by a crash is skipped (its photo is then simply processed again).
    """
    out_dir = Path(out_dir)
    records: dict[str, dict] = {}
    for part in [out_dir / MANIFEST, *sorted(out_dir.glob("manifest.rank*.jsonl"))]:
        if not part.is_file():
            continue
        with open(part, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "path" in record:
                    records[record["path"]] = record
    return records


class ManifestWriter:
    """Appends JSON lines, one ``write`` + ``fsync`` per batch; process ``rank`` > 0 writes its own part."""

    def __init__(self, out_dir: str | Path, rank: int = 0) -> None:
        name = MANIFEST if rank == 0 else f"manifest.rank{rank}.jsonl"
        self.path = Path(out_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._checked_tail = False

    def append(self, records: Iterable[dict]) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if not text:
            return
        with open(self.path, "a+b") as f:
            if not self._checked_tail:
                # A crash mid-line left a partial record: end it so that new records stay whole.
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                self._checked_tail = True
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


def finalize(
    out_dir: str | Path,
    photos: Sequence[PhotoInput],
    ignored: Sequence[Ignored],
    run_started: float,
    run_seconds: float,
    overlay_sheet: bool = False,
) -> dict:
    """Merge manifest parts, rebuild pairs.csv from the manifest, write summary.json; return the summary."""
    out_dir = Path(out_dir)
    records = read_manifest(out_dir)
    ordered = sorted(records.values(), key=lambda r: (r["label"], r["path"]))
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in ordered)
    write_bytes_atomic(out_dir / MANIFEST, text.encode("utf-8"))
    for part in out_dir.glob("manifest.rank*.jsonl"):
        part.unlink()
    (out_dir / PENDING).unlink(missing_ok=True)

    rows = [
        {"path": r["pair"], "label": r["label"], "source": r["path"]}
        for r in ordered
        if r["status"] == "ok" and r.get("pair") and (out_dir / r["pair"]).is_file()
    ]
    write_pairs_csv(out_dir / "pairs.csv", rows)
    # A photo redone with another outcome (its file changed) leaves its old pair behind: drop it,
    # so that pairs/ holds exactly the pairs the CSV lists.
    listed = {Path(row["path"]).name for row in rows}
    for stale in (out_dir / "pairs").glob("*.png"):
        if stale.name not in listed:
            stale.unlink()

    # Per class over the whole manifest: one output folder may gather several runs (real, then fake).
    per_class: dict[str, Counter] = {name: Counter() for name in CLASS_LABELS}
    for r in ordered:
        per_class[CLASS_NAMES[r["label"]]][r["status"]] += 1
    this_run = [r for r in ordered if r.get("extracted_at", 0) >= run_started]
    processed = len(this_run)
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
    for r in this_run:
        for stage, ms in r.get("timings_ms", {}).items():
            stage_ms.setdefault(stage, []).append(ms)
    summary = {
        "inputs": len(photos),
        "in_manifest": sum(1 for p in photos if p.path in records),
        "manifest_records": len(ordered),
        "pairs": len(rows),
        "per_class": {
            name: {"total": sum(c.values()), **{k: c[k] for k in sorted(c, key=_status_order)}}
            for name, c in per_class.items()
        },
        "ignored_files": [i.path for i in ignored if i.reason == NOT_AN_IMAGE],
        "ignored_not_files": [i._asdict() for i in ignored if i.reason != NOT_AN_IMAGE],
        "this_run": {
            "processed": processed,
            "seconds": round(run_seconds, 2),
            "photos_per_second": round(processed / run_seconds, 2) if run_seconds > 0 and processed else None,
        },
        "mean_ms_per_photo_this_run": {s: round(float(np.mean(v)), 2) for s, v in stage_ms.items() if v},
    }
    if overlay_sheet:
        sheet = write_contact_sheet(out_dir, ordered, out_dir / "overlays.png")
        summary["overlay_sheet"] = str(sheet.relative_to(out_dir)) if sheet else None
    write_bytes_atomic(out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _status_order(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


def format_statuses(summary: dict) -> list[str]:
    """One line per class: its photo count and the count per status."""
    lines = []
    for name, counts in summary["per_class"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total")
        lines.append(f"{name}: {counts['total']} photos: {statuses or '-'}")
    return lines


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['in_manifest']}/{summary['inputs']} input photos in the manifest "
        f"({summary['manifest_records']} records), {summary['pairs']} pairs"
    ]
    lines += [f"  {line}" for line in format_statuses(summary)]
    run = summary["this_run"]
    lines.append(
        f"  this run: {run['processed']} photos in {run['seconds']} s ({run['photos_per_second']} photos/s)"
    )
    stages = ", ".join(f"{k} {v}" for k, v in summary["mean_ms_per_photo_this_run"].items())
    if stages:
        lines.append(f"  mean ms per photo and stage (workers run in parallel): {stages}")
    if summary["ignored_files"]:
        lines.append(f"  ignored (not an image suffix): {len(summary['ignored_files'])} files")
    for entry in summary["ignored_not_files"]:
        lines.append(f"  ignored: {entry['path']}: {entry['reason']}")
    return "\n".join(lines)
