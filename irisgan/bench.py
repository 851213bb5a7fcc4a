"""``make bench`` / ``python -m irisgan.bench``: how fast irisgan trains, infers and extracts, next to a naive
implementation and to what the hardware can do, measured in one run and printed as JSON.

Each training configuration runs in its own process, because the allocator setting is process-wide and
cannot be undone: ``naive`` is written the way the replication notebook did it (PNG files decoded with PIL
in a DataLoader every epoch, NCHW, glibc's default allocator, a plain loop); ``framework`` is irisgan's real
path (IrisPairsDataModule + RANClassifier.training_step under a Lightning Trainer, in-memory uint8 pairs,
channels_last, tuned malloc). Model FLOPs utilisation = pairs/s x training FLOPs per pair / matmul rate,
with training counted as 3x the forward FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------- reference
def matmul_gflops(dtype: torch.dtype, device: str, n_max: int = 2048, seconds: float = 2.0) -> float:
    """Dense n x n matmul rate, n up to ``n_max``. n grows from 256 while one product takes under 50 ms, so
    an emulated dtype (bf16 on a CPU without bf16 instructions runs hundreds of times slower) stays short."""
    n = 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # first call: library set-up
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        if n >= n_max or time.perf_counter() - t > 0.05:
            break
        n *= 2
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        if device == "cuda" and reps % 20:
            continue
        _sync(device)
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------- workers
def _synthetic_csv(n_pairs: int, data_dir: Path) -> Path:
    from irisgan.data.synthetic_pairs import ensure_synthetic_pairs

    return ensure_synthetic_pairs(root=data_dir, n_pairs=n_pairs, seed=0, split="bench")


def trained_model(channels_last: bool = True):
    """The ``RANClassifier`` that ``make train`` trains, built from the same composed config."""
    from irisgan.config import compose_config
    from irisgan.instantiate import build_plain

    cfg = compose_config("train", ["stage=ran", "loss=bce_auc"])
    cfg.model.channels_last = channels_last
    return build_plain(cfg.model, loss=OmegaConf.to_container(cfg.loss, resolve=True))


def worker_naive(args) -> dict:
    """The replication-notebook loop: PIL decode per epoch, NCHW, default allocator, plain PyTorch."""
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import functional as TF

    from irisgan.data.pairs_format import read_pairs_csv
    from irisgan.models.ran import ResidualAttentionNet

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
    model = ResidualAttentionNet().to(args.device).train()
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
            _sync(args.device)
            now = time.perf_counter()
            if step >= args.warmup:
                times.append((now - t0, len(y)))
            t0, step = now, step + 1
            if step >= args.warmup + args.steps:
                break
    seconds = sum(t for t, _ in times)
    return {"pairs_per_s": sum(n for _, n in times) / seconds, "steps": len(times)}


def worker_framework(args) -> dict:
    """irisgan's real training path under a Lightning Trainer."""
    import lightning as L

    from irisgan import runtime
    from irisgan.data.pairs import IrisPairsDataModule

    runtime.configure(malloc=not args.no_malloc)

    class StepTimer(L.Callback):
        def __init__(self):
            self.times, self.t0 = [], None

        def on_train_batch_start(self, trainer, module, batch, idx):
            _sync(args.device)
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            _sync(args.device)
            if idx >= args.warmup:
                self.times.append((time.perf_counter() - self.t0, len(batch[1])))

    dm = IrisPairsDataModule(csv=args.csv, batch_size=args.batch_size, val_fraction=0.05, hflip=True)
    model = trained_model(channels_last=not args.nchw)
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=dm)
    seconds = sum(t for t, _ in timer.times)
    return {"pairs_per_s": sum(n for _, n in timer.times) / seconds, "steps": len(timer.times)}


