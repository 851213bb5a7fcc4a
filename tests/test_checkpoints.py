"""One checkpoint loader: every irisgan checkpoint is recognised by the kind stamped into it."""

import pytest
import torch

from irisgan.checkpoints import CheckpointError, load_checkpoint, stamp_kind


def _save(path, kind=None, **extra):
    checkpoint = {"state_dict": {"threshold": torch.tensor(0.5)}, **extra}
    if kind:
        stamp_kind(checkpoint, kind)
    torch.save(checkpoint, path)
    return path


def test_each_kind_loads_as_itself_and_is_refused_as_the_other(tmp_path):
    classifier = _save(tmp_path / "ran.ckpt", "classifier")
    segmenter = _save(tmp_path / "seg.ckpt", "segmenter")
    assert load_checkpoint(classifier, "classifier")["irisgan"] == {"kind": "classifier"}
    assert load_checkpoint(segmenter, "segmenter")["irisgan"] == {"kind": "segmenter"}
    with pytest.raises(
        CheckpointError, match=r"is a classifier checkpoint, not a segmenter .*stage=segmenter"
    ):
        load_checkpoint(classifier, "segmenter")
    with pytest.raises(CheckpointError, match=r"is a segmenter checkpoint, not a classifier .*stage=ran"):
        load_checkpoint(segmenter, "classifier")


def test_unstamped_files(tmp_path):
    # A classifier from before the stamp: its RAN hyper-parameters and threshold say what it is.
    legacy = _save(tmp_path / "legacy.ckpt", hyper_parameters={"net": {}})
    assert load_checkpoint(legacy, "classifier")["hyper_parameters"] == {"net": {}}
    other = _save(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an irisgan checkpoint"):
        load_checkpoint(other, "classifier")
    with pytest.raises(ValueError, match="unknown"):
        stamp_kind({}, "detector")


def test_init_network_takes_the_network_only_and_refuses_another_shape(tmp_path):
    from irisgan.checkpoints import init_network
    from irisgan.training.classifier import RANClassifier
    from tests.conftest import TINY_NET

    torch.manual_seed(0)
    source = RANClassifier(net=TINY_NET)
    source.mean.fill_(0.1)
    source.threshold.fill_(0.9)
    checkpoint = {"state_dict": source.state_dict(), "hyper_parameters": {"net": TINY_NET}}
    stamp_kind(checkpoint, "classifier")
    torch.save(checkpoint, tmp_path / "pre.ckpt")

    torch.manual_seed(1)
    target = RANClassifier(net=TINY_NET)
    assert init_network(target, tmp_path / "pre.ckpt") == len(source.net.state_dict())
    for key, value in source.net.state_dict().items():
        assert torch.equal(target.net.state_dict()[key], value), key
    # normalisation and threshold are the new run's, not the pretrained one's
    assert float(target.threshold) == 0.5 and torch.all(target.mean == 0.5)

    wider = RANClassifier(net={**TINY_NET, "head_channels": TINY_NET["head_channels"] * 2})
    with pytest.raises(CheckpointError, match="does not match model.net"):
        init_network(wider, tmp_path / "pre.ckpt")
