import itertools

import pytest
import torch

from irisgan.training.losses import BCEAUCLoss, BCELoss, build_loss, wmw_auc_loss


def brute_force_auc_term(logits, targets, gamma, p):
    s = torch.sigmoid(logits)
    terms = [
        max(0.0, gamma - (float(s[i]) - float(s[j]))) ** p
        for i, j in itertools.product(range(len(s)), repeat=2)
        if targets[i] == 1 and targets[j] == 0
    ]
    return sum(terms) / len(terms)


@pytest.mark.parametrize("gamma,p", [(0.5, 2.0), (1.0, 3.0), (0.2, 1.5)])
def test_auc_term_matches_a_double_loop(gamma, p):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(13, generator=g) * 2
    targets = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0])
    got = wmw_auc_loss(logits, targets, gamma, p)
    assert got.item() == pytest.approx(brute_force_auc_term(logits, targets, gamma, p), rel=1e-5)


def test_gradients_are_finite_for_both_losses():
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    for loss in (BCELoss(), BCEAUCLoss(auc_weight=2.0)):
        logits = torch.tensor([30.0, -30.0, 0.1, 0.2, -50.0], requires_grad=True)
        loss(logits, targets)["loss"].backward()
        assert torch.isfinite(logits.grad).all()


def test_single_class_batch_gives_bce_alone_without_nan():
    logits = torch.randn(8, requires_grad=True)
    for targets in (torch.ones(8), torch.zeros(8)):
        parts = BCEAUCLoss(auc_weight=5.0)(logits, targets)
        assert parts["auc"].item() == 0.0
        assert parts["loss"].item() == pytest.approx(parts["bce"].item())
        parts["loss"].backward()
        assert torch.isfinite(logits.grad).all()


def test_auc_term_falls_when_positives_rank_above_negatives():
    targets = torch.tensor([1, 1, 1, 0, 0, 0])
    wrong = torch.tensor([-2.0, -1.0, -1.5, 1.0, 2.0, 1.5])  # every GAN pair below every real pair
    mixed = torch.tensor([1.0, -1.0, 0.5, 0.0, -0.5, 1.0])
    right = -wrong
    values = [wmw_auc_loss(x, targets).item() for x in (wrong, mixed, right)]
    assert values[0] > values[1] > values[2]
    # and gradient descent on the term alone improves the ranking
    x = wrong.clone().requires_grad_(True)
    wmw_auc_loss(x, targets).backward()
    assert (x.grad[targets == 1] < 0).all() and (x.grad[targets == 0] > 0).all()


def test_bad_loss_settings_are_clear_errors():
    with pytest.raises(ValueError, match="gamma"):
        BCEAUCLoss(gamma=0.0)
    with pytest.raises(ValueError, match="p must be > 1"):
        BCEAUCLoss(p=1.0)
    with pytest.raises(ValueError, match="valid choices"):
        build_loss("hinge")
