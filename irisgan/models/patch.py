"""A local-patch classifier: a shallow fully convolutional net whose every output sees only a small patch of
the pair, and whose pair score is the mean of those patch logits (Chai et al. 2020, "What makes fake images
detectable? Understanding properties that generalize").

The RAN sees the whole pair, so it can learn what a source's eyes look like as a whole (the lighting, the
catch-light's place, the eye colour), which is what sets an unseen studio's portraits apart from FFHQ's, not
what makes a face generated. A net with a receptive field of a few tens of pixels can only use local texture:
the traces a generator leaves everywhere in the iris and the skin around it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from irisgan.models.layers import StridedPointwise


@dataclass
class PatchConfig:
    """Widths, blocks per stage (the first block of every stage after the first halves the resolution)."""

    arch: str = "patch"
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 2, 1)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.stage_channels = tuple(self.stage_channels)
        self.blocks = tuple(self.blocks)
        if self.arch != "patch":
            raise ValueError(f"PatchConfig.arch must be 'patch', got {self.arch!r}")
        if len(self.stage_channels) != len(self.blocks) or not self.blocks or min(self.blocks) < 1:
            raise ValueError(
                "PatchConfig: stage_channels and blocks need one entry per stage, each stage one block or more; "
                f"got {self.stage_channels}, {self.blocks}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def block_layout(self) -> list[tuple[int, int]]:
        """(width, stride) of each residual block in order: the first block of every stage after the first
        halves the resolution."""
        return [
            (ch, 2 if stage > 0 and block == 0 else 1)
            for stage, (ch, n) in enumerate(zip(self.stage_channels, self.blocks, strict=True))
            for block in range(n)
        ]

    @property
    def receptive_field(self) -> int:
        """Side in input pixels of the patch one output logit sees (3x3 convolutions throughout)."""
        field, jump = 3, 1  # the stem
        for _, stride in self.block_layout():
            field += 2 * jump
            jump *= stride
            field += 2 * jump
        return field


class BasicBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convolutions (He et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut = StridedPointwise(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PatchNet(nn.Module):
    """(N, 3, H, W) normalised pairs -> (N,) logits: the mean of a map of patch logits (``patch_logits``)."""

    def __init__(self, config: PatchConfig | dict | None = None) -> None:
        super().__init__()
        self.config = c = config if isinstance(config, PatchConfig) else PatchConfig(**(config or {}))
        self.stem = nn.Conv2d(3, c.stem_channels, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_ch = c.stem_channels
        for ch, stride in c.block_layout():
            blocks.append(BasicBlock(in_ch, ch, stride))
            in_ch = ch
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(in_ch)
        self.dropout = nn.Dropout2d(c.dropout)
        self.classifier = nn.Conv2d(in_ch, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.classifier.bias)
        for m in self.modules():  # each residual branch starts as the identity, as the RAN's do
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.conv2.weight)
        self.recording = False
        self.last_map: torch.Tensor | None = None

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) logits, one per patch of ``config.receptive_field`` pixels."""
        features = torch.relu(self.norm(self.blocks(self.stem(x))))
        return self.classifier(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.patch_logits(x)
        if self.recording:
            self.last_map = torch.sigmoid(logits.detach())
        return logits.mean(dim=(1, 2, 3))

    def attention_modules(self) -> list:
        return []  # no soft masks

    def record_maps(self, on: bool = True) -> None:
        """Keep the patch scores of the next forward pass for ``explanation_maps`` (predict explain=true)."""
        self.recording = on

    def explanation_maps(self) -> list[tuple[str, torch.Tensor]]:
        """The last recorded pass's P(GAN) of each patch: where in the pair the score comes from."""
        return [(f"P(GAN) per {self.config.receptive_field}-px patch", self.last_map)]
