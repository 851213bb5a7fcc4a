"""Several trained runs as one detector: ``python -m irisgan.ensemble RUN RUN [...] --out PATH``.

Each RUN is a ``python -m irisgan.train stage=ran`` run folder (its ``metrics.json`` names the best checkpoint
and the split CSVs) or a checkpoint file. The members must share the network shape and the normalisation,
which means the same training split (``data.split_seed``); seeds may differ. The ensemble scores a pair with
the mean of its members' logits (with flip TTA when the members were trained with it), and its threshold is
chosen like training's, on the validation pairs, from the ensemble's own scores. So is the rule that makes a
decision **uncertain** (``irisgan.inference.DecisionRule``): the band around the threshold outside which each
confident call is right at least ``--precision`` of the time on those pairs, the members' spread that
``--spread-quantile`` of them stay under, and, for a face cue with the inner features, the distance from the
training faces (``FaceCue.novelty``) that ``--novelty-quantile`` of the real validation photos stay under, and, for
any face cue, the vividness (``FaceCue.vividness``) that ``--vivid-quantile`` of them stay under. The result is a
weights-only file that ``predict`` and ``evaluate`` load like any other (``make model`` ships one).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from irisgan.checkpoints import CLASSIFIER, CheckpointError, load_checkpoint
from irisgan.data.pairs import load_pairs
from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.descriptors import (
    pair_descriptors,
    pair_records,
    vivid_cache_name,
    vivid_descriptors,
)
from irisgan.inference import (
    INFERENCE_HPARAMS,
    DecisionRule,
    build_classifier,
    check_pair_shape,
    decide_and_summarise,
    decision_summary,
    face_flags,
    fuse_face_cue,
    member_scores,
    pairs_grayscale,
    save_weights,
)
from irisgan.models.face_cue import FaceCue, FaceView, fit_face_cue, fit_vividness, generated_families
from irisgan.training.classifier import RANClassifier
from irisgan.training.metrics import report_from_scores, source_threshold, uncertain_band

log = logging.getLogger("irisgan.ensemble")


def resolve_run(path: str | Path, split: str = "val") -> tuple[Path, Path | None]:
    """(best checkpoint, the run's ``split`` CSV or None) of a run folder, or (path, None) for a checkpoint
    file."""
    path = Path(path)
    if path.is_file():
        return path, None
    metrics = path / "metrics.json"
    if not metrics.is_file():
        raise FileNotFoundError(f"{path}: neither a checkpoint nor a finished training run (no metrics.json)")
    m = json.loads(metrics.read_text())
    if not m.get("best_checkpoint"):
        raise FileNotFoundError(f"{metrics} names no best checkpoint: did the run train?")
    csv = (m.get("data_csvs") or {}).get(split)
    return Path(m["best_checkpoint"]), Path(csv) if csv else None


def one_csv(resolved: list[tuple[Path, Path | None]], split: str, given: str | Path | None) -> Path:
    """The one ``split`` CSV the runs share, or ``given``."""
    if given is not None:
        return Path(given)
    csvs = {str(c) for _, c in resolved if c is not None}
    if len(csvs) != 1:
        what = {"val": "validation", "fit": "training"}.get(split, split)
        raise ValueError(
            f"the runs name {len(csvs)} {what} sets ({sorted(csvs)}); pass --{split}-csv, and train the "
            "members with the same data.split_seed"
        )
    return Path(csvs.pop())


def fit_cue(
    fit_csv: Path,
    val_csv: Path,
    val_iris_p: np.ndarray,
    view: FaceView = FaceView(),
    vivid: bool = False,
    vivid_probe: bool = True,
    part_weights: bool = False,
    family_probes: bool = False,
) -> tuple[FaceCue, np.ndarray]:
    """The face cue fitted on the training pairs' photos and standardised on the validation ones; the validation
    photos' face features. ``view``: what the cue reads of a face (the descriptor's borders; texture or not).
    ``vivid_probe``: the cue learns how vivid a face looks from a vivid copy of each real training photo
    (``degrade.vivid_copy``, ``FaceCue.vividness``); ``vivid``: the copies also join the generated photos.
    ``part_weights``: the validation photos weigh the fusion's parts (``fit_part_weights``), else each counts
    once (the shipped recipe). ``family_probes``: the descriptor's and the inner features' regressions are fitted
    once per generated family of the training pairs' ``generator`` column (``fit_family_probes``)."""
    fit_rows = read_pairs_csv(fit_csv)
    fit_labels = np.array([int(r["label"]) for r in fit_rows])
    val_labels = np.array([int(r["label"]) for r in read_pairs_csv(val_csv)]) if part_weights else None
    log.info(
        "face features (%s) of the training photos (%s) and the validation photos (%s)",
        view,
        fit_csv,
        val_csv,
    )
    fit_x, val_x = pair_descriptors(fit_csv, view), pair_descriptors(val_csv, view)
    copies = None
    if vivid or vivid_probe:
        root, records = pair_records(fit_csv)
        real = [r for r, y in zip(records, fit_labels, strict=True) if y == 0]
        log.info("face features of vivid copies of the %d real training photos", len(real))
        copies = vivid_descriptors(real, root / vivid_cache_name(view), view)
    real_x = fit_x[fit_labels == 0]
    if vivid:
        fit_x = np.concatenate([fit_x, copies])
        fit_labels = np.concatenate([fit_labels, np.ones(len(copies), int)])
    families = None
    if family_probes:
        generators = [r.get("generator") or ("fake" if int(r["label"]) else "real") for r in fit_rows]
        families = generated_families(generators, fit_labels, copies=len(fit_labels) - len(fit_rows))
    cue = fit_face_cue(
        fit_x,
        fit_labels,
        val_x,
        val_iris_p,
        paddings=view.paddings,
        val_labels=val_labels,
        fit_families=families,
    )
    if vivid_probe:
        cue.vivid = fit_vividness(real_x, copies)
    return cue, val_x


