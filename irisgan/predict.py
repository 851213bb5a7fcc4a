"""Score face photos: ``python -m irisgan.predict ckpt=CKPT images=PATH [explain=true]``.

Per photo: dlib face and landmarks, the two eye crops, the irises (training-free locator or the trained
segmenter), the 96x96 pair, P(GAN) from the RAN and the decision at the checkpoint's stored threshold. A photo
without a decision (unreadable, no face, no iris...) gets its status instead; every input gets one line in
``predictions.jsonl`` (or ``.csv``). ``explain=true`` writes a PNG per photo: the face with eye and iris
boxes, the pair, the RAN's soft-mask attention over the pair, the score and the decision.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf

from irisgan import runtime
from irisgan.config import CONFIG_DIR
from irisgan.data.pairs_format import write_bytes_atomic, write_image_atomic
from irisgan.extract import (
    FacePhotoDataset,
    PhotoInput,
    build_landmarker,
    build_pair_extractor,
    draw_overlay,
    photo_dataloader,
)
from irisgan.faces import IMAGE_SUFFIXES
from irisgan.inference import load_classifier

log = logging.getLogger("irisgan.predict")


def collect_images(spec: object) -> list[Path]:
    """Files named by a path, folder (recursive), glob, or a list of them; sorted, unique."""
    if isinstance(spec, (ListConfig, DictConfig)):
        spec = OmegaConf.to_container(spec, resolve=True)
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    found: dict[str, Path] = {}
    for s in specs:
        p = Path(str(s)).expanduser()
        if p.is_file():
            files = [p]
        elif p.is_dir():
            files = [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files = [Path(f) for f in sorted(glob.glob(str(p), recursive=True)) if Path(f).is_file()]
            if not files:
                raise FileNotFoundError(
                    f"images: {s!r} is not a file, a folder or a glob that matches any file"
                )
        for f in files:
            found.setdefault(str(f.resolve()), f.resolve())
    return list(found.values())


class Predictor:
    """Photo paths in, one record per photo out. Keeps the models loaded between calls (warm latency)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        device = cfg.get("device", "auto")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.explain = bool(cfg.get("explain", False))
        compile = bool(cfg.get("compile", False))
        if compile and self.explain:
            log.warning("compile=true is ignored with explain=true (the attention maps are read eagerly)")
            compile = False
        self.model = load_classifier(cfg.ckpt, self.device, str(cfg.get("precision", "32")), compile)
        self.threshold = float(self.model.threshold)
        self.landmarker = build_landmarker(cfg.face)
        self.extractor = build_pair_extractor(cfg)
        self.extractor.locator.prepare(torch.device(self.device))
        if self.explain:
            for module in self.model.net.attention_modules():
                module.record_masks = True

    def __call__(self, paths: Sequence[Path]) -> list[dict]:
        photos = []
        for p in paths:
            stat = p.stat()
            photos.append(PhotoInput(str(p), 0, f"{stat.st_size}-{stat.st_mtime_ns}"))
        dataset = FacePhotoDataset(
            photos,
            self.landmarker,
            several_faces=self.cfg.face.several_faces,
            eye_margin=self.cfg.eyes.margin,
            min_iris_size=self.cfg.iris.min_size,
            overlay_max_side=self.cfg.overlay_max_side if self.explain else None,
        )
        loader = photo_dataloader(dataset, self.cfg.batch_size, int(self.cfg.get("num_workers", 0)))
        records = []
        for batch in loader:
            items = self.extractor.predict_step(batch)
            for it in items:
                it["label"] = None  # unknown: that is the question
            with_pair = [it for it in items if it["status"] == "ok" and it.get("_pair") is not None]
            if with_pair:
                pairs = torch.from_numpy(
                    np.stack([it["_pair"] for it in with_pair]).transpose(0, 3, 1, 2).copy()
                )
                with torch.inference_mode():
                    probs = self.model.predict_proba(pairs.to(self.device)).float().cpu().numpy()
                masks = self._attention(len(with_pair)) if self.explain else None
                for i, (it, prob) in enumerate(zip(with_pair, probs, strict=True)):
                    it["p_gan"] = float(prob)
                    it["decision"] = "GAN" if prob >= self.threshold else "real"
                    if masks is not None:
                        it["_attention"] = [m[i] for m in masks]
            records.extend(items)
        return records

    def _attention(self, n: int) -> list[np.ndarray]:
        """Per attention module: the soft mask averaged over channels, upsampled to the pair's size."""
        maps = []
        for module in self.model.net.attention_modules():
            m = module.last_mask.float().mean(dim=1, keepdim=True)
            maps.append(
                F.interpolate(m, size=(96, 96), mode="bilinear", align_corners=False)[:n, 0].cpu().numpy()
            )
        return maps


