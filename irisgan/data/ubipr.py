"""The UBIPR format: eye images with colour-coded class masks, as Mask R-CNN detection samples.

On disk: ``ROOT/images/NAME.jpg|jpeg|png|bmp`` and ``ROOT/masks/NAME.png``, one mask per image, the same
size, each class painted in one RGB colour (which colour is config: copies of UBIPR differ; a
grayscale mask works too, its value ``v`` is the colour ``[v, v, v]``). Only the iris class is used:
its pixels are split into connected components, one instance each (a tiny component, e.g. a sliver
between lashes, is dropped), with its box from ``masks_to_boxes``, label 1, area and ``iscrowd`` 0,
as in the torchvision detection fine-tuning tutorial.

Images whose mask has no iris (a closed eye) are skipped and counted, not an error. A missing mask,
an image and mask of different sizes, or an unreadable file is an error naming the file, raised when
the dataset is built, before any training starts.

``SyntheticEyesDataModule`` is the same DataModule over a generated set (``irisgan.synthetic.eyes``), the
segmenter's embedded default data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from irisgan.synthetic.eyes import CLASS_COLORS, generate_synthetic_eyes
from irisgan.synthetic.periocular_render import SyntheticEyesParams

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IRIS_LABEL = 1


def detection_collate(batch):
    """Detection batches are lists: images differ in size and in their number of instances."""
    return tuple(zip(*batch, strict=True))


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"unreadable image file: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"unreadable image file: {path} ({err})") from err


def iris_instances(
    mask_rgb: np.ndarray, iris_color: Sequence[int], tolerance: int = 0, min_area: int = 16
) -> np.ndarray:
    """Colour-coded mask (HxWx3) -> boolean instance masks (N x H x W), one per connected iris region."""
    color = np.asarray(iris_color, dtype=np.int16)
    iris = (np.abs(mask_rgb.astype(np.int16) - color).max(axis=2) <= tolerance).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(iris, connectivity=8)
    keep = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_area]
    if not keep:
        return np.zeros((0, *iris.shape), dtype=bool)
    return np.stack([labels == k for k in keep])


def normalize_color(color: int | Sequence[int], name: str = "iris_color") -> tuple[int, int, int]:
    if isinstance(color, int):
        color = (color, color, color)
    color = tuple(int(c) for c in color)
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        raise ValueError(f"{name} must be a gray value 0-255 or an [R, G, B] triple, got {color}")
    return color


class UBIPRDataset(Dataset):
    """Eye images and their iris instances, as ``(tv_tensors.Image, target)`` detection samples.

    ``target`` holds ``boxes`` (``tv_tensors.BoundingBoxes``, XYXY), ``masks`` (``tv_tensors.Mask``, N x H x W
    uint8), ``labels`` (1 = iris), ``image_id``, ``area`` and ``iscrowd``, after ``transforms`` (a v2
    transform, applied to image and target together so boxes and masks stay consistent). Boxes are
    recomputed from the transformed masks, so they are tight; instances a crop removed are dropped.
    """

    def __init__(
        self,
        root: str | Path,
        iris_color: int | Sequence[int] = (0, 255, 0),
        names: Sequence[str] | None = None,
        transforms=None,
        color_tolerance: int = 0,
        min_instance_area: int = 16,
    ):
        self.root = Path(root)
        self.iris_color = normalize_color(iris_color)
        self.color_tolerance = color_tolerance
        self.min_instance_area = min_instance_area
        self.transforms = transforms
        image_dir, mask_dir = self.root / "images", self.root / "masks"
        if not image_dir.is_dir() or not mask_dir.is_dir():
            raise FileNotFoundError(
                f"{self.root} is not a UBIPR-format folder: it needs images/ and masks/ inside"
            )
        images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if names is None:
            names = sorted(images)
        self.samples: list[tuple[str, Path, Path]] = []
        self.skipped_no_iris: list[str] = []
        for name in names:
            if name not in images:
                raise FileNotFoundError(f"no image for {name!r} in {image_dir} (looked for {IMAGE_SUFFIXES})")
            image_path, mask_path = images[name], mask_dir / f"{name}.png"
            if not mask_path.is_file():
                raise FileNotFoundError(f"mask missing for image {image_path}: expected {mask_path}")
            mask = cv2.imread(str(mask_path), cv2.IMREAD_COLOR)
            if mask is None:
                raise ValueError(f"unreadable mask file: {mask_path}")
            image_size = _image_size(image_path)
            if image_size != (mask.shape[1], mask.shape[0]):
                raise ValueError(
                    f"size mismatch: image {image_path} is {image_size[0]}x{image_size[1]}, "
                    f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} (width x height)"
                )
            if not len(self._instances(cv2.cvtColor(mask, cv2.COLOR_BGR2RGB))):
                self.skipped_no_iris.append(name)
                continue
            self.samples.append((name, image_path, mask_path))
        if self.skipped_no_iris:
            log.info(
                "%s: skipped %d of %d images whose mask has no iris colour %s (closed or hidden eyes)",
                self.root,
                len(self.skipped_no_iris),
                len(names),
                list(self.iris_color),
            )
        if not self.samples:
            raise ValueError(
                f"{self.root}: none of {len(names)} masks contains the iris colour "
                f"{list(self.iris_color)} (tolerance {color_tolerance}); check data.iris_color"
            )

    def _instances(self, mask_rgb: np.ndarray) -> np.ndarray:
        return iris_instances(mask_rgb, self.iris_color, self.color_tolerance, self.min_instance_area)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        name, image_path, mask_path = self.samples[index]
        image = _read_rgb(image_path)
        instances = self._instances(_read_rgb(mask_path))
        height, width = image.shape[:2]
        masks = torch.from_numpy(instances.astype(np.uint8))
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                masks_to_boxes(masks), format="XYXY", canvas_size=(height, width)
            ),
            "masks": tv_tensors.Mask(masks),
            "labels": torch.full((len(masks),), IRIS_LABEL, dtype=torch.int64),
            "image_id": index,
        }
        img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        return img, self._finish_target(target)

    @staticmethod
    def _finish_target(target: dict) -> dict:
        masks = target["masks"]
        keep = masks.flatten(1).any(dim=1).bool()  # any() of uint8 is uint8
        masks = tv_tensors.wrap(masks[keep], like=masks)
        boxes = masks_to_boxes(masks) if len(masks) else torch.zeros((0, 4))
        canvas = tuple(masks.shape[-2:])
        return {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=canvas),
            "masks": masks,
            "labels": target["labels"][keep],
            "image_id": target["image_id"],
            "area": masks.flatten(1).sum(dim=1).float(),
            "iscrowd": torch.zeros(int(keep.sum()), dtype=torch.int64),
        }


def build_transforms(train: bool, image_size: int | None = None, augment: dict | None = None) -> v2.Compose:
    """v2 transforms on (image, target): resize the short side to ``image_size`` (None: keep), and for
    training flip, scale jitter and colour jitter. Output images are float in [0, 1]."""
    augment = augment or {}
    steps = []
    if image_size is not None:
        steps.append(v2.Resize(image_size, antialias=True))
    if train:
        if augment.get("hflip", 0.5) > 0:
            steps.append(v2.RandomHorizontalFlip(augment.get("hflip", 0.5)))
        scale = augment.get("scale", [0.8, 1.2])
        if scale is not None:
            steps.append(
                v2.RandomAffine(
                    degrees=augment.get("degrees", 10),
                    scale=tuple(scale),
                    translate=tuple(augment.get("translate", [0.08, 0.08])),
                )
            )
        jitter = augment.get("color_jitter", [0.3, 0.3, 0.3, 0.03])  # brightness, contrast, saturation, hue
        if jitter is not None:
            steps.append(v2.ColorJitter(*jitter))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


class UBIPRDataModule(L.LightningDataModule):
    """Train/val/test splits of one UBIPR-format folder, split by a seeded permutation of the names."""

    def __init__(
        self,
        root: str,
        iris_color: int | list[int] = (0, 255, 0),
        color_tolerance: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        image_size: int | None = 128,
        augment: dict | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        min_instance_area: int = 16,
    ):
        super().__init__()
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction {val_fraction} + test_fraction {test_fraction} must leave training data"
            )
        self.root = root
        self.iris_color = normalize_color(iris_color)
        self.color_tolerance = color_tolerance
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.image_size = image_size
        self.augment = dict(augment or {})
        self.batch_size, self.num_workers = batch_size, num_workers
        self.min_instance_area = min_instance_area
        self.splits: dict[str, UBIPRDataset] = {}

    def dataset_root(self) -> Path:
        return Path(self.root)

    def split_names(self) -> dict[str, list[str]]:
        image_dir = self.dataset_root() / "images"
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{self.dataset_root()} is not a UBIPR-format folder: no images/ inside")
        names = sorted(p.stem for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        order = np.random.default_rng(self.seed).permutation(len(names))
        n_val, n_test = round(len(names) * self.val_fraction), round(len(names) * self.test_fraction)
        shuffled = [names[i] for i in order]
        return {
            "val": shuffled[:n_val],
            "test": shuffled[n_val : n_val + n_test],
            "train": shuffled[n_val + n_test :],
        }

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for split, names in self.split_names().items():
            if not names:
                continue
            self.splits[split] = UBIPRDataset(
                self.dataset_root(),
                self.iris_color,
                names,
                build_transforms(split == "train", self.image_size, self.augment),
                self.color_tolerance,
                self.min_instance_area,
            )
        skipped = sum(len(ds.skipped_no_iris) for ds in self.splits.values())
        log.info(
            "UBIPR data %s: %s images; %d skipped without an iris",
            self.dataset_root(),
            {k: len(v) for k, v in self.splits.items()},
            skipped,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            raise ValueError(f"no {split} split: the {split} fraction of {self.dataset_root()} is empty")
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=detection_collate,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SyntheticEyesDataModule(UBIPRDataModule):
    """The UBIPR DataModule over a generated (and cached) synthetic set: the segmenter's default data."""

    def __init__(
        self,
        cache_dir: str,
        count: int = 2400,
        image_size: int = 128,
        seed: int = 0,
        closed_eye_fraction: float = 0.03,
        **datamodule_kwargs,
    ):
        datamodule_kwargs.setdefault("image_size", None)  # the images are generated at their final size
        super().__init__(root=str(cache_dir), iris_color=CLASS_COLORS["iris"], seed=seed, **datamodule_kwargs)
        self.params = SyntheticEyesParams(
            count=count, image_size=image_size, seed=seed, closed_eye_fraction=closed_eye_fraction
        )
        self.cache_dir = Path(cache_dir)

    def dataset_root(self) -> Path:
        return self.cache_dir / self.params.folder_name()

    def prepare_data(self) -> None:
        generate_synthetic_eyes(self.cache_dir, self.params)

    def setup(self, stage: str | None = None) -> None:
        generate_synthetic_eyes(
            self.cache_dir, self.params
        )  # a no-op once cached; covers setup() without prepare_data()
        super().setup(stage)
