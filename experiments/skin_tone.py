"""Does a held-out real source's score follow the subject's skin tone? Scores the study's finished folds.

    python experiments/skin_tone.py data/faces_cache/<key> --runs outputs/experiments/generalisation

Skin tone here is the median L* (CIELAB, 0-255 as OpenCV scales it) of two cheek patches, each between the
lower lid and the mouth corner, found from the 68 landmarks the extraction cache's ``manifest.jsonl`` keeps;
"darker" is L* below ``--dark`` (120). For every held-out-real-source run of the study, its Spearman
correlation between that brightness and P(GAN) over the source's photos, and the mean P(GAN) and the share
called GAN at the run's stored threshold of the darker and the lighter subjects. A detector whose false
alarms fall on darker-skinned subjects is unfair as well as wrong. Results: ``experiments/results/skin_tone.md``.

With ``--seeds 0,1,2,3 --variant context`` it scores the shipped recipe instead: on every fold, the face cue
fitted on the fold's training photos beside the fold's iris networks as one ensemble, at the 3% rule with its
uncertain band (``face_descriptor_probe.fold_measures``), and compares the darker and lighter cheeks among the
fold's real test photos (the held-out source's alone on a source fold) and among its generated ones. Cheek L*
reads the light as well as the skin: a lighter-skinned face in shadow counts as darker too, so the table tells
darker-looking faces from lighter-looking ones, not skin tones. The diffusion fold is the one whose training has
no diffusion faces: SDFD's faces are mostly of darker-skinned subjects and children, so a cue that learnt "who"
instead of "how made" would call such real subjects generated on every other fold.
Results: ``experiments/results/skin_tone_shipped.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cross_generator as cg
import numpy as np
from scipy.stats import spearmanr

from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.descriptors import record_lightness
from irisgan.extraction.faces import DARKER_LIGHTNESS
from irisgan.extraction.manifest import read_manifest
from irisgan.models.face_cue import FaceView


def photo_brightness(cache: Path) -> dict[str, float]:
    """Cheek L* (``irisgan.extraction.descriptors.record_lightness``) of every photo the cache found a face and
    landmarks in and can read again, keyed by the photo's path."""
    records = [r for r in read_manifest(cache).values() if r.get("status") == "ok" and r.get("landmarks")]
    values = {r["path"]: record_lightness(r) for r in records}
    return {path: v for path, v in values.items() if not np.isnan(v)}


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a share k/n."""
    if n == 0:
        return float("nan"), float("nan")
    z, p = 1.96, k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def share(mask: np.ndarray) -> str:
    """'k/n (p%, 95% interval)' of a boolean mask."""
    k, n = int(mask.sum()), len(mask)
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k}/{n} ({100 * k / n:.0f}%, {100 * max(lo, 0):.0f}-{100 * min(hi, 1):.0f})"


def shipped_recipe(args: argparse.Namespace, brightness: dict[str, float]) -> list[str]:
    """The darker and lighter test photos of every fold under the shipped recipe (see the module's text)."""
    from face_descriptor_probe import descriptors, fold_measures

    seeds = [int(s) for s in args.seeds.split(",")]
    desc = descriptors(args.cache, view=FaceView(inner=True))
    head = "| held out | Spearman | darker called GAN | lighter called GAN | darker called real | lighter called real |"
    rows: dict[str, list[str]] = {"real": [], "generated": []}
    pooled: dict[str, list] = {
        "real": [],
        "generated": [],
    }  # folds whose photos differ: sources, GAN families
    for fold in cg.FOLDS:
        runs = [args.runs / cg.run_name(args.variant, "bce_auc", "balanced", s, fold) for s in seeds]
        if not all((r / "metrics.json").is_file() for r in runs):
            continue
        measured = fold_measures(runs, desc, source_fpr=0.03)
        if measured is None:
            continue
        fused, test = measured["fused"], measured["rows"]["test"]
        labels, scores = fused["labels"], fused["scores"]
        known = np.array([r["photo"] in brightness for r in test])
        light = np.array([brightness.get(r["photo"], np.nan) for r in test])
        if fold in cg.REAL_SOURCES:
            real, generated, _ = cg.source_masks(labels, fused["generators"], cg.REAL_SOURCES[fold])
        else:
            real, generated = labels == 0, labels == 1
        for kind, mask in (("real", real), ("generated", generated)):
            pick = mask & known
            s, dark = scores[pick], light[pick] < args.dark
            gan, called_real = s >= fused["strict"], s < fused["band"][0]
            if (kind == "real" and fold in cg.REAL_SOURCES) or (kind == "generated" and fold in cg.FAMILIES):
                pooled[kind].append((dark, gan, called_real))
            rows[kind].append(
                f"| {fold} | {spearmanr(light[pick], s)[0]:+.2f} | {share(gan[dark])} | {share(gan[~dark])} "
                f"| {share(called_real[dark])} | {share(called_real[~dark])} |"
            )
            print(rows[kind][-1], flush=True)
    for kind, name in (("real", "the held-out sources"), ("generated", "the held-out GAN families")):
        if pooled[kind]:
            dark, gan, called_real = (np.concatenate(v) for v in zip(*pooled[kind], strict=True))
            rows[kind].append(
                f"| {name} together | - | {share(gan[dark])} | {share(gan[~dark])} "
                f"| {share(called_real[dark])} | {share(called_real[~dark])} |"
            )
    return [
        "# The shipped recipe's calls by cheek lightness (skin tone and light), on the study's folds",
        "",
        f"Command: `python experiments/skin_tone.py CACHE --runs RUNS --variant {args.variant} --seeds {args.seeds}`.",
        f"Folds of `{args.variant}`, seeds {args.seeds} as one iris ensemble, with the shipped cue (inner features)",
        f"at the 3% rule and its uncertain band. Cheek L* from the landmarks; darker: L* < {args.dark:.0f} (darker",
        "skin or dimmer light: the measure does not tell which). 'GAN': at or above the strict threshold; 'real':",
        "below the band. Shares with 95% Wilson intervals; Spearman of cheek L* against the fused score (negative:",
        "the darker, the more generated-looking). The GAN and diffusion folds",
        "share one split of the real photos, so their real rows count the same photos; the source folds' do not.",
        "The diffusion fold is the only one trained without diffusion faces.",
        "",
        "Real test photos (on a source fold, the held-out source's):",
        "",
        head,
        "|---|---|---|---|---|---|",
        *rows["real"],
        "",
        "Generated test photos (the held-out family; on a source fold, the GAN photos):",
        "",
        head,
        "|---|---|---|---|---|---|",
        *rows["generated"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "cache", type=Path, help="a data=faces extraction cache of faces_train (manifest.jsonl)"
    )
    parser.add_argument("--runs", type=Path, default=cg.ROOT / "outputs" / "experiments" / "generalisation")
    parser.add_argument(
        "--dark", type=float, default=DARKER_LIGHTNESS, help="cheek L* below which a subject is darker"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: results/skin_tone[_shipped].md")
    parser.add_argument("--seeds", default=None, help="score the shipped recipe on these seeds' runs, as one")
    parser.add_argument("--variant", default="context", help="with --seeds: the study variant")
    args = parser.parse_args()
    brightness = photo_brightness(args.cache)
    if args.seeds:
        lines = shipped_recipe(args, brightness)
        out = args.out or cg.RESULTS / "skin_tone_shipped.md"
        out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    args.out = args.out or cg.RESULTS / "skin_tone.md"
    lines = [
        "# Held-out real sources: score against skin tone",
        "",
        f"Command: `python experiments/skin_tone.py {args.cache} --runs {args.runs}`. Cheek L* from the "
        f"landmarks ({len(brightness)} photos); darker: L* < {args.dark:.0f}. Spearman: cheek L* against P(GAN) "
        "over the source's photos (negative: the darker the skin, the more GAN-like the score).",
        "",
        "| run | source photos | darker | Spearman | mean P(GAN), darker / lighter | called GAN at threshold, darker "
        "/ lighter |",
        "|---|---|---|---|---|---|",
    ]
    for folder in sorted(args.runs.glob("*__real-*")):
        variant, loss, ratio, seed, fold = folder.name.split("__")
        scored = cg.fold_scores(folder) if fold in cg.REAL_SOURCES else None
        if scored is None:
            continue
        scores, _, csv_path = scored
        pairs = [
            (brightness[r["photo"]], float(s))
            for r, s in zip(read_pairs_csv(csv_path), scores)
            if r["generator"] in cg.REAL_SOURCES[fold] and r["photo"] in brightness
        ]
        if len(pairs) < 3:
            continue
        light, p = np.array(pairs).T
        dark = light < args.dark
        threshold = cg.fold_threshold(folder)
        cell = lambda v: "-" if not len(v) else f"{v.mean():.2f}"  # noqa: E731
        lines.append(
            f"| {variant} {seed} {fold} | {len(p)} | {int(dark.sum())} | {spearmanr(light, p)[0]:+.2f} "
            f"| {cell(p[dark])} / {cell(p[~dark])} | {cell(p[dark] >= threshold)} / {cell(p[~dark] >= threshold)} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
