"""PNG figures of a run: ROC, PR, metric-versus-threshold, confusion matrices and loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(report: dict[str, Any], path: Path, title: str = "") -> Path:
    fpr, tpr = report["roc"]["fpr"], report["roc"]["tpr"]
    auc = float(np.trapezoid(tpr, fpr))
    point = report["at_threshold"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=2, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.scatter(
        [point["fpr"]], [point["tpr"]], color="red", zorder=3, label=f"threshold {report['threshold']:.3f}"
    )
    ax.set(
        xlabel="false positive rate (real called GAN)",
        ylabel="true positive rate (GAN caught)",
        title=title or "ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(report: dict[str, Any], path: Path, title: str = "") -> Path:
    precision, recall = report["pr"]["precision"], report["pr"]["recall"]
    base = report["n_pos"] / max(report["n_pos"] + report["n_neg"], 1)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(recall, precision, lw=2)
    ax.axhline(base, ls="--", color="grey", lw=1, label=f"chance = {base:.2f}")
    ax.set(
        xlabel="recall", ylabel="precision", title=title or "precision-recall", xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_threshold(report: dict[str, Any], path: Path, title: str = "") -> Path:
    sweep = report["sweep"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key in ("accuracy", "precision", "recall", "f1", "gmean"):
        ax.plot(sweep["threshold"], sweep[key], label=key, lw=1.5)
    ax.axvline(report["threshold"], color="red", ls="--", lw=1, label=f"chosen {report['threshold']:.3f}")
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.set(
        xlabel="threshold on P(GAN)",
        ylabel="metric",
        title=title or "metrics vs threshold",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower center", ncol=3, fontsize=8)
    return _save(fig, path)


def plot_confusion(report: dict[str, Any], path: Path, title: str = "") -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6))
    for ax, key, name in (
        (axes[0], "confusion_at_0.5", "at 0.5"),
        (axes[1], "confusion_at_threshold", f"at {report['threshold']:.3f}"),
    ):
        cm = np.asarray(report[key])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(int(v)), ha="center", va="center", color="black", fontsize=12)
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["real", "GAN"],
            yticklabels=["real", "GAN"],
            xlabel="predicted",
            ylabel="true",
            title=name,
        )
    fig.suptitle(title or "confusion matrix")
    return _save(fig, path)


def plot_losses(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    epochs = [h["epoch"] for h in history]
    for key, label in (("train/loss_epoch", "train"), ("val/loss", "validation")):
        values = [h.get(key, np.nan) for h in history]
        if not np.all(np.isnan(values)):
            ax.plot(epochs, values, marker="o", label=label)
    ax2 = ax.twinx()
    auroc = [h.get("val/auroc", np.nan) for h in history]
    if not np.all(np.isnan(auroc)):
        ax2.plot(epochs, auroc, color="green", ls="--", marker=".", label="val AUROC")
        ax2.set_ylim(0.4, 1.0)
        ax2.set_ylabel("validation AUROC")
        ax2.legend(loc="center right")
    ax.set(xlabel="epoch", ylabel="loss", title=title or "loss")
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_report(report: dict[str, Any], out_dir: Path, stage: str) -> list[Path]:
    """All curve figures of one stage's report, written as ``<stage>_<figure>.png``."""
    return [
        plot_roc(report, out_dir / f"{stage}_roc.png", f"{stage} ROC"),
        plot_pr(report, out_dir / f"{stage}_pr.png", f"{stage} precision-recall"),
        plot_threshold(report, out_dir / f"{stage}_threshold.png", f"{stage}: metrics vs threshold"),
        plot_confusion(report, out_dir / f"{stage}_confusion.png", f"{stage} confusion"),
    ]


def plot_roc_comparison(
    reports: dict[str, dict[str, Any]], path: Path, title: str = "ROC: RAN vs baseline"
) -> Path:
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for name, report in reports.items():
        fpr, tpr = report["roc"]["fpr"], report["roc"]["tpr"]
        ax.plot(fpr, tpr, lw=2, label=f"{name} (AUC {float(np.trapezoid(tpr, fpr)):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_robustness(rows: list[dict[str, Any]], methods: list[str], path: Path) -> Path:
    names = [r["degradation"] for r in rows]
    x = np.arange(len(names))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 4))
    for i, method in enumerate(methods):
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            [r[f"{method}_auroc"] for r in rows],
            width,
            label=method,
        )
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set(xticks=x, ylabel="AUROC", ylim=(0.4, 1.0), title="AUROC under degradations")
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_rocs(
    curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str = "", xlabel: str = ""
) -> Path:
    """ROC curves on one figure, one per ``(name, scores, labels)``, each labelled with its AUC."""
    import torch
    from torchmetrics.functional.classification import binary_roc

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, (name, scores, labels) in enumerate(curves):
        fpr, tpr, _ = binary_roc(torch.as_tensor(scores), torch.as_tensor(labels).long())
        fpr, tpr = fpr.numpy(), tpr.numpy()
        n_fake = int(np.sum(labels == 1))
        # the colour cycle has ten colours: a further curve gets a colour again, with another line style
        ax.plot(
            fpr, tpr, lw=1.8, color=f"C{i % 10}", linestyle=("-", "--", ":")[i // 10 % 3],
            label=f"{name} (n={n_fake}): AUC {float(np.trapezoid(tpr, fpr)):.3f}",
        )  # fmt: skip
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(
        xlabel=xlabel or "false positive rate (real called GAN)",
        ylabel="true positive rate (GAN caught)",
        title=title or "ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def plot_roc_per_group(
    scores: np.ndarray, labels: np.ndarray, groups: list[str], path: Path, title: str = ""
) -> Path:
    """One ROC per GAN group (its pairs against every real pair): a weak generator stands out."""
    real = labels == 0
    curves = []
    for name in sorted({g for g, y in zip(groups, labels, strict=True) if y == 1}):
        keep = (np.array([g == name for g in groups]) & (labels == 1)) | real
        curves.append((name, scores[keep], labels[keep]))
    xlabel = f"false positive rate ({int(real.sum())} real pairs)"
    return plot_rocs(curves, path, title or "ROC per GAN source", xlabel)
