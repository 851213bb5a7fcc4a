"""Which photos a run reads: the one input lister of ``extract``, ``predict`` and the segmenter demo.

A spec is a folder (searched recursively, hidden entries skipped), a file or a glob. Files without an image
suffix and entries that are not files (a folder named ``x.jpg``, a broken link, a pipe) are reported with a
reason, never dropped silently. ``extract`` needs a class per photo (``list_inputs``); ``predict`` does not
(``list_unlabelled``).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from irisgan.extraction.faces import IMAGE_SUFFIXES

CLASS_LABELS = {"real": 0, "fake": 1}
CLASS_NAMES = {label: name for name, label in CLASS_LABELS.items()}
NOT_AN_IMAGE = "not an image suffix"


@dataclass(frozen=True)
class PhotoInput:
    path: str  # absolute; the manifest key
    label: int | None  # 0 real, 1 fake; None where the class is what is asked (predict)
    fingerprint: str  # sha1 of the file's bytes: a changed photo is processed again, a touched one is not

    @property
    def pair_name(self) -> str:
        """A file name unique per input path, readable, the same on every rerun."""
        digest = hashlib.sha1(self.path.encode()).hexdigest()[:8]
        prefix = f"{CLASS_NAMES[self.label]}_" if self.label is not None else ""
        return f"{prefix}{Path(self.path).stem}_{digest}.png"


class Ignored(NamedTuple):
    path: str
    reason: str


def fingerprint(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _why_not_a_file(path: Path) -> str:
    if path.is_dir():
        return "a directory, not a file"
    if path.is_symlink() and not path.exists():
        return "a broken symbolic link"
    return "not a regular file"


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def expand(spec: str | os.PathLike) -> tuple[list[Path], list[Ignored]]:
    """(image files, entries ignored with their reason) named by a folder (recursive), a file or a glob."""
    path = Path(spec).expanduser()
    if path.is_dir():
        entries = [p for p in sorted(path.rglob("*")) if not _is_hidden(p, path)]
        # A sub-folder is searched, not reported; one with an image suffix is reported too, as it looks
        # like a photo to whoever wrote the list.
        entries = [p for p in entries if not p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file():
        return [path], []  # named explicitly: an input whatever its suffix
    else:
        entries = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
        if not entries:
            raise FileNotFoundError(f"{spec!r} is not a file, a folder or a glob that matches any file")
    images, ignored = [], []
    for p in entries:
        if not p.is_file():
            ignored.append(Ignored(str(p), _why_not_a_file(p)))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            images.append(p)
        else:
            ignored.append(Ignored(str(p), NOT_AN_IMAGE))
    return images, ignored


def parse_label(value: object, where: str) -> int:
    if isinstance(value, str) and value.lower() in CLASS_LABELS:
        return CLASS_LABELS[value.lower()]
    if str(value) in ("0", "1"):
        return int(str(value))
    raise ValueError(f"{where}: label {value!r} is not 0/real or 1/fake")


def _plain(value: object) -> object:
    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
    )


def _as_list(value: object) -> list:
    return [value] if isinstance(value, str | os.PathLike) else list(value)


def list_photos(
    specs: Iterable[tuple[str, int | None]], exclude: str | Path | None = None, what: str = "faces"
) -> tuple[list[PhotoInput], list[Ignored]]:
    """Photos (sorted by label then path, unique) and the entries ignored, from ``(spec, label)`` pairs.

    Entries under ``exclude`` (the output folder, should it sit inside an input folder) are skipped.
    """
    excluded = Path(exclude).expanduser().resolve() if exclude is not None else None
    photos: dict[str, PhotoInput] = {}
    ignored: list[Ignored] = []
    for spec, label in specs:
        try:
            images, skipped = expand(spec)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{what}: {error}") from None
        if excluded is not None:
            images = [p for p in images if not p.resolve().is_relative_to(excluded)]
            skipped = [i for i in skipped if not Path(i.path).resolve().is_relative_to(excluded)]
        ignored.extend(skipped)
        for image in images:
            key = str(image.resolve())
            if key in photos and photos[key].label != label:
                raise ValueError(f"{what}: {key} is listed as both real and fake")
            if key not in photos:
                photos[key] = PhotoInput(key, label, fingerprint(image))
    ordered = sorted(photos.values(), key=lambda p: (p.label if p.label is not None else -1, p.path))
    return ordered, sorted(set(ignored))


def list_inputs(
    faces: object, label: object = None, exclude: str | Path | None = None
) -> tuple[list[PhotoInput], list[Ignored]]:
    """Resolve the ``faces`` config to labelled photos (sorted, unique) and the entries ignored.

    ``faces``: a folder with ``real/`` and ``fake/``; a folder, file or glob (or a list of them)
    with ``label``; or a mapping ``{real: ..., fake: ...}`` whose values are folders, globs or lists.
    """
    if faces is None or faces == "" or faces == "???":
        raise ValueError(
            "faces= is required: a folder with real/ and fake/, a folder or glob with label=0|1, "
            "or faces={real: DIR, fake: DIR}"
        )
    faces = _plain(faces)
    specs: list[tuple[str, int]] = []
    if isinstance(faces, Mapping):
        for name, value in faces.items():
            value_label = parse_label(name, f"faces.{name} (keys must be real or fake)")
            specs.extend((str(spec), value_label) for spec in _as_list(value))
    else:
        for spec in _as_list(faces):
            folder = Path(spec).expanduser()
            if label is None:
                subfolders = [
                    (folder / name, lab) for name, lab in CLASS_LABELS.items() if (folder / name).is_dir()
                ]
                if not folder.is_dir() or not subfolders:
                    raise ValueError(
                        f"faces={spec!r}: expected a folder with real/ and/or fake/ subfolders; for photos of one "
                        "class add label=0 (real) or label=1 (fake), or give faces={real: DIR, fake: DIR}"
                    )
                specs.extend((str(sub), lab) for sub, lab in subfolders)
            else:
                specs.append((str(spec), parse_label(label, "label")))
    return list_photos(specs, exclude)


def list_unlabelled(
    images: object, exclude: str | Path | None = None
) -> tuple[list[PhotoInput], list[Ignored]]:
    """Photos of unknown class named by a path, folder (recursive), glob, or a list of them."""
    return list_photos(((str(spec), None) for spec in _as_list(_plain(images))), exclude, what="images")
