"""Face photos as training data: ``python -m irisgan.train stage=ran data=faces data.root=DIR``.

``FaceFoldersDataModule`` turns face photos into iris pairs with the extractor (``irisgan.extract``), once,
and then trains on them as ``IrisPairsDataModule`` does (normalisation, rebalancing, augmentation, loaders).

Inputs: ``root`` (a folder with ``real/`` and ``fake/``; a subfolder below either names the photo's
generator, e.g. ``fake/stylegan2/x.jpg``) or ``csv`` (``path,label[,generator][,source]``, paths relative to
the CSV, as ``faces_train/sources.csv``).

The cache: ``cache_dir/<key>/`` holds the extractor's output (``pairs/``, ``manifest.jsonl``,
``summary.json``), where ``key`` hashes the extractor settings. Inside, the manifest remembers each photo by
its path and content, so a rerun extracts nothing, a new or changed photo is extracted alone, and changed
settings get a cache of their own. Photos that yield no pair keep their status in the manifest and appear
in ``faces.csv`` with it; they are never dropped silently.

Splits (``split``):

* ``random``: a seeded split, stratified by class and generator, ``val_fraction`` for validation; the
  test set is the validation set unless ``test_fraction`` > 0 sets one apart first.
* ``by_generator``: the photos of the generators in ``holdout`` (GAN or real labels) are the test set,
  with ``test_real_fraction`` of the other real photos (stratified by generator) when ``holdout`` names
  no real source, or with ``test_fake_fraction`` of the GAN photos (stratified by generator) when it names
  only real sources; the rest is split into train and validation. The test AUC is then the detector's score
  on a generator it never saw, or, for a held-out real source, how well it tells a source it never saw
  from GAN photos it never trained on (and its false-positive rate at the stored threshold). An entry
  ``GENERATOR/GLOB`` holds out only that generator's photos whose file name matches the glob (e.g.
  ``stable-diffusion-2.1/sdfd_ma*``): the rest of the generator trains, so the test asks whether the detector
  carries over to other subjects or settings of a generator it knows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict

from irisgan.config import override_value
from irisgan.data.pairs import IrisPairsDataModule
from irisgan.data.pairs_format import write_bytes_atomic, write_pairs_csv
from irisgan.extraction.faces import IMAGE_SUFFIXES
from irisgan.extraction.photos import expand, parse_label

log = logging.getLogger(__name__)

SPLITS = ("random", "by_generator")
CLASS_DIRS = {"real": 0, "fake": 1}
# Extractor settings that do not change a pair: they stay out of the cache key.
_NOT_IN_KEY = (
    "faces",
    "label",
    "out",
    "trainer",
    "batch_size",
    "num_workers",
    "overlay",
    "limit",
    "retry_statuses",
)


def read_face_csv(csv_path: Path) -> list[dict]:
    """Rows ``{photo, label, generator, source}`` of a face CSV; errors name the file and the line."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"data.csv: face CSV not found: {csv_path}")
    rows = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("path", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {missing}; a face CSV needs path,label[,generator]"
            )
        for line, row in enumerate(reader, start=2):
            where = f"{csv_path}, line {line}"
            value = parse_label((row.get("label") or "").strip(), where)
            rel = (row.get("path") or "").strip()
            if not rel:
                raise ValueError(f"{where}: empty path")
            photo = (csv_path.parent / rel).resolve()
            if not photo.is_file():
                raise FileNotFoundError(f"{where}: photo {rel!r} not found (looked at {photo})")
            generator = (row.get("generator") or "").strip() or ("fake" if value else "real")
            rows.append(
                {
                    "photo": str(photo),
                    "label": value,
                    "generator": generator,
                    "source": row.get("source") or "",
                }
            )
    if not rows:
        raise ValueError(f"{csv_path}: the face CSV lists no photos")
    return rows


