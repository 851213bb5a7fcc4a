"""Probe: does a pretrained face network's identity descriptor (and, with ``--texture``, the face's texture in an
ImageNet network's early layers; with ``--inner``, the inner layers of the face network) tell GAN faces from
real ones on the families and sources the study holds out, and does it add to the RAN's iris score?

    python experiments/face_descriptor_probe.py --runs outputs/experiments/generalisation --variant context

dlib's face recognition ResNet (``face-recognition-models``; trained on real faces to tell identities apart,
never on GAN faces) maps each photo's face, aligned by the 68 landmarks the extractor already found, to 128
numbers. A logistic regression on them is fitted on each fold's training photos (the study's own split, so the
held-out family or real source is never seen), its threshold chosen on the fold's validation photos as the RAN's
is (G-mean). The RAN's scores are those of the fold's run (``evaluate`` on its test and validation pairs); the
fused score adds the two logits, each standardised on the validation photos. Linear probes on networks never
trained for the task generalise across generators better than a detector trained end to end (Ojha et al.
2023), and GAN faces are known to be more average than real ones (Nightingale and Farid 2022).
Results: ``experiments/results/face_descriptor.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from cross_generator import (
    FAMILIES,
    FOLDS,
    REAL_SOURCES,
    ROOT,
    SUBJECTS,
    _project_path,
    fold_scores,
    run_name,
    source_masks,
)
from study_stats import auroc, paired_difference, write_results
from torchmetrics.functional.classification import binary_roc

from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.descriptors import photo_descriptors, vivid_cache_name, vivid_descriptors
from irisgan.extraction.faces import face_descriptor
from irisgan.extraction.manifest import read_manifest
from irisgan.extraction.texture import face_features
from irisgan.inference import DecisionRule
from irisgan.models.face_cue import (
    NEIGHBOURS,
    FaceView,
    fit_face_cue,
    generated_families,
    logit,
)
from irisgan.plots import plot_rocs
from irisgan.training.metrics import choose_threshold, source_threshold, uncertain_band


def vivid_copies(cache: Path, view: FaceView) -> dict[str, np.ndarray]:
    """Photo path -> face features of a vivid copy (``irisgan.data.degrade.vivid_copy``) of each real photo of the
    extractor's manifest with 68 landmarks, cached as ``ensemble --face-vivid`` caches them."""
    records = [
        r for r in read_manifest(cache).values()
        if r.get("landmarks") and r.get("face_box") and int(r.get("label", -1)) == 0
    ]  # fmt: skip
    x = vivid_descriptors(records, cache / vivid_cache_name(view), view)
    return {r["path"]: v for r, v in zip(records, x, strict=True)}


def descriptors(cache: Path, padding: float = 0.25, view: FaceView = FaceView()) -> dict[str, np.ndarray]:
    """Photo path -> face features, for every photo of the extractor's manifest with 68 landmarks (cached in the
    extraction folder, as ``ensemble --face-cue`` caches them): what ``view`` names, by default the shipped cue's
    descriptor alone, so that no texture is computed for it. Another
    ``padding`` than dlib's 0.25 (more of the head and the background around the aligned face) has a cache of its
    own, and the descriptor alone."""
    records = [r for r in read_manifest(cache).values() if r.get("landmarks") and r.get("face_box")]
    if padding == 0.25:
        x = photo_descriptors(records, cache / view.cache_name, view=view)
    else:
        describe = lambda image, box, points: face_descriptor(image, box, points, padding)  # noqa: E731
        x = photo_descriptors(records, cache / f"face_descriptors_pad{padding}.npz", describe)
    return {r["path"]: v for r, v in zip(records, x, strict=True)}


def rows_of(folder: Path, csv_path: str) -> list[dict]:
    return read_pairs_csv(_project_path(folder, csv_path))


