"""Lightning callbacks that turn a classifier run into things a researcher looks at.

``ClassifierReport`` writes the PNG figures (ROC, PR, metric-vs-threshold, confusion, loss curves) and,
when a ``WandbLogger`` is attached, logs the same curves, the confusion matrix and a table of sample pairs
with their scores to W&B. ``PairsThroughput`` measures training pairs per second. ``ProgressBar`` is
Lightning's bar, redrawn at most twice a second. ``TailWeightAverage`` validates, checkpoints and so ships the
mean of the weights from a chosen epoch on (stochastic weight averaging).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import TQDMProgressBar, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from irisgan import plots

log = logging.getLogger(__name__)


def _wandb_run(trainer: L.Trainer):
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def _decimate(n: int, max_points: int = 200) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))


class ClassifierReport(L.Callback):
    """Figures under ``<output_dir>/plots`` and W&B curves for the RAN stage."""

    def __init__(self, out_dir: str | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.history: list[dict[str, float]] = []

    def _dir(self, trainer: L.Trainer) -> Path:
        return self.out_dir or Path(trainer.default_root_dir) / "plots"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        keep = ("train/loss_epoch", "val/loss", "val/auroc", "val/acc", "val/threshold", "train/pairs_per_s")
        row = {"epoch": trainer.current_epoch}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k in keep})
        self.history.append(row)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.history:
            out = self._dir(trainer)
            plots.plot_losses(self.history, out / "loss.png", "training and validation loss")
            (out / "history.json").write_text(json.dumps(self.history, indent=1))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = getattr(pl_module, "curves", {}).get("val")
        if trainer.sanity_checking or report is None or not trainer.is_global_zero:
            return
        self._log_wandb_curves(trainer, report, "val")
        if trainer.state.fn != "fit" or trainer.current_epoch + 1 >= (trainer.max_epochs or 0):
            plots.plot_report(report, self._dir(trainer), "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = getattr(pl_module, "curves", {}).get("test")
        if report is None or not trainer.is_global_zero:
            return
        paths = plots.plot_report(report, self._dir(trainer), "test")
        run = _wandb_run(trainer)
        if run is not None:
            import wandb

            self._log_wandb_curves(trainer, report, "test")
            samples = report.get("samples")
            if samples is not None:
                table = wandb.Table(columns=["pair", "label", "p_gan", "decision"])
                for img, label, prob in zip(
                    samples["images"], samples["labels"], samples["probs"], strict=True
                ):
                    table.add_data(
                        wandb.Image(np.transpose(img, (1, 2, 0))),
                        "GAN" if label else "real",
                        float(prob),
                        "GAN" if prob >= report["threshold"] else "real",
                    )
                run.log({"test/samples": table})
            run.log({f"test/figures/{p.stem}": wandb.Image(str(p)) for p in paths})

    @staticmethod
    def _log_wandb_curves(trainer: L.Trainer, report: dict[str, Any], stage: str) -> None:
        run = _wandb_run(trainer)
        if run is not None:
            run.log(wandb_curves(report, stage))


def wandb_curves(report: dict[str, Any], stage: str) -> dict[str, Any]:
    """W&B charts of one curve report (see ``irisgan.training.metrics.curve_report``): ROC, PR, metrics versus
    threshold and the confusion matrix at the report's threshold, keyed ``<stage>/...``."""
    import wandb

    roc, pr, sweep = report["roc"], report["pr"], report["sweep"]
    i, j, k = _decimate(len(roc["fpr"])), _decimate(len(pr["recall"])), _decimate(len(sweep["threshold"]))
    cm = np.asarray(report["confusion_at_threshold"])
    y_true = np.repeat([0, 0, 1, 1], [cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1]]).tolist()
    y_pred = np.repeat([0, 1, 0, 1], [cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1]]).tolist()
    metrics = ["accuracy", "precision", "recall", "f1", "gmean"]
    return {
        f"{stage}/roc_curve": wandb.plot.line(
            wandb.Table(data=np.stack([roc["fpr"][i], roc["tpr"][i]], 1).tolist(), columns=["fpr", "tpr"]),
            "fpr",
            "tpr",
            title=f"{stage} ROC",
        ),
        f"{stage}/pr_curve": wandb.plot.line(
            wandb.Table(
                data=np.stack([pr["recall"][j], pr["precision"][j]], 1).tolist(),
                columns=["recall", "precision"],
            ),
            "recall",
            "precision",
            title=f"{stage} precision-recall",
        ),
        f"{stage}/threshold_curve": wandb.plot.line_series(
            xs=sweep["threshold"][k].tolist(),
            ys=[sweep[m][k].tolist() for m in metrics],
            keys=metrics,
            title=f"{stage} metrics vs threshold",
            xname="threshold",
        ),
        f"{stage}/confusion": wandb.plot.confusion_matrix(
            y_true=y_true, preds=y_pred, class_names=["real", "GAN"], title=f"{stage} confusion"
        ),
    }


