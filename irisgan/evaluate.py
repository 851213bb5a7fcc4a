"""Evaluate a classifier checkpoint: ``python -m irisgan.evaluate ckpt=CKPT [pairs_csv=CSV | faces=DIR]``.

Writes to the run folder: ``metrics.json`` (RAN and the training-free highlight baseline, at 0.5 and at the
checkpoint's stored threshold, with bootstrap 95% intervals), ``report.md`` (the same as tables),
``plots/`` (ROC, PR, threshold, confusion per method, and both ROCs together), and with
``robustness=true`` ``robustness.csv``/``robustness.md``/``plots/robustness.png`` (AUC per degradation of the
pairs). With ``faces=DIR photo_robustness=true`` each photo is also degraded as a file (a re-encode, a
smaller copy, grayscale, a colour cast, or an adversary's edits such as sharpening or a crop:
``photo_degradations``) and the copies go through the whole pipeline, extraction included:
``photo_robustness.csv``/``.md`` give the yield, the AUC and the decisions per degradation, and how many GAN
photos called GAN as they were become a confident "real".
``decisions`` in ``metrics.json`` counts real / GAN / uncertain (``irisgan.inference.DecisionRule``) and
the accuracy of the confident calls. Photos that yield no pair are counted and reported by status, never
dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torchmetrics.functional.classification import binary_accuracy, binary_auroc

from irisgan import plots, runtime
from irisgan.config import CONFIG_DIR
from irisgan.data.degrade import degrade_batch, write_degraded_photo
from irisgan.data.pairs import load_pairs
from irisgan.data.pairs_format import read_pairs_csv, write_bytes_atomic
from irisgan.extraction.descriptors import (
    MissingFaceError,
    pair_descriptors,
    photo_descriptors,
)
from irisgan.extraction.faces import decode_image
from irisgan.extraction.manifest import format_statuses, read_manifest
from irisgan.extraction.pipeline import face_is_grayscale
from irisgan.inference import (
    FACE_ONLY,
    DecisionRule,
    check_pair_shape,
    decide_and_summarise,
    face_flags,
    fuse_face_cue,
    load_classifier,
    pair_overrides,
    pairs_grayscale,
    resolve_checkpoint,
    score_members,
    score_pairs,
    stored_face_rule,
)
from irisgan.models.baseline import highlight_scores
from irisgan.training.metrics import report_from_scores

log = logging.getLogger("irisgan.evaluate")


def bootstrap_ci(
    scores: np.ndarray, labels: np.ndarray, threshold: float, n: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% percentile intervals of AUROC and accuracy (at ``threshold``) over ``n`` resamples of the set."""
    if n <= 0:
        return {}
    rng = np.random.default_rng(seed)
    s, y = torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(labels).long()
    aucs, accs = [], []
    for _ in range(n):
        idx = torch.as_tensor(rng.integers(0, len(y), len(y)))
        ys = y[idx]
        if 0 < int(ys.sum()) < len(ys):  # a resample needs both classes for an AUC
            aucs.append(float(binary_auroc(s[idx], ys)))
        accs.append(float(binary_accuracy(s[idx], ys, threshold=threshold)))
    out = {"acc_ci95": np.percentile(accs, [2.5, 97.5]).tolist()}
    if aucs:
        out["auroc_ci95"] = np.percentile(aucs, [2.5, 97.5]).tolist()
    return out


def summarize(scores: np.ndarray, labels: np.ndarray, threshold: float, cfg: DictConfig) -> tuple[dict, dict]:
    scalars, report = report_from_scores(torch.as_tensor(scores), torch.as_tensor(labels), threshold)
    point = report["at_threshold"]
    out = {f"{k}_at_0.5": v for k, v in scalars.items() if k not in ("auroc", "ap")}
    out.update({"auroc": scalars["auroc"], "ap": scalars["ap"], "threshold": threshold})
    out.update({f"{k}_at_thr": point[k] for k in ("acc", "precision", "recall", "f1", "tpr", "fpr")})
    out.update(bootstrap_ci(scores, labels, threshold, cfg.bootstrap, cfg.seed))
    return out, report