def public_record(item: dict, threshold: float) -> dict:
    keep = ("path", "status", "p_gan", "decision", "message", "face_box", "eye_boxes", "iris", "n_faces")
    record = {k: item[k] for k in keep if k in item}
    record.setdefault("p_gan", None)
    record.setdefault("decision", None)
    record["threshold"] = threshold
    return record


def explanation_figure(item: dict, threshold: float) -> np.ndarray:
    """RGB figure: the extractor's overlay (face, landmarks, eyes, irises), the pair, attention maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = item.get("_attention") or []
    fig = plt.figure(figsize=(13, 4.6))
    grid = fig.add_gridspec(2, 6)
    ax = fig.add_subplot(grid[:, :2])
    if item.get("_overlay") is not None:
        ax.imshow(draw_overlay(item))
    ax.set_axis_off()
    if item.get("p_gan") is not None:
        verdict = f"P(GAN) = {item['p_gan']:.3f} -> {item['decision']} (threshold {threshold:.3f})"
    else:
        verdict = f"no decision: {item['status']}"
    ax.set_title(f"{Path(item['path']).name}\n{verdict}", fontsize=9)
    pair = item.get("_pair")
    if pair is not None:
        ax = fig.add_subplot(grid[0, 2])
        ax.imshow(pair)
        ax.set_title("iris pair (96x96)", fontsize=8)
        ax.set_axis_off()
        if item.get("p_gan") is not None:
            ax = fig.add_subplot(grid[1, 2])
            ax.barh([0], [item["p_gan"]], color="crimson" if item["decision"] == "GAN" else "seagreen")
            ax.axvline(threshold, color="black", ls="--", lw=1)
            ax.set(xlim=(0, 1), yticks=[], xlabel="P(GAN)", title=item["decision"])
        # 3 stages x 2 attention modules: soft masks averaged over channels, over the pair
        slots = [(0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5)]
        for k, (m, (r, c)) in enumerate(zip(maps, slots)):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(pair)
            ax.imshow(m, cmap="jet", alpha=0.45, vmin=float(m.min()), vmax=float(m.max()) + 1e-6)
            ax.set_title(f"attention module {k + 1}", fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    png = np.frombuffer(buf.getvalue(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_predictions(records: list[dict], out: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        path = out / "predictions.jsonl"
        write_bytes_atomic(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    elif fmt == "csv":
        path = out / "predictions.csv"
        buf = io.StringIO()
        writer = csv.DictWriter(
            buf,
            ["path", "status", "p_gan", "decision", "threshold", "message"],
            extrasaction="ignore",
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(records)
        write_bytes_atomic(path, buf.getvalue().encode())
    else:
        raise ValueError(f"format={fmt!r} unknown; valid choices: ['jsonl', 'csv']")
    return path


def predict(cfg: DictConfig) -> list[dict]:
    runtime.configure()
    if cfg.format not in ("jsonl", "csv"):
        raise ValueError(f"format={cfg.format!r} unknown; valid choices: ['jsonl', 'csv']")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = collect_images(cfg.images)
    start = time.perf_counter()
    predictor = Predictor(cfg)
    items = predictor(paths)
    seconds = time.perf_counter() - start
    records = [public_record(it, predictor.threshold) for it in items]
    path = write_predictions(records, out, cfg.format)
    if cfg.explain:
        for it, rec in zip(items, records, strict=True):
            name = f"{Path(it['path']).stem}.png"
            write_image_atomic(out / "explain" / name, explanation_figure(it, predictor.threshold))
            rec["explanation"] = f"explain/{name}"
        write_predictions(records, out, cfg.format)
    decided = [r for r in records if r["decision"] is not None]
    log.info(
        "%d photos, %d scored (%d called GAN), %d without a decision; %.2f s; predictions in %s",
        len(records),
        len(decided),
        sum(r["decision"] == "GAN" for r in decided),
        len(records) - len(decided),
        seconds,
        path,
    )
    for r in records:
        verdict = f"P(GAN)={r['p_gan']:.3f} {r['decision']}" if r["decision"] else f"status={r['status']}"
        print(f"{r['path']}: {verdict}")
    return records


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