def read_face_folder(root: Path) -> list[dict]:
    """Rows for ``root/real/**`` and ``root/fake/**``; the first subfolder below a class names the generator."""
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: {root} is not a folder (expected {root}/real and {root}/fake)")
    for name in CLASS_DIRS:
        if not (root / name).is_dir():
            raise ValueError(
                f"data.root: {root / name} is missing; a face folder needs both real/ and fake/ photos"
            )
    rows = []
    for name, label in CLASS_DIRS.items():
        folder = root / name
        photos, _ = expand(folder)  # the extractor's own lister: what it lists, it extracts
        if not photos:
            raise ValueError(f"data.root: {folder} holds no photos (suffixes {sorted(IMAGE_SUFFIXES)})")
        for p in photos:
            parts = p.relative_to(folder).parts
            generator = parts[0] if len(parts) > 1 else name
            rows.append({"photo": str(p.resolve()), "label": label, "generator": generator, "source": ""})
    return rows


def _held_out(row: dict, holdout: list[str]) -> bool:
    """Whether ``data.holdout`` names the row: its generator, or ``GENERATOR/GLOB`` matching its file name."""
    for entry in holdout:
        generator, _, pattern = entry.partition("/")
        if row["generator"] == generator and (
            not pattern or fnmatch(Path(row.get("photo", "")).name, pattern)
        ):
            return True
    return False


