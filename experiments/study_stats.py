"""Statistics the studies share: paired differences between two settings, and ensembles of runs.

A difference between two recipes is judged on matched runs (same held-out family, same seed, so the same
test photos): the bootstrap interval of the mean paired difference says whether the runs resolve it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC of any real-valued score (ties count half): P(score of a 1 > score of a 0)."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both labels")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # average rank of each tie group, from 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def ensemble_auroc(runs: list[np.ndarray], labels: np.ndarray) -> float:
    """AUROC of the mean P(GAN) of several runs scored on the same test pairs, in the same order."""
    if len({len(r) for r in runs} | {len(labels)}) != 1:
        raise ValueError(
            f"runs scored different test sets: lengths {[len(r) for r in runs]} vs {len(labels)}"
        )
    return auroc(np.mean(np.stack(runs), axis=0), labels)


def paired_difference(diffs: list[float], n_boot: int = 10_000, seed: int = 0) -> dict:
    """Mean of paired differences (A - B) with a 95% bootstrap interval and a verdict."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) == 0:
        raise ValueError("no matched runs to compare")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    lo, hi = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    if len(d) < 3:
        verdict = "not resolved (fewer than 3 matched runs)"
    elif lo > 0:
        verdict = "A better"
    elif hi < 0:
        verdict = "B better"
    else:
        verdict = "not resolved (the interval spans 0)"
    return {
        "n": len(d),
        "mean": float(d.mean()),
        "sd": statistics.stdev(d) if len(d) > 1 else 0.0,
        "lo": lo,
        "hi": hi,
        "a_wins": int((d > 0).sum()),
        "verdict": verdict,
    }


def paired_line(label: str, diffs: list[float]) -> str:
    """A results-file line of ``paired_difference``: "- label: mean [lo, hi], higher in wins/n"."""
    d = paired_difference(diffs)
    return f"- {label}: {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}], higher in {d['a_wins']}/{d['n']}"


def write_results(name: str, lines: list[str]) -> None:
    """Write a probe's results file ``experiments/results/<name>`` (one line per item) and print it."""
    text = "\n".join(lines) + "\n"
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    print(text)
