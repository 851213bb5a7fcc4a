"""Train a stage: ``python -m irisgan.train stage=ran loss=bce_auc`` (or ``stage=segmenter``).

Reads top to bottom: runtime settings and seed, then the DataModule, the LightningModule, callbacks,
loggers and Trainer from the config; fit (or resume); validate and test the best checkpoint; write
``metrics.json``; return the metric a sweeper optimises.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from irisgan import runtime
from irisgan.config import CONFIG_DIR
from irisgan.data.pairs_format import write_bytes_atomic
from irisgan.instantiate import build_each, build_plain

log = logging.getLogger("irisgan.train")


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def check_choices(cfg: DictConfig) -> None:
    """Stop before any work when a config group was chosen that the stage's model does not take."""
    model_target = cfg.model._target_
    accepted = inspect.signature(get_method(model_target)).parameters
    for group in ("loss", "optimizer", "scheduler"):
        chosen = cfg.get(group) if group == "loss" else cfg.model.get(group)
        if chosen and group not in accepted:
            raise ValueError(
                f"{group}= does not apply to stage={cfg.stage_name}: its model ({model_target}) takes no "
                f"{group}" + (" (Mask R-CNN computes its own losses)" if group == "loss" else "")
            )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the metrics dict that is also written to ``metrics.json``."""
    started = time.time()
    check_choices(cfg)
    runtime.configure(**cfg.runtime)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(
            f"ckpt_path={cfg.ckpt_path} does not exist (resume from <run>/checkpoints/last.ckpt)"
        )

    datamodule = build_plain(cfg.data)
    extra = {"loss": OmegaConf.to_container(cfg.loss, resolve=True)} if cfg.get("loss") else {}
    model = build_plain(cfg.model, **extra)
    if cfg.get("init_weights"):
        if not hasattr(model, "net") or cfg.stage_name != "ran":
            raise ValueError(f"init_weights= applies to stage=ran only, not stage={cfg.stage_name}")
        from irisgan.checkpoints import init_network

        log.info(
            "network initialised from %s (%d tensors)",
            cfg.init_weights,
            init_network(model, cfg.init_weights),
        )
    callbacks = build_each(cfg.get("callbacks"))
    loggers = build_each(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    if loggers:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, Any] = {}
    try:
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
            if trainer.interrupted:
                log.warning(
                    "training was interrupted; resume with ckpt_path=%s", output_dir / "checkpoints/last.ckpt"
                )
        # the checkpoint that follows the monitored metric (the other one is last.ckpt)
        ckpt = next((c for c in trainer.checkpoint_callbacks if c.monitor), None)
        best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
        if cfg.train and not trainer.interrupted:
            trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
            results.update(_scalars(trainer.callback_metrics))
            if cfg.test:
                trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
                results.update(_scalars(trainer.callback_metrics))
        throughput = next((c.last for c in callbacks if hasattr(c, "last") and c.last), None)
        results.update(
            {
                "stage": cfg.stage_name,
                "loss": cfg.loss._target_ if cfg.get("loss") else None,
                "seed": cfg.seed,
                "best_checkpoint": best,
                "last_checkpoint": str(output_dir / "checkpoints" / "last.ckpt"),
                "epochs_run": trainer.current_epoch,
                "wall_time_s": round(time.time() - started, 1),
                "train_pairs_per_s_last_epoch": throughput,
                "monitor": cfg.monitor,
                # The CSVs the splits were read from (face folders write theirs into the extraction cache).
                "data_csvs": {k: str(v) for k, v in getattr(datamodule, "csv_paths", {}).items() if v},
            }
        )
        if cfg.get("export") and best and trainer.is_global_zero:
            from irisgan.inference import export_weights

            meta = {
                "data": OmegaConf.to_container(cfg.data, resolve=True),
                "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
                "metrics": _scalars({k: v for k, v in results.items() if k.startswith(("val/", "test/"))}),
                "wall_time_s": round(time.time() - started, 1),
            }
            results["exported"] = str(export_weights(best, cfg.export, meta))
        if trainer.is_global_zero:
            write_bytes_atomic(
                output_dir / "metrics.json", json.dumps(results, indent=2, sort_keys=True).encode()
            )
            summary = {k: round(v, 4) for k, v in results.items() if isinstance(v, float) and "/" in k}
            log.info("results in %s\n%s", output_dir, json.dumps(summary, indent=1, sort_keys=True))
    finally:
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            import wandb

            wandb.finish()  # so that every job of a multirun gets its own W&B run
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    value = metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
