"""Extraction under Lightning's predict loop: which photos are pending (``FacePhotosDataModule``),
writing each batch's pairs, overlays and manifest lines (``ExtractionWriter``), and the whole run as
``python -m irisgan.extract`` does it (``run_extraction``).

One code path for one CPU and for many GPUs or nodes: ``trainer.devices=N`` splits the pending photos
across processes, each appending to its own manifest part (merged by ``irisgan.extraction.manifest.finalize``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig

from irisgan.data.pairs_format import write_bytes_atomic, write_image_atomic
from irisgan.extraction.faces import FaceLandmarker
from irisgan.extraction.manifest import PENDING, ManifestWriter, finalize, format_summary, read_manifest
from irisgan.extraction.overlays import draw_overlay
from irisgan.extraction.photos import PhotoInput, list_inputs
from irisgan.extraction.pipeline import (
    FacePhotoDataset,
    PhotoResult,
    build_landmarker,
    build_pair_extractor,
    photo_dataloader,
)


class FacePhotosDataModule(L.LightningDataModule):
    """The photos still to do. ``prepare_data`` (once) lists inputs minus the manifest into
    ``pending.json``; every process then reads that same list, so all agree on the split.
    ``photos``: the inputs, listed already (``irisgan.extraction.photos.list_inputs``); None lists ``faces``."""

    def __init__(
        self,
        faces: object,
        out: str,
        label: object = None,
        landmarker: FaceLandmarker | None = None,
        several_faces: str = "largest",
        eye_margin: float = 0.25,
        min_iris_size: float = 6.0,
        overlay_max_side: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        retry_statuses: Sequence[str] = ("error",),
        limit: int | None = None,
        photos: Sequence[PhotoInput] | None = None,
    ) -> None:
        super().__init__()
        self.faces, self.label, self.out = faces, label, Path(out)
        self.photos = photos
        self.landmarker = landmarker or FaceLandmarker()
        self.dataset_kwargs = dict(
            several_faces=several_faces,
            eye_margin=eye_margin,
            min_iris_size=min_iris_size,
            overlay_max_side=overlay_max_side,
        )
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.retry_statuses = set(retry_statuses or ())
        self.limit = limit
        self.dataset: FacePhotoDataset | None = None

    def pending_photos(self) -> list[PhotoInput]:
        photos = self.photos
        if photos is None:
            photos, _ = list_inputs(self.faces, self.label, exclude=self.out)
        done = read_manifest(self.out)
        pending = [
            p
            for p in photos
            if p.path not in done
            or done[p.path].get("fingerprint") != p.fingerprint
            or done[p.path].get("status") in self.retry_statuses
        ]
        return pending[: self.limit] if self.limit is not None else pending

    def prepare_data(self) -> None:
        pending = [asdict(p) for p in self.pending_photos()]
        write_bytes_atomic(self.out / PENDING, json.dumps(pending).encode())

    def setup(self, stage: str | None = None) -> None:
        pending = json.loads((self.out / PENDING).read_text())
        self.dataset = FacePhotoDataset(
            [PhotoInput(**p) for p in pending], self.landmarker, **self.dataset_kwargs
        )

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        return photo_dataloader(self.dataset, self.batch_size, self.num_workers)


class ExtractionWriter(BasePredictionWriter):
    """Writes each batch's pairs and overlays (atomically), then its manifest lines."""

    def __init__(self, out_dir: str | Path, overlay: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.overlay = overlay
        self._manifest: ManifestWriter | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._manifest = ManifestWriter(self.out_dir, rank=trainer.global_rank)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        self._manifest.append([self.write(result) for result in prediction])

    def write(self, result: PhotoResult) -> dict:
        """Write the photo's pair and overlay; return its manifest record."""
        start = time.perf_counter()
        name = result.input.pair_name
        result.pair = None
        if result.pair_image is not None:
            result.pair = f"pairs/{name}"
            write_image_atomic(self.out_dir / result.pair, result.pair_image)
        if self.overlay and result.overlay_image is not None:
            result.overlay = f"overlays/{name}"
            write_image_atomic(self.out_dir / result.overlay, draw_overlay(result))
        result.timings_ms["write"] = (time.perf_counter() - start) * 1e3
        result.extracted_at = round(time.time(), 3)
        result.timings_ms = {k: round(v, 2) for k, v in result.timings_ms.items()}
        return result.record()


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
