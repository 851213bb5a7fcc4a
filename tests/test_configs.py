"""The real configs, composed with Hydra's compose API."""

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from irisgan.config import CONFIG_DIR, compose_config
from irisgan.models.ran import RANConfig
from irisgan.training.optim import WarmupCosineLR, configure_optimization


def cfg_of(*overrides: str):
    return compose_config("train", overrides, return_hydra_config=True)


def test_default_is_the_ran_stage_with_bce_auc():
    cfg = cfg_of()
    assert cfg.stage_name == "ran" and cfg.monitor == "val/auroc"
    assert cfg.loss._target_.endswith("BCEAUCLoss")
    assert cfg.model._target_.endswith("RANClassifier")
    assert cfg.data.batch_size == 128
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"  # the short default run
    assert dict(cfg_of("optimizer=sgd").model.optimizer) == {
        "_target_": "torch.optim.SGD",
        "lr": 0.001,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "fused": "auto",
    }


@pytest.mark.parametrize("loss,target", [("bce", "BCELoss"), ("bce_auc", "BCEAUCLoss")])
def test_command_line_loss_wins_over_the_stage_default(loss, target):
    cfg = cfg_of("stage=ran", f"loss={loss}")
    assert cfg.loss._target_.endswith(target)
    assert cfg.hydra.runtime.choices.loss == loss


def test_unknown_choices_name_the_valid_ones():
    with pytest.raises(ConfigCompositionException) as err:
        cfg_of("loss=hinge")
    assert "bce_auc" in str(err.value.__cause__ or err.value) or "bce_auc" in repr(err.value)
    with pytest.raises(ConfigCompositionException):
        cfg_of("stage=nonsense")


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml")))
def test_every_experiment_composes(name):
    cfg = cfg_of(f"experiment={name}")
    OmegaConf.to_container(cfg.model, resolve=True)


@pytest.mark.parametrize("loss,target", [(None, "BCEAUCLoss"), ("bce", "BCELoss"), ("bce_auc", "BCEAUCLoss")])
def test_paper_experiment_takes_the_loss_from_the_loss_group(loss, target):
    cfg = cfg_of("experiment=paper", *([f"loss={loss}"] if loss else []))
    assert cfg.trainer.max_epochs == 100 and cfg.data.batch_size == 128 and cfg.data.val_fraction == 0.2
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.optimizer.lr == 0.001 and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.scheduler._target_.endswith("CosineAnnealingLR") and cfg.model.scheduler.T_max == 100
    assert cfg.loss._target_.endswith(target)


def test_segmenter_r50_experiment_is_the_paper_size_model():
    cfg = cfg_of("experiment=segmenter_r50")
    assert cfg.stage_name == "segmenter" and cfg.model.network.backbone == "resnet50"
    assert cfg.model.optimizer.lr == 0.01 and cfg.model.scheduler.warmup_steps == 200


@pytest.mark.parametrize("choice", ["cosine", "onecycle", "~scheduler"])
def test_scheduler_choices_reach_the_model(choice):
    cfg = cfg_of(choice if choice.startswith("~") else f"scheduler={choice}")
    if choice.startswith("~"):  # no schedule: a constant learning rate
        assert cfg.model.get("scheduler") is None
        return
    assert cfg.model.scheduler.interval == ("step" if choice == "onecycle" else "epoch")
    if choice == "onecycle":
        assert (
            cfg.model.scheduler.max_lr == cfg.model.optimizer.lr and cfg.model.scheduler.total_steps is None
        )


