"""The GPU speed switches (model.compile, model.optimizer.fused, data.device_resident): how they compose,
what they resolve to without CUDA, and a real training run on the CPU with the device-resident path."""

import json

import pytest
import torch

from irisgan.config import compose_config
from irisgan.training.callbacks import ProgressBar
from irisgan.training.classifier import RANClassifier
from tests.conftest import TINY_NET, run_cli


def cfg_of(*overrides: str):
    return compose_config("train", overrides)


@pytest.mark.parametrize("trainer", ["cpu", "gpu"])
def test_switches_compose_as_auto_under_both_trainers(trainer):
    cfg = cfg_of(f"trainer={trainer}")
    assert cfg.data.device_resident == "auto" and cfg.model.compile == "auto"
    assert cfg.model.compile_mode == "reduce-overhead" and cfg.model.optimizer.fused == "auto"
    off = cfg_of(
        f"trainer={trainer}",
        "data.device_resident=false",
        "model.compile=false",
        "model.compile_mode=max-autotune",
        "model.optimizer.fused=false",
    )
    assert off.data.device_resident is False and off.model.compile is False
    assert off.model.compile_mode == "max-autotune" and off.model.optimizer.fused is False
    assert cfg_of("optimizer=sgd", f"trainer={trainer}").model.optimizer.fused == "auto"


def tiny(**kw) -> RANClassifier:
    return RANClassifier(net=TINY_NET, **kw)


def test_compile_switch_wraps_the_training_net_only():
    assert tiny(compile="auto").training_net() is not None
    eager = tiny(compile="auto")
    assert eager.training_net() is eager.net  # auto: no CUDA here, so no compilation
    model = tiny(compile=True, compile_mode=None)
    keys = set(model.state_dict())
    compiled = model.training_net()
    assert compiled is not model.net and compiled._orig_mod is model.net
    assert model.training_net() is compiled  # compiled once
    assert set(model.state_dict()) == keys  # the checkpoint holds net.* weights only, no _orig_mod copy
    with pytest.raises(ValueError, match="model.compile must be true, false or auto"):
        tiny(compile="sometimes").training_net()


@pytest.mark.parametrize("fused", ["auto", True, False, None])
def test_fused_flag_is_dropped_on_the_cpu(fused):
    adamw = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "fused": fused}
    model = tiny(optimizer=adamw)
    assert "fused" not in model._optimizer_config()
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW) and not optimizer.defaults.get("fused")


def test_fused_flag_reaches_the_optimizer_on_cuda_only_where_it_is_taken():
    model = tiny(optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "fused": "auto"})
    model._device = torch.device("cuda", 0)  # resolve as if on a GPU (nothing is moved there)
    assert model._optimizer_config()["fused"] is True
    model = tiny(optimizer={"_target_": "tests.test_speed_switches.PlainSGD", "lr": 1e-3, "fused": True})
    model._device = torch.device("cuda", 0)
    assert "fused" not in model._optimizer_config()


class PlainSGD(torch.optim.SGD):
    """An optimizer without a ``fused`` argument."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, lr=lr)


def test_progress_bar_redraws_at_most_every_interval(monkeypatch):
    drawn = []
    monkeypatch.setattr(
        "lightning.pytorch.callbacks.TQDMProgressBar.on_train_batch_end",
        lambda self, trainer, module, outputs, batch, idx: drawn.append(idx),
    )
    monkeypatch.setattr(ProgressBar, "total_train_batches", 10)
    bar = ProgressBar(min_interval_s=3600)
    for idx in range(10):
        bar.on_train_batch_end(None, None, None, None, idx)
    assert drawn == [0, 9]  # the first step, then only the epoch's last one
    bar = ProgressBar(min_interval_s=0)
    for idx in range(3):
        bar.on_train_batch_end(None, None, None, None, idx)
    assert drawn[2:] == [0, 1, 2]


def test_smoke_run_on_the_device_resident_path(tmp_path):
    run_cli(
        "irisgan.train",
        "experiment=smoke",
        "hydra.run.dir=run",
        "logger=none",
        "data.device_resident=true",
        "model.optimizer.fused=true",
        cwd=tmp_path,
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test/auroc"] <= 1 and metrics["train_pairs_per_s_last_epoch"] > 0


def test_a_failed_compilation_leaves_training_on_the_eager_network(monkeypatch, caplog):
    model = tiny(compile=True)

    def broken(net, **kw):
        def fail(x):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    x = torch.randn(2, 3, 96, 96)
    with caplog.at_level("WARNING"):
        out = model._train_forward(x)
    assert out.shape == (2,) and "torch.compile failed" in caplog.text and "no compiler here" in caplog.text
    assert model.training_net() is model.net


@pytest.mark.slow
def test_the_ran_training_step_captures_as_one_graph():
    """Dynamo traces the network's forward and backward without graph breaks (aot_eager: no code generation,
    so it runs on any CPU; the inductor and CUDA-graph stages are exercised by experiments/gpu_check.sh)."""
    import torch._dynamo

    torch._dynamo.reset()
    model = tiny()
    net = torch.compile(model.net, backend="aot_eager", dynamic=False)
    x = torch.randint(0, 256, (8, 3, 96, 96), dtype=torch.uint8)
    loss = model.criterion(net(model.preprocess(x)).float(), (torch.arange(8) % 2).float())["loss"]
    loss.backward()
    assert not torch._dynamo.utils.counters["graph_break"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