def per_cue_breakdown(
    scores: np.ndarray, labels: np.ndarray, cues: list[str], threshold: float
) -> list[dict]:
    """For each cue family in a ``cues`` column (``a;b``): its GAN pairs against every real pair.

    AUROC of those fakes vs all reals, and their recall at the threshold; ``only`` counts fakes with that
    cue alone. Shows which GAN cues a detector has learned (synthetic sets record the cues they planted).
    """
    per_pair = [set(c.split(";")) - {""} for c in cues]
    real = labels == 0
    rows = []
    for cue in sorted(set().union(*per_pair)):
        has = np.array([cue in c for c in per_pair]) & (labels == 1)
        only = np.array([c == {cue} for c in per_pair]) & (labels == 1)
        row = {"cue": cue, "n_fake": int(has.sum()), "n_only": int(only.sum())}
        for tag, sel in (("", has), ("only_", only)):
            if sel.sum() and real.sum():
                keep = sel | real
                row[f"{tag}auroc"] = float(
                    binary_auroc(torch.as_tensor(scores[keep]), torch.as_tensor(labels[keep]).long())
                )
                row[f"{tag}recall_at_thr"] = float((scores[sel] >= threshold).mean())
        rows.append(row)
    return rows


GROUP_COLUMNS = ("generator", "source")
# groups read from the photos themselves rather than from a CSV column
PHOTO_GROUPS = ("lightness",)


def per_group_breakdown(
    scores: np.ndarray, labels: np.ndarray, groups: list[str], threshold: float
) -> list[dict]:
    """AUC per value of a provenance column: each GAN group against all real pairs, and each real group
    against all GAN pairs. A group far from the rest is a source the detector tells apart by something other
    than GAN eyes (or a generator it misses). ``rate_at_thr``: recall for GAN groups, specificity for real."""
    rows = []
    for name in sorted(set(groups)):
        sel = np.array([g == name for g in groups])
        for label in (1, 0):
            mine = sel & (labels == label)
            others = labels == (1 - label)
            if not mine.sum():
                continue
            row = {"group": name, "class": "GAN" if label else "real", "n": int(mine.sum())}
            if others.sum():
                keep = mine | others
                row["auroc"] = float(
                    binary_auroc(torch.as_tensor(scores[keep]), torch.as_tensor(labels[keep]).long())
                )
            called_fake = scores[mine] >= threshold
            row["rate_at_thr"] = float(called_fake.mean() if label else (~called_fake).mean())
            rows.append(row)
    return rows


def lightness_groups(csv: str | Path) -> list[str] | None:
    """Each pair's face as darker- or lighter-looking (``pair_lightness``): on the study's folds the detector
    caught darker-looking GAN faces less often than lighter ones, so a report shows the two apart. None where the
    CSV has no extraction to find the faces in (a synthetic set, bare pairs)."""
    from irisgan.extraction.descriptors import MissingFaceError, pair_lightness

    try:
        return pair_lightness(csv)
    except MissingFaceError:
        return None


def extract_faces(cfg: DictConfig, faces: object, out: Path, model) -> tuple[Path, dict]:
    """Face photos -> ``out/pairs.csv`` with the extractor (``extract_overrides`` apply, and the margin and
    pair shape the model's training pairs were cut with); its summary."""
    from hydra import compose

    from irisgan.extraction.loop import run_extraction

    overrides = [f"faces={faces}", f"out={out}", *pair_overrides(model, list(cfg.extract_overrides))]
    summary = run_extraction(compose(config_name="extract", overrides=overrides)) or {}
    return out / "pairs.csv", summary


