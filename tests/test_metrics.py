import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryROC

from irisgan.training.metrics import choose_threshold, operating_point, threshold_sweep, to_numpy


def roc_of(probs, labels):
    fpr, tpr, thr = to_numpy(*BinaryROC()(torch.tensor(probs), torch.tensor(labels)))
    return fpr, tpr, thr


def direct(probs, labels, t):
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs >= t
    tp = np.sum(pred & (labels == 1))
    fp = np.sum(pred & (labels == 0))
    tn = np.sum(~pred & (labels == 0))
    fn = np.sum(~pred & (labels == 1))
    return tp, fp, tn, fn


def test_operating_point_matches_direct_counting():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1).astype(np.float32)
    fpr, tpr, thr = roc_of(probs, labels)
    n_pos, n_neg = int(labels.sum()), int((1 - labels).sum())
    for t in (0.1, 0.5, float(thr[7]), 0.73):
        point = operating_point(fpr, tpr, thr, t, n_pos, n_neg)
        tp, fp, tn, fn = direct(probs, labels, t)
        assert (point["tp"], point["fp"], point["tn"], point["fn"]) == (tp, fp, tn, fn)
        assert point["acc"] == pytest.approx((tp + tn) / 200)


def test_gmean_and_youden_thresholds():
    probs = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
    labels = [0, 0, 0, 1, 0, 1, 1, 1]
    fpr, tpr, thr = roc_of(probs, labels)
    t = choose_threshold(fpr, tpr, thr, "gmean")
    gm = np.sqrt(tpr * (1 - fpr))
    assert t == pytest.approx(float(thr[np.argmax(gm[1:]) + 1]))
    assert choose_threshold(fpr, tpr, thr, "youden") in thr
    # separable data: the chosen threshold separates perfectly
    fpr, tpr, thr = roc_of([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    t = choose_threshold(fpr, tpr, thr)
    assert 0.2 < t <= 0.8 + 1e-6
    with pytest.raises(ValueError, match="valid choices"):
        choose_threshold(fpr, tpr, thr, "f1")


def test_threshold_sweep_is_consistent():
    fpr, tpr, thr = roc_of([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    sweep = threshold_sweep(fpr, tpr, thr, 2, 2)
    assert (sweep["threshold"] <= 1).all()
    assert ((sweep["accuracy"] >= 0) & (sweep["accuracy"] <= 1)).all()
