"""Optimizer and learning-rate schedule from the ``optimizer`` and ``scheduler`` config groups.

Both stages build theirs here, so ``optimizer=`` and ``scheduler=`` mean the same for the RAN and the
segmenter. The configs arrive as plain ``_target_`` dicts (what ``save_hyperparameters`` stores).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from hydra.utils import instantiate

from irisgan.checkpoints import upgrade_targets


class WarmupCosineLR(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up over ``warmup_steps``, then cosine annealing to 0 at ``total_steps``.

    Detection training from scratch needs the warm-up: the first steps' RPN and box losses are large and
    can diverge.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> None:
        warmup = int(warmup_steps)
        total = max(int(total_steps), warmup + 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))

        super().__init__(optimizer, factor)


def configure_optimization(
    params: Iterable[torch.nn.Parameter],
    optimizer: dict | None,
    scheduler: dict | None,
    total_steps: Callable[[], int],
):
    """What ``LightningModule.configure_optimizers`` returns for these configs.

    ``scheduler`` carries ``interval`` (``epoch``/``step``) and optionally ``monitor`` beside its
    ``_target_``; ``total_steps: null`` is filled with ``total_steps()`` (the run's optimizer steps).
    A ``_target_`` stored by an older version (``irisgan.optim.WarmupCosineLR``) is mapped to where it lives now.
    """
    if not optimizer:
        raise ValueError(
            "model.optimizer is not set: choose one from the `optimizer` config group (conf/optimizer)"
        )
    if "_target_" not in optimizer:
        raise ValueError(
            f"model.optimizer {dict(optimizer)} has no _target_: choose one from the `optimizer` config group "
            "(conf/optimizer)"
        )
    built = instantiate(upgrade_targets(optimizer), params=params)
    if not scheduler:
        return built
    settings = upgrade_targets(dict(scheduler))
    interval = settings.pop("interval", "epoch")
    monitor = settings.pop("monitor", None)
    if "total_steps" in settings and settings["total_steps"] is None:
        settings["total_steps"] = int(total_steps())
    lr_config = {"scheduler": instantiate(settings, optimizer=built), "interval": interval}
    if monitor:
        lr_config["monitor"] = monitor
    return {"optimizer": built, "lr_scheduler": lr_config}