def load_test_set(cfg: DictConfig, out: Path, model) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(uint8 pairs, labels, provenance). Face folders go through the extractor first."""
    info: dict[str, Any] = {}
    if cfg.faces:
        extract_out = out / "extracted"
        csv, info["extraction"] = extract_faces(cfg, cfg.faces, extract_out, model)
        info["source"] = f"faces={cfg.faces} (extracted to {extract_out})"
    elif cfg.pairs_csv:
        csv = Path(cfg.pairs_csv)
        info["source"] = f"pairs_csv={csv}"
    else:
        from irisgan.synthetic.pairs import ensure_synthetic_pairs

        csv = ensure_synthetic_pairs(**OmegaConf.to_container(cfg.synthetic, resolve=True))
        info["source"] = f"synthetic test set {csv.parent.name}"
    images, labels, paths = load_pairs(csv)
    check_pair_shape(model, images, csv)
    rows = read_pairs_csv(csv)
    cues = [row.get("cues") or "" for row in rows]
    if any(cues):
        info["cues"] = cues  # the GAN cue families of each pair (synthetic sets): a per-cue breakdown
    groups = {c: [row.get(c) or "" for row in rows] for c in GROUP_COLUMNS if any(row.get(c) for row in rows)}
    # A column with a value per pair (the extractor's `source` is the photo's path) names no groups.
    groups = {c: v for c, v in groups.items() if len(set(v)) <= max(2, len(v) // 4)}
    lightness = lightness_groups(csv)
    if lightness is not None:
        groups["lightness"] = lightness
    if groups:
        info["groups"] = groups  # provenance columns (generator, source), lightness: a per-group breakdown
    info["csv"] = str(csv)
    info["n_pairs"] = len(labels)
    info["n_fake"], info["n_real"] = int(labels.sum()), int(len(labels) - labels.sum())
    return images.numpy(), labels.numpy(), info


def face_descriptors(face_cue: bool | None, model, csv: str | Path) -> np.ndarray | None:
    """The face descriptors of the pairs' photos when ``model`` scores the face (``face_cue``: see
    conf/evaluate.yaml), else None. Without them the model is turned into its iris ensemble alone, with the
    threshold chosen for it and no uncertain band (the band was chosen for the fused score)."""
    if model.face_cue is None:
        if face_cue:
            raise ValueError(
                "face_cue=true: this detector has no face cue (build one with irisgan.ensemble --face-cue)"
            )
        return None
    if face_cue is None or face_cue:
        try:
            return pair_descriptors(csv, model.face_cue.view)
        except MissingFaceError as error:
            if face_cue:
                raise
            log.warning("%s. Scoring the irises alone, at their own threshold (face_cue=false).", error)
    decision = dict(model.decision or {})
    model.face_cue = None
    model.threshold.fill_(float(decision.get("iris_threshold", 0.5)))
    model.decision = {"max_spread": decision.get("max_spread")}
    return None


def photo_robustness(cfg: DictConfig, model, rule: DecisionRule, out: Path) -> list[dict[str, Any]]:
    """Each photo degraded as a file, then extracted and scored: one row per degradation.

    ``gan_to_real``: the share of GAN photos called GAN as they were (``clean``) that this copy turns into a
    confident "real": an evasion. ``gan_unsure_to_real``: the same of the GAN photos left uncertain as they were
    (or without a pair): a milder one, which moves a photo the detector was unsure of to a confident "real".
    """
    from irisgan.extraction.photos import list_inputs

    photos, _ = list_inputs(cfg.faces, exclude=out)
    names = list(cfg.photo_degradations)
    if "clean" in names:  # the reference the flips are counted against goes first
        names.remove("clean")
    names.insert(0, "clean")
    rows, clean_calls = [], {}
    by_path = {str(Path(photo.path).resolve()): i for i, photo in enumerate(photos)}
    for name in names:
        folder = out / "photo_robustness" / name
        if name == "clean" and (out / "extracted" / "pairs.csv").is_file():
            # the photos as they are were extracted for the main scores already: no second extraction
            csv = out / "extracted" / "pairs.csv"
            summary_file = csv.parent / "summary.json"
            summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
            index = [by_path.get(str(Path(r["source"]).resolve())) for r in read_pairs_csv(csv)]
            rows.append(_photo_row(name, photos, csv, index, summary, model, rule, cfg, clean_calls))
            continue
        stems = {}
        for i, photo in enumerate(photos):
            stem = (
                folder
                / "photos"
                / ("fake" if photo.label == 1 else "real")
                / f"{i:05d}_{Path(photo.path).stem}"
            )
            stems[stem.name] = i
            if not any(stem.parent.glob(stem.name + ".*")):  # a rerun reuses the copies written already
                write_degraded_photo(photo.path, name, stem, seed=cfg.seed)
        csv, summary = extract_faces(cfg, folder / "photos", folder / "extracted", model)
        index = [stems.get(Path(r["source"]).stem) for r in read_pairs_csv(csv)]
        rows.append(_photo_row(name, photos, csv, index, summary, model, rule, cfg, clean_calls))
    return rows


# a photo-level row's fields that are no table cells: the extractor's status counts, the evading photos' paths
PHOTO_ROW_LISTS = ("statuses", "evasions")


def _photo_row(
    name: str, photos, csv: Path, index: list, summary, model, rule: DecisionRule, cfg: DictConfig,
    clean_calls: dict,
) -> dict[str, Any]:  # fmt: skip
    """Score one degradation's extracted pairs; ``index`` maps each pair to its photo. The ``clean`` row
    fills ``clean_calls``, which the later rows count their evasions against."""
    images, labels, _ = load_pairs(csv)
    images, labels = images.numpy(), labels.numpy().astype(int)
    probs, spread = score_members(model, images, cfg.batch_size)
    faces = None
    if model.face_cue is not None and len(labels):
        faces = pair_descriptors(csv, model.face_cue.view)
        probs = fuse_face_cue(model, probs, faces)
    decisions, shares = decide_and_summarise(
        rule, probs, spread, pairs_grayscale(images), labels, *face_flags(model, faces)
    )
    calls = dict(zip(index, decisions, strict=True))
    if name == "clean":
        clean_calls.update(calls)
    row: dict[str, Any] = {"degradation": name, "photos": len(photos), "scored": len(labels)}
    if len(np.unique(labels)) == 2:
        row["auroc"] = float(binary_auroc(torch.as_tensor(probs), torch.as_tensor(labels)))
    row["acc_at_thr"] = float(((probs >= rule.threshold) == (labels == 1)).mean()) if len(labels) else None
    row["gan_mean_p"] = float(probs[labels == 1].mean()) if (labels == 1).any() else None
    row.update(shares)
    caught = [i for i, d in clean_calls.items() if d == "GAN" and i is not None and photos[i].label == 1]
    row["gan_caught_clean"] = len(caught)
    row["gan_to_real"] = float(np.mean([calls.get(i) == "real" for i in caught])) if caught else None
    unsure = [i for i, p in enumerate(photos) if p.label == 1 and clean_calls.get(i) in ("uncertain", None)]
    row["gan_unsure_clean"] = len(unsure)
    row["gan_unsure_to_real"] = float(np.mean([calls.get(i) == "real" for i in unsure])) if unsure else None
    # the extractor's per-class status counts: why photos gave no pair
    row["statuses"] = summary.get("per_class") if isinstance(summary, dict) else None
    # which photos the copy turns into a confident real, so that an evasion can be looked at
    row["evasions"] = {
        kind: [str(photos[i].path) for i in among if calls.get(i) == "real"]
        for kind, among in (("gan_to_real", caught), ("gan_unsure_to_real", unsure))
    }
    log.info("photo robustness %s: %s", name, {k: v for k, v in row.items() if k not in PHOTO_ROW_LISTS})
    return row


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def face_only_photos(model, extraction: Path) -> dict[str, Any] | None:
    """The photos of a ``faces=DIR`` extraction whose face was found but whose irises gave no pair, scored by the
    face alone under the detector's face-only rule, as ``predict`` scores them: how many, their AUC and the
    decisions per class. None for a detector without that rule, or when every photo with a face gave a pair."""
    rule = stored_face_rule(model)
    if rule is None:
        return None
    records = [
        r for r in read_manifest(extraction).values()
        if r.get("status") in FACE_ONLY and r.get("landmarks") and r.get("face_box") and r.get("label") is not None
    ]  # fmt: skip
    if not records:
        return None
    view = model.face_cue.view
    x = photo_descriptors(records, extraction / view.cache_name, view=view)
    probs = model.face_cue.face_probability(x)
    labels = np.array([int(r["label"]) for r in records])
    # a grey, unfamiliar or vivid face is never a confident real, as predict decides it
    grey = [
        face_is_grayscale(decode_image(Path(r["path"]).read_bytes(), r["path"]), r["face_box"])
        for r in records
    ]
    out: dict[str, Any] = {
        "n": len(records),
        "n_fake": int(labels.sum()),
        "statuses": dict(Counter(r["status"] for r in records)),
        "rule": rule.record(),
        "auroc": None,
        "grayscale": int(sum(grey)),
        **decide_and_summarise(rule, probs, None, grey, labels, *face_flags(model, x))[1],
    }
    if len(np.unique(labels)) == 2:
        out["auroc"] = float(binary_auroc(torch.from_numpy(probs), torch.from_numpy(labels).long()))
    return out


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    runtime.configure()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    precision, compile = str(cfg.get("precision", "32")), bool(cfg.get("compile", False))
    model = load_classifier(cfg.ckpt, device, precision, compile, cfg.get("flip_tta"))
    images, labels, info = load_test_set(cfg, out, model)
    if len(np.unique(labels)) < 2:
        log.warning("the test set holds one class only: AUROC and AP are undefined")

    # A detector with a face cue scores each pair's face as well: the descriptors of the photos behind the pairs
    # (a pair-level degradation below changes the pair, not the face).
    faces = face_descriptors(cfg.get("face_cue"), model, info["csv"])
    rule, threshold = DecisionRule.of(model), float(model.threshold)
    methods: dict[str, Any] = {
        "ran": lambda x: fuse_face_cue(model, score_pairs(model, x, cfg.batch_size), faces)
    }
    thresholds = {"ran": threshold, "highlight_baseline": 0.5}
    if faces is not None:  # the iris network alone, at its own threshold: what the face cue adds
        methods["iris_only"] = lambda x: score_pairs(model, x, cfg.batch_size)
        thresholds["iris_only"] = float((model.decision or {}).get("iris_threshold", 0.5))
    if cfg.baseline:
        methods["highlight_baseline"] = highlight_scores

    cues = info.pop("cues", None)
    groups = info.pop("groups", {})
    results: dict[str, Any] = {
        "checkpoint": str(resolve_checkpoint(cfg.ckpt)),
        **info,
        "precision": precision,
        "compile": compile,
        "face_cue": faces is not None,
        "methods": {},
    }
    reports = {}
    # One pass gives the RAN's scores and its members' spread, which the decisions need.
    iris_p, spread = score_members(model, images, cfg.batch_size)
    probs = fuse_face_cue(model, iris_p, faces)
    for name, scorer in methods.items():
        scores = {"ran": probs, "iris_only": iris_p}.get(name)
        scores = scorer(images) if scores is None else scores
        results["methods"][name], reports[name] = summarize(scores, labels, thresholds[name], cfg)
        if cues is not None:
            results["methods"][name]["per_cue"] = per_cue_breakdown(scores, labels, cues, thresholds[name])
        for column, values in groups.items():
            results["methods"][name][f"per_{column}"] = per_group_breakdown(
                scores, labels, values, thresholds[name]
            )
            if name == "ran":
                plots.plot_roc_per_group(
                    scores, labels, values, out / "plots" / f"roc_per_{column}.png", f"RAN: ROC per {column}"
                )
        plots.plot_report(reports[name], out / "plots", name)
        np.save(out / f"scores_{name}.npy", scores)
    plots.plot_roc_comparison(reports, out / "plots" / "roc_comparison.png")
    results["decision_rule"] = rule.record()
    _, results["decisions"] = decide_and_summarise(
        rule, probs, spread, pairs_grayscale(images), labels, *face_flags(model, faces)
    )
    if cfg.faces:  # photos whose irises gave no pair: the face alone, as predict scores them
        face_only = face_only_photos(model, out / "extracted")
        if face_only is not None:
            results["face_only"] = face_only

    photo_rows = []
    if cfg.photo_robustness:
        if not cfg.faces:
            raise ValueError("photo_robustness=true degrades face photos: pass faces=DIR (real/ and fake/)")
        photo_rows = photo_robustness(cfg, model, rule, out)
        results["photo_robustness"] = photo_rows
        columns = [c for c in photo_rows[0] if c not in PHOTO_ROW_LISTS]
        write_bytes_atomic(out / "photo_robustness.md", (_table(photo_rows, columns) + "\n").encode())
        csv_text = "\n".join(",".join(str(r.get(c, "")) for c in columns) for r in photo_rows)
        write_bytes_atomic(
            out / "photo_robustness.csv", (",".join(columns) + "\n" + csv_text + "\n").encode()
        )

    robustness_rows = []
    if cfg.robustness:
        for deg in cfg.degradations:
            degraded = degrade_batch(images, deg, seed=cfg.seed)
            row: dict[str, Any] = {"degradation": deg}
            for name, scorer in methods.items():
                s = scorer(degraded)
                row[f"{name}_auroc"] = float(binary_auroc(torch.as_tensor(s), torch.as_tensor(labels).long()))
                row[f"{name}_acc_at_thr"] = float(
                    binary_accuracy(
                        torch.as_tensor(s), torch.as_tensor(labels).long(), threshold=thresholds[name]
                    )
                )
            robustness_rows.append(row)
            log.info("robustness %s: %s", deg, {k: round(v, 3) for k, v in row.items() if k != "degradation"})
        results["robustness"] = robustness_rows
        columns = list(robustness_rows[0])
        csv_text = (
            ",".join(columns)
            + "\n"
            + "\n".join(",".join(str(r[c]) for c in columns) for r in robustness_rows)
        )
        write_bytes_atomic(out / "robustness.csv", (csv_text + "\n").encode())
        write_bytes_atomic(out / "robustness.md", (_table(robustness_rows, columns) + "\n").encode())
        plots.plot_robustness(robustness_rows, list(methods), out / "plots" / "robustness.png")

    write_bytes_atomic(out / "metrics.json", json.dumps(results, indent=2, default=float).encode())
    report_md = _report_markdown(results, robustness_rows, photo_rows)
    write_bytes_atomic(out / "report.md", report_md.encode())
    log.info("evaluation written to %s\n%s", out, report_md)
    if cfg.wandb:
        _log_wandb(cfg, out, results, reports)
    return results


def _face_only_lines(results: dict[str, Any]) -> list[str]:
    """The report's section on the photos without a pair, scored by the face alone."""
    f = results.get("face_only")
    if not f:
        return []
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    band = f["rule"].get("band") or (f["rule"]["threshold"], f["rule"]["threshold"])
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(f["statuses"].items()))
    return [
        f"## Photos without a pair, by the face alone ({f['n']}: {statuses})",
        "",
        f"The face cue's own rule (threshold {f['rule']['threshold']:.3f}, uncertain band [{band[0]:.3f}, "
        f"{band[1]:.3f})), as `predict` reports `p_face` and `face_decision`; these photos are not in the table above.",
        "",
        f"- AUC: {'-' if f['auroc'] is None else format(f['auroc'], '.3f')} ({f['n_fake']} GAN, "
        f"{f['n'] - f['n_fake']} real)",
        f"- GAN photos: {fmt(f['gan_called_gan'])} GAN, {fmt(f['gan_called_uncertain'])} uncertain, "
        f"{fmt(f['gan_called_real'])} real",
        f"- real photos: {fmt(f['real_called_real'])} real, {fmt(f['real_called_uncertain'])} uncertain, "
        f"{fmt(f['real_called_gan'])} GAN",
        *(
            [f"- grayscale faces: {f['grayscale']} (never called real with confidence)"]
            if f.get("grayscale")
            else []
        ),
        *_face_flag_lines(f, fmt),
        "",
    ]