def ran_val_scores(folder: Path, val_csv: str) -> np.ndarray:
    """The run's P(GAN) of its validation pairs (``evaluate`` once, into ``evaluate_val``)."""
    out = folder / "evaluate_val"
    if not (out / "scores_ran.npy").is_file():
        m = json.loads((folder / "metrics.json").read_text())
        ckpt = folder / "checkpoints" / Path(m["best_checkpoint"]).name
        cmd = [
            sys.executable, "-m", "irisgan.evaluate", f"ckpt={ckpt}", f"pairs_csv={_project_path(folder, val_csv)}",
            "baseline=false", "wandb=false", "bootstrap=0", f"hydra.run.dir={out}",
        ]  # fmt: skip
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return np.load(out / "scores_ran.npy")


def threshold(logits: np.ndarray, labels: np.ndarray) -> float:
    """The G-mean threshold of logit-scale scores, on their own scale (binary_roc would read logits through a
    sigmoid and return a probability)."""
    p = torch.sigmoid(torch.tensor(logits, dtype=torch.float64))
    fpr, tpr, thr = binary_roc(p, torch.tensor(labels))
    return float(logit(choose_threshold(fpr.numpy(), tpr.numpy(), thr.numpy())))


def fold_measures(
    folder: Path | list[Path],
    desc: dict[str, np.ndarray],
    l2: float = 1e-3,
    source_fpr: float = 0.05,
    face_weight: float = 1.0,
    neighbours: int = NEIGHBOURS,
    paddings: tuple[float, ...] = (0.25,),
    vivid: dict[str, np.ndarray] | None = None,
    part_weights: bool = False,
    families: bool = False,
) -> dict[str, dict] | None:
    """Test scores of the descriptor probe, the RAN and their sum, with thresholds from validation, the fitted
    cue itself (``"cue"``) and the split's rows it scored (``"rows"``: fit, val, test, those ``desc`` knows). Several
    run folders of one fold (its seeds, one split) are scored as one iris ensemble: the mean of their logits.
    ``vivid``: photo -> features of its vivid copy; the copies of the fold's real training photos join the
    generated ones, as ``ensemble --face-vivid`` fits the cue. ``part_weights``: the validation photos weigh the
    fused score's parts (``fit_part_weights``), as ``ensemble --part-weights`` does. ``families``: one regression
    per generated family (``fit_family_probes``), as ``ensemble --family-probes`` fits them."""
    runs = folder if isinstance(folder, list) else [folder]
    folder = runs[0]
    scored = [fold_scores(f) for f in runs]
    if any(s is None for s in scored):
        return None
    csvs = json.loads((folder / "metrics.json").read_text())["data_csvs"]
    if any(json.loads((f / "metrics.json").read_text())["data_csvs"] != csvs for f in runs):
        raise ValueError(f"{runs}: an ensemble needs runs of one split")
    ensemble = lambda ps: 1 / (1 + np.exp(-np.mean([logit(p) for p in ps], axis=0)))  # noqa: E731
    ran_test, labels = ensemble([s[0] for s in scored]), scored[0][1]
    fit, val, test = (rows_of(folder, csvs[k]) for k in ("fit", "val", "test"))
    keep = lambda rows: np.array([r["photo"] in desc for r in rows])  # noqa: E731
    x = lambda rows: np.stack([desc[r["photo"]] for r in rows if r["photo"] in desc])  # noqa: E731
    y = lambda rows: np.array([int(r["label"]) for r in rows if r["photo"] in desc])  # noqa: E731
    ran_val = ensemble([ran_val_scores(f, csvs["val"]) for f in runs])
    kv, kt = keep(val), keep(test)
    fit_x, fit_y = x(fit), y(fit)
    if vivid is not None:
        copies = np.stack([vivid[r["photo"]] for r in fit if r["photo"] in desc and int(r["label"]) == 0])
        fit_x, fit_y = np.concatenate([fit_x, copies]), np.concatenate([fit_y, np.ones(len(copies), int)])
    known = lambda rows: [r for r in rows if r["photo"] in desc]  # noqa: E731
    fit_families = None
    if families:
        gens = [r.get("generator") or "" for r in known(fit)]
        fit_families = generated_families(gens, fit_y, copies=len(fit_y) - len(gens))
    cue = fit_face_cue(
        fit_x, fit_y, x(val), ran_val[kv], l2, neighbours, paddings=paddings,
        val_labels=y(val) if part_weights else None, fit_families=fit_families,
    )  # fmt: skip
    face_val, face_test = cue.face_part(x(val)), cue.face_part(x(test))
    ran_val_l, ran_test_l = logit(ran_val[kv]), logit(ran_test[kt])
    # the shipped fusion adds the standardised parts alike (face_weight 1); another weight tilts it
    fused_val = face_weight * face_val + cue.iris_part(ran_val[kv])
    fused_test = face_weight * face_test + cue.iris_part(ran_test[kt])
    yv, yt = y(val), labels[kt]
    generators = np.array([r.get("generator") or "" for r in test])[kt]
    val_sources = np.array([r.get("generator") or "" for r in val])[kv]
    out: dict = {"cue": cue, "rows": {"fit": known(fit), "val": known(val), "test": known(test)}}
    for name, sv, st in (
        ("face", face_val, face_test), ("ran", ran_val_l, ran_test_l), ("fused", fused_val, fused_test)
    ):  # fmt: skip
        strict = source_threshold(sv, yv, val_sources, source_fpr)
        # the uncertain band around the strict threshold, as irisgan.ensemble chooses it (on probabilities)
        band = logit(np.array(uncertain_band(1 / (1 + np.exp(-sv)), yv, 1 / (1 + np.exp(-strict)))))
        out[name] = {
            "scores": st, "labels": yt, "generators": generators, "threshold": threshold(sv, yv),
            "strict": strict, "band": tuple(band), "val_scores": sv, "val_labels": yv, "val_sources": val_sources,
        }  # fmt: skip
    return out


