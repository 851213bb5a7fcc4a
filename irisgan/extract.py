"""Face photos to iris pairs: ``python -m irisgan.extract faces=DIR out=DIR [locator=hough|segmenter]``.

``faces`` is a folder with ``real/`` and ``fake/`` subfolders (labels 0 and 1), a folder, glob or
list of them with ``label=0|1``, or a mapping ``faces={real: DIR_OR_GLOB, fake: DIR_OR_GLOB}``.
``out`` receives:

* ``pairs/*.png``: 96x96 iris pairs, image-left iris (dlib landmarks 36-41) on the left;
* ``pairs.csv``: the iris-pairs format (``path,label,source``), rebuilt from the manifest at the end;
* ``manifest.jsonl``: one record per input photo: status, face box, landmarks, eye boxes, iris
  boxes, the pair written, timings per stage;
* ``summary.json``: counts per class and status, the inputs ignored and why, time per stage, photos per
  second;
* ``overlays/*.png`` and the contact sheet ``overlays.png`` with ``overlay=true`` (Figure 1 of the paper).

The run is resumable and idempotent: photos already in the manifest (same path and content) are
skipped; a pair file is written (atomically) before its manifest line, so an interrupted run loses at
most the photos in flight and a rerun redoes exactly those.

Where the parts live (``irisgan.extraction``): the inputs in ``photos``, photo -> eyes -> irises -> pair in
``pipeline``, the run itself (``run_extraction``) with the predict loop's DataModule and writer in ``loop``,
the manifest and summary in ``manifest``, the pictures in ``overlays``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from irisgan.config import CONFIG_DIR
from irisgan.extraction.loop import run_extraction

__all__ = ["main", "run_extraction"]


@hydra.main(config_path=CONFIG_DIR, config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_extraction(cfg)


if __name__ == "__main__":
    main()