def _face_flag_lines(d: dict[str, Any], fmt) -> list[str]:
    """The report's lines on unfamiliar and vivid faces, for a detector whose face cue tells them."""
    lines = []
    for flag in ("unfamiliar", "vivid"):
        if d.get(f"gan_{flag}") is None and d.get(f"real_{flag}") is None:
            continue
        lines.append(
            f"- {flag} faces (never called real with confidence): {fmt(d.get(f'gan_{flag}'))} of the GAN "
            f"photos, {fmt(d.get(f'real_{flag}'))} of the real ones"
        )
    return lines


def _decision_lines(results: dict[str, Any]) -> list[str]:
    """The decisions section of the report: GAN / real / uncertain per class under the stored rule."""
    d, rule = results.get("decisions"), results.get("decision_rule")
    if not d or not rule:
        return _face_only_lines(results)
    band = "no uncertain band stored (build one with irisgan.ensemble)"
    if rule.get("band"):
        band = f"uncertain band [{rule['band'][0]:.3f}, {rule['band'][1]:.3f})"
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    spread = "-" if rule.get("max_spread") is None else f"{rule['max_spread']:.3f}"
    return [
        f"## Decisions ({band}; members' spread up to {spread})",
        "",
        f"- uncertain: {fmt(d['uncertain_share'])} of the pairs; accuracy of the confident calls: "
        f"{fmt(d['acc_outside_band'])}",
        f"- GAN pairs: {fmt(d['gan_called_gan'])} GAN, {fmt(d['gan_called_uncertain'])} uncertain, "
        f"{fmt(d['gan_called_real'])} real",
        f"- real pairs: {fmt(d['real_called_real'])} real, {fmt(d['real_called_uncertain'])} uncertain, "
        f"{fmt(d['real_called_gan'])} GAN",
        *_face_flag_lines(d, fmt),
        "",
        *_face_only_lines(results),
    ]


