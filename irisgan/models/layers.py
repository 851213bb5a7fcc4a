"""Layers shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as the input subsampled then a stride-1 1x1 convolution: the
    same function and the same weights (and checkpoint keys) as ``nn.Conv2d(in_ch, out_ch, 1, stride=stride)``.

    The direct form's weight gradient corrupts the heap (``double free or corruption``, a crash) in torch
    2.14.1's oneDNN kernels on AVX-512 CPUs without AMX (AMD EPYC) for channels-last inputs of 2-15 channels
    and outputs of up to 16: the narrow networks the tests and the smoke run build.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(in_ch, out_ch, 1, bias=False)
        self.step = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[..., :: self.step, :: self.step])
