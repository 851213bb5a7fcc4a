"""The measuring side of ``python -m irisgan.bench``: each worker runs in a process of its own (the allocator
setting is process-wide) and prints one JSON result: the naive loop, irisgan's training path, a profile of a
few training steps, and inference. ``irisgan.bench`` starts them and assembles the report.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

# --tiny-net: a RAN small enough to check the benchmark's plumbing on a CPU in seconds (its figures mean nothing)
TINY_NET = {
    "stem_channels": 4,
    "stage_channels": [8, 8, 8],
    "attention_modules": [1, 1, 1],
    "mask_depths": [1, 1, 0],
    "head_channels": 16,
    "head_blocks": 1,
}


def net_config(args) -> dict | None:
    return TINY_NET if getattr(args, "tiny_net", False) else None


def trained_model(
    channels_last: bool = True, net: dict | None = None, fused: bool | str | None = None, **switches
):
    """The ``RANClassifier`` that ``make train`` trains, built from the same composed config; ``net``,
    ``fused`` and the compile ``switches`` override it where a benchmark row asks for something else."""
    from irisgan.config import compose_config
    from irisgan.instantiate import build_plain

    cfg = compose_config("train", ["stage=ran", "loss=bce_auc"])
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model["channels_last"] = channels_last
    if net is not None:
        model["net"] = net
    if fused is not None:
        model["optimizer"]["fused"] = fused
    model.update(switches)
    return build_plain(model, loss=OmegaConf.to_container(cfg.loss, resolve=True))


# --------------------------------------------------------------------------------------------- reference
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------- workers
def synthetic_csv(n_pairs: int, data_dir: Path) -> Path:
    from irisgan.synthetic.pairs import ensure_synthetic_pairs

    return ensure_synthetic_pairs(root=data_dir, n_pairs=n_pairs, seed=0, split="bench")


def worker_naive(args) -> dict:
    """The replication-notebook loop: PIL decode per epoch, NCHW, default allocator, plain PyTorch."""
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import functional as TF

    from irisgan.data.pairs_format import read_pairs_csv
    from irisgan.models.ran import RANConfig, ResidualAttentionNet

    csv = Path(args.csv)
    rows = read_pairs_csv(csv)

    class PairFiles(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            img = Image.open(csv.parent / rows[i]["path"]).convert("RGB")
            x = TF.normalize(TF.to_tensor(img), [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
            return x, torch.tensor(float(rows[i]["label"]))

    loader = DataLoader(
        PairFiles(),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    model = ResidualAttentionNet(RANConfig(**(net_config(args) or {}))).to(args.device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times, step = [], 0
    while step < args.warmup + args.steps:
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(args.device), y.to(args.device)
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            opt.step()
            sync(args.device)
            now = time.perf_counter()
            if step >= args.warmup:
                times.append((now - t0, len(y)))
            t0, step = now, step + 1
            if step >= args.warmup + args.steps:
                break
    seconds = sum(t for t, _ in times)
    return {"pairs_per_s": sum(n for _, n in times) / seconds, "steps": len(times)}


def _switch(value: str) -> bool | str:
    """``auto``/``true``/``false`` from the command line, as the configs spell them."""
    return {"true": True, "false": False}.get(value, value)


def _framework(args, callbacks: list) -> None:
    """irisgan's training path (``IrisPairsDataModule`` + ``RANClassifier``) under a Lightning Trainer, with
    the speed switches of ``python -m irisgan.train`` (``auto``: on CUDA only). Full batches only: the
    epoch's last, shorter batch would be one more compilation inside the timed steps."""
    import lightning as L

    from irisgan import runtime
    from irisgan.data.pairs import IrisPairsDataModule

    runtime.configure(malloc=not args.no_malloc)
    dm = IrisPairsDataModule(
        csv=args.csv,
        batch_size=args.batch_size,
        val_fraction=0.05,
        hflip=True,
        device_resident=_switch(args.device_resident),
    )
    dm.setup("fit")
    full_batches = len(dm.train_set) // args.batch_size
    if full_batches < 1:
        raise SystemExit(f"{len(dm.train_set)} training pairs hold no full batch of {args.batch_size}")
    model = trained_model(
        channels_last=not args.nchw,
        net=net_config(args),
        fused=_switch(args.fused),
        compile=_switch(args.train_compile),
        compile_mode=None if args.compile_mode == "default" else args.compile_mode,
    )
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        limit_train_batches=full_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=dm)


class _StepClock:
    """Steps counted across epochs; the device is synchronised at the first step and around the timed ones
    only, so that the timed steps run as they would in training (queued ahead of the GPU)."""

    def __init__(self, device: str, warmup: int, steps: int) -> None:
        self.device, self.warmup, self.steps = device, warmup, steps
        self.seen, self.pairs, self.first_step_s, self.seconds = 0, 0, None, None
        self.t_first = self.t0 = 0.0

    def start(self) -> None:
        if self.seen == 0:
            sync(self.device)
            self.t_first = time.perf_counter()
        if self.seen == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()

    def end(self, n: int) -> None:
        if self.seen == 0:
            sync(self.device)
            self.first_step_s = time.perf_counter() - self.t_first
        if self.seen >= self.warmup:
            self.pairs += n
        self.seen += 1
        if self.seen == self.warmup + self.steps:
            sync(self.device)
            self.seconds = time.perf_counter() - self.t0


