"""Metric collections, decision thresholds and operating points for the real-vs-GAN classifier.

The threshold-dependent numbers (accuracy, precision, recall, F1, confusion) at any threshold follow from
the exact ROC curve and the class counts, so one ``BinaryROC`` per stage serves both the curve plots and
the metrics at the chosen threshold: no second pass over the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryPrecision,
    BinaryPrecisionRecallCurve,
    BinaryRecall,
    BinaryROC,
)

THRESHOLD_METHODS = ("gmean", "youden")


def scalar_metrics(prefix: str) -> MetricCollection:
    """Accuracy, precision, recall and F1 at 0.5, AUROC and average precision."""
    return MetricCollection(
        {
            "acc": BinaryAccuracy(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(),
            "ap": BinaryAveragePrecision(),
        },
        prefix=prefix,
    )


def curve_metrics() -> MetricCollection:
    return MetricCollection(
        {"roc": BinaryROC(), "pr": BinaryPrecisionRecallCurve(), "cm": BinaryConfusionMatrix()},
        compute_groups=False,
    )


def choose_threshold(
    fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, method: str = "gmean"
) -> float:
    """The ROC threshold maximising sqrt(TPR * (1 - FPR)) (``gmean``) or TPR - FPR (``youden``)."""
    if method == "gmean":
        score = np.sqrt(tpr * (1.0 - fpr))
    elif method == "youden":
        score = tpr - fpr
    else:
        raise ValueError(f"unknown threshold method {method!r}; valid choices: {list(THRESHOLD_METHODS)}")
    # thresholds[0] is torchmetrics' sentinel (nothing predicted positive): never pick it.
    best = int(np.argmax(score[1:])) + 1 if len(score) > 1 else 0
    return float(min(thresholds[best], 1.0))


def operating_point(
    fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, threshold: float, n_pos: int, n_neg: int
) -> dict[str, float]:
    """Metrics when ``score >= threshold`` means GAN, read off the exact ROC curve."""
    # thresholds descend; the operating point is the last one still >= threshold.
    idx = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1
    idx = max(idx, 0)
    tp, fp = tpr[idx] * n_pos, fpr[idx] * n_neg
    fn, tn = n_pos - tp, n_neg - fp
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tpr[idx]
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "acc": float((tp + tn) / max(n_pos + n_neg, 1)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "tpr": float(tpr[idx]),
        "fpr": float(fpr[idx]),
        "tp": float(round(tp)),
        "fp": float(round(fp)),
        "tn": float(round(tn)),
        "fn": float(round(fn)),
    }


def threshold_sweep(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, n_pos: int, n_neg: int) -> dict:
    """Accuracy, precision, recall, F1 and the G-mean at every ROC threshold (for metric-vs-threshold plots)."""
    tp, fp = tpr * n_pos, fpr * n_neg
    tn = n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        f1 = np.where(precision + tpr > 0, 2 * precision * tpr / (precision + tpr), 0.0)
    keep = thresholds <= 1.0
    return {
        "threshold": thresholds[keep],
        "accuracy": ((tp + tn) / max(n_pos + n_neg, 1))[keep],
        "precision": precision[keep],
        "recall": tpr[keep],
        "f1": f1[keep],
        "gmean": np.sqrt(tpr * (1 - fpr))[keep],
    }


def to_numpy(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    return tuple(t.detach().float().cpu().numpy() for t in tensors)


def curve_report(
    roc: tuple[torch.Tensor, ...],
    pr: tuple[torch.Tensor, ...],
    cm: torch.Tensor,
    threshold: float | None,
    method: str = "gmean",
) -> dict:
    """ROC, PR and confusion (as numpy) plus the operating point at ``threshold``, chosen here when None.

    ``roc``/``pr`` are torchmetrics' exact curves (thresholds=None), ``cm`` the confusion matrix at 0.5.
    """
    fpr, tpr, roc_thr = to_numpy(*roc)
    precision, recall, pr_thr = to_numpy(*pr)
    cm = cm.cpu().numpy().astype(int)  # [[tn, fp], [fn, tp]] at 0.5
    n_neg, n_pos = int(cm[0].sum()), int(cm[1].sum())
    chosen = threshold is None
    if chosen:
        threshold = choose_threshold(fpr, tpr, roc_thr, method)
    point = operating_point(fpr, tpr, roc_thr, threshold, n_pos, n_neg)
    return {
        "roc": {"fpr": fpr, "tpr": tpr, "thresholds": roc_thr},
        "pr": {"precision": precision, "recall": recall, "thresholds": pr_thr},
        "confusion_at_0.5": cm,
        "confusion_at_threshold": np.array(
            [[point["tn"], point["fp"]], [point["fn"], point["tp"]]], dtype=int
        ),
        "threshold": float(threshold),
        "threshold_chosen_here": chosen,
        "at_threshold": point,
        "sweep": threshold_sweep(fpr, tpr, roc_thr, n_pos, n_neg),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }


def report_from_scores(
    probs: torch.Tensor, labels: torch.Tensor, threshold: float | None = None, method: str = "gmean"
) -> tuple[dict[str, float], dict]:
    """Scalar metrics at 0.5 and the full curve report for one set of scores (evaluation outside a Trainer)."""
    labels = labels.long()
    scalars = {k: float(v) for k, v in scalar_metrics("")(probs, labels).items()}
    curves = curve_metrics()(probs, labels)
    return scalars, curve_report(curves["roc"], curves["pr"], curves["cm"], threshold, method)


def uncertain_band(
    probs: np.ndarray, labels: np.ndarray, threshold: float, precision: float = 0.95
) -> tuple[float, float]:
    """``(lo, hi)`` around ``threshold``: scores below ``lo`` are called real, from ``hi`` on GAN, between uncertain.

    ``lo`` is the highest cut at or below the threshold under which at least ``precision`` of the pairs are real,
    ``hi`` the lowest at or above it from which at least ``precision`` are GAN (0 and 1 where none reaches it),
    so that on these pairs each confident call is right at least that often.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    if not 0.0 < precision <= 1.0:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    lo, hi = 0.0, 1.0
    for cut in sorted(set(probs[probs <= threshold].tolist()) | {threshold}, reverse=True):
        below = labels[probs < cut]
        if len(below) and (below == 0).mean() >= precision:
            lo = float(cut)
            break
    for cut in sorted(set(probs[probs >= threshold].tolist()) | {threshold}):
        above = labels[probs >= cut]
        if len(above) and (above == 1).mean() >= precision:
            hi = float(cut)
            break
    return lo, hi


