"""The device-resident batch loader: coverage, determinism, DDP shards, and its place in the DataModule."""

import lightning as L
import pytest
import torch

from irisgan.data.device_batches import DeviceBatches
from irisgan.data.pairs import IrisPairsDataModule
from irisgan.runtime import resolve_auto

CUDA = [pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else []


def pairs(n: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, 4, 4).contiguous()
    return images, (torch.arange(n) % 2).float()


def epoch_ids(loader: DeviceBatches) -> list[int]:
    return [int(i) for images, _ in loader for i in images[:, 0, 0, 0]]


@pytest.mark.parametrize("device", ["cpu", *CUDA])
def test_every_index_once_per_epoch_in_the_right_dtype_and_device(device):
    images, labels = pairs(37)
    loader = DeviceBatches(images, labels, batch_size=8, shuffle=True, device=device, seed=1)
    assert len(loader) == 5
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [8, 8, 8, 8, 5]
    for x, y in batches:
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 4, 4) and x.device.type == device
        assert y.dtype == torch.float32 and y.device.type == device
        assert torch.equal(y, (x[:, 0, 0, 0] % 2).float())  # labels travel with their images
    ids = [int(i) for x, _ in batches for i in x[:, 0, 0, 0]]
    assert sorted(ids) == list(range(37)) and ids != list(range(37))


def test_order_is_deterministic_per_seed_and_epoch():
    images, labels = pairs(50)

    def order(seed, epoch):
        loader = DeviceBatches(images, labels, batch_size=16, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return epoch_ids(loader)

    assert order(0, 3) == order(0, 3)
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)
    # without set_epoch (outside Lightning) each pass moves on to the next epoch
    loader = DeviceBatches(images, labels, batch_size=16, shuffle=True, seed=0)
    assert [epoch_ids(loader), epoch_ids(loader)] == [order(0, 0), order(0, 1)]
    # Lightning finds set_epoch where it looks for a DistributedSampler's
    loader.sampler.set_epoch(7)
    assert epoch_ids(loader) == order(0, 7)


def test_evaluation_order_is_the_data_order():
    images, labels = pairs(10)
    loader = DeviceBatches(images, labels, batch_size=4, shuffle=False)
    assert epoch_ids(loader) == list(range(10)) == epoch_ids(loader)


def test_replicas_share_one_permutation_without_overlap():
    images, labels = pairs(10)
    shards = [
        DeviceBatches(images, labels, batch_size=2, shuffle=True, seed=5, num_replicas=3, rank=r)
        for r in range(3)
    ]
    ids = [epoch_ids(s) for s in shards]
    assert [len(i) for i in ids] == [4, 4, 4] and all(len(s) == 2 for s in shards)
    assert set().union(*ids) == set(range(10))  # padded by wrapping: 12 slots for 10 pairs
    with pytest.raises(ValueError, match="rank 3"):
        DeviceBatches(images, labels, 2, True, num_replicas=3, rank=3)


def test_auto_switch_follows_the_device():
    assert resolve_auto("auto", "cuda", "x") and not resolve_auto("auto", "cpu", "x")
    assert resolve_auto(True, "cpu", "x") and not resolve_auto(False, "cuda", "x")
    with pytest.raises(ValueError, match="data.device_resident must be true, false or auto"):
        resolve_auto("yes", "cpu", "data.device_resident")


def _dm(csv, **kw) -> IrisPairsDataModule:
    dm = IrisPairsDataModule(csv=str(csv), batch_size=8, eval_batch_size=16, **kw)
    dm.setup("fit")
    return dm


def test_datamodule_switch_and_the_degradation_rule(pairs_csv):
    assert isinstance(_dm(pairs_csv, device_resident="auto").train_dataloader(), torch.utils.data.DataLoader)
    dm = _dm(pairs_csv, device_resident=True)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert isinstance(train, DeviceBatches) and train.shuffle and train.batch_size == 8
    assert isinstance(val, DeviceBatches) and not val.shuffle and val.batch_size == 16
    degrade = {"p": 0.5, "kinds": ["blur"]}
    with pytest.raises(ValueError, match="data.device_resident=true cannot run the per-item degradations"):
        _dm(pairs_csv, device_resident=True, degrade=degrade).train_dataloader()
    dm = _dm(pairs_csv, device_resident=False, degrade=degrade)
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)


class _Probe(L.LightningModule):
    """A linear model that records what reaches training_step."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3 * 96 * 96, 1)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        self.seen.append(images[:, 0, 0, 0].clone())
        return torch.nn.functional.binary_cross_entropy_with_logits(
            self.lin(images.float().flatten(1) / 255).squeeze(1), labels
        )

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_runs_batch_hooks_and_epochs_on_the_device_loader(pairs_csv):
    calls = []

    class DM(IrisPairsDataModule):
        def on_after_batch_transfer(self, batch, dataloader_idx):
            calls.append(self.trainer.training)
            return super().on_after_batch_transfer(batch, dataloader_idx)

    dm = DM(csv=str(pairs_csv), batch_size=8, device_resident=True, hflip=False)
    model = _Probe()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert len(calls) == 8 and all(calls)  # 32 training pairs / 8, two epochs: every batch went through
    loader = trainer.train_dataloader
    first, second = torch.cat(model.seen[:4]).tolist(), torch.cat(model.seen[4:]).tolist()
    assert first != second  # Lightning's set_epoch reached the loader
    loader.set_epoch(1)
    assert [int(x[0, 0, 0]) for batch, _ in loader for x in batch] == second