def _report_markdown(
    results: dict[str, Any], robustness_rows: list[dict], photo_rows: list[dict] | None = None
) -> str:
    rows = []
    for name, m in results["methods"].items():
        ci_auc, ci_acc = m.get("auroc_ci95", [np.nan] * 2), m.get("acc_ci95", [np.nan] * 2)
        rows.append(
            {
                "method": name,
                "AUC": m["auroc"],
                "AUC 95% CI": f"{ci_auc[0]:.3f}-{ci_auc[1]:.3f}",
                "acc@thr": m["acc_at_thr"],
                "acc 95% CI": f"{ci_acc[0]:.3f}-{ci_acc[1]:.3f}",
                "precision@thr": m["precision_at_thr"],
                "recall@thr": m["recall_at_thr"],
                "F1@thr": m["f1_at_thr"],
                "acc@0.5": m["acc_at_0.5"],
                "threshold": m["threshold"],
            }
        )
    text = [
        f"# Evaluation of {results['checkpoint']}",
        "",
        f"Test set: {results['source']}: "
        f"{results['n_pairs']} pairs ({results['n_real']} real, {results['n_fake']} GAN).",
        "",
    ]
    if results.get("face_cue"):
        text += [
            "`ran` is the detector's score: the iris RAN's logit plus the face cue's scores (of the face's "
            "descriptor, and of its texture or the face network's inner layers when the cue reads them), each "
            "standardised; `iris_only` is the RAN alone at its own threshold.",
            "",
        ]
    extraction = results.get("extraction")
    if extraction:
        text += [
            "Photos per class and status (a photo without a pair is not in the pairs' table; with a face cue, the "
            "face alone scores it, below):",
            "",
        ]
        text += [f"- {line}" for line in format_statuses(extraction)] + [""]
    text += [_table(rows, list(rows[0])), ""]
    cue_rows = [{"method": name, **r} for name, m in results["methods"].items() for r in m.get("per_cue", [])]
    if cue_rows:
        text += [
            "## Per GAN cue (the cue's GAN pairs against all real pairs; `only_`: pairs with that cue alone)",
            "",
            _table(
                cue_rows,
                [
                    "method",
                    "cue",
                    "n_fake",
                    "auroc",
                    "recall_at_thr",
                    "n_only",
                    "only_auroc",
                    "only_recall_at_thr",
                ],
            ),
            "",
        ]
    for column in (*GROUP_COLUMNS, *PHOTO_GROUPS):
        group_rows = [
            {"method": name, **r}
            for name, m in results["methods"].items()
            for r in m.get(f"per_{column}", [])
        ]
        if group_rows:
            what = "faces by cheek lightness, skin and light together; " if column == "lightness" else ""
            text += [
                f"## Per {column} ({what}GAN groups against all real pairs; real groups against all GAN pairs; "
                "`rate_at_thr`: recall for GAN, specificity for real)",
                "",
                _table(group_rows, ["method", "group", "class", "n", "auroc", "rate_at_thr"]),
                "",
            ]
    text += _decision_lines(results)
    if photo_rows:
        text += [
            "## Photo-level degradations (each photo degraded as a file, then the whole pipeline)",
            "",
            "`gan_to_real`: share of the GAN photos called GAN as they were that the copy turns into a confident",
            "real; `gan_unsure_to_real`: the same of those left uncertain (or without a pair) as they were;",
            "`*_called_*`: shares of each class's scored photos.",
            "",
            _table(photo_rows, [c for c in photo_rows[0] if c not in PHOTO_ROW_LISTS]),
            "",
        ]
        evasions = [
            f"- {r['degradation']}, {kind}: {', '.join(Path(p).name for p in paths)}"
            for r in photo_rows
            for kind, paths in (r.get("evasions") or {}).items()
            if paths
        ]
        if evasions:
            text += ["The GAN photos a copy turns into a confident real:", "", *evasions, ""]
    if robustness_rows:
        text += [
            "## Robustness (AUC per degradation)",
            "",
            _table(robustness_rows, list(robustness_rows[0])),
            "",
        ]
    return "\n".join(text)


