"""Leave-one-generator-out on real photos: does the detector work on a GAN family it never saw?

    python experiments/cross_generator.py                                   # the ablation below, 1 seed
    python experiments/cross_generator.py --variants augment --losses bce,bce_auc --seeds 1,2,3
    python experiments/cross_generator.py --aggregate-only                  # rebuild the table from finished runs

For every GAN family of ``faces_train`` (``FAMILIES``) one training run holds the family out: it trains on
the other families and 75% of the real photos (``experiment=faces``, ``data.split=by_generator``), and its
test set is that family's photos against the held-out 25% of the real photos (the same real photos in every
fold). The diffusion family (``DIFFUSION``) is a fold of its own, kept out of the GAN mean: trained on the
GANs, tested on diffusion faces (and every GAN fold trains with diffusion faces). Each real source
(``REAL_SOURCES``) is held out too: trained without it, it is tested against 25% of every generator family,
held out from training, and the table gives its false-positive rate at the run's stored threshold. The table gives the test AUC per held-out family and the mean, for each variant (what the recipe
keeps or leaves out), loss (``bce`` / ``bce_auc``) and training ratio (balanced, or 1:4 GAN to real as in
the paper's Table 2). Below it: paired comparisons on matched runs (BCE+AUC vs BCE, each variant vs
``augment``) with bootstrap intervals, and the gain from flip test-time augmentation and from averaging
the seeds' runs (every fold is also scored with ``flip_tta=true``).

Runs are real ``python -m irisgan.train`` commands, ``--jobs`` at a time with ``--threads`` each; a finished
run (its ``metrics.json``) is never run again, so an interrupted study resumes where it stopped. Results:
``experiments/results/cross_generator.md`` and ``.csv``; run folders under ``outputs/experiments/cross_generator``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from study_stats import auroc, ensemble_auroc, paired_difference

from irisgan.config import override_value

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "faces_train" / "sources.csv"
RUNS = ROOT / "outputs" / "experiments" / "cross_generator"
RESULTS = ROOT / "experiments" / "results"

# GAN families of faces_train (generator labels of sources.csv): the three CelebA-HQ GANs come from one
# repository, 10 photos each, and are held out together.
FAMILIES = {
    "thispersondoesnotexist": ["thispersondoesnotexist"],
    "generated-photos": ["generated-photos"],
    "boredhumans": ["boredhumans"],
    "stylegan3-r-ffhq": ["stylegan3-r-ffhq"],
    "celebahq-gans": ["stylegan-celebahq", "msg-stylegan-celebahq", "progan-celebahq"],
}
# The diffusion family is not a GAN: its fold (train on the GANs, test on it) has a column of its own and
# stays out of the GAN mean and worst.
DIFFUSION = {"stable-diffusion-2.1": ["stable-diffusion-2.1"]}
# Leave-one-real-source-out: train without the source, test it against 25% of every GAN family (held out
# from training); the table gives its false-positive rate at the run's stored threshold.
REAL_SOURCES = {"real-ffhq": ["ffhq"], "real-yonsei": ["yonsei-real"], "real-london": ["london-face-lab"]}
# Leave-one-subject-group-out inside the diffusion family. SDFD's file names start with the prompt's group:
# babies, boys and girls (bb, bg, bo, gi) against the adults (an, gf, ma, pa, pc, wo). Each fold trains on every
# GAN family and the other group's diffusion faces and tests this group against the held-out reals: how the
# detector's diffusion detection carries over to faces of subjects it never saw, as a new set of SD 2.1 faces
# would test it.
SD_GROUPS = {"sd-adults": ("an", "gf", "ma", "pa", "pc", "wo"), "sd-children": ("bb", "bg", "bo", "gi")}
SUBJECTS = {
    fold: [f"{DIFFUSION['stable-diffusion-2.1'][0]}/sdfd_{g}*" for g in groups]
    for fold, groups in SD_GROUPS.items()
}
FOLDS = {**FAMILIES, **DIFFUSION, **REAL_SOURCES, **SUBJECTS}
# Synthetic-pair pretraining for the `pretrain` variant: the quarter-width RAN on 6,000 synthetic pairs at
# difficulty 0.5 (about 20 min at one thread), exported as weights.
PRETRAINED = RUNS.parent / "pretrain_synthetic" / "ran_small.pt"
PRETRAIN_COMMAND = [
    "stage=ran", "model=ran_small", "loss=bce_auc", "data.synthetic.n_pairs=6000", "data.synthetic.difficulty=0.5",
    "trainer.max_epochs=5", "logger=csv", "~callbacks.progress_bar", f"hydra.run.dir={PRETRAINED.parent}",
    f"export={PRETRAINED}",
]  # fmt: skip
# Each variant names what the network sees (model.colour), whatever experiment=faces ships; all but `colour`
# keep grey and colour-cast augmentation off.
RGB = "model.colour=rgb"
NARROW_CROP = "data.iris_margin=0.1"
NO_COLOUR_AUGMENT = ["data.augment.grayscale=0", "data.augment.colour_cast=0"]
NO_COLOUR = [*NO_COLOUR_AUGMENT, RGB]
VARIANTS = {
    # what a plain detector does: no augmentation but flips, natural class mix, no pseudo-fakes
    "plain": [
        "data.augment=null",
        "data.pseudo_fakes.rate=0",
        "data.balance_classes=false",
        RGB,
    ],
    # + balanced batches and both-eyes-alike augmentation: experiment=faces
    "augment": ["data.pseudo_fakes.rate=0", *NO_COLOUR],
    "pseudo_fakes": ["data.pseudo_fakes.rate=0.3", *NO_COLOUR],  # + pseudo-fakes in 30% of the real pairs
    # augment, the network first trained on synthetic pairs (PRETRAIN_COMMAND, run once when missing)
    "pretrain": ["data.pseudo_fakes.rate=0", f"init_weights={PRETRAINED}", *NO_COLOUR],
    # augment, twice the epochs and more patience (validation AUC was still rising at epoch 12)
    "longer": [
        "data.pseudo_fakes.rate=0",
        "trainer.max_epochs=24",
        "callbacks.early_stopping.patience=6",
        *NO_COLOUR,
    ],
    # augment, colour and capture invariance: grey pairs (a grey photo must not read as real) and white balance
    "colour": [
        "data.pseudo_fakes.rate=0",
        "data.augment.grayscale=0.2",
        "data.augment.colour_cast=0.1",
        RGB,
    ],
    # augment, the network sees the grey level only (model.colour=luminance): no white-balance or saturation cue
    "luminance": ["data.pseudo_fakes.rate=0", *NO_COLOUR_AUGMENT, "model.colour=luminance"],
    # augment, each generator and each real source drawn equally often within its class: FFHQ, two thirds of
    # the real photos, no longer defines what a real eye looks like
    "groups": ["data.pseudo_fakes.rate=0", "data.balance_groups=true", *NO_COLOUR],
    # augment, each channel standardised over the pair (model.colour=relative): a source's exposure, white
    # balance and contrast are no cue (the studio's saturation separates it from every GAN family at 0.98)
    "relative": ["data.pseudo_fakes.rate=0", *NO_COLOUR_AUGMENT, "model.colour=relative"],
    # augment, a third of the pairs sharpened (unsharp masking): the real irises are enlarged into the pair and
    # soft, the 1024-px GANs' shrunk and sharp, and the augmentation could only blur
    "sharpen": ["data.pseudo_fakes.rate=0", "data.augment.sharpen=[0.3,1.5]", *NO_COLOUR],
    # augment, each crop 2.2 iris diameters wide instead of 1.2 (data.iris_margin 0.6): the sclera, the lids and
    # the eye's corners join the iris (periocular context; a cache of its own)
    "context": ["data.pseudo_fakes.rate=0", "data.iris_margin=0.6", *NO_COLOUR],
    # augment, MixStyle after the stem and the first stage in half the batches (model.net.mixstyle=0.5): each
    # pair's early feature statistics mixed with another's, so a source's style is no reliable cue
    "mixstyle": ["data.pseudo_fakes.rate=0", "model.net.mixstyle=0.5", *NO_COLOUR],
    # context with MixStyle: the shipped crop, each pair's early feature statistics mixed with another's
    "context_mixstyle": [
        "data.pseudo_fakes.rate=0",
        "data.iris_margin=0.6",
        "model.net.mixstyle=0.5",
        *NO_COLOUR,
    ],
    # context, wider still: crops 3 iris diameters wide (data.iris_margin 1.0), most of the eye region
    "wide": ["data.pseudo_fakes.rate=0", "data.iris_margin=1.0", *NO_COLOUR],
    # between the iris alone and context: crops 1.6 iris diameters wide (data.iris_margin 0.3), the iris with
    # its ring of sclera (the iris-only and context runs averaged did better than either on most folds)
    "mid": ["data.pseudo_fakes.rate=0", "data.iris_margin=0.3", *NO_COLOUR],
    # context with pseudo-fakes in 30% of the real pairs, planted on the iris at the context crop's scale: real
    # photos of every source become positives too, so a source's look alone no longer says "real"
    "context_pseudo": [
        "data.pseudo_fakes.rate=0.3",
        "data.iris_margin=0.6",
        *NO_COLOUR,
    ],
    # context with the paper-size RAN (model=ran: stage widths 64/128/256, about 4x the quick one's compute)
    "context_ran": ["model=ran", "data.pseudo_fakes.rate=0", "data.iris_margin=0.6", *NO_COLOUR],
    # context with a RAN of half the quick one's widths (stages 16/32/64, head 128): the paper-size RAN fitted the
    # seen sources better and the held-out ones worse
    "context_tiny": [
        "model.net.stage_channels=[16,32,64]",
        "model.net.head_channels=128",
        "data.pseudo_fakes.rate=0",
        "data.iris_margin=0.6",
        *NO_COLOUR,
    ],
    # context, each eye kept square: pairs 64 high and 128 wide (data.size / data.width) instead of the paper's
    # 96 x 96, which squeezes each eye to half its width; 89% of the pixels a pair, so about as fast to train
    "undistorted": [
        "data.pseudo_fakes.rate=0",
        "data.iris_margin=0.6",
        "data.size=64",
        "data.width=128",
        *NO_COLOUR,
    ],
    # context, the network validated and shipped as the mean of its weights from the fifth epoch on (stochastic
    # weight averaging, callbacks.weight_average): flatter minima, which carry over better to unseen domains
    "context_swa": [
        "data.pseudo_fakes.rate=0",
        "data.iris_margin=0.6",
        "callbacks.weight_average.start_epoch=4",
        *NO_COLOUR,
    ],
    # context scored by the local-patch net (model=patch): every logit sees 33 px of the pair, the score is their
    # mean, so a source's overall look of the eye (lighting, catch-light, eye colour) cannot be learnt
    "context_patch": ["model=patch", "data.pseudo_fakes.rate=0", "data.iris_margin=0.6", *NO_COLOUR],
}
# The variant each one is compared with on matched runs: augment, but those built on the shipped context crop
# are measured against context, so that the table gives what each step adds.
BASELINES = {
    "context_mixstyle": "context",
    "wide": "context",
    "mid": "context",
    "undistorted": "context",
    "context_pseudo": "context",
    "context_ran": "context",
    "context_tiny": "context",
    "context_swa": "context",
    "context_patch": "context",
}


def baseline(variant: str) -> str:
    return BASELINES.get(variant, "augment")


# 1:4 keeps the natural class mix in the batches: the paper's question is how each loss copes with imbalance,
# which balanced sampling would take away.
RATIOS = {"balanced": [], "1:4": ["data.train_fake_to_real=0.25", "data.balance_classes=false"]}
# Runs train without flip TTA (experiment=faces has it on) so that every variant is compared as trained;
# each fold is then scored with and without it (EVALUATIONS).
# Every run uses the same split: seeds vary initialisation, augmentation and batch order, so runs of one fold
# are scored on the same photos and can be compared pair-wise and averaged as an ensemble.
SPLIT_SEED = 0


def variant_overrides(variant: str) -> list[str]:
    """A variant's overrides; all but ``context`` cut the pairs as ``augment`` was first measured with (the iris
    box plus 10% a side), whatever experiment=faces ships, so that older runs stay comparable."""
    overrides = VARIANTS[variant]
    if override_value(overrides, "data.iris_margin") is not None:
        return list(overrides)
    return [*overrides, NARROW_CROP]


def run_name(variant: str, loss: str, ratio: str, seed: int, family: str) -> str:
    return f"{variant}__{loss}__{ratio.replace(':', 'to')}__s{seed}__{family}"


def train_command(
    csv_path: Path,
    variant: str,
    loss: str,
    ratio: str,
    seed: int,
    family: str,
    threads: int,
    extra: list[str],
    runs: Path = RUNS,
) -> list[str]:
    holdout = ",".join(FOLDS[family])
    return [
        sys.executable, "-m", "irisgan.train",
        "experiment=faces", f"data.csv={csv_path}", "data.split=by_generator", f"data.holdout=[{holdout}]",
        f"loss={loss}", f"seed={seed}", f"data.split_seed={SPLIT_SEED}", "logger=csv", "~callbacks.progress_bar", "~callbacks.report",
        f"runtime.num_threads={threads}", f"hydra.run.dir={runs / run_name(variant, loss, ratio, seed, family)}",
        "model.flip_tta=false", *variant_overrides(variant), *RATIOS[ratio], *extra,
    ]  # fmt: skip


def run_one(cmd: list[str], folder: Path) -> dict | None:
    metrics = folder / "metrics.json"
    if metrics.is_file():
        evaluate_fold(folder)  # an evaluation added to the study since the run finished
        return json.loads(metrics.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(folder / "study.log", "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    status = "ok" if proc.returncode == 0 and metrics.is_file() else f"failed (exit {proc.returncode})"
    print(f"{folder.name}: {status} in {time.time() - started:.0f} s", flush=True)
    if not metrics.is_file():
        return None
    evaluate_fold(folder)
    return json.loads(metrics.read_text())


# evaluate's output folders: scores as the run was trained, and with flip test-time augmentation forced on
EVALUATIONS = {"evaluate": [], "evaluate_flip": ["flip_tta=true"]}


def evaluate_fold(folder: Path) -> None:
    """Score the fold's test set with its best checkpoint (``evaluate``), as trained and with flip TTA."""
    m = json.loads((folder / "metrics.json").read_text())
    test_csv, ckpt = (m.get("data_csvs") or {}).get("test"), m.get("best_checkpoint")
    if ckpt and not Path(ckpt).is_file():  # a run folder moved since it trained
        ckpt = str(folder / "checkpoints" / Path(ckpt).name)
    for name, extra in EVALUATIONS.items():
        if not test_csv or not ckpt or (folder / name / "metrics.json").is_file():
            continue
        cmd = [
            sys.executable, "-m", "irisgan.evaluate", f"ckpt={ckpt}", f"pairs_csv={test_csv}", "baseline=false",
            "wandb=false", "bootstrap=200", f"hydra.run.dir={folder / name}", *extra,
        ]  # fmt: skip
        with open(folder / f"{name}.log", "w") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def fold_generators(csv_path: str) -> list[str]:
    """The generator (or real source) of each test pair, from the split's CSV."""
    from irisgan.data.pairs_format import read_pairs_csv

    return [r.get("generator") or "" for r in read_pairs_csv(Path(csv_path))]


