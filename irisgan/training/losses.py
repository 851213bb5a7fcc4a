"""Training losses for the RAN: BCE, and BCE plus a differentiable ROC-AUC surrogate.

The AUC term is the Wilcoxon-Mann-Whitney relaxation of Yan et al. (2003) used by Guo et al. 2022:
for every (GAN, real) pair of samples in a batch, with s = sigmoid(logit),

    R(s_fake, s_real) = max(0, gamma - (s_fake - s_real)) ** p,    0 < gamma <= 1, p > 1

averaged over all such pairs. It is zero once every GAN pair outscores every real pair by gamma, so it
pushes on ranking (what AUC measures) rather than on calibration. A batch holding one class only has no
(GAN, real) pairs: the term is then exactly zero and the loss is plain BCE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


def wmw_auc_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 0.5, p: float = 2.0
) -> torch.Tensor:
    """Mean over (positive, negative) pairs of ``max(0, gamma - (s_pos - s_neg)) ** p``.

    Computed over all N x N pairs with a 0/1 weight per pair rather than by selecting the positives and
    negatives: a boolean selection has a data-dependent size, which makes a GPU step wait for the host.
    """
    scores = torch.sigmoid(logits.float())
    pos = (targets > 0.5).to(scores.dtype)
    weight = pos[:, None] * (1.0 - pos)[None, :]  # 1 for (GAN i, real j)
    margins = (gamma - (scores[:, None] - scores[None, :])).clamp_min(0).pow(p)
    # No (GAN, real) pair in the batch: the sum is 0 and so is the term (the graph stays intact for DDP).
    return (margins * weight).sum() / weight.sum().clamp_min(1.0)


class BCELoss(nn.Module):
    """Binary cross-entropy on logits."""

    name = "bce"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = bce_loss(logits, targets)
        return {"loss": loss, "bce": loss}


class BCEAUCLoss(nn.Module):
    """``bce + auc_weight * wmw_auc``: the paper's BCE+AUC objective."""

    name = "bce_auc"

    def __init__(self, auc_weight: float = 1.0, gamma: float = 0.5, p: float = 2.0) -> None:
        super().__init__()
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"loss.gamma must be in (0, 1], got {gamma}")
        if p <= 1.0:
            raise ValueError(f"loss.p must be > 1, got {p}")
        if auc_weight < 0:
            raise ValueError(f"loss.auc_weight must be >= 0, got {auc_weight}")
        self.auc_weight, self.gamma, self.p = float(auc_weight), float(gamma), float(p)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        bce = bce_loss(logits, targets)
        auc = wmw_auc_loss(logits, targets, self.gamma, self.p)
        return {"loss": bce + self.auc_weight * auc, "bce": bce, "auc": auc}


LOSSES = {"bce": BCELoss, "bce_auc": BCEAUCLoss}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Build a loss from its config name (``bce`` or ``bce_auc``) and parameters."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid choices: {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)