def _built(cfg):
    """The optimizer and scheduler the composed config makes (as both stages' configure_optimizers do)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    param = torch.nn.Parameter(torch.zeros(1))
    built = configure_optimization([param], model["optimizer"], model.get("scheduler"), lambda: 10)
    return (built["optimizer"], built["lr_scheduler"]) if isinstance(built, dict) else (built, None)


def test_segmenter_stage_uses_the_optimizer_and_scheduler_groups():
    cfg = cfg_of("stage=segmenter")
    assert cfg.hydra.runtime.choices.optimizer == "sgd_maskrcnn"
    assert cfg.hydra.runtime.choices.scheduler == "warmup_cosine"
    optimizer, schedule = _built(cfg)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.02
    assert isinstance(schedule["scheduler"], WarmupCosineLR) and schedule["interval"] == "step"


@pytest.mark.parametrize(
    "choice,cls", [("optimizer=adamw", torch.optim.AdamW), ("optimizer=sgd", torch.optim.SGD)]
)
def test_segmenter_stage_takes_another_optimizer(choice, cls):
    cfg = cfg_of("stage=segmenter", choice)
    optimizer, _ = _built(cfg)
    assert type(optimizer) is cls
    assert optimizer.defaults["lr"] == (
        0.002 if cls is torch.optim.AdamW else 0.001
    )  # the group's own values


def test_segmenter_stage_takes_another_schedule():
    _, schedule = _built(cfg_of("stage=segmenter", "scheduler=cosine"))
    assert isinstance(schedule["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    optimizer, schedule = _built(cfg_of("stage=segmenter", "~scheduler"))
    assert isinstance(optimizer, torch.optim.SGD) and schedule is None


def test_warm_up_then_cosine():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupCosineLR(optimizer, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[8] == pytest.approx(0.5) and lrs[11] < lrs[10] < lrs[8]


def test_segmenter_stage_with_a_loss_stops_before_any_work(tmp_path):
    from irisgan.train import train

    cfg = cfg_of("stage=segmenter", "loss=bce", f"paths.output_dir={tmp_path / 'run'}")
    cfg.paths.data_dir = str(tmp_path / "data")
    with pytest.raises(ValueError, match=r"loss= does not apply to stage=segmenter"):
        train(cfg)
    assert not (tmp_path / "data").exists()


def test_the_ran_config_is_the_network_defaults():
    """conf/model/ran.yaml lists the network that RANConfig() builds (what bench and make train use)."""
    net = OmegaConf.to_container(cfg_of().model.net, resolve=True)
    assert RANConfig(**net) == RANConfig()


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_trainer_choices(trainer):
    cfg = cfg_of(f"trainer={trainer}")
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 2


def test_optuna_search_config_composes():
    cfg = cfg_of("hparams_search=optuna")
    assert "model.optimizer.lr" in cfg.hydra.sweeper.params
    assert cfg.optimized_metric == "val/auroc"


@pytest.mark.parametrize("logger", ["wandb", "csv", "none"])
def test_logger_choices(logger):
    cfg = cfg_of(f"logger={logger}", "paths.output_dir=/tmp/x")
    if logger == "wandb":
        assert cfg.logger.wandb.offline is True  # no account needed
    elif logger == "none":
        assert not cfg.get("logger")


def test_segmenter_stage_has_no_loss():
    assert cfg_of("stage=segmenter").get("loss") is None


def test_the_crop_margin_is_set_once_and_reaches_the_model(tmp_path):
    from irisgan.data.face_folders import FaceFoldersDataModule

    assert cfg_of("experiment=faces", "data.iris_margin=0.3").model.pair_margin == 0.3
    assert cfg_of("experiment=faces").model.pair_margin == 0.6  # the recipe: iris with sclera and lids
    assert (
        cfg_of("data=pairs", "data.csv=x.csv").model.pair_margin == 0.1
    )  # no margin in a pairs CSV's config
    wide = cfg_of("experiment=faces", "data.size=64", "data.width=128").model
    assert (wide.pair_size, wide.pair_width) == (64, 128)  # the pair shape reaches the model too
    square = cfg_of("stage=ran").model
    assert (square.pair_size, square.pair_width) == (96, None)
    csv = tmp_path / "faces.csv"
    csv.write_text("path,label\n")
    dm = FaceFoldersDataModule(csv=str(csv), iris_margin=0.6)
    assert dm.extract_overrides[-2:] == ["pair.iris_margin=0.6", "pair.size=96"]
    pseudo = FaceFoldersDataModule(csv=str(csv), iris_margin=0.6, pseudo_fakes={"rate": 0.3}).pseudo_fakes
    assert pseudo.iris_margin == 0.6  # planted on the iris at the crop's scale
    with pytest.raises(ValueError, match="data.iris_margin only"):
        FaceFoldersDataModule(csv=str(csv), iris_margin=0.6, extract_overrides=["pair.iris_margin=0.3"])
