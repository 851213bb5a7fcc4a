"""The real configs, composed with Hydra's compose API."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from irisgan.config import CONFIG_DIR, compose_config


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
    overrides = [f"experiment={name}"]
    cfg = cfg_of(*overrides)
    if name.startswith("paper"):
        assert cfg.trainer.max_epochs == 100 and cfg.data.batch_size == 128 and cfg.data.val_fraction == 0.2
        assert cfg.model.optimizer._target_ == "torch.optim.SGD"
        assert cfg.model.optimizer.lr == 0.001 and cfg.model.optimizer.momentum == 0.9
        assert cfg.model.scheduler._target_.endswith("CosineAnnealingLR") and cfg.model.scheduler.T_max == 100
        assert cfg.loss._target_.endswith("BCEAUCLoss" if name.endswith("auc") else "BCELoss")
    OmegaConf.to_container(cfg.model, resolve=True)


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


def test_segmenter_stage_keeps_its_own_schedule():
    cfg = cfg_of("stage=segmenter")
    assert cfg.model.scheduler.get("_target_") is None  # the segmenter's own {name, warmup_steps} form


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


def test_segmenter_stage_keeps_its_own_optimizer():
    cfg = cfg_of("stage=segmenter")
    assert cfg.get("loss") is None
    assert "_target_" not in cfg.model.optimizer
