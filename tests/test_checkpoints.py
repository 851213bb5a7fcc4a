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


# What conf/ named as ``_target_`` before the package moved into subpackages: any of these can sit in the
# hyper-parameters of an older checkpoint (the loss, optimizer and scheduler entries are instantiated again
# when a module is rebuilt from them).
OLD_TARGETS = [
    "irisgan.classifier.RANClassifier",
    "irisgan.segmenter.SegmenterModule",
    "irisgan.iris_locator.SegmenterIrisLocator",
    "irisgan.iris_locator.HoughIrisLocator",
    "irisgan.optim.WarmupCosineLR",
    "irisgan.callbacks.ProgressBar",
    "irisgan.callbacks.ClassifierReport",
    "irisgan.callbacks.PairsThroughput",
    "irisgan.losses.BCELoss",
    "irisgan.losses.BCEAUCLoss",
    "irisgan.data.synthetic_eyes.SyntheticEyesDataModule",
    "irisgan.data.ubipr.UBIPRDataModule",
    "irisgan.data.face_folders.FaceFoldersDataModule",
    "irisgan.data.pairs.IrisPairsDataModule",
]


@pytest.mark.parametrize("old", OLD_TARGETS)
def test_old_targets_resolve_to_where_the_class_lives_now(old):
    from hydra.utils import get_class

    from irisgan.checkpoints import current_target

    cls = get_class(current_target(old))
    assert cls.__name__ == old.rsplit(".", 1)[1]
    assert current_target(f"{cls.__module__}.{cls.__qualname__}") == f"{cls.__module__}.{cls.__qualname__}"


def test_upgrade_targets_rewrites_nested_targets_only():
    from irisgan.checkpoints import upgrade_targets

    node = {
        "_target_": "irisgan.optim.WarmupCosineLR",
        "warmup_steps": 5,
        "note": "irisgan.losses.BCELoss",  # only _target_ values are paths to rewrite
        "inner": [{"_target_": "irisgan.losses.BCELoss"}, {"_target_": "torch.optim.SGD"}],
    }
    assert upgrade_targets(node) == {
        "_target_": "irisgan.training.optim.WarmupCosineLR",
        "warmup_steps": 5,
        "note": "irisgan.losses.BCELoss",
        "inner": [{"_target_": "irisgan.training.losses.BCELoss"}, {"_target_": "torch.optim.SGD"}],
    }
    assert node["_target_"] == "irisgan.optim.WarmupCosineLR"  # the stored hyper-parameters stay as they were


def test_classifier_checkpoint_from_before_the_move_loads_and_trains(tmp_path):
    """A Lightning checkpoint whose stored loss names ``irisgan.losses``: Lightning's own loader rebuilds the
    module with its loss, the schedule is built again, and irisgan's loader scores with it."""
    import lightning

    from irisgan.inference import load_classifier
    from irisgan.training.classifier import RANClassifier
    from irisgan.training.losses import BCEAUCLoss
    from tests.conftest import TINY_NET

    hparams = {
        "net": TINY_NET,
        "loss": {"_target_": "irisgan.losses.BCEAUCLoss", "auc_weight": 1.0, "gamma": 0.5, "p": 2.0},
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.002},
        "scheduler": {"_target_": "irisgan.optim.WarmupCosineLR", "warmup_steps": 1, "total_steps": 4},
        "threshold_method": "gmean",
    }
    torch.manual_seed(0)
    source = RANClassifier(net=TINY_NET)
    path = tmp_path / "old.ckpt"
    checkpoint = {
        "state_dict": source.state_dict(),
        "hyper_parameters": hparams,
        "hparams_name": "kwargs",
        "pytorch-lightning_version": lightning.__version__,
    }
    stamp_kind(checkpoint, "classifier")
    torch.save(checkpoint, path)

    model = RANClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert isinstance(model.criterion, BCEAUCLoss)
    assert model.hparams.loss["_target_"] == "irisgan.losses.BCEAUCLoss"  # stored as it was
    from irisgan.training.optim import WarmupCosineLR, configure_optimization

    built = configure_optimization(
        model.parameters(), model.hparams.optimizer, model.hparams.scheduler, lambda: 4
    )
    assert isinstance(built["lr_scheduler"]["scheduler"], WarmupCosineLR)
    scored = load_classifier(path)
    for key, value in source.net.state_dict().items():
        assert torch.equal(scored.net.state_dict()[key], value), key


def _strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_shipped_weights_load_and_name_no_module():
    """The shipped detector holds tensors and plain values only: no class is pickled and no string in it is a
    module path, so moving modules cannot break it."""
    from irisgan.inference import SHIPPED_WEIGHTS, load_classifier
    from irisgan.models.face_cue import FaceView

    if not SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"no shipped detector at {SHIPPED_WEIGHTS}")
    stored = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    assert set(stored) == {"state_dict", "hyper_parameters", "meta", "irisgan"}
    assert not [
        s
        for s in _strings({k: v for k, v in stored.items() if k != "state_dict"})
        if s.startswith("irisgan.")
    ]
    model = load_classifier(None)
    assert model.hparams.members == stored["hyper_parameters"].get("members", 1)
    # `make model` builds it with the face cue, its threshold holding each real source to 3% on validation
    assert model.face_cue is not None and model.decision["source_fpr"] == 0.03
    # the descriptor's parts and the face network's inner layers (the texture part is an option)
    assert model.face_cue.texture is None and model.face_cue.view == FaceView(inner=True)
    # and the distance from its training faces beyond which a face is unfamiliar, set on the real validation photos
    assert model.decision["max_novelty"] > 0 and model.decision["novelty_quantile"] == 0.95
    # and how vivid a face may look before it is never called real (vivid copies of its real training photos)
    assert model.face_cue.vivid is not None and model.decision["vivid_quantile"] == 0.95
    assert {"threshold", "band"} <= model.decision["face_only"].keys()  # for photos without an iris pair