def worker_inference(args) -> dict:
    """Inference through the path predict/evaluate use: ``configure_inference`` + ``score_pairs``."""
    from irisgan import runtime
    from irisgan.inference import configure_inference, score_pairs

    runtime.configure()
    x = torch.randint(0, 256, (args.batch_size, 3, 96, 96), dtype=torch.uint8)
    out = {}
    variants = [("bf16", "bf16", False)] if args.bf16_inference else [("fp32", "32", False)]
    if args.compile:
        variants.append(("fp32_compiled", "32", True))
    for name, precision, compiled in variants:
        torch.manual_seed(0)
        model = configure_inference(trained_model().eval().to(args.device), precision, compiled)
        start = time.perf_counter()
        score_pairs(model, x, args.batch_size)  # the first batch (compilation, for a compiled model)
        out[f"first_batch_s_{name}"] = time.perf_counter() - start
        if args.warmup == 0:  # a single probe batch (emulated bf16): its time is the measurement
            out[f"pairs_per_s_{name}"] = len(x) / out[f"first_batch_s_{name}"]
            continue
        for _ in range(args.warmup - 1):
            score_pairs(model, x, args.batch_size)
        _sync(args.device)
        reps, start = 0, time.perf_counter()
        while reps == 0 or time.perf_counter() - start < args.seconds:
            score_pairs(model, x, args.batch_size)
            reps += 1
        _sync(args.device)
        out[f"pairs_per_s_{name}"] = reps * len(x) / (time.perf_counter() - start)
    return out


WORKERS = {"naive": worker_naive, "framework": worker_framework, "inference": worker_inference}


def run_worker(kind: str, *flags: str) -> dict:
    cmd = [sys.executable, "-m", "irisgan.bench", "--worker", kind, *flags]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------- extraction
def bench_extraction(faces: Path, copies: int, locators: dict[str, list[str]]) -> dict:
    from irisgan.config import compose_config
    from irisgan.extract import run_extraction

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "faces"
        photos = sorted(p for p in faces.rglob("*.jpg"))
        for sub in ("real", "fake"):
            (src / sub).mkdir(parents=True)
        for k in range(copies):  # the same photos as separate files (inputs are keyed by their real path)
            for p in photos:
                shutil.copyfile(p, src / p.parent.name / f"{p.stem}_{k}{p.suffix}")
        for name, overrides in locators.items():
            cfg = compose_config(
                "extract",
                [f"faces={src}", f"out={tmp}/out_{name}", "trainer.enable_progress_bar=false", *overrides],
            )
            summary = run_extraction(cfg)
            results[name] = {
                "photos": summary["this_run"]["processed"],
                "photos_per_s": summary["this_run"]["photos_per_second"],
                "pairs": summary["pairs"],
                "ms_per_photo_by_stage": summary["mean_ms_per_photo_this_run"],
            }
    return results