class PairsThroughput(L.Callback):
    """Training pairs per second over each epoch's steps (data loading included, validation excluded)."""

    def __init__(self) -> None:
        self._pairs = 0
        self._seconds = 0.0
        self._t0: float | None = None
        self.last: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._pairs, self._seconds, self._t0 = 0, 0.0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._seconds += now - self._t0
        self._pairs += len(batch[1]) * trainer.world_size
        self._t0 = now

    def on_validation_start(self, trainer, pl_module) -> None:
        self._t_val = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._t0 is not None and trainer.training:
            self._t0 += time.perf_counter() - self._t_val  # do not count validation as training time

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._seconds > 0:
            self.last = self._pairs / self._seconds
            pl_module.log("train/pairs_per_s", self.last, on_epoch=True, rank_zero_only=True)


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, redrawn during training at most every ``min_interval_s`` seconds.

    Each redraw shows the step's logged loss, which reads it back from the device and so waits for every
    step queued on a GPU. A CPU step takes longer than the interval, so there every step is still shown.
    """

    def __init__(self, refresh_rate: int = 1, min_interval_s: float = 0.5, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.min_interval_s = min_interval_s
        self._last_draw = float("-inf")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self._last_draw < self.min_interval_s and batch_idx + 1 != self.total_train_batches:
            return
        self._last_draw = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class TailWeightAverage(WeightAveraging):
    """The mean of the weights over every optimizer step from epoch ``start_epoch`` (0-based) on: stochastic
    weight averaging (Izmailov et al. 2018), which finds flatter minima and holds up better on unseen domains
    (Cha et al. 2021, SWAD). ``start_epoch=None`` turns it off.

    Built on Lightning's ``WeightAveraging``: validation, early stopping and the checkpoints' ``state_dict`` see
    the average, so ``best.ckpt``, ``export=`` and ``ensemble`` ship it unchanged. Three things differ:
    - before ``start_epoch`` the average follows the current weights, so the first epochs validate the network
      as trained instead of an average that still holds the random start;
    - the average goes back after the module's ``on_validation_epoch_end`` (Lightning runs callbacks first),
      so the threshold chosen there on the averaged network's scores is the one its checkpoint carries;
    - ``validate``/``test`` after ``fit`` load the averaged ``state_dict`` as it is (Lightning's callback would
      reload the last trained weights into the module when its average is still in memory).
    """

    def __init__(
        self, start_epoch: int | None = None, keep_buffers: tuple[str, ...] = ("threshold",)
    ) -> None:
        super().__init__()  # equal weights for every update: SWA
        if start_epoch is not None and (
            isinstance(start_epoch, bool) or int(start_epoch) != start_epoch or start_epoch < 0
        ):
            raise ValueError(
                f"callbacks.weight_average.start_epoch must be null or an epoch >= 0, not {start_epoch!r}"
            )
        self.start_epoch = None if start_epoch is None else int(start_epoch)
        # buffers a validation writes (the decision threshold): copied to the trained weights too, so that the
        # next average does not blend the new value with an old one
        self.keep_buffers = tuple(keep_buffers)

    def _fitting(self, trainer: L.Trainer) -> bool:
        return self._average_model is not None and trainer.state.fn == TrainerFn.FITTING

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.start_epoch is None:
            return
        if stage == "fit" and trainer.max_epochs is not None and 0 < trainer.max_epochs <= self.start_epoch:
            raise ValueError(
                f"callbacks.weight_average.start_epoch={self.start_epoch} is not before the last epoch "
                f"(trainer.max_epochs={trainer.max_epochs}): nothing would be averaged"
            )
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._average_model is None:
            return
        epoch = trainer.current_epoch
        if epoch < self.start_epoch or (epoch == self.start_epoch and batch_idx == 0):
            self._average_model.n_averaged.zero_()  # this update copies the current weights
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass  # updates per step only

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is None:
            return
        if trainer.current_epoch <= self.start_epoch:  # early stopping came first
            log.warning(
                "training stopped before epoch %d, where weight averaging starts: the weights are the trained ones",
                self.start_epoch,
            )
        super().on_train_end(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fitting(trainer):
            super().on_validation_epoch_start(trainer, pl_module)  # the average in, the trained weights aside

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass  # the swap back waits for on_validation_end, after the module has chosen its threshold

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._fitting(trainer):
            return
        # the parent's epoch-end hook swaps back; ModelCheckpoint (always last) then saves the average
        super().on_validation_epoch_end(trainer, pl_module)
        for name in self.keep_buffers:
            pl_module.get_buffer(name).copy_(self._average_model.module.get_buffer(name))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._average_model is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._fitting(trainer):  # resuming: the trained weights and the average, each where it was
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


__all__ = ["ClassifierReport", "PairsThroughput", "ProgressBar", "TailWeightAverage"]