def combine(ckpts: list[Path]) -> RANClassifier:
    """One ``RANClassifier`` holding every checkpoint's network (threshold still to be chosen).

    One checkpoint gives a plain classifier: ``make model`` with a single seed goes the same way.
    """
    if not ckpts:
        raise ValueError("no runs to combine")
    loaded = [load_checkpoint(p, CLASSIFIER) for p in ckpts]
    hparams = [c.get("hyper_parameters") or {} for c in loaded]
    for key in ("net", "flip_tta", "channels_last", "colour", "pair_margin", "pair_size", "pair_width"):
        values = {json.dumps(h.get(key, INFERENCE_HPARAMS[key]), sort_keys=True) for h in hparams}
        if len(values) > 1:
            raise CheckpointError(f"the runs differ in model.{key} ({sorted(values)}): train them alike")
    if any(h.get("members", 1) != 1 for h in hparams):
        raise CheckpointError("one of the runs is an ensemble already: combine the single runs")
    first = loaded[0]["state_dict"]
    for path, ckpt in zip(ckpts[1:], loaded[1:], strict=True):
        for buffer in ("mean", "std"):
            if not torch.allclose(ckpt["state_dict"][buffer], first[buffer], atol=1e-5):
                raise CheckpointError(
                    f"{path} was normalised with other statistics than {ckpts[0]}: its training split differs "
                    "(train the members with the same data.split_seed)"
                )
    model = build_classifier(hparams[0], members=len(ckpts))
    state = {"mean": first["mean"], "std": first["std"], "threshold": first["threshold"]}
    for i, ckpt in enumerate(loaded):
        state.update(
            {
                (f"net.members.{i}." if len(ckpts) > 1 else "net.") + k[4:]: v
                for k, v in ckpt["state_dict"].items()
                if k.startswith("net.")
            }
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("val_", "test_"))]
    if missing or unexpected:
        raise CheckpointError(
            f"the runs' weights do not fill the ensemble (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()


def operating_threshold(
    probs: np.ndarray, labels: torch.Tensor, sources: list[str], source_fpr: float | None, method: str
) -> float:
    """The threshold of validation scores: at most ``source_fpr`` false positives per real source, or the
    runs' threshold method (G-mean) when None."""
    if source_fpr is not None:
        return source_threshold(probs, labels.numpy(), sources, source_fpr)
    return report_from_scores(torch.from_numpy(probs), labels, None, method)[1]["threshold"]


def face_only_rule(
    probs: np.ndarray, labels: torch.Tensor, sources: list[str], source_fpr: float | None, method: str,
    precision: float,
) -> dict:  # fmt: skip
    """Threshold and band of the face alone on the validation photos, chosen as the detector's are: what
    ``predict`` decides a photo by when its irises give no pair. With its validation AUROC and decisions."""
    threshold = operating_threshold(probs, labels, sources, source_fpr, method)
    band = uncertain_band(probs, labels.numpy(), threshold, precision)
    rule = DecisionRule(threshold, band)
    summary = decision_summary([rule.decide(float(p))[0] for p in probs], labels.numpy())
    return {
        "threshold": threshold,
        "band": list(band),
        "val_auroc": report_from_scores(torch.from_numpy(probs), labels)[0]["auroc"],
        "val_uncertain_share": summary["uncertain_share"],
        "val_acc_outside": summary["acc_outside_band"],
    }


def build_ensemble(
    runs: list[str | Path],
    out: str | Path,
    val_csv: str | Path | None = None,
    precision: float = 0.95,
    spread_quantile: float = 0.95,
    face_cue: bool = False,
    fit_csv: str | Path | None = None,
    source_fpr: float | None = None,
    texture: bool = False,
    face_crops: str | tuple[float, ...] = (0.25,),
    inner: bool = False,
    novelty_quantile: float = 0.95,
    vivid: bool = False,
    vivid_quantile: float | None = 0.95,
    part_weights: bool = False,
    family_probes: bool = False,
) -> dict:
    """Combine the runs, choose the threshold and the uncertain band on the validation pairs, write ``out``.

    ``face_cue``: add the face descriptor's logit to the pairs' (``irisgan.models.face_cue``), fitted on the
    photos of the runs' training pairs (``fit_csv``); threshold and band are then the fused score's. ``texture``:
    the cue's texture part too (``irisgan.extraction.texture``; measured, not shipped: experiments/README.md,
    ninth round), else the descriptor's parts alone. ``face_crops``: the borders of the aligned faces whose
    descriptors the cue reads side by side (``FaceView``; "0.25,0.1,0" or a tuple). ``inner``: the cue's part
    on the inner features of dlib's network too (``irisgan.extraction.face_net``; experiments/README.md, eleventh
    round), and with it the bound beyond which a face is unfamiliar: the ``novelty_quantile`` of the real
    validation photos' novelty (twelfth round). ``vivid``: the cue also learns a vivid copy of each real
    training photo as generated (``irisgan.data.degrade.vivid_copy``; thirteenth round). ``vivid_quantile``: the
    bound beyond which a face is too vivid to be called real, the quantile of the real validation photos'
    vividness (``FaceCue.vividness``, learnt from those copies; thirteenth round); None: no such rule.
    ``part_weights``: the fused score weighs the cue's standardised parts and the irises by a logistic
    regression on the validation photos (``fit_part_weights``; fourteenth round: measured, not shipped), else
    each counts once. ``family_probes``: the cue's regressions are fitted once per generated family, the part
    the largest of their z-scored logits (``fit_family_probes``; fifteenth round: measured, not shipped).
    ``source_fpr``: the threshold holds every real source of the validation pairs (their ``generator`` column)
    to at most this false-positive rate (``source_threshold``) instead of the G-mean's balance.
    """
    view = (
        FaceView.parse(face_crops, texture, inner)
        if isinstance(face_crops, str)
        else FaceView(tuple(face_crops), texture, inner)
    )
    if not face_cue and (view != FaceView() or vivid or part_weights or family_probes):
        raise ValueError(
            "--texture, --face-inner, --face-crops, --face-vivid, --part-weights and --family-probes shape the face "
            "cue: add --face-cue"
        )
    shares = [("--spread-quantile", spread_quantile), ("--novelty-quantile", novelty_quantile)]
    for name, share in [*shares, ("--vivid-quantile", 1.0 if vivid_quantile is None else vivid_quantile)]:
        if not 0.0 < share <= 1.0:  # checked before the runs are read and scored
            raise ValueError(f"{name} is a share of the validation pairs, in (0, 1]; got {share}")
    resolved = [resolve_run(r) for r in runs]
    val_csv = one_csv(resolved, "val", val_csv)
    model = combine([c for c, _ in resolved])
    images, labels, _ = load_pairs(val_csv)
    check_pair_shape(model, images, val_csv)
    probs, members = member_scores(model, images)
    spread = members.std(axis=0) if len(members) > 1 else None
    iris_scalars, iris_report = report_from_scores(
        torch.from_numpy(probs), labels, None, model.hparams.threshold_method
    )
    cue = None
    if face_cue:
        fit_csv = one_csv([resolve_run(r, "fit") for r in runs], "fit", fit_csv)
        cue, val_x = fit_cue(
            fit_csv, val_csv, probs, view, vivid, vivid_quantile is not None, part_weights, family_probes
        )
        model.face_cue = cue
        probs = fuse_face_cue(model, probs, val_x)
    scalars, report = report_from_scores(
        torch.from_numpy(probs), labels, None, model.hparams.threshold_method
    )
    sources = [r.get("generator") or "" for r in read_pairs_csv(val_csv)]
    threshold = operating_threshold(probs, labels, sources, source_fpr, model.hparams.threshold_method)
    model.threshold.fill_(threshold)
    band = uncertain_band(probs, labels.numpy(), threshold, precision)
    max_spread = float(np.quantile(spread, spread_quantile)) if spread is not None else None
    novelty, vividness = face_flags(model, val_x) if cue is not None else (None, None)
    # the real photos pay for the rules (an unfamiliar or vivid face is never called real), so their share sets them
    real = labels.numpy() == 0
    max_novelty = float(np.quantile(novelty[real], novelty_quantile)) if novelty is not None else None
    max_vividness = float(np.quantile(vividness[real], vivid_quantile)) if vividness is not None else None
    rule = DecisionRule(threshold, band, max_spread, model.luminance, max_novelty, max_vividness)
    _, summary = decide_and_summarise(
        rule, probs, spread, pairs_grayscale(images.numpy()), labels.numpy(), novelty, vividness
    )
    decision = {
        "band": list(band),
        "precision": precision,
        "max_spread": max_spread,
        "spread_quantile": spread_quantile if spread is not None else None,
        "max_novelty": max_novelty,
        "novelty_quantile": novelty_quantile if novelty is not None else None,
        "max_vividness": max_vividness,
        "vivid_quantile": vivid_quantile if vividness is not None else None,
        "source_fpr": source_fpr,
        "val_uncertain_share": summary["uncertain_share"],
        "val_acc_outside": summary["acc_outside_band"],
        # the iris network's own threshold, for evaluate's iris-only line beside a fused detector's
        "iris_threshold": iris_report["threshold"],
    }
    if cue is not None:
        decision["face_only"] = face_only_rule(
            cue.face_probability(val_x),
            labels,
            sources,
            source_fpr,
            model.hparams.threshold_method,
            precision,
        )
    # each member's own scores came with the ensemble's: no second pass per checkpoint
    member_aucs = [report_from_scores(torch.from_numpy(m), labels)[0]["auroc"] for m in members]
    metrics = {
        "val/auroc": scalars["auroc"],
        "val/iris_auroc": iris_scalars["auroc"],
        "val/threshold": threshold,
        "decision": decision,
        "val/member_auroc": member_aucs,
        "val_csv": str(val_csv),
        "fit_csv": str(fit_csv) if cue else None,
        "face_vivid": vivid,  # how the cue was fitted, for the record
        "part_weights": cue.part_weights if cue is not None else None,
        "family_probes": sorted(cue.family_probes) if cue is not None and cue.family_probes else None,
        "members": [str(c) for c, _ in resolved],
    }
    hparams = {**dict(model.hparams), "decision": decision}
    if cue is not None:
        hparams["face_cue"] = cue.to_dict()
    save_weights(model.state_dict(), hparams, out, {"ensemble": metrics, "runs": run_records(runs)})
    return metrics


def run_records(runs: list[str | Path]) -> list[dict]:
    """What each member's run was: its command-line overrides, metrics and training time (plain values)."""
    records = []
    for run in map(Path, runs):
        if not run.is_dir():
            records.append({"checkpoint": str(run)})
            continue
        m = json.loads((run / "metrics.json").read_text())
        overrides = run / ".hydra" / "overrides.yaml"
        records.append(
            {
                "run": str(run),
                "overrides": overrides.read_text().splitlines() if overrides.is_file() else [],
                "metrics": {
                    k: v for k, v in m.items() if k.startswith(("val/", "test/")) and isinstance(v, float)
                },
                "wall_time_s": m.get("wall_time_s"),
            }
        )
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="training run folders (or checkpoint files)")
    parser.add_argument("--out", required=True, type=Path, help="weights file to write")
    parser.add_argument("--val-csv", type=Path, help="validation pairs CSV (default: the runs' own)")
    parser.add_argument(
        "--precision",
        type=float,
        default=0.95,
        help="how often a confident call is right on the validation pairs",
    )
    parser.add_argument(
        "--spread-quantile",
        type=float,
        default=0.95,
        help="share of validation pairs whose members agree enough",
    )
    parser.add_argument(
        "--novelty-quantile",
        type=float,
        default=0.95,
        help="--face-inner: share of the real validation photos whose faces count as familiar (an unfamiliar face "
        "is never called real)",
    )
    parser.add_argument(
        "--face-cue",
        action="store_true",
        help="add a face descriptor probe, fitted on the runs' training photos, to the iris score",
    )
    parser.add_argument(
        "--texture",
        action="store_true",
        help="--face-cue with a texture part beside the descriptor's (measured, not shipped: it lifts unseen GAN "
        "families but is fooled by blurred, resampled and super-resolved photos)",
    )
    parser.add_argument(
        "--face-inner",
        action="store_true",
        help="--face-cue with a part on the inner layers of dlib's face network beside the descriptor's "
        "(make model's default)",
    )
    parser.add_argument(
        "--vivid-quantile",
        type=float,
        default=0.95,
        help="--face-cue: share of the real validation photos whose faces count as no more vivid than a photograph "
        "(a more vivid face is never called real)",
    )
    parser.add_argument(
        "--no-vivid-rule", action="store_true", help="--face-cue without the vivid rule (and its copies)"
    )
    parser.add_argument(
        "--face-vivid",
        action="store_true",
        help="--face-cue that also learns a vivid copy of each real training photo (more saturation, local "
        "contrast and sharpening, as many diffusion faces have) as generated",
    )
    parser.add_argument(
        "--part-weights",
        action="store_true",
        help="--face-cue whose fused score weighs its standardised parts by a logistic regression on the validation "
        "photos, instead of counting each once (measured, not shipped: it lifts unseen GAN families a little, but "
        "a blurred copy of a caught GAN photo can become a confident real)",
    )
    parser.add_argument(
        "--family-probes",
        action="store_true",
        help="--face-cue whose regressions are fitted once per generated family of the training photos, the part "
        "the largest of their z-scored logits (measured, not shipped: it lifts the worst unseen GAN family and SD "
        "2.1 faces of new subjects a little, but photos from elsewhere and a blurred copy of a caught GAN photo "
        "fare worse)",
    )
    parser.add_argument(
        "--face-crops",
        default="0.25",
        help="--face-cue: the borders of the aligned faces whose descriptors it reads side by side, comma-separated "
        "(0.25: dlib's own, one descriptor)",
    )
    parser.add_argument(
        "--fit-csv", type=Path, help="training pairs CSV of --face-cue (default: the runs' own)"
    )
    parser.add_argument(
        "--source-fpr",
        type=float,
        help="threshold: at most this false-positive rate on every real source of the validation pairs "
        "(default: the G-mean of the runs' threshold method)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    metrics = build_ensemble(
        args.runs, args.out, args.val_csv, args.precision, args.spread_quantile, args.face_cue, args.fit_csv,
        args.source_fpr, args.texture, args.face_crops, args.face_inner, args.novelty_quantile, args.face_vivid,
        None if args.no_vivid_rule else args.vivid_quantile, args.part_weights, args.family_probes,
    )  # fmt: skip
    log.info(
        "%d runs -> %s: val AUROC %.4f (iris alone %.4f; members %s), threshold %.4f",
        len(metrics["members"]), args.out, metrics["val/auroc"], metrics["val/iris_auroc"],
        ", ".join(f"{a:.4f}" for a in metrics["val/member_auroc"]), metrics["val/threshold"],
    )  # fmt: skip
    d = metrics["decision"]
    log.info(
        "uncertain band [%.3f, %.3f), members' spread up to %s: %.1f%% of the validation pairs uncertain, "
        "accuracy %.3f outside", *d["band"], d["max_spread"], 100 * d["val_uncertain_share"],
        d["val_acc_outside"] or float("nan"),
    )  # fmt: skip


if __name__ == "__main__":
    main()