def fold_threshold(folder: Path, evaluation: str = "evaluate") -> float:
    return float(
        json.loads((folder / evaluation / "metrics.json").read_text())["methods"]["ran"]["threshold"]
    )


def _project_path(folder: Path, path: str) -> Path:
    """``path`` as a run recorded it: absolute, or relative to the checkout it ran in (this one, or an ancestor
    of the run folder for runs of another checkout read with --runs)."""
    if Path(path).is_absolute():
        return Path(path)
    bases = [ROOT, *folder.resolve().parents]
    return next((b / path for b in bases if (b / path).is_file()), ROOT / path)


def fold_band(folder: Path) -> tuple[float, float] | None:
    """The uncertain band ``irisgan.ensemble`` gives the fold's run alone, chosen on its validation pairs
    (cached in ``band.json``): what ``predict`` would call uncertain with that run."""
    cached = folder / "band.json"
    if not cached.is_file():
        from irisgan.ensemble import build_ensemble

        m = json.loads((folder / "metrics.json").read_text())
        val = (m.get("data_csvs") or {}).get("val")
        if not val:
            return None
        weights = folder / "band_weights.pt"
        metrics = build_ensemble([folder], weights, _project_path(folder, val))
        weights.unlink()
        cached.write_text(json.dumps(metrics["decision"]))
    return tuple(json.loads(cached.read_text())["band"])


