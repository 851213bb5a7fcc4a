"""Score face photos: ``python -m irisgan.predict ckpt=CKPT images=PATH [explain=true]``.

Per photo: dlib face and landmarks, the two eye crops, the irises (training-free locator or the trained
segmenter), the 96x96 pair, P(GAN) from the RAN (for a detector with a face cue, such as the shipped one, fused
with a probe of the face's descriptor: ``p_iris`` keeps the RAN's own) and the decision: ``GAN`` or ``real`` at the
checkpoint's stored threshold, or ``uncertain`` (with its reasons) when the score lies inside the uncertain band chosen on
validation pairs, the ensemble's members disagree, or a grayscale photo, an unfamiliar face (``novelty``, its
distance from the training faces, above the detector's ``max_novelty``) or a vivid one (``vividness`` above
``max_vividness``) would be called real (``irisgan.inference.DecisionRule``). A photo without a decision (unreadable, no face, no iris...) gets its
status instead; every input gets one line in ``predictions.jsonl`` (or ``.csv``). ``explain=true`` writes a
PNG per photo: the face with eye and iris boxes, the pair, the RAN's soft-mask attention (the patch net's patch
scores) over the pair, the score against the threshold and the band, the members' spread, the face's novelty
and vividness against the detector's bounds, and the decision.
"""

from __future__ import annotations

import csv
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
from omegaconf import DictConfig

from irisgan import runtime
from irisgan.config import CONFIG_DIR
from irisgan.data.pairs_format import write_bytes_atomic, write_image_atomic
from irisgan.extraction.overlays import draw_overlay
from irisgan.extraction.photos import PhotoInput, fingerprint, list_unlabelled
from irisgan.extraction.pipeline import (
    PhotoResult,
    build_dataset,
    build_landmarker,
    build_pair_extractor,
    run_in_process,
)
from irisgan.inference import (
    FACE_ONLY,
    DecisionRule,
    face_flags,
    fuse_face_cue,
    is_grayscale_pair,
    load_classifier,
    score_members,
    stored_face_rule,
    stored_pair_margin,
    stored_pair_shape,
)

log = logging.getLogger("irisgan.predict")


