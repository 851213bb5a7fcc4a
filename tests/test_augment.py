"""Batched pair augmentation and pseudo-fakes: shapes, ranges, labels, and what each one may change."""

from __future__ import annotations

import pytest
import torch

from irisgan.data.augment import PSEUDO_FAKE_KINDS, PairAugment, PseudoFakes


def _pairs(n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 96, 96, generator=g) * 0.3 + 0.3
    # a dark iris disk in each half, so the planters have something to act on
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    for cx in (24.0, 72.0):
        disk = ((xx - cx) / 20) ** 2 + ((yy - 48) / 40) ** 2 <= 1
        x[:, :, disk] *= 0.4
    return x


def test_pair_augment_keeps_shape_range_and_device():
    x = _pairs()
    y = PairAugment(p=1.0)(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(x, y)
    assert torch.equal(PairAugment(p=0.0)(x), x)


def test_pair_augment_is_seeded():
    x = _pairs()
    a = PairAugment(p=1.0)(x, torch.Generator().manual_seed(3))
    b = PairAugment(p=1.0)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_photometric_changes_treat_both_eyes_alike():
    """Brightness, contrast, saturation and gamma must not create a difference between the eyes."""
    x = _pairs()
    x[..., 48:] = x[..., :48]  # identical eyes
    aug = PairAugment(
        p=1.0, downscale=(0.0, 0.5), noise=(0.0, 0.0), jpeg=(0.0, 50), eye_shift=0.0, eye_scale=0.0
    )
    y = aug(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(x, y)
    assert torch.allclose(y[..., :48], y[..., 48:], atol=1e-5)


def test_sharpen_raises_fine_detail_alike_in_both_eyes():
    x = _pairs()
    x[..., 48:] = x[..., :48]
    off = dict(
        p=1.0,
        jitter=0.0,
        downscale=(0.0, 0.5),
        noise=(0.0, 0.0),
        jpeg=(0.0, 50),
        eye_shift=0.0,
        eye_scale=0.0,
    )
    y = PairAugment(**off, sharpen=(1.0, 1.5))(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y[..., :48], y[..., 48:], atol=1e-6)

    def detail(t):  # mean absolute difference between neighbouring pixels
        return float((t[..., 1:] - t[..., :-1]).abs().mean())

    assert detail(y) > 1.05 * detail(x)
    assert torch.equal(PairAugment(**off)(x), x)  # off by default


@pytest.mark.parametrize("kind", PSEUDO_FAKE_KINDS)
def test_each_pseudo_fake_kind_changes_one_eye_of_real_pairs_only(kind):
    x = _pairs(12)
    labels = torch.tensor([0.0, 1.0] * 6)
    out, new_labels, changed = PseudoFakes(rate=1.0, kinds=(kind,))(
        x, labels, torch.Generator().manual_seed(0)
    )
    assert torch.equal(changed, labels == 0)  # every real pair, no GAN pair
    assert torch.equal(new_labels, torch.ones(12))
    assert torch.equal(out[labels == 1], x[labels == 1])
    for i in changed.nonzero().flatten().tolist():
        left = (out[i, ..., :48] - x[i, ..., :48]).abs().max()
        right = (out[i, ..., 48:] - x[i, ..., 48:]).abs().max()
        assert max(left, right) > 0.02, (
            f"{kind} changed nothing visible"
        )  # irises are dark: 0.02 is 5 grey levels
        assert min(left, right) < 1e-6, f"{kind} changed both eyes"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("kind", ["highlight", "iris_swap", "colour", "seam"])
def test_pseudo_fakes_land_on_the_iris_of_a_wide_crop(kind):
    """A crop 2.2 iris diameters wide (iris_margin 0.6) holds a smaller iris: the planted change stays on it
    (within 0.55 of the half's centre in normalised coordinates, the iris reaching 0.45), not on the lids."""
    x = _pairs(12)
    labels = torch.zeros(12)
    out, _, _ = PseudoFakes(rate=1.0, kinds=(kind,), iris_margin=0.6)(
        x, labels, torch.Generator().manual_seed(0)
    )
    h, w = x.shape[-2:]
    v = torch.linspace(-1, 1, h).view(h, 1)
    u = torch.linspace(-1, 1, w // 2).view(1, w // 2)
    outside = (u**2 + v**2).sqrt() > 0.55
    diff = (out - x).abs().amax(dim=1)  # (N, H, W)
    for half in (diff[..., : w // 2], diff[..., w // 2 :]):
        assert float(half[:, outside].max()) < 0.02, kind
    assert float(diff.max()) > 0.02, kind
    with pytest.raises(ValueError, match="iris_margin"):
        PseudoFakes(iris_margin=-0.1)


def test_pseudo_fake_rate_and_arguments():
    x, labels = _pairs(200), torch.zeros(200)
    _, new_labels, changed = PseudoFakes(rate=0.3)(x, labels, torch.Generator().manual_seed(0))
    assert 40 <= int(changed.sum()) <= 80 and torch.equal(new_labels, changed.float())
    _, same, none = PseudoFakes(rate=0.0)(x, labels)
    assert not none.any() and torch.equal(same, labels)
    with pytest.raises(ValueError, match="unknown pseudo-fake kinds"):
        PseudoFakes(kinds=("sparkle",))
    with pytest.raises(ValueError, match="rate"):
        PseudoFakes(rate=1.5)


def test_grayscale_and_colour_cast():
    x = _pairs()
    grey = PairAugment(p=1.0, jitter=0.0, downscale=(0, 0), noise=(0, 0), jpeg=(0, 0), eye_shift=0.0,
                       eye_scale=0.0, grayscale=1.0)(x, torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    cast = PairAugment(p=1.0, jitter=0.0, downscale=(0, 0), noise=(0, 0), jpeg=(0, 0), eye_shift=0.0,
                       eye_scale=0.0, colour_cast=0.2)(x, torch.Generator().manual_seed(0))  # fmt: skip
    ratio = cast / x.clamp_min(1e-6)
    # one gain per pair and channel: the same over both eyes, and different between channels
    per_channel = ratio.flatten(2).median(dim=2).values
    assert torch.allclose(ratio[..., :48].flatten(2).median(dim=2).values, per_channel, atol=1e-3)
    assert (per_channel - 1).abs().max() <= 0.2 + 1e-4 and per_channel.std(dim=1).mean() > 0.01
    assert torch.equal(PairAugment(p=1.0, grayscale=0.0, colour_cast=0.0)(x, torch.Generator().manual_seed(4)),
                       PairAugment(p=1.0)(x, torch.Generator().manual_seed(4)))  # fmt: skip