def source_masks(
    labels: np.ndarray, generators: np.ndarray, sources: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks over a held-out-source fold's test pairs: the source's real photos, the GAN photos, the diffusion
    faces (each generator label of ``generators``)."""
    diffusion = [g for gs in DIFFUSION.values() for g in gs]
    real = (labels == 0) & np.isin(generators, sources)
    gan = (labels == 1) & ~np.isin(generators, diffusion)
    return real, gan, (labels == 1) & np.isin(generators, diffusion)


def real_source_measures(folder: Path, sources: list[str]) -> dict | None:
    """One held-out-source run: the source's FPR at the run's threshold, its AUC against the held-out GAN photos
    and diffusion faces, and with the run's uncertain band the shares called GAN with confidence and uncertain
    (of the source) and caught with confidence and called real (of the GAN photos). None before evaluation."""
    scored = fold_scores(folder)
    if scored is None:
        return None
    scores, labels, csv_path = scored
    real, gan, diff = source_masks(labels, np.array(fold_generators(csv_path)), sources)
    out = {
        "n_real": int(real.sum()),
        "fpr": float((scores[real] >= fold_threshold(folder)).mean()),
        "auc_gan": auroc(scores[real | gan], labels[real | gan]),
        "auc_diffusion": auroc(scores[real | diff], labels[real | diff]) if diff.any() else None,
    }
    band = fold_band(folder)
    if band is not None:
        lo, hi = band
        out |= {
            "gan_banded": float((scores[real] >= hi).mean()),
            "uncertain": float(((scores[real] >= lo) & (scores[real] < hi)).mean()),
            "caught_banded": float((scores[gan] >= hi).mean()),
            "called_real": float((scores[gan] < lo).mean()),
        }
    return out


def real_source_runs(runs: Path, keys: list[tuple[str, str, str]], seeds: dict) -> dict[tuple, dict]:
    """``real_source_measures`` of every evaluated held-out-source run, keyed by (variant, loss, ratio, seed, fold)."""
    out = {}
    for key in keys:
        for fold, sources in REAL_SOURCES.items():
            for seed in seeds.get(key, []):
                measured = real_source_measures(runs / run_name(*key, seed, fold), sources)
                if measured is not None:
                    out[(*key, seed, fold)] = measured
    return out


def real_source_lines(measured: dict[tuple, dict], keys: list[tuple[str, str, str]]) -> list[str]:
    """Per held-out real source: its false-positive rate at the run's stored threshold, its AUC against the
    held-out GAN photos (25% of each GAN family, never trained on) and against the held-out diffusion faces."""
    lines = [
        "",
        "## Held-out real sources",
        "",
        "Each fold trains without one real source and tests it against 25% of every GAN family, held out from",
        "training. FPR: the share of the source's photos called GAN at the run's stored threshold (chosen on the",
        "validation pairs, which hold none of the source). Scores as trained (no flip TTA); mean over seeds.",
        "With the uncertain band `irisgan.ensemble` chooses for the run on its validation pairs (95% precision):",
        "the share of the source called GAN with confidence (`GAN, banded`) and left uncertain, and the share of",
        "the held-out GAN photos called GAN with confidence or, wrongly, real.",
        "",
        "| variant | loss | ratio | source | seeds | real pairs | FPR at threshold | AUC vs GAN | AUC vs diffusion "
        "| GAN, banded | uncertain | GAN photos: caught, banded | called real |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    columns = ("fpr", "auc_gan", "auc_diffusion", "gan_banded", "uncertain", "caught_banded", "called_real")
    for key in keys:
        for fold, sources in REAL_SOURCES.items():
            runs = [m for k, m in sorted(measured.items()) if k[:3] == key and k[4] == fold]
            if not runs:
                continue
            cells = []
            for column in columns:
                values = [m[column] for m in runs if m.get(column) is not None]
                cells.append(f"{statistics.mean(values):.3f}" if values else "-")
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {', '.join(sources)} | {len(runs)} | {runs[-1]['n_real']} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def compared_pairs(keys: set[tuple[str, str, str]]) -> list[tuple[tuple, tuple]]:
    """(A, B) to compare among the (variant, loss, ratio) keys that have runs: BCE+AUC against BCE for the same
    variant and ratio (the paper's question), and each variant against its baseline with the same loss."""
    pairs = []
    for variant, loss, ratio in sorted(keys):
        if loss == "bce_auc" and (variant, "bce", ratio) in keys:
            pairs.append(((variant, "bce_auc", ratio), (variant, "bce", ratio)))
        if variant != "augment" and (baseline(variant), loss, ratio) in keys:
            pairs.append(((variant, loss, ratio), (baseline(variant), loss, ratio)))
    return pairs


def real_comparison_lines(measured: dict[tuple, dict]) -> list[str]:
    """Paired differences on matched held-out-source runs (source and seed): the pairs of ``compared_pairs``."""
    lines = [
        "",
        "## Paired comparisons on the held-out real sources",
        "",
        "A minus B on matched runs (same held-out source and seed, so the same test photos), over the three",
        "sources together: the source's AUC against the held-out GAN photos (higher is better) and its",
        "false-positive rate at the stored threshold (lower is better), each with its 95% bootstrap interval.",
        "",
        "| A | B | matched runs | AUC vs GAN: A - B | 95% interval | A wins | FPR: A - B | 95% interval | A lower |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a, b in compared_pairs({k[:3] for k in measured}):
        matched = [
            (m, measured[(*b, *k[3:])])
            for k, m in measured.items()
            if k[:3] == a and (*b, *k[3:]) in measured
        ]
        if not matched:
            continue
        auc = paired_difference([x["auc_gan"] - y["auc_gan"] for x, y in matched])
        fpr = paired_difference([x["fpr"] - y["fpr"] for x, y in matched])
        lower = sum(x["fpr"] < y["fpr"] for x, y in matched)
        lines.append(
            f"| {', '.join(a)} | {', '.join(b)} | {auc['n']} | {auc['mean']:+.3f} | [{auc['lo']:+.3f}, {auc['hi']:+.3f}] "
            f"| {auc['a_wins']}/{auc['n']} | {fpr['mean']:+.3f} | [{fpr['lo']:+.3f}, {fpr['hi']:+.3f}] | {lower}/{fpr['n']} |"
        )
    return lines


def fold_scores(folder: Path, evaluation: str = "evaluate") -> tuple[np.ndarray, np.ndarray, str] | None:
    """P(GAN), labels and CSV of a fold's test pairs, as ``evaluate`` scored them (None before it has)."""
    from irisgan.data.pairs_format import read_pairs_csv

    evaluated = folder / evaluation
    if not (evaluated / "scores_ran.npy").is_file():
        return None
    m = json.loads((evaluated / "metrics.json").read_text())
    csv_path = _project_path(folder, m["csv"])
    labels = np.array([int(r["label"]) for r in read_pairs_csv(csv_path)])
    return np.load(evaluated / "scores_ran.npy"), labels, str(csv_path)


def plot_family_rocs(runs: Path, key: tuple[str, str, str], seed: int, path: Path) -> Path | None:
    """One ROC per held-out family, each from the fold that never saw it (its fakes vs the held-out reals)."""
    from irisgan.plots import plot_rocs

    curves = []
    for family in {**FAMILIES, **DIFFUSION}:
        scored = fold_scores(runs / run_name(*key, seed, family))
        if scored is not None:
            curves.append((family, *scored[:2]))
    if not curves:
        return None
    title = f"Unseen generator families ({', '.join(key)})"
    return plot_rocs(curves, path, title, "false positive rate (held-out real photos)")


def tta_and_ensemble_lines(runs: Path, rows: list[dict]) -> list[str]:
    """Mean AUC over the families: one run, with flip TTA, and the mean score of all seeds of a fold."""
    lines = [
        "",
        "## Flip test-time augmentation and seed ensembles",
        "",
        "Mean test AUC over the held-out families, from `evaluate`'s scores of each fold: single runs (mean over",
        "seeds), with flip TTA (`flip_tta=true`: the mean P(GAN) of a pair and its mirror), and an ensemble that",
        "averages the P(GAN) of every seed's run of the fold (the seeds share the split, so the same test pairs).",
        "",
        "| variant | loss | ratio | seeds | single | flip TTA | seed ensemble | ensemble + flip TTA |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["variant"], r["loss"], r["ratio"]) for r in rows})
    for key in keys:
        seeds = sorted({r["seed"] for r in rows if (r["variant"], r["loss"], r["ratio"]) == key})
        cells = []
        for evaluation in EVALUATIONS:
            single, ensemble = [], []
            for family in FAMILIES:
                scored = [fold_scores(runs / run_name(*key, s, family), evaluation) for s in seeds]
                scored = [x for x in scored if x is not None]
                if len(scored) < len(seeds):
                    break
                if len({x[2] for x in scored}) > 1:
                    raise SystemExit(f"{key} {family}: the seeds' runs were tested on different CSVs")
                single.append(statistics.mean(auroc(*x[:2]) for x in scored))
                ensemble.append(ensemble_auroc([x[0] for x in scored], scored[0][1]))
            complete = len(single) == len(FAMILIES)
            cells.append((statistics.mean(single) if complete else None,
                          statistics.mean(ensemble) if complete and len(seeds) > 1 else None))  # fmt: skip
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        (s_plain, e_plain), (s_flip, e_flip) = cells
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(seeds)} | {fmt(s_plain)} | {fmt(s_flip)} | {fmt(e_plain)} "
            f"| {fmt(e_flip)} |"
        )
    return lines


def comparison_lines(rows: list[dict]) -> list[str]:
    """Paired differences on matched runs (family and seed): BCE+AUC vs BCE, and each variant vs its baseline."""
    auc = {(r["variant"], r["loss"], r["ratio"], r["seed"], r["family"]): r["test_auc"] for r in rows}
    pairs = compared_pairs({k[:3] for k in auc})
    lines = [
        "",
        "## Paired comparisons",
        "",
        "A minus B on matched runs (same held-out family and seed, so the same test photos): mean difference in",
        "test AUC, its 95% bootstrap interval over the matched runs, and how often A won. The folds share the",
        "held-out real photos, so the interval is, if anything, too narrow.",
        "",
        "| A | B | matched runs | mean A - B | 95% interval | A wins | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for a, b in pairs:
        diffs = [auc[(*a, *k[3:])] - auc[k] for k in auc if k[:3] == b and (*a, *k[3:]) in auc]
        if not diffs:
            continue
        st = paired_difference(diffs)
        lines.append(
            f"| {', '.join(a)} | {', '.join(b)} | {st['n']} | {st['mean']:+.3f} | [{st['lo']:+.3f}, {st['hi']:+.3f}] "
            f"| {st['a_wins']}/{st['n']} | {st['verdict']} |"
        )
    return lines


def aggregate(runs: Path = RUNS, results: Path = RESULTS, out_name: str = "cross_generator") -> Path:
    rows = []
    for metrics_file in sorted(runs.glob("*/metrics.json")):
        variant, loss, ratio, seed, family = metrics_file.parent.name.split("__")
        m = json.loads(metrics_file.read_text())
        rows.append(
            {"variant": variant, "loss": loss, "ratio": ratio.replace("to", ":"), "seed": int(seed[1:]),
             "family": family, "test_auc": m.get("test/auroc"), "test_acc_at_thr": m.get("test/acc_at_thr"),
             "val_auc": m.get("val/auroc"), "epochs": m.get("epochs_run"), "wall_s": m.get("wall_time_s")}
        )  # fmt: skip
    if not rows:
        raise SystemExit(f"no finished runs under {runs}")
    results.mkdir(parents=True, exist_ok=True)
    with open(results / f"{out_name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    families = list(FAMILIES)
    diffusion = [*DIFFUSION, *SUBJECTS]
    lines = [
        "# Leave-one-generator-out on real photos (faces_train)",
        "",
        "Test AUC of each held-out GAN family against the held-out real photos (25% of each real source, the same",
        "in every fold); the model never saw that family. Mean over seeds where there are several (the number",
        "after ± is the standard deviation over seeds). Command: `python experiments/cross_generator.py`.",
        "Mean and worst are over the GAN families; the diffusion family (trained on the GANs, tested on it) has",
        "its own column, as have its subject groups (`sd-adults`, `sd-children`: trained with the other group's",
        "diffusion faces). A variant's row may lack folds that were not run (`-`).",
        "",
        "| variant | loss | ratio | seeds | "
        + " | ".join(families + diffusion)
        + " | GAN mean | GAN worst | val AUC (seen families) |",
        "|---|---|---|---|" + "---|" * len(families + diffusion) + "---|---|---|",
    ]
    keyed: dict[tuple, dict[str, list[float]]] = {}
    vals: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["variant"], r["loss"], r["ratio"])
        keyed.setdefault(key, {}).setdefault(r["family"], []).append(r["test_auc"])
        vals.setdefault(key, []).append(r["val_auc"])
    order = {v: i for i, v in enumerate(VARIANTS)}
    for key in sorted(keyed, key=lambda k: (k[2], order.get(k[0], 99), k[1])):
        per = keyed[key]
        if not any(f in per for f in families + diffusion):
            continue
        seeds = max(len(v) for v in per.values())
        cells, means = [], []
        for fam in families + diffusion:
            if fam not in per:
                cells.append("-")
                continue
            mean = statistics.mean(per[fam])
            if fam in FAMILIES:
                means.append(mean)
            sd = f" ± {statistics.stdev(per[fam]):.3f}" if len(per[fam]) > 1 else ""
            cells.append(f"{mean:.3f}{sd}")
        complete = len(means) == len(families)
        mean_cell = (
            f"{statistics.mean(means):.3f}"
            if complete
            else (f"({statistics.mean(means):.3f}, {len(means)} folds)" if means else "-")
        )
        worst = f"{min(means):.3f}" if complete else "-"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {seeds} | " + " | ".join(cells)
            + f" | {mean_cell} | {worst} | {statistics.mean(vals[key]):.3f} |"
        )  # fmt: skip
    seeds: dict[tuple, list[int]] = {}
    for r in rows:
        seeds.setdefault((r["variant"], r["loss"], r["ratio"]), []).append(r["seed"])
    seeds = {k: sorted(set(v)) for k, v in seeds.items()}
    generator_rows = [r for r in rows if r["family"] not in REAL_SOURCES]
    measured = real_source_runs(runs, list(keyed), seeds)
    lines += real_source_lines(measured, sorted(keyed, key=lambda k: (k[2], order.get(k[0], 99), k[1])))
    lines += (
        comparison_lines(generator_rows)
        + real_comparison_lines(measured)
        + tta_and_ensemble_lines(runs, generator_rows)
    )
    for key in keyed:
        seed = min(r["seed"] for r in rows if (r["variant"], r["loss"], r["ratio"]) == key)
        plot_family_rocs(runs, key, seed, results / f"{out_name}_roc_{'_'.join(key).replace(':', 'to')}.png")
    path = results / f"{out_name}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help="face CSV: path,label,generator[,source]"
    )
    parser.add_argument("--variants", default="augment,plain,pseudo_fakes", help=f"from {list(VARIANTS)}")
    parser.add_argument("--losses", default="bce_auc,bce")
    parser.add_argument("--ratios", default="balanced", help=f"from {list(RATIOS)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument(
        "--families",
        default=",".join(FOLDS),
        help=f"folds to run: GAN families, diffusion, real sources {list(FOLDS)}",
    )
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of the run folders")
    parser.add_argument("--name", default="cross_generator", help="results file name: results/NAME.md")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    if not args.aggregate_only:
        if not args.csv.is_file():
            raise SystemExit(f"{args.csv} not found: pass --csv DIR/sources.csv (path,label,generator)")
        split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
        for name, allowed in (("variants", VARIANTS), ("ratios", RATIOS), ("families", FOLDS)):
            unknown = set(split(getattr(args, name))) - set(allowed)
            if unknown:
                raise SystemExit(f"--{name}: unknown {sorted(unknown)}; valid: {list(allowed)}")
        grid = itertools.product(
            split(args.variants), split(args.losses), split(args.ratios), [int(s) for s in split(args.seeds)],
            split(args.families),
        )  # fmt: skip
        jobs = [
            (train_command(args.csv.resolve(), v, loss, r, s, f, args.threads, args.overrides, args.runs),
             args.runs / run_name(v, loss, r, s, f))
            for v, loss, r, s, f in grid
        ]  # fmt: skip
        if any("pretrain" == job[1].name.split("__")[0] for job in jobs) and not PRETRAINED.is_file():
            print(f"pretraining on synthetic pairs into {PRETRAINED}", flush=True)
            cmd = [
                sys.executable,
                "-m",
                "irisgan.train",
                *PRETRAIN_COMMAND,
                f"runtime.num_threads={args.jobs}",
            ]
            subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "WANDB_MODE": "disabled"})
        # Runs that start together share the extraction cache: the first extracts, the others wait for it.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda job: run_one(*job), jobs))
    aggregate(args.runs, RESULTS, args.name)


if __name__ == "__main__":
    main()
