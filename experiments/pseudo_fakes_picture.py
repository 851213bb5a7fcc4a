"""The picture of the pseudo-fakes in the README: real iris pairs, and each kind planted in one eye.

    python experiments/pseudo_fakes_picture.py PAIRS_CSV [--out docs/img/pseudo_fakes.jpg]

``PAIRS_CSV``: any iris-pairs CSV with real pairs (label 0), e.g. a ``data=faces`` split in
``data/faces_cache/<key>/splits/<split>/train.csv``. Rows: the real pairs, one row per pseudo-fake kind, and
the both-eyes-alike augmentation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from irisgan.data.augment import PSEUDO_FAKE_KINDS, PairAugment, PseudoFakes
from irisgan.data.pairs import load_pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pairs_csv", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/pseudo_fakes.jpg"))
    parser.add_argument("--n", type=int, default=8, help="pairs per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--iris-margin", type=float, default=0.1, help="the margin the pairs were cut with (pair.iris_margin)"
    )
    args = parser.parse_args()
    images, labels, _ = load_pairs(args.pairs_csv)
    real = images[labels == 0]
    g = torch.Generator().manual_seed(args.seed)
    real = real[torch.randperm(len(real), generator=g)[: args.n]].float() / 255.0
    rows = [("real", real)]
    for kind in PSEUDO_FAKE_KINDS:
        fakes, _, _ = PseudoFakes(rate=1.0, kinds=(kind,), iris_margin=args.iris_margin)(
            real, torch.zeros(len(real)), g
        )
        rows.append((kind, fakes))
    rows.append(("augmented", PairAugment(p=1.0)(real, g)))
    scale, label_width = 2, 130
    strips = []
    for name, batch in rows:
        strip = (torch.cat(list(batch), dim=2).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        strip = cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        label = np.full((strip.shape[0], label_width, 3), 255, np.uint8)
        cv2.putText(
            label,
            name,
            (6, strip.shape[0] // 2 + 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        strips.append(np.concatenate([label, strip], axis=1))
    sheet = np.concatenate(strips, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
