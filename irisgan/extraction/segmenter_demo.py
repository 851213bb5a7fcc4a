"""Demo of a segmenter checkpoint on face photos: the extractor's dlib eye crops, a picture and a count.

python -m irisgan.extraction.segmenter_demo ckpt=PATH faces=DIR out=segmenter_real_eyes.png
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from irisgan.data.pairs_format import write_image_atomic
from irisgan.extraction.iris_segmenter import IrisSegmenter, plausible_iris
from irisgan.training.segmenter import draw_detection, tile_images

log = logging.getLogger(__name__)


def eye_crops_from_photos(photos: list, margin: float = 0.25):
    """Both eye crops of the largest face in each photo, cut by the extractor's photo -> eyes step with
    its face settings (conf/extract.yaml).

    Yields ``(photo path, "left"|"right", crop RGB uint8, eye landmarks in crop pixels)``; photos
    without eye crops (no face, unreadable) are skipped with a warning."""
    from irisgan.config import compose_config
    from irisgan.extraction.pipeline import SIDES, build_dataset, build_landmarker

    cfg = compose_config("extract", [f"eyes.margin={margin}"])
    dataset = build_dataset(cfg, photos, build_landmarker(cfg.face), overlay=False)
    for index in range(len(dataset)):
        result = dataset[index]
        if not result.eye_crops:
            log.warning("%s: no eyes (%s)", result.path, result.status)
            continue
        for side, crop, points in zip(SIDES, result.eye_crops, result.eye_points, strict=True):
            yield Path(result.path), side, crop, points


def main(argv: list[str] | None = None) -> dict:
    """Run a segmenter checkpoint on the eyes of face photos; write a picture, print and return a summary."""
    import json
    import sys

    from omegaconf import OmegaConf

    args = OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv)
    unknown = set(args) - {"ckpt", "faces", "out", "margin", "score_threshold", "device"}
    if unknown or "ckpt" not in args or "faces" not in args:
        raise SystemExit(
            "usage: python -m irisgan.extraction.segmenter_demo ckpt=PATH faces=DIR [out=PNG] [margin=0.25] "
            f"[score_threshold=0.5] [device=cpu]{'  (unknown: ' + str(sorted(unknown)) + ')' if unknown else ''}"
        )
    from irisgan.extraction.photos import list_unlabelled

    photos, _ = list_unlabelled(str(args.faces))
    if not photos:
        raise SystemExit(f"no face photos under {args.faces}")
    segmenter = IrisSegmenter.from_checkpoint(
        args.ckpt, args.get("device", "cpu"), args.get("score_threshold", 0.5)
    )
    eyes = list(eye_crops_from_photos(photos, float(args.get("margin", 0.25))))
    detections = segmenter.predict([crop for _, _, crop, _ in eyes])
    tiles, per_eye = [], []
    for (path, side, crop, points), found in zip(eyes, detections, strict=True):
        ok = plausible_iris(found, points)
        per_eye.append(
            {
                "photo": str(path),
                "eye": side,
                "found": found is not None,
                "plausible": ok,
                "score": None if found is None else round(found.score, 3),
            }
        )
        tile = torch.from_numpy(crop).permute(2, 0, 1)
        if found is not None:
            output = {
                "boxes": torch.tensor([found.box]),
                "scores": torch.tensor([found.score]),
                "masks": torch.from_numpy(found.mask)[None],
            }
            tile = draw_detection(tile, output, score_threshold=0.0)
        tiles.append(tile)
    summary = {
        "photos": len(photos),
        "eyes": len(eyes),
        "found": sum(e["found"] for e in per_eye),
        "plausible": sum(e["plausible"] for e in per_eye),
        "score_threshold": segmenter.score_threshold,
    }
    if args.get("out"):
        write_image_atomic(args.out, tile_images(tiles, size=128, per_row=8))
        summary["picture"] = str(args.out)
    for eye in per_eye:
        log.info(
            "%s %s: found=%s plausible=%s score=%s",
            eye["photo"],
            eye["eye"],
            eye["found"],
            eye["plausible"],
            eye["score"],
        )
    print(json.dumps(summary))
    return {**summary, "per_eye": per_eye}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
