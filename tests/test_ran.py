import pytest
import torch

from irisgan.models.ran import (
    AttentionModule,
    MixStyle,
    PreActBottleneck,
    RANConfig,
    ResidualAttentionNet,
    count_parameters,
    estimate_flops,
)
from tests.conftest import TINY_NET


def test_paper_configuration_shapes_after_every_stage():
    net = ResidualAttentionNet().eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        stem = net.stem[0](x)
        assert stem.shape == (2, 16, 96, 96)  # conv 3x3 (16) at 96x96
        x = net.stem(x)
        assert x.shape == (2, 16, 48, 48)  # max-pool to 48x48
        expected = [(64, 48), (128, 24), (256, 12)]
        for stage, (ch, hw) in zip(net.stages, expected, strict=True):
            x = stage[0](x)  # the residual block that changes width/resolution
            assert x.shape == (2, ch, hw, hw)
            attention = [m for m in stage if isinstance(m, AttentionModule)]
            assert len(attention) == 2
            for module in attention:
                x = module(x)
                assert x.shape == (2, ch, hw, hw)
        x = net.head[0](x)
        assert x.shape == (2, 512, 6, 6)  # residual blocks to 512 channels at 6x6
        x = net.head[1:](x)
        assert x.shape == (2, 512)
        assert net(torch.randn(2, 3, 96, 96)).shape == (2,)


def test_paper_configuration_size_and_cost():
    net = ResidualAttentionNet()
    assert abs(count_parameters(net) - 2.7e6) / 2.7e6 < 0.10
    gflops = estimate_flops(net) / 1e9
    assert 0.5 < gflops < 1.5  # "about 1 GFLOP a pair"


def test_tiny_configuration_and_channels_last_agree():
    torch.manual_seed(0)
    net = ResidualAttentionNet(RANConfig(**TINY_NET)).eval()
    x = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        ref = net(x)
        out = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert count_parameters(net) < 50_000
    torch.testing.assert_close(ref, out, rtol=1e-4, atol=1e-4)


def test_attention_masks_are_recorded_for_explanations():
    net = ResidualAttentionNet(RANConfig(**TINY_NET)).eval()
    for m in net.attention_modules():
        m.record_masks = True
    net(torch.randn(1, 3, 96, 96))
    masks = [m.last_mask for m in net.attention_modules()]
    assert all(m is not None and float(m.min()) >= 0 and float(m.max()) <= 1 for m in masks)


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="one entry per stage"):
        RANConfig(stage_channels=(64, 128), attention_modules=(2, 2, 2), mask_depths=(2, 1, 0))


def test_zero_init_residual_starts_every_block_as_the_identity():
    net = ResidualAttentionNet(RANConfig(**TINY_NET, zero_init_residual=True)).train()
    blocks = [m for m in net.modules() if isinstance(m, PreActBottleneck)]
    assert blocks and all(not b.conv3.weight.any() for b in blocks)
    identity = next(b for b in blocks if b.shortcut is None)
    x = torch.randn(2, identity.conv1.in_channels, 8, 8)
    assert torch.equal(identity(x.clone()), x)
    out = net(torch.randn(4, 3, 96, 96))
    out.sum().backward()  # still trainable: the zeroed convs get gradients
    assert all(b.conv3.weight.grad is not None and b.conv3.weight.grad.abs().sum() > 0 for b in blocks)


def test_mixstyle_mixes_feature_statistics_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 6, 6) * torch.arange(1.0, 9.0).view(8, 1, 1, 1)  # each sample its own spread
    mix = MixStyle(p=1.0)
    assert torch.equal(mix.eval()(x), x)
    y = mix.train()(x)
    assert y.shape == x.shape and not torch.allclose(y.std(dim=(2, 3)), x.std(dim=(2, 3)))
    same = x[:1].expand(8, -1, -1, -1)  # one style throughout: nothing to mix
    assert torch.allclose(mix(same), same, atol=1e-4)
    with pytest.raises(ValueError, match="mixstyle"):
        RANConfig(mixstyle=1.5)


def test_mixstyle_keeps_the_checkpoint_names():
    plain = ResidualAttentionNet(RANConfig(**TINY_NET))
    mixed = ResidualAttentionNet(RANConfig(**TINY_NET, mixstyle=0.5))
    assert plain.state_dict().keys() == mixed.state_dict().keys()
    mixed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 96, 96)
    assert torch.allclose(mixed.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("size", [48, 47])
def test_strided_pointwise_is_a_strided_1x1_convolution_and_trains_channels_last(size):
    """The workaround for oneDNN's crashing weight gradient (narrow channels-last strided 1x1 convolutions)."""
    from irisgan.models.layers import StridedPointwise

    torch.manual_seed(0)
    ours = StridedPointwise(8, 8, stride=2)
    direct = torch.nn.Conv2d(8, 8, 1, stride=2, bias=False)
    direct.load_state_dict(ours.state_dict())  # the same checkpoint keys
    x = torch.randn(4, 8, size, size)
    torch.testing.assert_close(ours(x), direct(x))
    ours = ours.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(3):  # the direct form's weight gradient corrupted the heap here on AVX-512 AMD CPUs
        ours(x).sum().backward()
    assert ours.weight.grad is not None and torch.isfinite(ours.weight.grad).all()
