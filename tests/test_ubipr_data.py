"""The UBIPR-format dataset and the synthetic eye generator that writes that format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from irisgan.data.pairs_format import write_image_atomic
from irisgan.data.ubipr import (
    SyntheticEyesDataModule,
    UBIPRDataModule,
    UBIPRDataset,
    build_transforms,
    detection_collate,
    iris_instances,
)
from irisgan.synthetic import eyes as synthetic_eyes
from irisgan.synthetic.eyes import CLASS_COLORS, generate_synthetic_eyes
from irisgan.synthetic.periocular_render import SyntheticEyesParams

IRIS = (0, 255, 0)


def write_sample(
    root: Path, name: str, size=(48, 64), discs=((30, 24, 10),), color=IRIS, image_ext=".png"
) -> None:
    """An image with dark discs and its mask with the discs painted ``color`` (x, y, radius)."""
    height, width = size
    image = np.full((height, width, 3), 200, np.uint8)
    mask = np.zeros((height, width, 3), np.uint8)
    for x, y, r in discs:
        cv2.circle(image, (x, y), r, (60, 40, 20), -1)
        cv2.circle(mask, (x, y), r, color, -1)
    write_image_atomic(root / "images" / f"{name}{image_ext}", image)
    write_image_atomic(root / "masks" / f"{name}.png", mask)


@pytest.fixture
def ubipr_root(tmp_path: Path) -> Path:
    root = tmp_path / "ubipr"
    for i in range(6):
        write_sample(root, f"eye{i}", discs=((20 + 3 * i, 24, 8 + i),), image_ext=".jpg" if i % 2 else ".png")
    return root


def assert_boxes_enclose_masks(target: dict) -> None:
    for box, mask in zip(target["boxes"], target["masks"], strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        x0, y0, x1, y1 = box.tolist()
        assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
        # tight: the box touches the mask on every side
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)


def test_dataset_contract(ubipr_root: Path) -> None:
    ds = UBIPRDataset(ubipr_root, IRIS, transforms=build_transforms(train=False))
    assert len(ds) == 6
    for index in range(len(ds)):
        image, target = ds[index]
        assert (
            isinstance(image, tv_tensors.Image)
            and image.dtype == torch.float32
            and image.shape == (3, 48, 64)
        )
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
        assert target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY and target[
            "boxes"
        ].canvas_size == (48, 64)
        assert isinstance(target["masks"], tv_tensors.Mask) and target["masks"].shape == (1, 48, 64)
        assert target["labels"].tolist() == [1] and target["labels"].dtype == torch.int64
        assert target["image_id"] == index
        assert target["iscrowd"].tolist() == [0]
        assert target["area"].tolist() == [float(target["masks"][0].sum())]
        assert_boxes_enclose_masks(target)


def test_train_transforms_keep_masks_and_boxes_consistent(ubipr_root: Path) -> None:
    torch.manual_seed(0)
    ds = UBIPRDataset(ubipr_root, IRIS, transforms=build_transforms(train=True, image_size=96))
    for index in range(len(ds)):
        image, target = ds[index]
        assert image.shape[-2:] == target["masks"].shape[-2:] == (96, 128)
        assert len(target["boxes"]) == len(target["masks"]) == len(target["labels"]) == len(target["area"])
        assert_boxes_enclose_masks(target)


def test_connected_components_become_instances(tmp_path: Path) -> None:
    root = tmp_path / "two"
    write_sample(
        root, "a", discs=((15, 20, 8), (48, 20, 8), (60, 44, 1))
    )  # the 1-px-radius blob is too small
    ds = UBIPRDataset(root, IRIS, transforms=build_transforms(train=False), min_instance_area=16)
    _, target = ds[0]
    assert len(target["masks"]) == 2
    assert sorted(target["boxes"][:, 0].tolist()) == [7.0, 40.0]
    assert_boxes_enclose_masks(target)


def test_gray_level_iris_colour_and_tolerance() -> None:
    mask = np.zeros((10, 10, 3), np.uint8)
    mask[2:6, 2:6] = 85
    mask[2:6, 6:8] = 88  # e.g. JPEG noise around the class value
    assert iris_instances(mask, (85, 85, 85), tolerance=0, min_area=1)[0].sum() == 16
    assert iris_instances(mask, (85, 85, 85), tolerance=4, min_area=1)[0].sum() == 24
    with pytest.raises(ValueError, match="iris_color"):
        UBIPRDataModule(root="x", iris_color=[1, 2])


def test_masks_without_iris_are_skipped_and_counted(ubipr_root: Path, caplog) -> None:
    write_sample(ubipr_root, "closed", discs=())
    write_sample(ubipr_root, "closed2", discs=((20, 20, 5),), color=(255, 0, 0))  # sclera only
    with caplog.at_level(logging.INFO, logger="irisgan.data.ubipr"):
        ds = UBIPRDataset(ubipr_root, IRIS)
    assert len(ds) == 6
    assert sorted(ds.skipped_no_iris) == ["closed", "closed2"]
    assert "skipped 2 of 8" in caplog.text


def test_no_iris_anywhere_is_an_error_naming_the_colour(tmp_path: Path) -> None:
    write_sample(tmp_path / "r", "a", discs=((20, 20, 5),), color=(9, 9, 9))
    with pytest.raises(ValueError, match=r"iris colour \[0, 255, 0\]"):
        UBIPRDataset(tmp_path / "r", IRIS)


def test_missing_mask_names_the_file(ubipr_root: Path) -> None:
    (ubipr_root / "masks" / "eye3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"eye3\.jpg.*masks/eye3\.png"):
        UBIPRDataset(ubipr_root, IRIS)


def test_size_mismatch_names_both_files(ubipr_root: Path) -> None:
    write_image_atomic(ubipr_root / "masks" / "eye2.png", np.zeros((40, 64, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"size mismatch: image .*eye2\.png is 64x48, mask .*eye2\.png is 64x40"
    ):
        UBIPRDataset(ubipr_root, IRIS)


@pytest.mark.parametrize("which", ["images/eye1.jpg", "masks/eye1.png"])
def test_unreadable_file_names_it(ubipr_root: Path, which: str) -> None:
    (ubipr_root / which).write_bytes(b"\xff\xd8 truncated, not an image")
    with pytest.raises(ValueError, match=rf"unreadable .*{which}"):
        UBIPRDataset(ubipr_root, IRIS)


def test_not_a_ubipr_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        UBIPRDataset(tmp_path, IRIS)


def test_seeded_split_is_disjoint_and_reproducible(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for i in range(20):
        write_sample(root, f"e{i:02d}", size=(24, 32), discs=((16, 12, 5),))

    def splits(seed):
        return UBIPRDataModule(str(root), IRIS, val_fraction=0.2, test_fraction=0.1, seed=seed).split_names()

    first = splits(0)
    assert [len(first[k]) for k in ("train", "val", "test")] == [14, 4, 2]
    assert sorted(first["train"] + first["val"] + first["test"]) == [f"e{i:02d}" for i in range(20)]
    assert splits(0) == first
    assert splits(1) != first


def test_datamodule_batches_with_detection_collate(ubipr_root: Path) -> None:
    dm = UBIPRDataModule(
        str(ubipr_root), list(IRIS), val_fraction=0.34, test_fraction=0.0, image_size=32, batch_size=3
    )
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert isinstance(images, tuple) and isinstance(targets, tuple) and len(images) == len(targets) == 3
    assert images[0].shape[-2] == 32 and targets[0]["masks"].shape[-2] == 32
    assert detection_collate([(1, "a"), (2, "b")]) == ((1, 2), ("a", "b"))
    with pytest.raises(ValueError, match="no test split"):
        dm.test_dataloader()


# ------------------------------------------------------------------ the synthetic generator


def test_synthetic_eyes_are_deterministic_and_well_formed() -> None:
    params = SyntheticEyesParams(count=1, image_size=64, seed=3)
    image, masks = synthetic_eyes.render_periocular(np.random.default_rng([3, 0]), params)
    again, masks_again = synthetic_eyes.render_periocular(np.random.default_rng([3, 0]), params)
    other, _ = synthetic_eyes.render_periocular(np.random.default_rng([3, 1]), params)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, again) and all(np.array_equal(masks[k], masks_again[k]) for k in masks)
    assert not np.array_equal(image, other)
    assert set(masks) == {"iris", "sclera", "eyebrow"}
    assert not (masks["iris"] & masks["sclera"]).any()
    assert masks["iris"].sum() > 50  # an open eye (closed_eye_fraction is small)


def test_synthetic_set_is_cached_and_readable(tmp_path: Path, monkeypatch) -> None:
    params = SyntheticEyesParams(count=8, image_size=48, seed=0, closed_eye_fraction=0.3)
    root = generate_synthetic_eyes(tmp_path, params)
    index = json.loads((root / "index.json").read_text())
    assert index["version"] == synthetic_eyes.GENERATOR_VERSION and len(index["names"]) == 8
    assert f"v{synthetic_eyes.GENERATOR_VERSION}" in root.name and "n8" in root.name
    mask = cv2.cvtColor(cv2.imread(str(root / "masks" / "eye_00000.png")), cv2.COLOR_BGR2RGB)
    assert {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0)} <= {(0, 0, 0), *CLASS_COLORS.values()}

    def fail(*args, **kwargs):
        raise AssertionError("a complete cached set must not be drawn again")

    monkeypatch.setattr(synthetic_eyes, "render_periocular", fail)
    assert generate_synthetic_eyes(tmp_path, params) == root
    (root / "index.json").unlink()  # an interrupted generation: no index, so it is drawn again
    with pytest.raises(AssertionError, match="must not be drawn again"):
        generate_synthetic_eyes(tmp_path, params)


def test_synthetic_datamodule_skips_closed_eyes(tmp_path: Path) -> None:
    dm = SyntheticEyesDataModule(
        str(tmp_path),
        count=12,
        image_size=48,
        seed=1,
        closed_eye_fraction=0.5,
        batch_size=4,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    dm.prepare_data()
    dm.setup("fit")
    skipped = sum(len(ds.skipped_no_iris) for ds in dm.splits.values())
    kept = sum(len(ds) for ds in dm.splits.values())
    assert skipped > 0 and kept + skipped == 12
    images, targets = next(iter(dm.train_dataloader()))
    assert all(len(t["boxes"]) == 1 for t in targets)
