"""``RANClassifier``: the LightningModule that trains and evaluates the Residual Attention Network.

It owns what a checkpoint must carry for inference: the network, the training split's per-channel mean and
std (buffers), and the decision threshold chosen on validation data (a buffer, updated at every validation
epoch so the best checkpoint holds the threshold of its own epoch). Batches arrive as uint8 images; the
module does the float conversion and normalisation, so they run on the accelerator.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate

from irisgan.checkpoints import CLASSIFIER, stamp_kind, upgrade_targets
from irisgan.data.pairs_format import pair_shape
from irisgan.models.ran import NetEnsemble, build_net
from irisgan.runtime import resolve_auto
from irisgan.training.metrics import THRESHOLD_METHODS, curve_metrics, curve_report, scalar_metrics
from irisgan.training.optim import configure_optimization

log = logging.getLogger(__name__)

COLOURS = ("rgb", "luminance", "relative")
LUMINANCE = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY
RELATIVE_STD_FLOOR = 0.02  # in [0, 1] units: about 5 grey levels


class RANClassifier(L.LightningModule):
    """Real (0) vs GAN-generated (1) iris pairs.

    Args:
        net: ``RANConfig`` fields (widths, module counts), or with ``arch: patch`` ``PatchConfig`` fields.
        loss: a ``_target_`` dict for ``irisgan.training.losses.BCELoss`` / ``BCEAUCLoss``; needed to train and
            validate, not to score (``irisgan.inference.load_classifier`` builds the module without one).
        optimizer: a ``_target_`` dict of a ``torch.optim`` class (params are passed at build time).
        The training defaults (loss, optimizer, schedule) live in the config groups (conf/), nowhere else.
        scheduler: a ``_target_`` dict of an LR scheduler plus ``interval`` (``epoch``/``step``), or None.
            ``total_steps: null`` (OneCycleLR) is filled with the run's number of optimizer steps.
        threshold_method: ``gmean`` (the paper's) or ``youden``.
        channels_last: NHWC memory layout (faster convolutions on CPU and tensor cores).
        compile: ``torch.compile`` the network for training steps: true, false or ``auto`` (on CUDA only).
            Validation and test run the eager network, at their large batch size.
        compile_mode: ``torch.compile``'s mode; ``reduce-overhead`` replays each step as CUDA graphs.
        flip_tta: score a pair as the mean P(GAN) of the pair and its mirror image (training flips pairs, so
            both views are in-distribution). Validation, and so the stored threshold, uses the same scores
            as test and inference.
        colour: what the network sees of a pair's colour. ``rgb``: the three channels. ``luminance``: only
            the grey level (ITU-R BT.601 weights, repeated over the three input channels), so that a grey copy
            of a photo scores as its colour original does and the source's white balance and saturation
            cannot be learnt as a cue. ``relative``: each channel standardised over the pair itself (its own mean
            and spread), so that a photo's exposure, white balance and contrast are no cue while the colour and
            texture differences within and between the eyes remain.
        pair_margin: the margin around each iris box its pairs were cut with (the extractor's
            ``pair.iris_margin``). It travels with the weights: ``predict`` and ``evaluate`` cut a photo's pair
            alike.
        pair_size, pair_width: the pair shape the network was trained on (height and width in pixels; width
            ``None`` is the square pair). They travel with the weights like ``pair_margin``.
        members: how many RANs ``net`` holds; more than one is an ensemble built from trained runs by
            ``python -m irisgan.ensemble`` (the mean of their logits).
    """

    def __init__(
        self,
        net: dict | None = None,
        loss: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        threshold_method: str = "gmean",
        channels_last: bool = True,
        sample_table_size: int = 32,
        compile: bool | str = False,
        compile_mode: str | None = "reduce-overhead",
        flip_tta: bool = False,
        members: int = 1,
        colour: str = "rgb",
        pair_margin: float = 0.1,
        pair_size: int = 96,
        pair_width: int | None = None,
    ) -> None:
        super().__init__()
        if threshold_method not in THRESHOLD_METHODS:
            raise ValueError(
                f"model.threshold_method {threshold_method!r} unknown; valid choices: {list(THRESHOLD_METHODS)}"
            )
        if colour not in COLOURS:
            raise ValueError(f"model.colour {colour!r} unknown; valid choices: {list(COLOURS)}")
        if not 0.0 <= pair_margin <= 2.0:
            raise ValueError(
                f"model.pair_margin must be in [0, 2] (a share of the iris size), got {pair_margin}"
            )
        pair_shape(pair_size, pair_width)  # a clear error for a shape no extractor can cut
        self.save_hyperparameters()
        # members > 1: an ensemble of trained runs (irisgan.ensemble builds it); trained as one network never.
        net = dict(net or {})
        self.net = build_net(net) if members == 1 else NetEnsemble(net, members)
        self.criterion = instantiate(upgrade_targets(loss)) if loss else None
        self.register_buffer("mean", torch.full((3,), 0.5))
        self.register_buffer("std", torch.full((3,), 0.25))
        self.register_buffer("threshold", torch.tensor(0.5))
        # Autocast dtype of predict_proba (None: the parameters' own); irisgan.inference.configure_inference sets it.
        self.inference_dtype: torch.dtype | None = None
        self.val_metrics = scalar_metrics("val/")
        self.test_metrics = scalar_metrics("test/")
        self.val_curves = curve_metrics()
        self.test_curves = curve_metrics()
        # Filled at the end of each validation/test epoch for the report callbacks (numpy arrays).
        self.curves: dict[str, dict[str, Any]] = {}
        self._test_samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # Scores of the current validation/test epoch, kept on the device: the metrics see them once, at the
        # epoch's end, so that no step waits for a value read back from the GPU.
        self._scores: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}
        self._nonfinite: torch.Tensor | None = None  # any non-finite training loss since the last check
        self._train_net: tuple[torch.nn.Module, torch.nn.Module] | None = None  # (net, its compiled form)
        self._compiled_once = False
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    # -- inference ----------------------------------------------------------------------------------------------
    @property
    def luminance(self) -> bool:
        """Whether the network sees the grey level only (model.colour=luminance)."""
        return self.hparams.colour == "luminance"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,H,W) in [0,255] (or float in [0,1]) -> normalised float, in the net's memory layout."""
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        mean, std = self.mean.view(1, 3, 1, 1), self.std.view(1, 3, 1, 1)
        if self.luminance:
            weights = LUMINANCE.to(x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)
            # the grey level's statistics from the channels' (its std bounded by the weighted stds)
            mean, std = (mean * weights).sum(1, keepdim=True), (std * weights).sum(1, keepdim=True)
        if self.hparams.colour == "relative":
            # the floor keeps a flat (over-exposed, padded) pair from amplifying its noise
            mean, std = (
                x.mean((2, 3), keepdim=True),
                x.std((2, 3), keepdim=True).clamp_min(RELATIVE_STD_FLOOR),
            )
        x = (x - mean) / std
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N,)."""
        return self.net(self.preprocess(images))

    def _probs(self, images: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """P(GAN) of ``images`` (from ``logits`` when given), averaged with the mirror image's under ``flip_tta``.

        The mirror goes first: explanations read the attention masks of the last pass, the unflipped one.
        """
        mirrored = (
            torch.sigmoid(self(images.flip(-1)).float()) if self.hparams.get("flip_tta", False) else None
        )
        probs = torch.sigmoid((self(images) if logits is None else logits).float())
        return probs if mirrored is None else 0.5 * (probs + mirrored)

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """P(GAN), float32, under ``inference_dtype`` autocast when one is set."""
        dtype = self.inference_dtype
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            return self._probs(images)

    @torch.no_grad()
    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of each view and ensemble member, shape (views, members, N).

        The views are the mirror and the pair under ``flip_tta`` (the mirror first, as in ``predict_proba``,
        so the attention masks left behind are those of the unflipped pass), else the pair alone; a single
        network is one member. ``sigmoid(logits.mean(1)).mean(0)`` is ``predict_proba``; the spread of
        ``sigmoid(logits).mean(0)`` over the members says how far runs trained alike disagree.
        """
        dtype = self.inference_dtype
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            x = self.preprocess(images)
            views = [x.flip(-1), x] if self.hparams.get("flip_tta", False) else [x]
            net = getattr(self.net, "_orig_mod", self.net)  # members run eagerly under compile=true
            members = net.members if isinstance(net, NetEnsemble) else [self.net]
            return torch.stack([torch.stack([m(v).float() for m in members]) for v in views])

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        probs = self.predict_proba(images)
        return {"prob": probs, "decision": (probs >= self.threshold).long()}

    # -- set-up ---------------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and dm is not None and getattr(dm, "mean", None) is not None:
            # Normalisation statistics come from the training split only and travel in the checkpoint.
            self.mean.copy_(torch.tensor(dm.mean))
            self.std.copy_(torch.tensor(dm.std))

    # -- loops ----------------------------------------------------------------------------------------------------
    def _shared_step(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        images, labels = batch
        if self.criterion is None:
            raise ValueError(
                "RANClassifier has no loss: give loss= (the `loss` config group) to train or validate"
            )
        logits = self(images).float()
        parts = self.criterion(logits, labels)
        return logits, parts, self._probs(images, logits), labels.long()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self._train_forward(self.preprocess(images)).float()
        parts = self.criterion(logits, labels)
        loss = parts["loss"]
        self._check_finite(loss, parts, batch_idx)
        bs = len(labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def training_net(self) -> torch.nn.Module:
        """The network that training steps call: ``net``, or its ``torch.compile`` form (model.compile)."""
        if self._train_net is None or self._train_net[0] is not self.net:
            net = self.net
            if resolve_auto(self.hparams.get("compile", False), self.device, "model.compile"):
                mode = self.hparams.get("compile_mode")
                # dynamic=False: one static graph per batch shape (two: full batches and the epoch's last),
                # which CUDA graphs need.
                net = torch.compile(self.net, mode=mode, dynamic=False)
                log.info("training steps run the network through torch.compile (mode=%s)", mode)
            # A plain tuple, outside the module tree: the checkpoint keeps net.* keys only, no _orig_mod copy.
            self._train_net = (self.net, net)
        if self._train_net[1] is not self.net and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may be reused
        return self._train_net[1]

    def _train_forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.training_net()
        if net is self.net or self._compiled_once:
            return net(x)
        try:  # the first compiled call compiles: a failure there leaves training on the eager network
            out = net(x)
        except Exception as err:  # noqa: BLE001 - any compiler failure; the eager network still trains
            log.warning(
                "model.compile: torch.compile failed at the first training step (%s: %s); training continues "
                "on the eager network (model.compile=false skips the attempt)",
                type(err).__name__,
                str(err).splitlines()[0][:300] if str(err) else "",
            )
            self._train_net = (self.net, self.net)
            out = self.net(x)
        self._compiled_once = True
        return out

    def _check_finite(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Stop on a non-finite loss. Reading a flag back from a GPU waits for every queued step, so there
        the flag collects on the device and is read every ``log_every_n_steps`` steps (when Lightning reads
        the logged values anyway) and at the epoch's end; on the CPU it is read at every step."""
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad
        every = 1 if loss.device.type == "cpu" else max(1, self.trainer.log_every_n_steps)
        if (batch_idx + 1) % every and batch_idx + 1 != self.trainer.num_training_batches:
            return
        flagged, self._nonfinite = bool(self._nonfinite), None
        if flagged:
            where = "" if every == 1 else f" (or within the {every} steps before it)"
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, step "
                f"{self.global_step}{where} ({ {k: float(v) for k, v in parts.items()} }); lower "
                "model.optimizer.lr or check the input data"
            )

    def validation_step(self, batch, batch_idx: int) -> None:
        _, parts, probs, labels = self._shared_step(batch)
        bs = len(labels)
        self.log("val/loss", parts["loss"], on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)
        self._scores["val"].append((probs.detach(), labels))

    def test_step(self, batch, batch_idx: int) -> None:
        images, _ = batch
        _, parts, probs, labels = self._shared_step(batch)
        self.log("test/loss", parts["loss"], on_epoch=True, batch_size=len(labels), sync_dist=True)
        self._scores["test"].append((probs.detach(), labels))
        if sum(len(s[0]) for s in self._test_samples) < self.hparams.sample_table_size:
            self._test_samples.append((images.cpu(), labels.cpu(), probs.detach().cpu()))

    def _update_metrics(self, stage: str, *collections) -> None:
        """Feed the epoch's scores to the metrics, once (their argument checks read values back)."""
        scores, self._scores[stage] = self._scores[stage], []
        if scores:
            probs, labels = (torch.cat(x) for x in zip(*scores, strict=True))
            for metrics in collections:
                metrics.update(probs, labels)

    def on_validation_epoch_end(self) -> None:
        self._update_metrics("val", self.val_metrics, self.val_curves)
        self.log_dict(self.val_metrics.compute(), prog_bar=False)
        self.val_metrics.reset()
        if self.trainer.sanity_checking:
            self.val_curves.reset()
            return
        report = self._curve_report(self.val_curves, threshold=None)
        self.threshold.fill_(report["threshold"])
        self._log_operating_point("val", report)

    def on_test_epoch_end(self) -> None:
        self._update_metrics("test", self.test_metrics, self.test_curves)
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        report = self._curve_report(self.test_curves, threshold=float(self.threshold))
        self._log_operating_point("test", report)
        if self._test_samples:
            images, labels, probs = (
                torch.cat(x)[: self.hparams.sample_table_size] for x in zip(*self._test_samples, strict=True)
            )
            report["samples"] = {"images": images.numpy(), "labels": labels.numpy(), "probs": probs.numpy()}
        self._test_samples.clear()

    def _curve_report(self, curves, threshold: float | None) -> dict[str, Any]:
        out = curves.compute()
        curves.reset()
        return curve_report(out["roc"], out["pr"], out["cm"], threshold, self.hparams.threshold_method)

    def _log_operating_point(self, stage: str, report: dict[str, Any]) -> None:
        self.curves[stage] = report
        point = report["at_threshold"]
        metrics = {f"{stage}/{k}_at_thr": point[k] for k in ("acc", "precision", "recall", "f1")}
        metrics[f"{stage}/threshold"] = report["threshold"]
        self.log_dict(metrics)

    # -- optimisation -------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        return configure_optimization(
            self.parameters(),
            self._optimizer_config(),
            self.hparams.scheduler,
            lambda: self.trainer.estimated_stepping_batches,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        stamp_kind(checkpoint, CLASSIFIER)

    def _optimizer_config(self) -> dict:
        """The optimizer config with its ``fused`` switch (true, false, auto) resolved for this device.

        A fused optimizer updates all parameters in a few CUDA kernels instead of a few per parameter
        tensor. It is passed on CUDA only, and only to optimizers that take it: on the CPU the key is dropped,
        so the CPU keeps PyTorch's default implementation."""
        if not self.hparams.optimizer:
            return None  # configure_optimization says what is missing
        cfg = dict(self.hparams.optimizer)
        fused = cfg.pop("fused", None)
        if resolve_auto(fused, self.device, "model.optimizer.fused"):
            takes_it = "fused" in inspect.signature(get_class(cfg["_target_"])).parameters
            if self.device.type == "cuda" and takes_it:
                cfg["fused"] = True
            else:
                log.info("model.optimizer.fused dropped: it needs CUDA and an optimizer that takes it")
        return cfg

    def on_train_epoch_start(self) -> None:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        if math.isfinite(lr):
            self.log("train/lr", lr, on_step=False, on_epoch=True)
