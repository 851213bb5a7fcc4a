"""The face cue: a logistic regression on dlib's 128-d face descriptor (``extraction.faces.face_descriptor``),
and its fusion with the iris score.

dlib's face recognition network was trained on real faces to tell identities apart, never on GAN faces; a linear
probe on its descriptor separates generated faces from real ones on generator families and real sources it never
saw better than the RAN does, and keeps its ranking on re-encoded, shrunk and grey photos
(``experiments/face_descriptor_probe.py``; ``experiments/README.md``, seventh round). The fused score is the sum
of the probe's logit and the RAN's, each standardised on validation photos, so that neither dominates by scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

DESCRIPTOR_SIZE = 128


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class FaceCue:
    """A fitted probe (feature mean and scale, weights, bias) and the fusion's standardisation of both logits."""

    mean: list[float]
    scale: list[float]
    weight: list[float]
    bias: float
    face_logit: tuple[float, float] = (0.0, 1.0)  # mean, standard deviation on the validation photos
    ran_logit: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        sizes = {len(self.mean), len(self.scale), len(self.weight)}
        if sizes != {DESCRIPTOR_SIZE}:
            raise ValueError(
                f"FaceCue: mean, scale and weight need {DESCRIPTOR_SIZE} values each, got {sizes}"
            )
        self.face_logit, self.ran_logit = tuple(self.face_logit), tuple(self.ran_logit)

    def to_dict(self) -> dict:
        return asdict(self)

    def face_logits(self, descriptors: np.ndarray) -> np.ndarray:
        """The probe's logit of (N, 128) descriptors (high: GAN)."""
        x = (np.asarray(descriptors, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return x @ np.asarray(self.weight) + self.bias

    def fused_logits(self, ran_p: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """The sum of the standardised probe and RAN logits of N photos (the RAN's P(GAN), their descriptors)."""
        (fm, fs), (rm, rs) = self.face_logit, self.ran_logit
        return (self.face_logits(descriptors) - fm) / fs + (logit(ran_p) - rm) / rs

    def fused_probability(self, ran_p: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """The fused score as a number in [0, 1]: the sigmoid of ``fused_logits``."""
        return 1.0 / (1.0 + np.exp(-self.fused_logits(ran_p, descriptors)))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L2-regularised logistic regression on standardised features: (mean, scale, weight, bias)."""
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if len(np.unique(y)) != 2:
        raise ValueError("a logistic fit needs examples of both classes")
    mean, scale = x.mean(0), x.std(0) + 1e-9
    lin = torch.nn.Linear(x.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    xt, yt = torch.tensor((x - mean) / scale), torch.tensor(y, dtype=torch.float64)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(xt).squeeze(1), yt)
        loss = loss + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mean, scale, lin.weight.detach().numpy()[0], float(lin.bias.detach())


def fit_face_cue(
    fit_descriptors: np.ndarray,
    fit_labels: np.ndarray,
    val_descriptors: np.ndarray,
    val_ran_p: np.ndarray,
    l2: float = 1e-3,
) -> FaceCue:
    """Fit the probe on the training photos, and standardise both logits on the validation photos (their
    descriptors and the RAN's P(GAN) of their pairs, which the RAN never trained on)."""
    mean, scale, weight, bias = fit_logistic(fit_descriptors, fit_labels, l2)
    cue = FaceCue(mean.tolist(), scale.tolist(), weight.tolist(), bias)
    face, ran = cue.face_logits(val_descriptors), logit(val_ran_p)
    cue.face_logit = (float(face.mean()), float(face.std() + 1e-9))
    cue.ran_logit = (float(ran.mean()), float(ran.std() + 1e-9))
    return cue
