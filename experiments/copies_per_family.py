"""Per family: the detector's AUC on each photo copy of an ``evaluate photo_robustness=true`` run.

    python experiments/copies_per_family.py EVAL_DIR [EVAL_DIR ...] [--ckpt PATH]

``evaluate faces=DIR photo_robustness=true`` writes each copy's extraction under
``EVAL_DIR/photo_robustness/<copy>/extracted`` (the photos as they are under ``EVAL_DIR/extracted``) and reports
the copies' AUC over all photos. A detector is only as good as its worst family, so this scores each copy's
pairs again with the detector (``--ckpt``; default: the shipped one) and gives each generated family's AUC
against all the real photos of the copy. A photo's family is its file name up to the first underscore, as in a
folder made from ``faces_train`` (``sdfd_...``, ``thispersondoesnotexist_...``), and its class its folder's. Results:
``experiments/results/copies_per_family.md``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from study_stats import auroc, write_results

from irisgan.data.pairs import load_pairs
from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.descriptors import pair_descriptors
from irisgan.inference import fuse_face_cue, load_classifier, score_members


def family_of(photo: str) -> str:
    """A photo's family: its file name up to the first underscore, after the index that ``evaluate`` puts before
    the name of each copy it writes (``photo_robustness/<copy>/photos/<class>/00012_<name>``)."""
    path = Path(photo)
    name = re.sub(r"^\d+_", "", path.name) if "photo_robustness" in path.parts else path.name
    return name.split("_")[0]


def copies(folders: list[Path]) -> dict[str, Path]:
    """Copy name -> its extraction's pairs CSV, the photos as they are first (the first folder's)."""
    out: dict[str, Path] = {}
    for folder in folders:
        if "clean" not in out and (folder / "extracted" / "pairs.csv").is_file():
            out["clean"] = folder / "extracted" / "pairs.csv"
        for csv in sorted((folder / "photo_robustness").glob("*/extracted/pairs.csv")):
            out.setdefault(csv.parents[1].name, csv)
    if not out:
        raise SystemExit(
            f"no extracted pairs under {[str(f) for f in folders]}: run evaluate faces=DIR first"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="evaluate run folders (photo_robustness=true)")
    parser.add_argument("--ckpt", help="the detector the runs evaluated (default: the shipped one)")
    args = parser.parse_args()
    model = load_classifier(args.ckpt)
    families: list[str] = []
    table: dict[str, dict[str, str]] = {}
    for name, csv in copies(args.folders).items():
        images, labels, _ = load_pairs(csv)
        probs, _ = score_members(model, images.numpy())
        if model.face_cue is not None:
            probs = fuse_face_cue(model, probs, pair_descriptors(csv, model.face_cue.view))
        family = np.array([family_of(r.get("source") or r["path"]) for r in read_pairs_csv(csv)])
        real = labels.numpy() == 0
        cells = {"real photos": str(int(real.sum()))}
        for f in sorted(set(family[~real])):
            mine = (family == f) & ~real
            y = np.r_[np.zeros(real.sum()), np.ones(mine.sum())]
            cells[f] = f"{auroc(np.r_[probs[real], probs[mine]], y):.3f} ({mine.sum()})"
            families += [f] if f not in families else []
        table[name] = cells
        print(name, cells, flush=True)
    columns = ["real photos", *families]
    write_results(
        "copies_per_family.md",
        [
            "# Each generated family's AUC against the real photos, per photo copy",
            "",
            f"Detector: `{args.ckpt or 'the shipped one'}`; runs: {', '.join(f'`{f}`' for f in args.folders)}.",
            "Command: `python experiments/copies_per_family.py EVAL_DIR ...`. In brackets: the family's photos",
            "with a pair in that copy.",
            "",
            "| copy | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
            *(f"| {n} | " + " | ".join(c.get(k, "-") for k in columns) + " |" for n, c in table.items()),
        ],
    )


if __name__ == "__main__":
    main()