class Predictor:
    """Photos in, one ``PhotoResult`` per photo out. Keeps the models loaded between calls (warm latency)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        device = cfg.get("device", "auto")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.explain = bool(cfg.get("explain", False))
        compile = bool(cfg.get("compile", False))
        if compile and self.explain:
            log.warning("compile=true is ignored with explain=true (the attention maps are read eagerly)")
            compile = False
        self.model = load_classifier(
            cfg.ckpt, self.device, str(cfg.get("precision", "32")), compile, cfg.get("flip_tta")
        )
        self.threshold = float(self.model.threshold)
        self.rule = DecisionRule.of(self.model)
        self.face_cue = self.model.face_cue is not None
        # what the cue reads of each face: a cue without texture needs no texture network
        self.describe = self.model.face_cue.view if self.face_cue else None
        # the face alone decides, apart from the detector's decision, for a photo whose irises give no pair
        self.face_rule = stored_face_rule(self.model) if self.face_cue else None
        self.landmarker = build_landmarker(cfg.face)
        # null: the detector's own margin, so pairs are cut as its training pairs were
        cfg.pair.iris_margin = stored_pair_margin(self.model, cfg.pair.get("iris_margin"))
        # the pair shape the network was trained on, whatever the config says: it scores no other
        cfg.pair.size, cfg.pair.width = stored_pair_shape(self.model)
        self.extractor = build_pair_extractor(cfg)
        self.extractor.locator.prepare(torch.device(self.device))
        if self.explain:
            self.model.net.record_maps()

    def __call__(self, photos: Sequence[PhotoInput | str | Path]) -> list[PhotoResult]:
        photos = [
            p if isinstance(p, PhotoInput) else PhotoInput(str(Path(p).resolve()), None, fingerprint(p))
            for p in photos
        ]
        dataset = build_dataset(
            self.cfg, photos, self.landmarker, overlay=self.explain, describe_faces=self.describe
        )
        batches = run_in_process(
            dataset, self.extractor, self.cfg.batch_size, int(self.cfg.get("num_workers", 0))
        )
        results = [result for batch in batches for result in batch]
        self._score([r for r in results if r.status == "ok" and r.pair_image is not None])
        self._score_faces([r for r in results if r.status in FACE_ONLY and r.face_descriptor is not None])
        return results

    def _score_faces(self, results: list[PhotoResult]) -> None:
        """``p_face`` and ``face_decision`` of photos whose face was found but whose irises gave no pair."""
        if not results or self.face_rule is None:
            return
        faces = np.stack([r.face_descriptor for r in results])
        probs = self.model.face_cue.face_probability(faces)
        self._face_flags(self.face_rule, faces, results)
        for result, prob in zip(results, probs, strict=True):
            result.p_face = float(prob)
            # a grey, unfamiliar or vivid face is never a confident real, as a grey pair is not
            result.grayscale = bool(result.face_grayscale)
            result.face_decision = self.face_rule.decide(
                result.p_face, None, result.grayscale, result.novelty, result.vividness
            )[0]

    def _face_flags(self, rule: DecisionRule, faces: np.ndarray | None, results: list[PhotoResult]) -> None:
        """Record each face's ``novelty`` and ``vividness``, and whether ``rule`` finds it ``unfamiliar`` or
        ``vivid`` (None: the detector cannot tell)."""
        novelty, vividness = face_flags(self.model, faces)
        unfamiliar, vivid = rule.unfamiliar(novelty), rule.vivid(vividness)
        at = lambda a, i, kind: None if a is None else kind(a[i])  # noqa: E731
        for i, result in enumerate(results):
            result.novelty, result.unfamiliar = at(novelty, i, float), at(unfamiliar, i, bool)
            result.vividness, result.vivid = at(vividness, i, float), at(vivid, i, bool)

    def _score(self, scored: list[PhotoResult]) -> None:
        if not scored:
            return
        pairs = np.stack([r.pair_image for r in scored]).transpose(0, 3, 1, 2).copy()
        size = int(self.cfg.batch_size)
        # explain: the attention masks are those of the last forward pass (the ensemble's score, after the
        # members' own), so score one batch at a time.
        step = size if self.explain else len(scored)
        for start in range(0, len(scored), step):
            chunk = scored[start : start + step]
            iris_p, spread = score_members(self.model, pairs[start : start + step], size)
            masks = self._attention(len(chunk)) if self.explain else None
            faces = np.stack([r.face_descriptor for r in chunk]) if self.face_cue else None
            probs = fuse_face_cue(self.model, iris_p, faces)
            self._face_flags(self.rule, faces, chunk)
            for i, (result, prob) in enumerate(zip(chunk, probs, strict=True)):
                result.p_gan = float(prob)
                result.p_iris = float(iris_p[i]) if self.face_cue else None
                result.member_spread = None if spread is None else float(spread[i])
                result.grayscale = is_grayscale_pair(result.pair_image)
                result.decision, result.reasons = self.rule.decide(
                    result.p_gan, result.member_spread, result.grayscale, result.novelty, result.vividness
                )
                if masks is not None:
                    result.attention = [(title, m[i]) for title, m in masks]

    def _attention(self, n: int) -> list[tuple[str, np.ndarray]]:
        """The network's explanation maps (the RAN's soft masks, the patch net's patch scores), upsampled to
        the pair's size: (title, (n, H, W) array) each."""
        shape = stored_pair_shape(self.model)
        return [
            (
                title,
                F.interpolate(m.float(), size=shape, mode="bilinear", align_corners=False)[:n, 0]
                .cpu()
                .numpy(),
            )
            for title, m in self.model.net.explanation_maps()
        ]


def public_record(result: PhotoResult, rule: DecisionRule) -> dict:
    keep = (
        "path", "status", "p_gan", "decision", "reasons", "member_spread", "p_iris", "p_face", "face_decision",
        "grayscale", "novelty", "unfamiliar", "vividness", "vivid", "message", "face_box", "eye_boxes", "iris",
        "n_faces",
    )  # fmt: skip
    full = result.record()
    record = {k: full[k] for k in keep if k in full}
    for key in ("p_gan", "decision", "reasons", "member_spread"):
        record.setdefault(key, None)
    record["threshold"] = rule.threshold
    record["band"] = list(rule.band) if rule.band else None
    record["max_spread"] = rule.max_spread
    record["max_novelty"] = rule.max_novelty
    record["max_vividness"] = rule.max_vividness
    return record


DECISION_COLOURS = {"GAN": "crimson", "real": "seagreen", "uncertain": "darkorange"}


