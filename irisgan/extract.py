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

Where the parts live: the inputs in ``irisgan.extraction.photos``, photo -> eyes -> irises -> pair in
``irisgan.extraction.pipeline``, the predict loop's DataModule and writer in ``irisgan.extraction.loop``, the manifest
and summary in ``irisgan.extraction.manifest``, the pictures in ``irisgan.extraction.overlays``.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from irisgan.config import CONFIG_DIR
from irisgan.extraction.loop import ExtractionWriter, FacePhotosDataModule
from irisgan.extraction.manifest import finalize, format_summary
from irisgan.extraction.photos import list_inputs
from irisgan.extraction.pipeline import build_landmarker, build_pair_extractor


def run_extraction(cfg: DictConfig) -> dict | None:
    """Extract iris pairs as ``cfg`` says; returns the summary (on the process of global rank 0)."""
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    photos, ignored = list_inputs(cfg.faces, cfg.get("label"), exclude=out)
    datamodule = FacePhotosDataModule(
        faces=cfg.faces,
        out=str(out),
        label=cfg.get("label"),
        landmarker=build_landmarker(cfg.face),
        several_faces=cfg.face.several_faces,
        eye_margin=cfg.eyes.margin,
        min_iris_size=cfg.iris.min_size,
        overlay_max_side=cfg.overlay_max_side if cfg.overlay else None,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        retry_statuses=list(cfg.retry_statuses),
        limit=cfg.get("limit"),
        photos=photos,
    )
    model = build_pair_extractor(cfg)
    writer = ExtractionWriter(out, overlay=cfg.overlay)
    trainer = instantiate(cfg.trainer, callbacks=[writer], default_root_dir=str(out))
    started, start = time.time(), time.perf_counter()
    if datamodule.pending_photos():
        trainer.predict(model, datamodule=datamodule, return_predictions=False)
        trainer.strategy.barrier()
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None
    summary = finalize(out, photos, ignored, started, seconds, overlay_sheet=cfg.overlay)
    print(format_summary(summary))
    return summary


@hydra.main(config_path=CONFIG_DIR, config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_extraction(cfg)


if __name__ == "__main__":
    main()