def source_threshold(
    probs: np.ndarray, labels: np.ndarray, sources: Sequence[str], max_fpr: float = 0.05
) -> float:
    """A threshold at which no real source calls more than ``max_fpr`` of its photos GAN (score at or above it):
    just above the highest source's (1 - ``max_fpr``) quantile (numpy's ``higher``), which leaves fewer than
    ``max_fpr`` x n of a source's n photos at or above it, and at most two photos fewer than that.

    A threshold chosen on all real photos together (G-mean) lets the real source the detector ranks worst carry
    most of the false positives, and a source it never saw sits higher still; this one holds each seen source
    to the same rate (``experiments/face_descriptor_probe.py`` measures what it leaves held-out sources).
    """
    probs, labels, sources = (
        np.asarray(probs, np.float64),
        np.asarray(labels).astype(int),
        np.asarray(sources),
    )
    if not 0.0 <= max_fpr < 1.0:
        raise ValueError(f"max_fpr must be in [0, 1), got {max_fpr}")
    real = labels == 0
    if not real.any():
        raise ValueError("a per-source threshold needs real photos")
    # the next float32 up: thresholds are stored, and scores compared, in float32
    return max(
        float(np.nextafter(np.float32(np.quantile(probs[real & (sources == s)], 1 - max_fpr, method="higher")),
                           np.float32(np.inf)))
        for s in np.unique(sources[real])
    )  # fmt: skip
