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

from irisgan.bench_workers import WORKERS, net_config, sync, synthetic_csv, trained_model

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(dtype: torch.dtype, device: str, n_max: int = 2048, seconds: float = 2.0) -> float:
    """Dense n x n matmul rate, n up to ``n_max``. n grows from 256 while one product takes under 50 ms, so
    an emulated dtype (bf16 on a CPU without bf16 instructions runs hundreds of times slower) stays short."""
    n = 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # first call: library set-up
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if n >= n_max or time.perf_counter() - t > 0.05:
            break
        n *= 2
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        if device == "cuda" and reps % 20:
            continue
        sync(device)
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def run_worker(kind: str, *flags: str, timeout: float | None = None) -> dict:
    cmd = [sys.executable, "-m", "irisgan.bench", "--worker", kind, *flags]
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s (--worker-timeout)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------- extraction
def bench_extraction(faces: Path, copies: int, locators: dict[str, list[str]]) -> dict:
    from irisgan.config import compose_config
    from irisgan.extraction.loop import run_extraction

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
    switch = {"choices": ["auto", "true", "false"], "default": "auto"}
    parser.add_argument(
        "--device-resident", **switch, help="(framework) data.device_resident; auto = on CUDA only"
    )
    parser.add_argument("--train-compile", **switch, help="(framework) model.compile; auto = on CUDA only")
    parser.add_argument(
        "--compile-mode", default="reduce-overhead", help="(framework) model.compile_mode ('default': none)"
    )
    parser.add_argument("--fused", **switch, help="(framework) model.optimizer.fused; auto = on CUDA only")
    parser.add_argument(
        "--batch-sizes",
        default="",
        help="comma list of larger training batches: the framework runs at each, and the naive loop at the "
        "fastest of them and --batch-size (the 'best batch' section)",
    )
    parser.add_argument("--infer-batch-size", type=int, default=256)
    parser.add_argument(
        "--variants",
        default="",
        help="comma list of training configurations (naive_fp32, framework_fp32, framework_bf16, "
        "framework_bf16_eager); default: the first three, and framework_bf16_eager on CUDA",
    )
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--tiny-net", action="store_true", help="a tiny RAN: checks the plumbing only")
    parser.add_argument(
        "--profile", action="store_true", help="also profile --steps framework steps (torch.profiler)"
    )
    parser.add_argument(
        "--worker-timeout", type=float, help="stop a configuration after this many seconds (its compile too)"
    )
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
    from irisgan.models.ran import RANConfig, ResidualAttentionNet, estimate_flops

    fwd = estimate_flops(ResidualAttentionNet(RANConfig(**(net_config(args) or {}))))
    report["ran_gflops_per_pair"] = {"forward": round(fwd / 1e9, 3), "training": round(3 * fwd / 1e9, 3)}
    checkpoint("matmul")

    common = [
        *(["--tiny-net"] if args.tiny_net else []),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    rates = report["matmul_gflops"]

    def finish(name: str, res: dict, naive: float | None) -> dict:
        """MFU and the speed-up over the naive loop of one training configuration."""
        if "pairs_per_s" in res:
            # The limit is the fastest dense rate of the precision used (bf16 runs: the better of the two,
            # since a CPU without bf16 instructions computes bf16 no faster than fp32).
            peak = max(rates["fp32"], rates["bf16"]) if "bf16" in name else rates["fp32"]
            res["mfu"] = round(res["pairs_per_s"] * 3 * fwd / 1e9 / peak, 4)
            if naive:
                res["speedup_vs_naive"] = round(res["pairs_per_s"] / naive, 2)
            res["pairs_per_s"] = round(res["pairs_per_s"], 1)
        return res

    def worker(kind: str, *flags: str) -> dict:
        return run_worker(kind, *flags, timeout=args.worker_timeout)

    cuda = args.device == "cuda"
    # The framework as trainer=gpu runs it (bf16 autocast) on CUDA; fp32 elsewhere.
    headline = "framework_bf16" if cuda else "framework_fp32"
    eager = ["--device-resident", "false", "--train-compile", "false", "--fused", "false"]
    if "train" not in skip:
        csv = args.csv or str(synthetic_csv(args.n_pairs, Path(args.data_dir)))
        naive_flags = ["--csv", csv, "--workers", str(args.workers)]
        variants = {
            "naive_fp32": ("naive", naive_flags),
            "framework_fp32": ("framework", ["--csv", csv]),
            "framework_bf16": ("framework", ["--csv", csv, "--precision", "bf16-mixed", *bf16_probe]),
            # the framework before the GPU switches: DataLoader, eager network, foreach optimizer
            "framework_bf16_eager": ("framework", ["--csv", csv, "--precision", "bf16-mixed", *eager]),
        }
        wanted = args.variants.split(",") if args.variants else list(variants)[: 4 if cuda else 3]
        unknown = sorted(set(wanted) - set(variants) - {""})
        if unknown:
            raise SystemExit(f"--variants: unknown {unknown}; valid: {sorted(variants)}")
        train = {name: worker(variants[name][0], *common, *variants[name][1]) for name in wanted if name}
        if probe_note and "framework_bf16" in train:
            train["framework_bf16"]["note"] = probe_note
        if args.ablations:
            train["framework_fp32_no_malloc"] = worker("framework", *common, "--csv", csv, "--no-malloc")
            train["framework_fp32_nchw"] = worker("framework", *common, "--csv", csv, "--nchw")
        naive = train.get("naive_fp32", {}).get("pairs_per_s")
        for name, res in train.items():
            finish(name, res, naive)
        report[f"train_batch{args.batch_size}"] = train
        checkpoint("train")
    if args.profile and "train" not in skip:
        precision = ["--precision", "bf16-mixed"] if cuda else []
        flags = [*common, "--steps", str(args.profile_steps), "--csv", csv, *precision]
        profiles = {"switches_on": worker("profile", *flags)}
        if cuda:
            profiles["eager"] = worker("profile", *flags, *eager)
        report[f"profile_batch{args.batch_size}"] = profiles
        checkpoint("profile")
    if "inference" not in skip:
        flags = ["--device", args.device, "--batch-size", str(args.infer_batch_size)]
        flags += ["--seconds", str(args.seconds)]
        # Compiled: the precision the device runs fastest (predict/evaluate precision=... compile=true).
        compile_fp32 = "--compile" if args.compile and not bf16_fast else "--no-compile"
        inference = worker("inference", *flags, compile_fp32)
        bf16_compile = "--compile" if args.compile and bf16_fast else "--no-compile"
        bf16 = worker("inference", *flags, "--bf16-inference", bf16_compile, *bf16_probe)
        inference["pairs_per_s_bf16"] = bf16.get("pairs_per_s_bf16", bf16.get("error"))
        for key in ("pairs_per_s_bf16_compiled", "first_batch_s_bf16_compiled"):
            if key in bf16:
                inference[key] = bf16[key]
        if probe_note:
            inference["bf16_note"] = probe_note
        report[f"inference_batch{args.infer_batch_size}"] = {
            k: round(v, 1) if isinstance(v, float) else v for k, v in inference.items()
        }
        checkpoint("inference")
    sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if "train" not in skip and sizes:
        # The framework at larger batches; the naive loop at the fastest of them (the "best batch").
        precision = ["--precision", "bf16-mixed"] if cuda else []
        runs = {args.batch_size: train.get(headline, {"error": f"--variants left out {headline}"})}
        for bs in sizes:
            runs[bs] = finish(
                headline,
                worker("framework", *common, "--batch-size", str(bs), "--csv", csv, *precision),
                None,
            )
        rated = {bs: r["pairs_per_s"] for bs, r in runs.items() if "pairs_per_s" in r}
        best = max(rated, key=rated.get) if rated else args.batch_size
        best_naive = train.get("naive_fp32", {})
        if best != args.batch_size:
            best_naive = finish(
                "naive_fp32", worker("naive", *common, "--batch-size", str(best), *naive_flags), None
            )
        framework = dict(runs[best])
        if best_naive.get("pairs_per_s") and "pairs_per_s" in framework:
            framework["speedup_vs_naive"] = round(framework["pairs_per_s"] / best_naive["pairs_per_s"], 2)
        report["train_best_batch"] = {
            "batch_size": best,
            "framework": headline,
            "by_batch_size": {str(bs): r for bs, r in runs.items()},
            "naive_fp32": best_naive,
            headline: framework,
        }
        checkpoint("best batch")
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
        from irisgan.inference import SHIPPED_WEIGHTS

        if SHIPPED_WEIGHTS.is_file():  # four small RANs and the face cue, whose descriptor each photo adds
            report["predict_one_photo_shipped"] = bench_predict_latency(SHIPPED_WEIGHTS, photo, args.device)
    report["bench_wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
