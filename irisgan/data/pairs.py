"""Iris pairs (CSV + pair images, 96x96 unless data.size / data.width say otherwise) as a Dataset and a
LightningDataModule.

All pairs of a CSV are decoded once into one uint8 tensor (N, 3, 96, 96): at 27 KiB a pair, 10,000 pairs
are 265 MiB, and an epoch then costs no decoding at all. Batches leave the loader as uint8; the
LightningModule converts them to float and normalises them with the training split's statistics, which it
keeps in its checkpoint (so ``predict`` needs nothing else).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from irisgan.data.augment import PairAugment, PseudoFakes
from irisgan.data.degrade import RandomDegradation
from irisgan.data.device_batches import DeviceBatches
from irisgan.data.pairs_format import PAIR_SIZE, pair_shape, read_pairs_csv
from irisgan.runtime import resolve_auto

log = logging.getLogger(__name__)


def _decode_row(
    csv_dir: Path, csv_path: Path, line: int, rel: str, shape: tuple[int, int] | None
) -> np.ndarray:
    path = (csv_dir / rel).resolve()
    where = f"{csv_path}, line {line}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {rel!r} not found (looked at {path})")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{where}: image {rel!r} is unreadable or not an image ({path})")
    if shape is not None and bgr.shape[:2] != tuple(shape):
        raise ValueError(
            f"{where}: image {rel!r} is {bgr.shape[1]}x{bgr.shape[0]} (width x height), expected "
            f"{shape[1]}x{shape[0]} iris pairs (the extractor's pair.size / pair.width, data.size / data.width)"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_pairs(
    csv_path: str | Path, shape: tuple[int, int] | None = None, threads: int = 4
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode every pair listed in a pairs CSV: (uint8 N,3,H,W images, float N labels, relative paths).

    ``shape``: the (height, width) every pair must have; ``None``: whatever the first pair has."""
    csv_path = Path(csv_path)
    rows = read_pairs_csv(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: the pairs CSV lists no pairs")
    first = _decode_row(csv_path.parent, csv_path, 2, rows[0]["path"], shape)
    shape = first.shape[:2]
    with ThreadPoolExecutor(max_workers=threads) as pool:  # cv2 releases the GIL while decoding
        images = [first] + list(
            pool.map(
                lambda ir: _decode_row(csv_path.parent, csv_path, ir[0] + 2, ir[1]["path"], shape),
                enumerate(rows[1:], start=1),
            )
        )
    array = np.stack(images).transpose(0, 3, 1, 2)
    labels = torch.tensor([float(r["label"]) for r in rows])
    return torch.from_numpy(np.ascontiguousarray(array)), labels, [r["path"] for r in rows]


class IrisPairsDataset(Dataset):
    """In-memory iris pairs; items are ``(uint8 image (3,H,W), float label)``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        paths: list[str] | None = None,
        augment: RandomDegradation | None = None,
        groups: list[str] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 (N,3,H,W) tensor, got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.float()
        self.paths = paths if paths is not None else [str(i) for i in range(len(images))]
        # each pair's generator (or real source) from the CSV's generator column; "" where it has none
        self.groups = groups if groups is not None else [""] * len(images)
        if len(self.groups) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.groups)} groups")
        self.augment = augment  # training-time degradations (JPEG, blur, resize, noise), applied per item

    @classmethod
    def from_csv(cls, csv_path: str | Path, shape: tuple[int, int] | None = None) -> IrisPairsDataset:
        groups = [(r.get("generator") or "").strip() for r in read_pairs_csv(csv_path)]
        return cls(*load_pairs(csv_path, shape), groups=groups)

    def subset(self, indices: torch.Tensor) -> IrisPairsDataset:
        keep = indices.tolist()
        return IrisPairsDataset(
            self.images[indices],
            self.labels[indices],
            [self.paths[i] for i in keep],
            groups=[self.groups[i] for i in keep],
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.augment is not None:
            rng = np.random.default_rng(int(torch.randint(2**62, (1,))))  # follows torch's (per-worker) seed
            out = self.augment(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), rng)
            image = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
        return image, self.labels[index]

    def class_counts(self) -> dict[str, int]:
        n_fake = int(self.labels.sum().item())
        return {"real": len(self) - n_fake, "fake": n_fake}


def parse_ratio(ratio: str | float | None) -> float | None:
    """``"1:4"`` (fake:real) or a number (fakes per real) -> fakes per real; None keeps the data as is."""
    if ratio is None or ratio == "":
        return None
    if isinstance(ratio, str) and ":" in ratio:
        fake, real = (float(x) for x in ratio.split(":", 1))
        value = fake / real if real > 0 else float("inf")
    else:
        value = float(ratio)
    if not 0 < value < float("inf"):
        raise ValueError(
            f"data.train_fake_to_real must be 'FAKE:REAL' with both > 0 (e.g. '1:4'), got {ratio!r}"
        )
    return value


def sampling_weights(labels: torch.Tensor, groups: list[str], classes: bool, within: bool) -> torch.Tensor:
    """Per-pair draw weights: ``classes`` gives real and GAN pairs equal shares, ``within`` splits each class's
    share equally among its groups (generators, real sources) instead of by their pair counts."""
    labels = labels.long()
    counts = torch.bincount(labels, minlength=2).clamp_min(1).float()
    class_share = torch.full((2,), 0.5) if classes else counts / counts.sum()
    weights = torch.empty(len(labels))
    for cls in (0, 1):
        members = (labels == cls).nonzero().flatten().tolist()
        names = sorted({groups[i] for i in members}) if within else [None]
        for name in names:
            group = [i for i in members if name is None or groups[i] == name]
            weights[group] = class_share[cls] / len(names) / len(group)
    return weights


def stratified_split(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split that keeps each class's share in both parts."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for cls in (0.0, 1.0):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = round(len(idx) * val_fraction)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def rebalance(labels: torch.Tensor, indices: torch.Tensor, fakes_per_real: float, seed: int) -> torch.Tensor:
    """Subsample one class of ``indices`` so that #fake / #real == fakes_per_real (the paper's imbalanced runs)."""
    g = torch.Generator().manual_seed(seed + 1)
    fake = indices[labels[indices] == 1]
    real = indices[labels[indices] == 0]
    if len(fake) > fakes_per_real * len(real):
        fake = fake[torch.randperm(len(fake), generator=g)[: max(1, round(fakes_per_real * len(real)))]]
    else:
        real = real[torch.randperm(len(real), generator=g)[: max(1, round(len(fake) / fakes_per_real))]]
    return torch.cat([fake, real]).sort().values


def channel_stats(images: torch.Tensor, chunk: int = 1024) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units, computed in chunks."""
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    n = len(images) * images.shape[2] * images.shape[3]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


class IrisPairsDataModule(L.LightningDataModule):
    """Iris pairs from a CSV (yours, or the extractor's), or the embedded synthetic set when ``csv`` is null.

    train/val: a seeded, stratified ``1 - val_fraction`` / ``val_fraction`` split of ``csv`` (or ``val_csv``
    when given). test: ``test_csv`` when given, the synthetic test set by default, else the validation split.
    """

    def __init__(
        self,
        csv: str | None = None,
        val_csv: str | None = None,
        test_csv: str | None = None,
        synthetic: dict | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        train_fake_to_real: str | float | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        hflip: bool = True,
        degrade: dict | None = None,
        augment: dict | None = None,
        pseudo_fakes: dict | None = None,
        balance_classes: bool = False,
        balance_groups: bool = False,
        size: int = PAIR_SIZE,
        width: int | None = None,
        device_resident: bool | str = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters()
        self.shape = pair_shape(size, width)
        self._check_source()
        self.fakes_per_real = parse_ratio(train_fake_to_real)
        degrade = degrade or {}
        self.augment = RandomDegradation(**degrade) if degrade.get("p", 0) > 0 else None
        # Batched, on the training device (see irisgan/data/augment.py): both-eyes-alike changes and pseudo-fakes.
        self.pair_augment = PairAugment(**augment) if augment else None
        self.pseudo_fakes = (
            PseudoFakes(**pseudo_fakes) if pseudo_fakes and pseudo_fakes.get("rate", 0) > 0 else None
        )
        self.train_set: IrisPairsDataset | None = None
        self.val_set: IrisPairsDataset | None = None
        self.test_set: IrisPairsDataset | None = None
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    # -- where the data comes from -------------------------------------------------------------------------
    def _check_source(self) -> None:
        if self.hparams.csv is None and not self.hparams.synthetic:
            raise ValueError(
                "data.csv is not set and no data.synthetic block is given: point data.csv at a pairs CSV"
            )

    def _synthetic_csv(self, split: str) -> Path:
        from irisgan.synthetic.pairs import ensure_synthetic_pairs

        cfg = dict(self.hparams.synthetic)
        n = cfg.pop("n_test", 0) if split == "test" else cfg.get("n_pairs", 2400)
        cfg.pop("n_test", None)
        cfg["n_pairs"] = n
        return ensure_synthetic_pairs(split=split, **cfg)

    def _csvs(self) -> dict[str, Path | None]:
        hp = self.hparams
        if hp.csv is not None:
            return {
                "fit": Path(hp.csv),
                "val": Path(hp.val_csv) if hp.val_csv else None,
                "test": Path(hp.test_csv) if hp.test_csv else None,
            }
        has_test = bool(hp.synthetic.get("n_test", 0))
        return {
            "fit": self._synthetic_csv("train"),
            "val": Path(hp.val_csv) if hp.val_csv else None,
            "test": Path(hp.test_csv) if hp.test_csv else (self._synthetic_csv("test") if has_test else None),
        }

    @property
    def csv_paths(self) -> dict[str, Path | None]:
        """The CSVs of the fit (train, or train + val), val and test data."""
        return self._csvs()

    def prepare_data(self) -> None:
        if self.hparams.csv is None:  # generate (or find cached) synthetic sets once, on rank 0
            self._csvs()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None and (stage != "test" or self.test_set is not None):
            return
        csvs = self._csvs()
        if self.train_set is None:
            pool = IrisPairsDataset.from_csv(csvs["fit"], self.shape)
            if csvs["val"] is not None:
                self.train_set, self.val_set = pool, IrisPairsDataset.from_csv(csvs["val"], self.shape)
                train_idx = torch.arange(len(pool))
            else:
                train_idx, val_idx = stratified_split(
                    pool.labels, self.hparams.val_fraction, self.hparams.split_seed
                )
                self.val_set = pool.subset(val_idx)
            if self.fakes_per_real is not None:
                train_idx = rebalance(pool.labels, train_idx, self.fakes_per_real, self.hparams.split_seed)
            self.train_set = pool.subset(train_idx)
            self.train_set.augment = self.augment
            self._check_classes(self.train_set, "training", csvs["fit"])
            self._check_classes(self.val_set, "validation", csvs["val"] or csvs["fit"])
            self.mean, self.std = channel_stats(self.train_set.images)
            log.info(
                "iris pairs: train %s, val %s; mean %s std %s",
                self.train_set.class_counts(),
                self.val_set.class_counts(),
                [round(m, 4) for m in self.mean],
                [round(s, 4) for s in self.std],
            )
        if stage in (None, "test") and self.test_set is None:
            self.test_set = (
                IrisPairsDataset.from_csv(csvs["test"], self.shape) if csvs["test"] else self.val_set
            )

    @staticmethod
    def _check_classes(ds: IrisPairsDataset, what: str, source: Path) -> None:
        counts = ds.class_counts()
        if len(ds) == 0:
            raise ValueError(f"the {what} split of {source} is empty")
        if min(counts.values()) == 0:
            raise ValueError(
                f"the {what} split of {source} holds a single class {counts}: a real-vs-GAN classifier needs both "
                "labels 0 (real) and 1 (GAN)"
            )

    # -- loaders --------------------------------------------------------------------------------------------
    def _loader(
        self, ds: IrisPairsDataset, shuffle: bool, sampler: torch.utils.data.Sampler | None = None
    ) -> DataLoader | DeviceBatches:
        """Batches of ``ds``: device-resident where ``data.device_resident`` says so; a ``sampler`` (a
        weighted draw with replacement) always goes through a host DataLoader."""
        hp = self.hparams
        batch_size = hp.batch_size if shuffle else (hp.eval_batch_size or hp.batch_size)
        device = self._resident_device(ds) if sampler is None else None
        if device is not None:
            trainer = self.trainer
            return DeviceBatches(
                ds.images,
                ds.labels,
                batch_size,
                shuffle,
                device=device,
                seed=hp.split_seed,  # the run's seed by default (data.split_seed: ${seed})
                num_replicas=trainer.world_size if trainer is not None else 1,
                rank=trainer.global_rank if trainer is not None else 0,
            )
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
        )

    def _resident_device(self, ds: IrisPairsDataset) -> torch.device | None:
        """The device to keep ``ds`` on (data.device_resident), or None for a host DataLoader."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        setting = self.hparams.get("device_resident", False)
        if not resolve_auto(setting, device, "data.device_resident"):
            return None
        if getattr(ds, "augment", None) is not None:  # per-item numpy degradations need per-item access
            if setting is True:
                raise ValueError(
                    "data.device_resident=true cannot run the per-item degradations of data.degrade.p > 0: "
                    "set data.device_resident=false (or auto) to train through a DataLoader, or data.degrade.p=0"
                )
            log.info("data.degrade.p > 0: the training pairs go through a DataLoader, not device-resident")
            return None
        return device

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        hp = self.hparams
        if hp.balance_classes or hp.balance_groups:
            # Each class drawn equally often: a minority class is not drowned by the majority's gradient.
            # Each generator or real source within its class too: the largest source does not define "real".
            ds = self.train_set
            weights = sampling_weights(ds.labels, ds.groups, hp.balance_classes, hp.balance_groups)
            sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=len(ds), replacement=True)
            return self._loader(self.train_set, shuffle=True, sampler=sampler)
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.test_set, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if self.trainer is not None and self.trainer.training and self.hparams.hflip:
            # Mirroring a pair swaps the eyes and mirrors each: a GAN cue stays a GAN cue.
            flip = torch.rand(len(images), device=images.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        if self.trainer is not None and self.trainer.training and (self.pair_augment or self.pseudo_fakes):
            images = images.float().div_(255.0)
            if self.pseudo_fakes is not None:
                images, labels, _ = self.pseudo_fakes(images, labels)
            if self.pair_augment is not None:  # after the pseudo-fakes, so they are degraded like the rest
                images = self.pair_augment(images)
        return images, labels

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state_dict: dict) -> None:
        self.mean, self.std = state_dict.get("mean"), state_dict.get("std")
