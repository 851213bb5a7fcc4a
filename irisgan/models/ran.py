"""Residual Attention Network for 96x96 iris pairs (Guo et al. 2022, Table 1; Wang et al. 2017).

Layout (paper configuration, ``RANConfig()``):

    conv3x3(16) @96 -> maxpool @48 -> res(64) -> 2 x attention(64, 2 skip levels) @48
    -> res(128, /2) @24 -> 2 x attention(128, 1 skip level) @24
    -> res(256, /2) @12 -> 2 x attention(256, 0 skip levels) @12
    -> res(512, /2) + 2 x res(512) @6 -> global average pool -> linear -> one logit (sigmoid = P(GAN))

An attention module keeps a trunk (two residual blocks) and a soft-mask branch, a small U-Net that
down-samples by max-pooling and comes back by bilinear interpolation with skip connections; its output is
``(1 + mask) * trunk`` so the mask can only amplify features (attention residual learning).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from irisgan.models.layers import StridedPointwise
from irisgan.models.patch import PatchNet


@dataclass
class RANConfig:
    """Shape and initialisation of the network. The shape defaults are the paper's; tests build tiny ones."""

    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (64, 128, 256)
    attention_modules: tuple[int, ...] = (2, 2, 2)  # per stage
    mask_depths: tuple[int, ...] = (2, 1, 0)  # skip-connected down-samplings inside each soft mask
    head_channels: int = 512
    head_blocks: int = 3
    bottleneck_ratio: int = 4
    dropout: float = 0.0
    # The last conv of each residual branch starts at 0, so every block starts as the identity
    # (Goyal et al. 2017); it trains better than the paper's default init on the embedded data.
    zero_init_residual: bool = True
    # MixStyle (Zhou et al. 2021) after the stem and the first stage, applied to a training batch with this
    # probability: each pair's feature statistics mixed with another's. 0: off; eval is unaffected.
    mixstyle: float = 0.0

    def __post_init__(self) -> None:
        self.stage_channels = tuple(self.stage_channels)
        self.attention_modules = tuple(self.attention_modules)
        self.mask_depths = tuple(self.mask_depths)
        if not (len(self.stage_channels) == len(self.attention_modules) == len(self.mask_depths)):
            raise ValueError(
                "RANConfig: stage_channels, attention_modules and mask_depths need one entry per stage, got "
                f"{self.stage_channels}, {self.attention_modules}, {self.mask_depths}"
            )
        if self.head_blocks < 1:
            raise ValueError(f"RANConfig.head_blocks must be >= 1, got {self.head_blocks}")
        if not 0.0 <= self.mixstyle <= 1.0:
            raise ValueError(f"RANConfig.mixstyle is a probability in [0, 1], got {self.mixstyle}")

    def to_dict(self) -> dict:
        return asdict(self)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1), with a 1x1 projection when the
    shape changes, as in the reference RAN implementations."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, ratio: int = 4) -> None:
        super().__init__()
        mid = max(out_ch // ratio, 1)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.shortcut = StridedPointwise(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLUs on BatchNorm outputs: BN's backward needs its input, not its output, so this saves
        # one activation tensor per BN (less memory traffic, which bounds CPU training at batch 128).
        pre = F.relu(self.bn1(x), inplace=True)
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        out = self.conv3(F.relu(self.bn3(out), inplace=True))
        return out + shortcut


class SoftMaskBranch(nn.Module):
    """Bottom-up/top-down soft mask: ``depth`` skip-connected down-samplings plus one bottom level."""

    def __init__(self, ch: int, depth: int, ratio: int) -> None:
        super().__init__()
        self.depth = depth
        self.down = nn.ModuleList(PreActBottleneck(ch, ch, ratio=ratio) for _ in range(depth))
        self.skip = nn.ModuleList(PreActBottleneck(ch, ch, ratio=ratio) for _ in range(depth))
        self.bottom = nn.Sequential(
            PreActBottleneck(ch, ch, ratio=ratio), PreActBottleneck(ch, ch, ratio=ratio)
        )
        self.up = nn.ModuleList(PreActBottleneck(ch, ch, ratio=ratio) for _ in range(depth))
        self.to_mask = nn.Sequential(
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes, skips = [], []
        out = x
        for down, skip in zip(self.down, self.skip, strict=True):
            sizes.append(out.shape[-2:])
            out = down(F.max_pool2d(out, 3, stride=2, padding=1))
            skips.append(skip(out))
        sizes.append(out.shape[-2:])
        out = self.bottom(F.max_pool2d(out, 3, stride=2, padding=1))
        # Come back up level by level, adding the skip connection of the level we return to.
        for level in reversed(range(self.depth)):
            out = (
                F.interpolate(out, size=sizes[level + 1], mode="bilinear", align_corners=False) + skips[level]
            )
            out = self.up[level](out)
        out = F.interpolate(out, size=sizes[0], mode="bilinear", align_corners=False)
        return self.to_mask(out)


class AttentionModule(nn.Module):
    def __init__(self, ch: int, mask_depth: int, ratio: int = 4) -> None:
        super().__init__()
        self.pre = PreActBottleneck(ch, ch, ratio=ratio)
        self.trunk = nn.Sequential(
            PreActBottleneck(ch, ch, ratio=ratio), PreActBottleneck(ch, ch, ratio=ratio)
        )
        self.mask = SoftMaskBranch(ch, mask_depth, ratio)
        self.post = PreActBottleneck(ch, ch, ratio=ratio)
        self.last_mask: torch.Tensor | None = None  # kept only when record_masks is set (explanations)
        self.record_masks = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        trunk = self.trunk(x)
        mask = self.mask(x)
        if self.record_masks:
            self.last_mask = mask.detach()
        return self.post((1 + mask) * trunk)


class MixStyle(nn.Module):
    """Feature-statistics mixing (Zhou et al. 2021, "Domain Generalization with MixStyle").

    In training, with probability ``p`` per batch, each sample's per-channel feature mean and standard deviation
    are replaced by a mix of its own and another sample's of the batch (weight ~ Beta(alpha, alpha)). What a
    photo source leaves in the feature statistics of the early layers (exposure, colour, texture energy) then
    stops being a reliable cue, while the spatial pattern stays. The identity in eval mode.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or len(x) < 2 or float(torch.rand(())) >= self.p:
            return x
        n = len(x)
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((n, 1, 1, 1)).to(x.device, x.dtype)
        perm = torch.randperm(n, device=x.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * sig_mix + mu_mix


class ResidualAttentionNet(nn.Module):
    """RAN classifier: (N, 3, 96, 96) normalised pairs -> (N,) logits, sigmoid = P(GAN-generated)."""

    def __init__(self, config: RANConfig | dict | None = None) -> None:
        super().__init__()
        if config is None:
            config = RANConfig()
        elif isinstance(config, dict):
            config = RANConfig(**config)
        self.config = config
        c, r = config, config.bottleneck_ratio
        self.stem = nn.Sequential(
            nn.Conv2d(3, c.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(c.stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            *([MixStyle(c.mixstyle)] if c.mixstyle > 0 else []),
        )
        stages: list[nn.Module] = []
        in_ch = c.stem_channels
        for i, (ch, n_att, depth) in enumerate(
            zip(c.stage_channels, c.attention_modules, c.mask_depths, strict=True)
        ):
            blocks: list[nn.Module] = [PreActBottleneck(in_ch, ch, stride=1 if i == 0 else 2, ratio=r)]
            blocks += [AttentionModule(ch, depth, r) for _ in range(n_att)]
            if i == 0 and c.mixstyle > 0:  # appended: the blocks keep their checkpoint names
                blocks.append(MixStyle(c.mixstyle))
            stages.append(nn.Sequential(*blocks))
            in_ch = ch
        self.stages = nn.Sequential(*stages)
        head: list[nn.Module] = [PreActBottleneck(in_ch, c.head_channels, stride=2, ratio=r)]
        head += [
            PreActBottleneck(c.head_channels, c.head_channels, ratio=r) for _ in range(c.head_blocks - 1)
        ]
        head += [
            nn.BatchNorm2d(c.head_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.head = nn.Sequential(*head)
        self.dropout = nn.Dropout(c.dropout)
        self.fc = nn.Linear(c.head_channels, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc.bias)
        if self.config.zero_init_residual:  # Goyal et al. 2017: each residual block starts as the identity
            for m in self.modules():
                if isinstance(m, PreActBottleneck):
                    nn.init.zeros_(m.conv3.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x))).squeeze(1)

    def attention_modules(self) -> list[AttentionModule]:
        return [m for m in self.modules() if isinstance(m, AttentionModule)]

    def record_maps(self, on: bool = True) -> None:
        """Keep each soft mask of the next forward pass for ``explanation_maps`` (predict explain=true)."""
        for module in self.attention_modules():
            module.record_masks = on

    def explanation_maps(self) -> list[tuple[str, torch.Tensor]]:
        """(title, (N, 1, h, w) map) of the last recorded pass: each soft mask averaged over its channels."""
        return [
            (f"attention module {k + 1}", m.last_mask.float().mean(dim=1, keepdim=True))
            for k, m in enumerate(self.attention_modules())
        ]


def build_net(config: RANConfig | dict | None = None) -> nn.Module:
    """The network a ``model.net`` config describes: ``arch: patch`` the local-patch net (patch.py), else a RAN."""
    if isinstance(config, dict) and config.get("arch", "ran") == "patch":
        return PatchNet(config)
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k != "arch" or v != "ran"}
    return ResidualAttentionNet(config)


class NetEnsemble(nn.Module):
    """Several RANs of one configuration scoring the same pair: the mean of their logits.

    Runs trained on the same data with different seeds disagree most where each is unsure, on generators
    none of them saw; their mean is a steadier score. Explanations show the first member's attention.
    """

    def __init__(self, config: RANConfig | dict | None, members: int) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f"an ensemble needs 2 or more members, got {members}")
        self.members = nn.ModuleList(build_net(config) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)

    def attention_modules(self) -> list[AttentionModule]:
        return self.members[0].attention_modules()

    # Explanations show the first member's maps.
    def record_maps(self, on: bool = True) -> None:
        self.members[0].record_maps(on)

    def explanation_maps(self) -> list[tuple[str, torch.Tensor]]:
        return self.members[0].explanation_maps()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def estimate_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 96, 96)) -> int:
    """Forward FLOPs (2 x multiply-adds) of convs and linears, counted with hooks on a dummy input."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * out.numel() * k

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total // input_shape[0]


__all__ = ["RANConfig", "ResidualAttentionNet", "AttentionModule", "count_parameters", "estimate_flops"]