def _log_wandb(cfg: DictConfig, out: Path, results: dict[str, Any], reports: dict[str, dict]) -> None:
    import wandb

    from irisgan.training.callbacks import wandb_curves

    run = wandb.init(
        project=cfg.wandb_project,
        dir=str(out),
        job_type="evaluate",
        mode="offline" if cfg.wandb_offline else "online",
        config=OmegaConf.to_container(cfg),
    )
    try:
        flat = {
            f"eval/{m}/{k}": v
            for m, vals in results["methods"].items()
            for k, v in vals.items()
            if isinstance(v, float)
        }
        run.log(flat)
        for name, report in reports.items():
            run.log(wandb_curves(report, f"eval/{name}"))
        run.log(
            {f"eval/figures/{p.stem}": wandb.Image(str(p)) for p in sorted((out / "plots").glob("*.png"))}
        )
        for name, m in results["methods"].items():  # the breakdowns: per cue, generator, source, lightness
            for key, rows in m.items():
                if not (key.startswith("per_") and isinstance(rows, list) and rows):
                    continue
                first = "cue" if key == "per_cue" else "group"
                columns = sorted({k for r in rows for k in r}, key=lambda k: (k != first, k))
                run.log(
                    {
                        f"eval/{name}/{key}": wandb.Table(
                            columns=columns, data=[[r.get(c) for c in columns] for r in rows]
                        )
                    }
                )
        if results.get("robustness"):
            rows = results["robustness"]
            run.log(
                {"eval/robustness": wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])}
            )
    finally:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