def explanation_figure(result: PhotoResult, rule: DecisionRule) -> np.ndarray:
    """RGB figure: the extractor's overlay (face, landmarks, eyes, irises), the pair, attention maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = result.attention or []
    fig = plt.figure(figsize=(13, 4.6))
    grid = fig.add_gridspec(2, 6)
    ax = fig.add_subplot(grid[:, :2])
    if result.overlay_image is not None:
        ax.imshow(draw_overlay(result))
    ax.set_axis_off()
    threshold = rule.threshold
    if result.p_gan is not None:
        verdict = f"P(GAN) = {result.p_gan:.3f} -> {result.decision} (threshold {threshold:.3f})"
        if result.p_iris is not None:
            verdict += f"\nirises alone {result.p_iris:.3f}, with the face cue {result.p_gan:.3f}"
        if result.reasons:
            verdict += "\n" + "; ".join(result.reasons)
    else:
        verdict = f"no decision: {result.status}"
        if result.face_decision:
            verdict += f"\nthe face alone: P(GAN) = {result.p_face:.3f} -> {result.face_decision}"
    ax.set_title(f"{Path(result.path).name}\n{verdict}", fontsize=9)
    pair = result.pair_image
    if pair is not None:
        ax = fig.add_subplot(grid[0, 2])
        ax.imshow(pair)
        ax.set_title(f"iris pair ({pair.shape[0]}x{pair.shape[1]})", fontsize=8)
        ax.set_axis_off()
        if result.p_gan is not None:
            ax = fig.add_subplot(grid[1, 2])
            if rule.band:
                ax.axvspan(*rule.band, color="orange", alpha=0.25, label="uncertain band")
            ax.barh([0], [result.p_gan], color=DECISION_COLOURS.get(result.decision, "grey"), height=0.5)
            if result.member_spread is not None:  # the members' P(GAN): mean +- one standard deviation
                ax.errorbar([result.p_gan], [0], xerr=[result.member_spread], color="black", capsize=4)
            ax.axvline(threshold, color="black", ls="--", lw=1)
            spread = "" if result.member_spread is None else f", members ±{result.member_spread:.3f}"
            if result.novelty is not None and rule.max_novelty is not None:  # how far from the training faces
                spread += f"\nnovelty {result.novelty:.1f} (unfamiliar beyond {rule.max_novelty:.1f})"
            if result.vividness is not None and rule.max_vividness is not None:  # how vivid the face looks
                spread += f"\nvividness {result.vividness:.2f} (vivid beyond {rule.max_vividness:.2f})"
            ax.set(xlim=(0, 1), yticks=[], xlabel="P(GAN)")
            ax.set_title(f"{result.decision}{spread}", fontsize=8)
        # the RAN: 3 stages x 2 attention modules, soft masks averaged over channels; the patch net: its patch scores
        slots = [(0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5)]
        for (title, m), (r, c) in zip(maps, slots):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(pair)
            ax.imshow(m, cmap="jet", alpha=0.45, vmin=float(m.min()), vmax=float(m.max()) + 1e-6)
            ax.set_title(title, fontsize=8)
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
            [
                "path",
                "status",
                "p_gan",
                "decision",
                "reasons",
                "member_spread",
                "p_iris",
                "p_face",
                "face_decision",
                "threshold",
                "message",
            ],
            extrasaction="ignore",
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows({**r, "reasons": "; ".join(r.get("reasons") or [])} for r in records)
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
    photos, ignored = list_unlabelled(cfg.images, exclude=out)
    for entry in ignored:
        log.warning("ignored %s: %s", entry.path, entry.reason)
    start = time.perf_counter()
    predictor = Predictor(cfg)
    results = predictor(photos)
    seconds = time.perf_counter() - start
    records = [public_record(r, predictor.rule) for r in results]
    path = write_predictions(records, out, cfg.format)
    if cfg.explain:
        for result, rec in zip(results, records, strict=True):
            name = f"{Path(result.path).stem}.png"
            write_image_atomic(out / "explain" / name, explanation_figure(result, predictor.rule))
            rec["explanation"] = f"explain/{name}"
        write_predictions(records, out, cfg.format)
    decided = [r for r in records if r["decision"] is not None]
    log.info(
        "%d photos, %d scored (%d GAN, %d real, %d uncertain), %d without a decision (%d of them scored by the "
        "face alone); %.2f s; predictions in %s",
        len(records), len(decided), *(sum(r["decision"] == d for r in decided) for d in ("GAN", "real", "uncertain")),
        len(records) - len(decided), sum(r.get("face_decision") is not None for r in records), seconds, path,
    )  # fmt: skip
    for r in records:
        verdict = f"P(GAN)={r['p_gan']:.3f} {r['decision']}" if r["decision"] else f"status={r['status']}"
        if r.get("face_decision"):
            verdict += f"; the face alone: P(GAN)={r['p_face']:.3f} {r['face_decision']}"
        if r.get("reasons"):
            verdict += f" ({'; '.join(r['reasons'])})"
        print(f"{r['path']}: {verdict}")
    return records


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