def worker_framework(args) -> dict:
    """irisgan's real training path under a Lightning Trainer."""
    import lightning as L

    clock = _StepClock(args.device, args.warmup, args.steps)

    class StepTimer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            clock.end(len(batch[1]))

    _framework(args, [StepTimer()])
    return {
        "pairs_per_s": clock.pairs / clock.seconds,
        "steps": args.steps,
        "first_step_s": round(clock.first_step_s, 2),
    }


def worker_profile(args) -> dict:
    """``torch.profiler`` over ``--steps`` training steps of the framework path, after ``--warmup`` steps:
    kernels and host synchronisations per step, device (or CPU) time per step, the time between steps
    (data loading, batch transfer, hooks) and the operators that take the most time."""
    import lightning as L
    from torch.profiler import ProfilerActivity, profile

    cuda = args.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    state: dict = {"seen": 0, "gaps": [], "end": None}

    class Profiled(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            now = time.perf_counter()
            if state["seen"] == args.warmup:
                sync(args.device)
                state["prof"] = profile(activities=activities)
                state["prof"].__enter__()
                state["t0"] = time.perf_counter()
            elif state["seen"] > args.warmup and state["end"] is not None:
                state["gaps"].append(now - state["end"])

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            state["seen"] += 1
            state["end"] = time.perf_counter()
            if state["seen"] == args.warmup + args.steps:
                sync(args.device)
                state["wall"] = time.perf_counter() - state["t0"]
                state["prof"].__exit__(None, None, None)

    _framework(args, [Profiled()])
    return summarize_profile(state["prof"], args.steps, state["wall"], state["gaps"], cuda)


def summarize_profile(prof, steps: int, wall_s: float, gaps: list[float], cuda: bool, top: int = 12) -> dict:
    """Per-step figures from a finished ``torch.profiler.profile``."""
    from torch.autograd import DeviceType

    events = prof.events()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    # CPU-side runtime calls: kernel and graph launches (a CUDA graph replays many kernels in one launch),
    # and calls that wait for the device.
    launches = [e for e in events if "LaunchKernel" in e.name or e.name == "cudaGraphLaunch"]
    syncs = [e for e in events if "Synchronize" in e.name or e.name == "cudaMemcpy"]
    averages = prof.key_averages()

    def self_us(e) -> float:
        return e.self_device_time_total if cuda else e.self_cpu_time_total

    ops = sorted((e for e in averages if self_us(e) > 0), key=self_us, reverse=True)[:top]
    return {
        "steps": steps,
        "step_ms": round(1e3 * wall_s / steps, 2),
        "kernels_per_step": round(len(kernels) / steps, 1) if cuda else None,
        "kernel_ms_per_step": round(sum(e.device_time_total for e in kernels) / 1e3 / steps, 2)
        if cuda
        else None,
        "launches_per_step": round(len(launches) / steps, 1) if cuda else None,
        "host_syncs_per_step": round(len(syncs) / steps, 1) if cuda else None,
        "between_steps_ms": round(1e3 * sum(gaps) / len(gaps), 3) if gaps else None,
        "top_ops": [
            {
                "name": e.key[:80],
                "ms_per_step": round(self_us(e) / 1e3 / steps, 3),
                "calls_per_step": round(e.count / steps, 1),
            }
            for e in ops
        ],
        "time_basis": "device (self)" if cuda else "cpu (self)",
    }


def worker_inference(args) -> dict:
    """Inference through the path predict/evaluate use: ``configure_inference`` + ``score_pairs``."""
    from irisgan import runtime
    from irisgan.inference import configure_inference, score_pairs

    runtime.configure()
    x = torch.randint(0, 256, (args.batch_size, 3, 96, 96), dtype=torch.uint8)
    out = {}
    name, precision = ("bf16", "bf16") if args.bf16_inference else ("fp32", "32")
    variants = [(name, precision, False)]
    if args.compile:
        variants.append((f"{name}_compiled", precision, True))
    for name, precision, compiled in variants:
        torch.manual_seed(0)
        model = configure_inference(
            trained_model(net=net_config(args)).eval().to(args.device), precision, compiled
        )
        start = time.perf_counter()
        score_pairs(model, x, args.batch_size)  # the first batch (compilation, for a compiled model)
        out[f"first_batch_s_{name}"] = time.perf_counter() - start
        if args.warmup == 0:  # a single probe batch (emulated bf16): its time is the measurement
            out[f"pairs_per_s_{name}"] = len(x) / out[f"first_batch_s_{name}"]
            continue
        for _ in range(args.warmup - 1):
            score_pairs(model, x, args.batch_size)
        sync(args.device)
        reps, start = 0, time.perf_counter()
        while reps == 0 or time.perf_counter() - start < args.seconds:
            score_pairs(model, x, args.batch_size)
            reps += 1
        sync(args.device)
        out[f"pairs_per_s_{name}"] = reps * len(x) / (time.perf_counter() - start)
    return out


WORKERS = {
    "naive": worker_naive,
    "framework": worker_framework,
    "inference": worker_inference,
    "profile": worker_profile,
}
