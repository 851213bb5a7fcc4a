"""Reading irisgan checkpoints: one loader that recognises each by the kind stamped into it when saved.

Each LightningModule stamps ``checkpoint["irisgan"] = {"kind": ...}`` in ``on_save_checkpoint``; a loader
asks for the kind it needs and gets a message naming what the file is otherwise. Files are read with
``torch.load(weights_only=True)``: no pickled code runs.

A checkpoint names no Python class by pickle, but its hyper-parameters keep the ``_target_`` strings of the
loss, optimizer and scheduler configs, which are instantiated when a module is rebuilt from them (Lightning's
``load_from_checkpoint``, a schedule resumed). ``current_target`` maps the module paths those strings had
before the package was split into subpackages onto today's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

CLASSIFIER = "classifier"
SEGMENTER = "segmenter"
TRAINED_BY = {
    CLASSIFIER: "python -m irisgan.train stage=ran",
    SEGMENTER: "python -m irisgan.train stage=segmenter",
}


# Where the classes a config can name as ``_target_`` lived before the move into subpackages: a prefix of an
# old dotted path -> its replacement. Stored hyper-parameters (e.g. ``loss._target_:
# irisgan.losses.BCEAUCLoss``) go through ``upgrade_targets`` before they are instantiated.
MOVED_TARGETS = {
    "irisgan.classifier.": "irisgan.training.classifier.",
    "irisgan.losses.": "irisgan.training.losses.",
    "irisgan.optim.": "irisgan.training.optim.",
    "irisgan.callbacks.": "irisgan.training.callbacks.",
    "irisgan.segmenter.SegmenterModule": "irisgan.training.segmenter.SegmenterModule",
    "irisgan.iris_locator.": "irisgan.extraction.iris_locator.",
    "irisgan.data.synthetic_eyes.SyntheticEyesDataModule": "irisgan.data.ubipr.SyntheticEyesDataModule",
}


def current_target(target: str) -> str:
    """``target`` (a dotted ``_target_`` path) with an old module path replaced by where it lives now."""
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def upgrade_targets(node):
    """A copy of a stored config node (nested dicts and lists) whose ``_target_`` strings are current."""
    if isinstance(node, Mapping):
        return {
            k: current_target(v) if k == "_target_" and isinstance(v, str) else upgrade_targets(v)
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return type(node)(upgrade_targets(v) for v in node)
    return node


class CheckpointError(ValueError):
    """The file is not an irisgan checkpoint of the kind asked for."""


def stamp_kind(checkpoint: dict, kind: str) -> None:
    if kind not in TRAINED_BY:
        raise ValueError(f"checkpoint kind {kind!r} unknown; valid choices: {list(TRAINED_BY)}")
    checkpoint["irisgan"] = {"kind": kind}


def checkpoint_kind(checkpoint: dict) -> str | None:
    stamp = checkpoint.get("irisgan")
    kind = stamp.get("kind") if isinstance(stamp, dict) else None
    if kind is None and "threshold" in checkpoint["state_dict"]:
        hparams = checkpoint.get("hyper_parameters") or {}
        if "net" in hparams:  # a classifier saved before classifiers were stamped
            return CLASSIFIER
    return kind


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """The checkpoint dict at ``path``, if it is an irisgan checkpoint of ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure here means "not a checkpoint we can read safely"
        raise CheckpointError(
            f"{path} is not a checkpoint irisgan can load safely (weights_only=True): {type(err).__name__}: "
            f"{str(err).splitlines()[0][:300]}"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    found = checkpoint_kind(checkpoint)
    if found != kind:
        what = f"a {found} checkpoint" if found else "not an irisgan checkpoint (no kind stamp)"
        raise CheckpointError(
            f"{path} is {what}, not a {kind} checkpoint; this needs one from `{TRAINED_BY[kind]}`"
        )
    return checkpoint


def init_network(model, path: str | Path) -> int:
    """Start ``model.net`` from the network of a classifier checkpoint or exported weights (fine-tuning).

    Only the network's weights are taken: normalisation statistics and the threshold come from the new run's
    data. Returns the number of tensors loaded; a network of another shape is refused with the names.
    """
    state = load_checkpoint(path, CLASSIFIER)["state_dict"]
    net_state = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    own = model.net.state_dict()
    mismatched = sorted(
        k for k in own if k not in net_state or tuple(net_state[k].shape) != tuple(own[k].shape)
    )
    if mismatched:
        raise CheckpointError(
            f"init_weights={path}: its network does not match model.net ({len(mismatched)} tensors differ, "
            f"e.g. {mismatched[:3]}); pretrain with the same model= choice"
        )
    model.net.load_state_dict(net_state)
    return len(net_state)
