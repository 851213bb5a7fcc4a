"""Stochastic weight averaging (callbacks.weight_average.start_epoch): what is averaged, and what ships."""

import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from irisgan.training.callbacks import TailWeightAverage
from tests.conftest import run_cli


class _Linear(L.LightningModule):
    """A linear model that records its weights after every optimizer step."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.seen: list[tuple[int, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x).squeeze(1), y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen.append((self.current_epoch, self.layer.weight.detach().clone()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(start_epoch, epochs=3):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randn(32))
    model = _Linear()
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[TailWeightAverage(start_epoch, keep_buffers=())],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(data, batch_size=8))
    return model


def test_the_average_starts_at_its_epoch_and_replaces_the_weights():
    model = _fit(start_epoch=1)
    tail = [w for epoch, w in model.seen if epoch >= 1]
    assert len(tail) == 8  # two epochs of four steps
    assert torch.allclose(model.layer.weight, torch.stack(tail).mean(0), atol=1e-6)
    assert not torch.allclose(model.layer.weight, model.seen[-1][1])


def test_off_by_default_and_bad_epochs_are_refused():
    model = _fit(start_epoch=None)
    assert torch.equal(model.layer.weight, model.seen[-1][1])
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="start_epoch"):
            TailWeightAverage(bad)
    with pytest.raises(ValueError, match="start_epoch=3 is not before the last epoch"):
        _fit(start_epoch=3, epochs=3)


def test_a_classifier_run_ships_the_average_with_its_own_threshold(tmp_path):
    run_cli(
        "irisgan.train", "experiment=smoke", "logger=none", "hydra.run.dir=run", "trainer.max_epochs=2",
        "callbacks.weight_average.start_epoch=0", "export=run/w.pt", cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1  # written every epoch, not only when the best one improves
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    averaged, trained = best["state_dict"], best["current_model_state"]
    conv = next(k for k, v in averaged.items() if k.endswith("weight") and v.dim() == 4)
    assert not torch.allclose(averaged[conv], trained[conv])
    # the threshold in the checkpoint is the one chosen on the averaged network's validation scores: validating
    # the best checkpoint again after training (metrics.json) finds the same one
    assert float(averaged["threshold"]) == pytest.approx(metrics["val/threshold"], abs=1e-6)
    from irisgan.inference import load_classifier

    shipped = load_classifier(run / "w.pt")
    assert torch.equal(shipped.net.state_dict()[conv.removeprefix("net.")], averaged[conv])
