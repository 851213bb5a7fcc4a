"""Turning config nodes into objects.

LightningModules and DataModules are built from *plain* containers (``_target_`` plus keyword arguments,
nested nodes left as dicts) so that what ``save_hyperparameters`` stores in a checkpoint is primitives only:
checkpoints then load with ``torch.load(weights_only=True)``, and optimizer/loss configs are instantiated
inside the module where their parameters live.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf


def build_plain(node: DictConfig | dict, **extra: Any) -> Any:
    kwargs = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = kwargs.pop("_target_", None)
    if target is None:
        raise ValueError(f"config node has no _target_: {kwargs}")
    return get_method(target)(**kwargs, **extra)


def build_each(node: DictConfig | dict | None) -> list[Any]:
    """Instantiate every entry of a name -> config mapping (callbacks, loggers); null entries are skipped."""
    if not node:
        return []
    return [instantiate(sub) for sub in node.values() if sub is not None and "_target_" in sub]
