import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

from irisgan.models.face_cue import DESCRIPTOR_SIZE, FaceCue, fit_face_cue, fit_logistic, logit


def _descriptors(n: int, shift: float, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0.0, 0.05, (n, DESCRIPTOR_SIZE))
    x[:, :3] += shift  # the class shows in three coordinates only
    return x


def test_logistic_fit_finds_the_informative_coordinates():
    rng = np.random.default_rng(0)
    x = np.r_[_descriptors(200, 0.0, rng), _descriptors(200, 0.1, rng)]
    y = np.r_[np.zeros(200), np.ones(200)]
    mean, scale, weight, bias = fit_logistic(x, y)
    assert weight.shape == (DESCRIPTOR_SIZE,) and np.isfinite(weight).all()
    assert weight[:3].min() > np.abs(weight[3:]).max() and weight[:3].min() > 5 * np.abs(weight[3:]).mean()
    scores = ((x - mean) / scale) @ weight + bias
    assert np.mean((scores > 0) == (y == 1)) > 0.95
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic(x[:200], y[:200])


def test_fused_logit_is_the_sum_of_the_standardised_logits():
    rng = np.random.default_rng(1)
    fit = np.r_[_descriptors(100, 0.0, rng), _descriptors(100, 0.1, rng)]
    labels = np.r_[np.zeros(100), np.ones(100)]
    val = np.r_[_descriptors(40, 0.0, rng), _descriptors(40, 0.1, rng)]
    ran_p = np.r_[rng.uniform(0.1, 0.6, 40), rng.uniform(0.4, 0.9, 40)]
    cue = fit_face_cue(fit, labels, val, ran_p)
    face, ran = cue.face_logits(val), logit(ran_p)
    # standardised on the validation photos: each part has mean 0 and sd 1 there
    np.testing.assert_allclose(cue.face_logit, (face.mean(), face.std()), rtol=1e-6)
    np.testing.assert_allclose(cue.ran_logit, (ran.mean(), ran.std()), rtol=1e-6)
    fused = cue.fused_logits(ran_p, val)
    np.testing.assert_allclose(
        fused, (face - face.mean()) / face.std() + (ran - ran.mean()) / ran.std(), rtol=1e-5
    )
    np.testing.assert_allclose(cue.fused_probability(ran_p, val), 1 / (1 + np.exp(-fused)))
    # the fusion ranks the validation photos better than the RAN's score alone here
    y = torch.tensor(np.r_[np.zeros(40), np.ones(40)]).long()
    auroc = lambda s: float(binary_auroc(torch.tensor(s), y))  # noqa: E731
    assert auroc(fused) > auroc(ran_p)
    # it travels as plain numbers
    again = FaceCue(**cue.to_dict())
    np.testing.assert_allclose(again.fused_logits(ran_p, val), fused)
    with pytest.raises(ValueError, match="128 values"):
        FaceCue([0.0] * 5, [1.0] * 5, [0.0] * 5, 0.0)