def bench_predict_latency(ckpt: Path, photo: Path, device: str) -> dict:
    from irisgan.config import compose_config
    from irisgan.predict import Predictor

    cfg = compose_config("predict", [f"ckpt={ckpt}", f"images={photo}", "out=/tmp", f"device={device}"])
    start = time.perf_counter()
    predictor = Predictor(cfg)
    predictor([photo])
    first = time.perf_counter() - start
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        predictor([photo])
        warm.append(time.perf_counter() - t)
    return {"first_call_s": round(first, 3), "warm_s_median": round(sorted(warm)[len(warm) // 2], 3)}


def _smoke_checkpoint(tmp: Path) -> Path:
    """A classifier checkpoint of the paper-size RAN (untrained weights: latency does not depend on them)."""
    import lightning as L

    ckpt = tmp / "ran.ckpt"
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(trained_model())
    trainer.save_checkpoint(ckpt)
    return ckpt


# --------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive baseline")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--no-malloc", action="store_true")
    parser.add_argument("--nchw", action="store_true")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time torch.compile inference (predict/evaluate compile=true); --no-compile skips it",
    )
    parser.add_argument(
        "--bf16-inference", action="store_true", help="(inference worker) time bf16 autocast instead of fp32"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--n-pairs", type=int, default=1024, help="synthetic pairs for the training benchmarks"
    )
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--faces", default=str(ROOT.parent / "shared" / "data" / "faces"))
    parser.add_argument(
        "--copies", type=int, default=10, help="copies of the face photos for extraction timing"
    )
    parser.add_argument("--segmenter-ckpt", help="also time extraction with the trained segmenter")
    parser.add_argument(
        "--ablations", action="store_true", help="also time the framework without each speed-up"
    )
    parser.add_argument(
        "--skip", default="", help="comma list of sections to skip: train,inference,extract,predict"
    )
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return

    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()

    def checkpoint(section: str) -> None:
        """Keep what is measured so far (a long benchmark stopped midway still leaves numbers)."""
        print(f"[bench] {section} done at {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    report: dict = {
        "machine": {
            "cpu_cores": os.cpu_count(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "matmul_gflops": {
            "fp32": round(matmul_gflops(torch.float32, args.device), 1),
            "bf16": round(matmul_gflops(torch.bfloat16, args.device), 1),
        },
    }
    # bf16 pays only where the hardware has it (CUDA; CPUs with AVX512-BF16/AMX). Elsewhere it is emulated
    # and hundreds of times slower: then the bf16 runs are a single probe step, labelled as such.
    bf16_fast = report["matmul_gflops"]["bf16"] > report["matmul_gflops"]["fp32"]
    report["machine"]["bf16_native"] = bf16_fast
    bf16_probe = [] if bf16_fast else ["--warmup", "0", "--steps", "1", "--seconds", "0"]
    probe_note = (
        None
        if bf16_fast
        else "a single step, no warm-up: bf16 is emulated here "
        f"(bf16 matmul {report['matmul_gflops']['bf16']} vs fp32 {report['matmul_gflops']['fp32']} GFLOP/s)"
    )
    from irisgan.models.ran import ResidualAttentionNet, estimate_flops

    fwd = estimate_flops(ResidualAttentionNet())
    report["ran_gflops_per_pair"] = {"forward": round(fwd / 1e9, 3), "training": round(3 * fwd / 1e9, 3)}
    checkpoint("matmul")

    common = [
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if "train" not in skip:
        csv = str(_synthetic_csv(args.n_pairs, Path(args.data_dir)))
        train = {
            "naive_fp32": run_worker("naive", *common, "--csv", csv, "--workers", str(args.workers)),
            "framework_fp32": run_worker("framework", *common, "--csv", csv),
            "framework_bf16": run_worker(
                "framework", *common, "--csv", csv, "--precision", "bf16-mixed", *bf16_probe
            ),
        }
        if probe_note:
            train["framework_bf16"]["note"] = probe_note
        if args.ablations:
            train["framework_fp32_no_malloc"] = run_worker("framework", *common, "--csv", csv, "--no-malloc")
            train["framework_fp32_nchw"] = run_worker("framework", *common, "--csv", csv, "--nchw")
        naive = train["naive_fp32"].get("pairs_per_s")
        rates = report["matmul_gflops"]
        for name, res in train.items():
            if "pairs_per_s" not in res:
                continue
            # The limit is the fastest dense rate of the precision used (bf16 runs: the better of the two,
            # since a CPU without bf16 instructions computes bf16 no faster than fp32).
            peak = max(rates["fp32"], rates["bf16"]) if "bf16" in name else rates["fp32"]
            res["mfu"] = round(res["pairs_per_s"] * 3 * fwd / 1e9 / peak, 3)
            if naive:
                res["speedup_vs_naive"] = round(res["pairs_per_s"] / naive, 2)
            res["pairs_per_s"] = round(res["pairs_per_s"], 1)
        report["train_batch128"] = train
        checkpoint("train")
    if "inference" not in skip:
        flags = ["--device", args.device, "--batch-size", "256", "--seconds", str(args.seconds)]
        inference = run_worker("inference", *flags, "--compile" if args.compile else "--no-compile")
        bf16 = run_worker("inference", *flags, "--bf16-inference", "--no-compile", *bf16_probe)
        inference["pairs_per_s_bf16"] = bf16.get("pairs_per_s_bf16", bf16.get("error"))
        if probe_note:
            inference["bf16_note"] = probe_note
        report["inference_batch256"] = {
            k: round(v, 1) if isinstance(v, float) else v for k, v in inference.items()
        }
        checkpoint("inference")
    faces = Path(args.faces)
    if "extract" not in skip and faces.is_dir():
        locators = {"hough": ["locator=hough"]}
        if args.segmenter_ckpt:
            locators["segmenter"] = ["locator=segmenter", f"locator.ckpt={args.segmenter_ckpt}"]
        report["extraction_1024px"] = bench_extraction(faces, args.copies, locators)
        checkpoint("extraction")
    if "predict" not in skip and faces.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = _smoke_checkpoint(Path(tmp))
            photo = sorted(faces.rglob("*.jpg"))[0]
            report["predict_one_photo"] = bench_predict_latency(ckpt, photo, args.device)
    report["bench_wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
