"""Integration: the real `python -m irisgan.train` command on tiny synthetic data (experiment=smoke)."""

import json

import pytest
import torch

from tests.conftest import run_cli

SMOKE = ["experiment=smoke", "hydra.run.dir=run"]


@pytest.mark.parametrize("loss", ["bce_auc", "bce"])
def test_smoke_run_writes_checkpoints_metrics_plots(tmp_path, smoke_run, loss):
    if loss == "bce_auc":  # the default loss: the shared session run
        run = smoke_run
    else:  # also: flip TTA from validation (the threshold) to the exported weights
        run_cli(
            "irisgan.train", "stage=ran", f"loss={loss}", "model.flip_tta=true", "export=run/w.pt", *SMOKE,
            cwd=tmp_path,
        )  # fmt: skip
        run = tmp_path / "run"
        from irisgan.inference import load_classifier

        exported = load_classifier(run / "w.pt")
        assert exported.hparams.flip_tta
        x = torch.randint(0, 255, (4, 3, 96, 96), dtype=torch.uint8)
        assert torch.allclose(exported.predict_proba(x), exported.predict_proba(x.flip(-1)), atol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "val/auroc",
        "val/acc",
        "val/acc_at_thr",
        "val/threshold",
        "test/auroc",
        "test/ap",
        "test/f1_at_thr",
        "train_pairs_per_s_last_epoch",
    ):
        assert key in metrics, key
    assert 0 <= metrics["test/auroc"] <= 1
    for fig in ("loss", "val_roc", "val_pr", "val_threshold", "val_confusion", "test_roc", "test_confusion"):
        assert (run / "plots" / f"{fig}.png").stat().st_size > 1000, fig
    assert (run / ".hydra" / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    # the checkpoint carries threshold and normalisation, and loads without unpickling arbitrary code
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True, map_location="cpu")
    state = ckpt["state_dict"]
    assert float(state["threshold"]) == pytest.approx(metrics["val/threshold"], abs=1e-6)
    assert state["mean"].shape == (3,) and not torch.allclose(state["mean"], torch.full((3,), 0.5))
    assert ckpt["hyper_parameters"]["loss"]["_target_"].endswith(
        "BCEAUCLoss" if loss == "bce_auc" else "BCELoss"
    )
    if loss == "bce_auc":
        assert list((run / "wandb").glob("offline-run-*")), "offline W&B run missing"


def test_resume_continues_where_the_run_stopped(tmp_path, smoke_run):
    last = smoke_run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    proc = run_cli(
        "irisgan.train",
        "experiment=smoke",
        "hydra.run.dir=resumed",
        "logger=none",
        f"ckpt_path={last}",
        "trainer.max_epochs=2",
        cwd=tmp_path,
    )
    assert "Restoring states from the checkpoint" in proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_multirun_sweep_gives_one_job_per_loss(tmp_path):
    run_cli(
        "irisgan.train",
        "-m",
        "stage=ran",
        "loss=bce,bce_auc",
        "experiment=smoke",
        "logger=wandb",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    jobs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert len(jobs) == 2
    assert all(list((job / "wandb").glob("offline-run-*")) for job in jobs)  # separate W&B runs


def test_unknown_loss_and_missing_checkpoint_are_clear_errors(tmp_path):
    proc = run_cli("irisgan.train", "loss=hinge", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "bce_auc" in proc.stderr
    proc = run_cli("irisgan.train", *SMOKE, "ckpt_path=nope.ckpt", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "nope.ckpt does not exist" in proc.stderr
    proc = run_cli("irisgan.train", *SMOKE, "init_weights=nope.pt", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "classifier checkpoint not found: nope.pt" in proc.stderr


def test_non_finite_loss_stops_training_with_a_message(tmp_path):
    proc = run_cli(
        "irisgan.train",
        *SMOKE,
        "logger=none",
        "model.optimizer.lr=1e30",
        "trainer.max_epochs=3",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "non-finite training loss" in proc.stderr


def test_ddp_on_cpu_with_two_processes(tmp_path):
    proc = run_cli(
        "irisgan.train",
        *SMOKE,
        "logger=none",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/auroc" in metrics


@pytest.mark.slow
def test_optuna_search_runs_trials(tmp_path):
    run_cli(
        "irisgan.train",
        "-m",
        "hparams_search=optuna",
        "experiment=smoke",
        "logger=none",
        "hydra.sweeper.n_trials=2",
        "hydra.sweep.dir=optuna",
        cwd=tmp_path,
    )
    assert len(list((tmp_path / "optuna").glob("*/metrics.json"))) == 2
    assert (tmp_path / "optuna" / "optimization_results.yaml").is_file()