def decision_shares(scores: np.ndarray, strict: float, band: tuple[float, float]) -> str:
    """Shares of ``scores`` called GAN / uncertain / real by the strict threshold and the band, as the shipped
    detector's rule decides."""
    rule = DecisionRule(strict, band)
    calls = [rule.decide(float(s))[0] for s in scores]
    return " / ".join(f"{calls.count(d) / len(calls):.0%}" for d in ("GAN", "uncertain", "real"))


def table_head(first: str, methods: tuple[str, ...]) -> list[str]:
    """A markdown table's header and rule: ``first``, seed, then a column per method."""
    return [f"| {first} | seed | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]


def robustness(folder: Path, manifest: Path, desc: dict[str, np.ndarray]) -> list[str]:
    """The probe of one fold on photo-level degradations of its test photos: AUC, the mean change of the logit
    of the GAN photos, and the share of the GAN photos called GAN clean that a degraded copy calls real."""
    import cv2

    from irisgan.data.degrade import PHOTO_DEGRADATIONS, degrade, parse

    csvs = json.loads((folder / "metrics.json").read_text())["data_csvs"]
    fit, val, test = (rows_of(folder, csvs[k]) for k in ("fit", "val", "test"))
    fit, val = ([r for r in rows if r["photo"] in desc] for rows in (fit, val))
    xs = lambda rows: np.stack([desc[r["photo"]] for r in rows])  # noqa: E731
    ys = lambda rows: np.array([int(r["label"]) for r in rows])  # noqa: E731
    # the face's part of the shipped score (the iris network is not degraded here: its standardisation unused)
    cue = fit_face_cue(xs(fit), ys(fit), xs(val), np.full(len(val), 0.5))
    thr = threshold(cue.face_part(xs(val)), ys(val))
    found = {d["path"]: d for d in map(json.loads, manifest.open())}
    test = [r for r in test if r["photo"] in desc]
    y = np.array([int(r["label"]) for r in test])
    rng = np.random.default_rng(0)
    clean = cue.face_part(np.stack([desc[r["photo"]] for r in test]))
    lines = [
        "",
        f"Photo-level degradations of the `{folder.name.split('__')[-1]}` fold's test photos ({len(test)}; the probe",
        "of that fold, threshold from its validation photos): AUC, the mean change of the GAN photos' logit, and",
        "the share of the GAN photos called GAN clean that the degraded copy calls real.",
        "",
        "| degradation | AUC | GAN logit change | GAN -> real |",
        "|---|---|---|---|",
    ]
    for name in PHOTO_DEGRADATIONS:
        kind, value = parse(name)
        scores = []
        for r in test:
            d = found[r["photo"]]
            image = degrade(cv2.cvtColor(cv2.imread(r["photo"]), cv2.COLOR_BGR2RGB), name, rng)
            scale = value if kind == "shrink" else 1.0  # the landmarks follow the photo's size
            box, points = np.asarray(d["face_box"]) * scale, np.asarray(d["landmarks"]) * scale
            scores.append(face_features(image, box, points, FaceView()))
        s_deg = cue.face_part(np.stack(scores))
        gan = y == 1
        caught = gan & (clean >= thr)
        lines.append(
            f"| {name} | {auroc(s_deg, y):.3f} | {np.mean(s_deg[gan] - clean[gan]):+.2f} | "
            f"{np.mean(s_deg[caught] < thr):.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, required=True, help="the study's run folders")
    parser.add_argument("--variant", default="context")
    parser.add_argument("--seeds", default="0")
    parser.add_argument(
        "--cache", type=Path, help="the faces cache the runs used (default: from the first run)"
    )
    parser.add_argument(
        "--robustness", help="a fold whose test photos are degraded and scored again, e.g. real-london"
    )
    parser.add_argument(
        "--padding",
        type=float,
        help="a variant measured beside the default (methods face_v and fused_v): the aligned face's border "
        "(dlib's default 0.25), e.g. 1.0",
    )
    parser.add_argument(
        "--source-fpr", type=float, default=0.05, help="the strict threshold's rate per seen real source"
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        help=f"the variant's k of the nearest-neighbour face score (0: the logistic regression alone; default "
        f"{NEIGHBOURS})",
    )
    parser.add_argument(
        "--face-weight", type=float, help="the variant's weight of the face logit in the sum (default 1)"
    )
    parser.add_argument(
        "--l2", type=float, help="the variant's L2 penalty of the probe (default: the package's)"
    )
    parser.add_argument(
        "--texture",
        action="store_true",
        help="the variant's cue adds the face's texture features to the descriptor (make model MODEL_TEXTURE=1)",
    )
    parser.add_argument(
        "--inner",
        action="store_true",
        help="the variant's cue adds the inner features of dlib's face network to the descriptor "
        "(irisgan.extraction.face_net)",
    )
    parser.add_argument(
        "--crops",
        help="the variant's borders of the aligned faces whose descriptors the cue reads side by side, e.g. "
        "0.25,0.1,0 (default 0.25: dlib's own, one descriptor)",
    )
    parser.add_argument(
        "--vivid",
        action="store_true",
        help="the variant's cue also learns a vivid copy of each real training photo as generated (ensemble "
        "--face-vivid); the default columns are then the same view without the copies",
    )
    parser.add_argument(
        "--part-weights",
        action="store_true",
        help="the variant's fused score weighs its parts by a logistic regression on the validation photos "
        "(ensemble --part-weights); the default columns are then the same view with each part counted once",
    )
    parser.add_argument(
        "--family-probes",
        action="store_true",
        help="the variant's cue fits its regressions once per generated family, the part the largest of their "
        "z-scored logits (ensemble --family-probes); the default columns are then the same view with one each",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="score each fold's seeds as one iris ensemble (the mean of their logits), as the shipped detector "
        "averages its four",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    folds = FOLDS
    run = lambda s, f: args.runs / run_name(args.variant, "bce_auc", "balanced", s, f)  # noqa: E731
    if args.ensemble:
        if args.robustness:
            parser.error("--robustness scores one run: leave out --ensemble")
        folders = {("+".join(map(str, seeds)), f): [run(s, f) for s in seeds] for f in folds}
    else:
        folders = {(s, f): run(s, f) for s in seeds for f in folds}
    first = next(run(s, f) for s in seeds for f in folds if (run(s, f) / "metrics.json").is_file())
    fit_csv = _project_path(first, json.loads((first / "metrics.json").read_text())["data_csvs"]["fit"])
    cache = args.cache or fit_csv.parents[2]
    desc = descriptors(cache)  # the shipped cue: the descriptor
    print(f"{len(desc)} photos with a descriptor", flush=True)
    methods = ("face", "ran", "fused")
    variant = None
    tweaks = (args.padding, args.l2, args.face_weight, args.neighbours, args.crops)
    own_default = sum((args.vivid, args.part_weights, args.family_probes))  # each compares the view without
    if args.texture or args.inner or own_default or any(t is not None for t in tweaks):
        variant = f"padding {args.padding or 0.25}" + (f", L2 {args.l2:g}" if args.l2 is not None else "")
        variant += f", face weight {args.face_weight:g}" if args.face_weight is not None else ""
        variant += f", k {args.neighbours}" if args.neighbours is not None else ""
        variant += ", with texture" if args.texture else ""
        variant += ", with the face network's inner features" if args.inner else ""
        variant += f", crops {args.crops}" if args.crops else ""
        variant += ", with vivid copies of the real training photos as generated" if args.vivid else ""
        variant += ", parts weighted on the validation photos" if args.part_weights else ""
        variant += ", one regression per generated family" if args.family_probes else ""
        view = FaceView.parse(args.crops or "0.25", args.texture, args.inner)
        if args.padding and view.paddings != (0.25,):
            parser.error("--padding and --crops: one or the other")
        desc_v = descriptors(cache, args.padding or 0.25, view)
        if own_default:
            if args.padding or any(t is not None for t in tweaks[1:4]) or own_default > 1:
                parser.error(
                    "--vivid, --part-weights and --family-probes each compare one view with and without: one of "
                    "them, and no --padding, --l2, ..."
                )
            vivid = vivid_copies(cache, view) if args.vivid else None
            desc = desc_v  # the default columns: the same view, without the copies or the weights
        methods = (*methods, "face_v", "fused_v")
    gan_rows, real_rows = [], []
    auc = {}  # (method, fold, seed) -> AUC of a GAN or diffusion fold
    real = {}  # (method, fold, seed) -> (FPR, AUC vs GAN) of a real-source fold
    strict_cells = {}  # (fold, seed) -> per method: "FPR of the test reals; share of the test fakes caught"
    decision_rows = []  # the fused detector's decisions on each fold's held-out photos
    curves = []  # the fused score's ROC of each fold, first seed: the held-out photos against the other class
    shown = "fused_v" if variant else "fused"  # whose decisions and curves are shown: the variant's, if any
    for (seed, fold), folder in folders.items():
        measures = fold_measures(folder, desc, source_fpr=args.source_fpr)
        if measures is None:
            continue
        if variant:
            other = fold_measures(
                folder, desc_v, 1e-3 if args.l2 is None else args.l2, args.source_fpr, args.face_weight or 1.0,
                NEIGHBOURS if args.neighbours is None else args.neighbours,
                view.paddings if not args.padding else (0.25,), vivid if args.vivid else None, args.part_weights,
                args.family_probes,
            )  # fmt: skip
            measures.update(face_v=other["face"], fused_v=other["fused"])
        if fold in REAL_SOURCES:
            cells = []
            for mth in methods:
                m = measures[mth]
                own, gan, diff = source_masks(m["labels"], m["generators"], REAL_SOURCES[fold])
                s = m["scores"]
                fpr = float(np.mean(s[own] >= m["threshold"]))
                auc_gan = auroc(np.r_[s[own], s[gan]], np.r_[np.zeros(own.sum()), np.ones(gan.sum())])
                auc_diff = auroc(np.r_[s[own], s[diff]], np.r_[np.zeros(own.sum()), np.ones(diff.sum())])
                real[mth, fold, seed] = (fpr, auc_gan)
                if mth == shown and seed == seeds[0]:
                    curves.append(
                        (f"{fold} held out, vs GAN", np.r_[s[own], s[gan]], np.r_[0 * s[own], 1 + 0 * s[gan]])
                    )
                cells.append(f"{fpr:.3f}; {auc_gan:.3f} / {auc_diff:.3f}")
                t = m["strict"]
                strict_cells.setdefault((fold, seed), []).append(
                    f"{np.mean(s[own] >= t):.3f}; {np.mean(s[gan] >= t):.3f}"
                )
                if mth == shown:
                    decision_rows.append(
                        f"| {fold} | {seed} | real | {decision_shares(s[own], t, m['band'])} |"
                    )
            real_rows.append(f"| {fold} | {seed} | " + " | ".join(cells) + " |")
        else:
            for mth in methods:
                m = measures[mth]
                auc[mth, fold, seed] = auroc(m["scores"], m["labels"])
                if mth == shown and seed == seeds[0]:
                    curves.append((fold, m["scores"], m["labels"]))
                s, y, t = m["scores"], m["labels"], m["strict"]
                strict_cells.setdefault((fold, seed), []).append(
                    f"{np.mean(s[y == 0] >= t):.3f}; {np.mean(s[y == 1] >= t):.3f}"
                )
                if mth == shown:
                    decision_rows.append(
                        f"| {fold} | {seed} | generated | {decision_shares(s[y == 1], t, m['band'])} |"
                    )
            gan_rows.append((fold, seed, [f"{auc[mth, fold, seed]:.3f}" for mth in methods]))
    lines = [
        "# A face descriptor beside the iris score, on the study's folds",
        "",
        f"Variant `{args.variant}` (bce_auc, balanced), seeds {args.seeds}. `face`: the face cue, fitted on the",
        f"fold's training photos: a logistic regression and a {NEIGHBOURS}-nearest-neighbour score on dlib's 128-d face",
        "descriptor, each standardised on the validation photos, summed; `ran`: the fold's run; `fused`: the sum",
        "of the face part and the RAN's standardised logit, as the shipped detector scores. `--texture` (the",
        "variant columns `face_v`, `fused_v`) adds a logistic regression on the face's texture features, `--inner`",
        "one on the inner features of dlib's face network (`irisgan.extraction.face_net`). With `--vivid`, the",
        "default columns are the variant's view and the variant adds vivid copies of the fold's real training",
        "photos to its generated ones (`irisgan.data.degrade.vivid_copy`, `ensemble --face-vivid`). With",
        "`--part-weights`, the default columns are the variant's view too and the variant weighs the fused score's",
        "parts by a logistic regression on the validation photos (`fit_part_weights`, `ensemble --part-weights`).",
        f"Command: `python experiments/face_descriptor_probe.py --runs RUNS --variant {args.variant} --seeds",
        f"{args.seeds}{' --source-fpr ' + format(args.source_fpr, 'g') if args.source_fpr != 0.05 else ''}"
        f"{' --ensemble' if args.ensemble else ''}`{' with a variant: see the last comparisons' if variant else ''}.",
        "",
        "Held-out generator family: AUC against the held-out real photos. `sd-adults` and `sd-children` hold out",
        "one group of the diffusion faces' subjects and train with the other (`cross_generator.SUBJECTS`).",
        "",
        *table_head("fold", methods),
        *(f"| {fold} | {seed} | " + " | ".join(cells) + " |" for fold, seed, cells in gan_rows),
        "",
    ]
    for mth in methods:  # each family's mean over the seeds, then the mean and the worst family
        per_family = [
            np.mean([v for (m, f, _), v in auc.items() if m == mth and f == family])
            for family in FAMILIES
            if any(m == mth and f == family for m, f, _ in auc)
        ]
        if per_family:
            lines.append(
                f"- `{mth}`: GAN mean {np.mean(per_family):.3f}, worst {min(per_family):.3f} "
                f"({len(per_family)} families)"
            )
    lines += [
        "",
        "Held-out real source: false-positive rate at the threshold chosen on validation; AUC against the",
        "held-out GAN photos / the diffusion faces.",
        "",
        *table_head("source", methods),
        *real_rows,
        "",
        "Paired differences, fused minus the RAN alone, over matched folds and seeds (95% bootstrap interval; wins):",
        "",
    ]
    # the leave-one-family-out folds; the subject folds (SUBJECTS) are rows of the tables, not paired runs here
    runs = [(f, sd) for m, f, sd in auc if m == "ran" and f not in SUBJECTS]
    sources = [(f, sd) for m, f, sd in real if m == "ran"]
    comparisons = [
        (
            "AUC, GAN and diffusion folds",
            [auc["fused", f, sd] - auc["ran", f, sd] for f, sd in runs],
            "higher",
        ),
        (
            "AUC vs GAN, held-out sources",
            [real["fused", f, sd][1] - real["ran", f, sd][1] for f, sd in sources],
            "higher",
        ),
        (
            "FPR, held-out sources",
            [real["ran", f, sd][0] - real["fused", f, sd][0] for f, sd in sources],
            "lower",
        ),
    ]
    if variant:
        comparisons += [
            (
                f"{variant} minus the default, fused: AUC, GAN and diffusion folds",
                [auc["fused_v", f, sd] - auc["fused", f, sd] for f, sd in runs],
                "higher",
            ),
            (
                f"{variant} minus the default, fused: AUC vs GAN, held-out sources",
                [real["fused_v", f, sd][1] - real["fused", f, sd][1] for f, sd in sources],
                "higher",
            ),
        ]
    for name, diffs, better in comparisons:
        if diffs:
            d = paired_difference(diffs)
            sign = 1 if better == "higher" else -1  # FPR: the difference is taken the other way round
            lo, hi = sorted((sign * d["lo"], sign * d["hi"]))
            lines.append(
                f"- {name}: {sign * d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}], {better} in {d['a_wins']}/{d['n']} runs"
            )
    lines += [
        "",
        "At a strict threshold, the lowest at which every real source of the fold's validation photos has at most",
        f"{args.source_fpr:.0%} called GAN: the test set's real photos called GAN (the held-out source alone on a source fold); the",
        "test set's generated photos caught (the held-out family alone on a GAN or diffusion fold; the GAN photos",
        "on a source fold).",
        "",
        *table_head("fold", methods),
        *(f"| {fold} | {seed} | " + " | ".join(cells) + " |" for (fold, seed), cells in strict_cells.items()),
    ]
    lines += [
        "",
        f"Decisions of the {'variant' if variant else 'default'}'s fused score on the held-out photos (the held-out"
        " family, or the held-out source's real",
        "photos): GAN / uncertain / real, at the strict threshold with the uncertain band chosen around it on the",
        "fold's validation photos (each confident call right at least 95% of the time there), as the shipped",
        "detector decides.",
        "",
        "| fold | seed | held-out photos | GAN / uncertain / real |",
        "|---|---|---|---|",
        *decision_rows,
    ]
    name = "face_descriptor" + (f"_fpr{args.source_fpr:g}" if args.source_fpr != 0.05 else "")
    name += "_ensemble" if args.ensemble else ""
    suffix = ""  # the variant's, in the names of its results and figure
    if variant:
        suffix = (
            (f"_pad{args.padding:g}" if args.padding else "")
            + (f"_l2_{args.l2:g}" if args.l2 is not None else "")
            + (f"_face{args.face_weight:g}" if args.face_weight is not None else "")
            + (f"_k{args.neighbours}" if args.neighbours is not None else "")
            + ("_texture" if args.texture else "")
            + ("_inner" if args.inner else "")
            + (f"_crops{args.crops.replace(',', '_')}" if args.crops else "")
            + ("_vivid" if args.vivid else "")
            + ("_weighted" if args.part_weights else "")
            + ("_families" if args.family_probes else "")
        )
    name += suffix
    if curves:
        figure = ROOT / "docs" / "img" / f"face_cue_roc{suffix}.png"
        plot_rocs(
            sorted(curves, key=lambda c: c[0].startswith("real")), figure,
            f"Iris + face cue{suffix.replace('_', ' ')}, held-out photos (seed {seeds[0]})",
            "false positive rate (the held-out real photos)",
        )  # fmt: skip
        lines += ["", f"ROC curves of the fused score: `{figure.relative_to(ROOT)}`."]
    if args.robustness:
        lines += robustness(folders[(seeds[0], args.robustness)], cache / "manifest.jsonl", desc)
    write_results(f"{name}.md", lines)


if __name__ == "__main__":
    main()
