"""Batches index-selected from tensors that already live on the training device.

On a GPU, a ``DataLoader`` over in-memory pairs still costs per-item Python (``__getitem__``, collate) and a
host-to-device copy every step; at batch 128 that is a large share of a step that the GPU finishes in
milliseconds. ``DeviceBatches`` keeps the uint8 pairs on the device, draws one permutation per epoch and
hands out ``index_select`` slices of it: one gather kernel per tensor and batch, no workers, no copies.

The permutation is drawn on the CPU with a ``torch.Generator`` seeded from ``(seed, epoch)``, so the order
depends on the seed and the epoch only: the same on every device, and the same after a resume. Lightning
calls ``loader.sampler.set_epoch(epoch)`` at the start of every epoch (its hook for ``DistributedSampler``);
this loader is its own sampler, so that call lands in :meth:`DeviceBatches.set_epoch`. Outside Lightning,
each pass over the loader moves on to the next epoch by itself.

Several processes (DDP) each take every ``num_replicas``-th index of the same permutation, padded to a
multiple of ``num_replicas`` like ``DistributedSampler`` does, so that every process runs the same number
of steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class DeviceBatches:
    """An iterable of ``(images[idx], labels[idx])`` batches, with ``len()`` and ``set_epoch()``."""

    batch_sampler = None  # Lightning reads DataLoader's sampler attributes: this one batches by itself

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        device: torch.device | str = "cpu",
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.device = torch.device(device)
        # One copy, made once; a no-op when the tensors already live there.
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    @property
    def sampler(self) -> DeviceBatches:
        """Lightning looks for ``set_epoch`` on ``loader.sampler``: the loader is its own sampler."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _local_count(self) -> int:
        return math.ceil(len(self.labels) / self.num_replicas)

    def __len__(self) -> int:
        return math.ceil(self._local_count() / self.batch_size)

    def indices(self) -> torch.Tensor:
        """This process's indices for the current epoch (CPU, int64)."""
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self._local_count() * self.num_replicas
        if total > n:  # pad by wrapping around so that every process gets as many items
            order = torch.cat([order, order[: total - n]])
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A generator: the order is drawn at the first batch, not at iter(). Lightning creates the epoch's
        # iterator before it calls set_epoch (a DataLoader's sampler is lazy too).
        order = self.indices().to(self.device)  # 8 bytes a pair, once an epoch
        self.epoch += 1  # the next pass draws a new order unless set_epoch() says otherwise
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)