def _group_split(
    groups: list[str], indices: list[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded split of ``indices`` taking ``fraction`` of each group (class + generator) to the second part."""
    g = torch.Generator().manual_seed(seed)
    by_group: dict[str, list[int]] = {}
    for i in indices:
        by_group.setdefault(groups[i], []).append(i)
    first, second = [], []
    for key in sorted(by_group):
        members = by_group[key]
        order = [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        n = round(len(order) * fraction)
        second += order[:n]
        first += order[n:]
    return sorted(first), sorted(second)


class FaceFoldersDataModule(IrisPairsDataModule):
    """Face photos -> cached iris pairs -> train/val/test splits (see the module docstring)."""

    def __init__(
        self,
        root: str | None = None,
        csv: str | None = None,
        cache_dir: str = "data/faces_cache",
        extract_overrides: list[str] | None = None,
        iris_margin: float | None = None,
        split: str = "random",
        holdout: list[str] | str | None = None,
        test_real_fraction: float = 0.25,
        test_fake_fraction: float = 0.25,
        test_fraction: float = 0.0,
        **pairs_kwargs,
    ) -> None:
        if (root is None) == (csv is None):
            raise ValueError(
                "data=faces needs exactly one of data.root (DIR with real/ and fake/) or data.csv"
            )
        if split not in SPLITS:
            raise ValueError(f"data.split={split!r} unknown; valid choices: {list(SPLITS)}")
        holdout = [holdout] if isinstance(holdout, str) else list(holdout or [])
        if split == "by_generator" and not holdout:
            raise ValueError(
                "data.split=by_generator needs data.holdout=NAME (or a list): the generators to test on"
            )
        if holdout and split != "by_generator":
            # a random split would train on the photos meant to be unseen, and report a test on them as unseen
            raise ValueError(
                f"data.holdout={holdout} is used with data.split=by_generator only (data.split={split!r} would "
                "train on those photos): add data.split=by_generator"
            )
        fractions = {
            "test_real_fraction": test_real_fraction,
            "test_fake_fraction": test_fake_fraction,
            "test_fraction": test_fraction,
        }
        for name, value in fractions.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.{name} must be in [0, 1), got {value}")
        pairs_kwargs.pop("synthetic", None)
        if pairs_kwargs.get("pseudo_fakes") and iris_margin is not None:
            # the pseudo-fakes are planted on the iris, whose size in the crop the margin sets
            pairs_kwargs["pseudo_fakes"] = {**pairs_kwargs["pseudo_fakes"], "iris_margin": float(iris_margin)}
        super().__init__(csv=csv, synthetic=None, **pairs_kwargs)
        self.face_root = Path(root).expanduser() if root is not None else None
        self.face_csv = Path(csv).expanduser() if csv is not None else None
        self.cache_root = Path(cache_dir).expanduser()
        self.extract_overrides = list(extract_overrides or [])
        if iris_margin is not None:
            if override_value(self.extract_overrides, "pair.iris_margin") is not None:
                raise ValueError(
                    "set the crop margin with data.iris_margin only (the model records it), not in "
                    "data.extract_overrides"
                )
            self.extract_overrides.append(f"pair.iris_margin={float(iris_margin)}")
        for key in ("pair.size", "pair.width"):
            if override_value(self.extract_overrides, key) is not None:
                raise ValueError(
                    f"set the pair's shape with data.size / data.width only (the model records it), not {key} "
                    "in data.extract_overrides"
                )
        height, width = self.shape
        self.extract_overrides.append(f"pair.size={height}")
        if width != height:
            self.extract_overrides.append(f"pair.width={width}")
        self.split, self.holdout = split, holdout
        self.test_real_fraction, self.test_fraction = float(test_real_fraction), float(test_fraction)
        self.test_fake_fraction = float(test_fake_fraction)
        self._split_csvs: dict[str, Path] | None = None

    # -- extraction (cached) ----------------------------------------------------------------------------------
    def _extract_config(self):
        from irisgan.config import compose_config

        cfg = compose_config("extract", ["faces=unused", "out=unused", *self.extract_overrides])
        settings = OmegaConf.to_container(cfg, resolve=False)
        for key in _NOT_IN_KEY:
            settings.pop(key, None)
        settings.pop("hydra", None)
        # the square pair: caches cut before pair.width existed keep their key
        if settings["pair"].get("width") in (None, settings["pair"]["size"]):
            settings["pair"].pop("width", None)
        key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return cfg, self.cache_root / key

    def extract(self) -> tuple[Path, list[dict]]:
        """Run (or resume) the extractor over every photo; returns the cache folder and one row per photo."""
        from irisgan.extraction.loop import run_extraction
        from irisgan.extraction.manifest import read_manifest

        photos = read_face_csv(self.face_csv) if self.face_csv else read_face_folder(self.face_root)
        labels = Counter(r["label"] for r in photos)
        if len(labels) < 2:
            where = self.face_csv or self.face_root
            raise ValueError(
                f"{where}: only {'GAN' if 1 in labels else 'real'} photos; training needs both classes"
            )
        cfg, out = self._extract_config()
        with open_dict(cfg):
            cfg.faces = {
                "real": [r["photo"] for r in photos if r["label"] == 0],
                "fake": [r["photo"] for r in photos if r["label"] == 1],
            }
            cfg.out = str(out)
            cfg.trainer.enable_progress_bar = False
        (out / "settings.yaml").parent.mkdir(parents=True, exist_ok=True)
        (out / "settings.yaml").write_text(OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "faces"}))
        run_extraction(cfg)
        records = read_manifest(out)
        rows = []
        for r in photos:
            record = records.get(r["photo"], {})
            status = record.get("status", "missing")
            pair = record.get("pair") if status == "ok" else None
            rows.append({**r, "status": status, "pair": pair or ""})
        counts = Counter((r["generator"], r["status"]) for r in rows)
        write_pairs_csv(
            out / "faces.csv",
            [
                {
                    "path": r["pair"],
                    "label": r["label"],
                    "generator": r["generator"],
                    "source": r["source"],
                    "photo": r["photo"],
                    "status": r["status"],
                }
                for r in rows
            ],
        )
        log.info("face photos -> pairs in %s: %s", out, dict(sorted(counts.items())))
        return out, rows

    # -- splits ---------------------------------------------------------------------------------------------
    def split_rows(self, rows: list[dict]) -> dict[str, list[int]]:
        """Indices of the rows with a pair in each of train, val and test."""
        ok = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["pair"]]
        groups = [f"{r['label']}/{r['generator']}" for r in rows]
        seed = int(self.hparams.split_seed)
        known = {r["generator"] for r in rows}
        if self.split == "by_generator":
            unknown = [h for h in self.holdout if not any(_held_out(r, [h]) for r in rows)]
            if unknown:
                raise ValueError(
                    f"data.holdout: no photos of {unknown}; generators here: {sorted(known)} (GENERATOR/GLOB "
                    "holds out the generator's photos whose file name matches GLOB)"
                )
            test = [i for i in ok if _held_out(rows[i], self.holdout)]
            rest = [i for i in ok if not _held_out(rows[i], self.holdout)]
            # The test set needs both classes: the missing one comes from a stratified share of the others.
            for label, fraction in ((0, self.test_real_fraction), (1, self.test_fake_fraction)):
                if not any(rows[i]["label"] == label for i in test):
                    same = [i for i in rest if rows[i]["label"] == label]
                    _, held = _group_split(groups, same, fraction, seed)
                    test = sorted(test + held)
                    rest = sorted(set(rest) - set(held))
        elif self.test_fraction > 0:
            rest, test = _group_split(groups, ok, self.test_fraction, seed)
        else:
            rest, test = ok, []
        train, val = _group_split(groups, rest, self.hparams.val_fraction, seed + 1)
        return {"train": train, "val": val, "test": test or val}

    def _split_folder(self, out: Path) -> Path:
        """Where a split's CSVs go: one folder per input, split setting and seed, inside the extraction cache."""
        what = {
            "input": str((self.face_csv or self.face_root).resolve()),
            "split": self.split,
            "holdout": self.holdout,
            "seed": int(self.hparams.split_seed),
            "fractions": [self.hparams.val_fraction, self.test_real_fraction, self.test_fraction],
            "test_fake_fraction": self.test_fake_fraction,
        }
        return out / "splits" / hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]

    def build_splits(self) -> dict[str, Path]:
        """Extract (or reuse the cache), split, and write ``train.csv``, ``val.csv``, ``test.csv``.

        Runs that start together (a sweep, the study, ``make model``) share the cache: a lock file lets one
        extract while the others wait, then find every photo done.
        """
        from filelock import FileLock

        cache = self._extract_config()[1]
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache / ".lock")):
            return self._build_splits_locked()

    def _build_splits_locked(self) -> dict[str, Path]:
        out, rows = self.extract()
        parts = self.split_rows(rows)
        folder = self._split_folder(out)
        csvs = {}
        for part, idx in parts.items():
            part_rows = [
                {
                    "path": f"../../{rows[i]['pair']}",
                    "label": rows[i]["label"],
                    "generator": rows[i]["generator"],
                    "source": rows[i]["source"],
                    "photo": rows[i]["photo"],
                }
                for i in idx
            ]
            csvs[part] = write_pairs_csv(folder / f"{part}.csv", part_rows)
        summary = {
            part: dict(sorted(Counter(f"{rows[i]['label']}/{rows[i]['generator']}" for i in idx).items()))
            for part, idx in parts.items()
        }
        write_bytes_atomic(
            folder / "split.json", json.dumps({"split": self.split, **summary}, indent=1).encode()
        )
        log.info("split %s (%s): %s", self.split, folder, json.dumps(summary))
        return csvs

    def _csvs(self) -> dict[str, Path | None]:
        if self._split_csvs is None:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            if rank == 0:
                self._split_csvs = self.build_splits()
            else:  # rank 0 wrote them in prepare_data; the other processes only read
                folder = self._split_folder(self._extract_config()[1])
                self._split_csvs = {part: folder / f"{part}.csv" for part in ("train", "val", "test")}
        return {
            "fit": self._split_csvs["train"],
            "val": self._split_csvs["val"],
            "test": self._split_csvs["test"],
        }

    def prepare_data(self) -> None:
        self._csvs()
