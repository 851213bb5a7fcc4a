"""The GPU check (issue 12), driven by ``experiments/gpu_check.sh``: training and inference speed on one GPU,
the naive loop and the framework measured in the same run, and the paper-size run's wall time and AUROC.

    python experiments/gpu_check.py                 # on a CUDA machine (under 8 minutes)
    python experiments/gpu_check.py --tiny          # the same steps on the CPU, with a tiny data set

Steps: (1) the synthetic data sets, rendered on all cores; (2) ``python -m irisgan.bench`` with the
framework at batch 128 and at larger batches, a torch.profiler summary and inference; (3) the paper-size
run ``python -m irisgan.train stage=ran trainer=gpu`` (100 epochs on 10,000 pairs, batch 128), stopped by
``trainer.max_time`` if it would overrun the time budget (its epochs are then reported as such). Writes
``gpu_check.md`` and ``gpu_check.json`` under ``--out-dir`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"n_pairs": 10000, "n_test": 1000, "difficulty": 0.5, "epochs": 100}
TINY = {"n_pairs": 96, "n_test": 48, "difficulty": 0.0, "epochs": 1}


def run(cmd: list[str], log: Path, timeout: float) -> tuple[int, float]:
    """Run a command with its output in ``log``; returns (exit status, seconds). 124: stopped at timeout."""
    start = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return code, round(time.perf_counter() - start, 1)


def make_data(data_dir: Path, size: dict) -> dict:
    from irisgan.synthetic.pairs import ensure_synthetic_pairs

    start = time.perf_counter()
    common = {"root": data_dir / "synthetic_pairs", "seed": 0, "workers": os.cpu_count() or 1}
    train = ensure_synthetic_pairs(
        n_pairs=size["n_pairs"], split="train", difficulty=size["difficulty"], **common
    )
    ensure_synthetic_pairs(n_pairs=size["n_test"], split="test", difficulty=size["difficulty"], **common)
    return {"train_csv": str(train), "seconds": round(time.perf_counter() - start, 1)}


def bench_command(args, csv: str, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "irisgan.bench", "--device", args.device, "--csv", csv, "--out", str(out)]
    cmd += ["--skip", "extract,predict", "--workers", str(min(8, os.cpu_count() or 1))]
    if args.tiny:  # a tiny RAN, two steps each: checks the plumbing in minutes on a CPU
        tiny = "--tiny-net --steps 2 --warmup 1 --batch-size 8 --batch-sizes 16 --infer-batch-size 16"
        return cmd + tiny.split() + "--seconds 0.2 --profile --profile-steps 1 --no-compile".split()
    return cmd + [
        "--variants",
        "naive_fp32,framework_bf16,framework_bf16_eager",
        "--steps",
        "50",
        "--warmup",
        "10",
        "--batch-sizes",
        "1024",
        "--infer-batch-size",
        "1024",
        "--seconds",
        "2",
        "--no-compile",  # eager inference at batch 1024 is bound by arithmetic, not by launches
        "--profile",
        "--profile-steps",
        "5",
        "--worker-timeout",
        "150",
    ]


def train_command(args, data_dir: Path, run_dir: Path, size: dict, max_time_s: int) -> list[str]:
    hms = time.strftime("%H:%M:%S", time.gmtime(max(60, max_time_s)))
    cmd = [sys.executable, "-m", "irisgan.train", "stage=ran", "logger=csv", f"hydra.run.dir={run_dir}"]
    cmd += [f"paths.data_dir={data_dir}", f"data.synthetic.n_pairs={size['n_pairs']}"]
    cmd += [f"data.synthetic.n_test={size['n_test']}", f"data.synthetic.difficulty={size['difficulty']}"]
    cmd += [f"trainer.max_epochs={size['epochs']}", f"+trainer.max_time=00:{hms}"]
    if args.tiny:
        return cmd + ["experiment=smoke", "trainer=cpu"]
    return cmd + ["trainer=gpu", "data.batch_size=128", "data.eval_batch_size=1024"]


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4f}" if abs(x) < 1 else f"{x:.2f}" if abs(x) < 100 else f"{x:,.0f}"
    return str(x)


def render(results: dict) -> str:
    """The markdown table of one gpu_check run (every figure as measured; '-' where a step failed)."""
    bench = results.get("bench", {})
    bs = results.get("batch_size", 128)
    train = bench.get(f"train_batch{bs}", {})
    best = bench.get("train_best_batch", {})
    on_cpu = str(results.get("device", "")).startswith("cpu")
    headline = best.get("framework") or ("framework_fp32" if on_cpu else "framework_bf16")
    infer = next((v for k, v in bench.items() if k.startswith("inference_batch")), {})
    infer_bs = next(
        (k.removeprefix("inference_batch") for k in bench if k.startswith("inference_batch")), "-"
    )
    paper = results.get("paper_size_run", {})
    m = paper.get("metrics", {})
    rows = [
        ("device", results.get("device")),
        ("torch", results.get("torch")),
        (f"naive loop, batch {bs}: pairs/s", _get(train, "naive_fp32", "pairs_per_s")),
        (
            f"framework before the switches (eager, DataLoader), batch {bs}: pairs/s",
            _get(train, "framework_bf16_eager", "pairs_per_s"),
        ),
        (f"framework ({headline}), batch {bs}: pairs/s", _get(train, headline, "pairs_per_s")),
        (f"framework, batch {bs}: speed-up over naive", _get(train, headline, "speedup_vs_naive")),
        (f"framework, batch {bs}: MFU", _get(train, headline, "mfu")),
        (f"framework, batch {bs}: first step (compilation) s", _get(train, headline, "first_step_s")),
        ("best batch", best.get("batch_size")),
        ("naive loop, best batch: pairs/s", _get(best, "naive_fp32", "pairs_per_s")),
        ("framework, best batch: pairs/s", _get(best, headline, "pairs_per_s")),
        ("framework, best batch: speed-up over naive", _get(best, headline, "speedup_vs_naive")),
        ("framework, best batch: MFU", _get(best, headline, "mfu")),
        (f"inference, batch {infer_bs}: pairs/s fp32", infer.get("pairs_per_s_fp32")),
        (f"inference, batch {infer_bs}: pairs/s bf16", infer.get("pairs_per_s_bf16")),
        (f"inference, batch {infer_bs}: pairs/s bf16 compiled", infer.get("pairs_per_s_bf16_compiled")),
        (
            "paper-size run: epochs run (of the planned)",
            f"{m.get('epochs_run', '-')} / {paper.get('epochs', '-')}",
        ),
        ("paper-size run: wall time s (process)", paper.get("seconds")),
        ("paper-size run: train() wall time s", m.get("wall_time_s")),
        ("paper-size run: last epoch pairs/s", m.get("train_pairs_per_s_last_epoch")),
        ("paper-size run: test AUROC", m.get("test/auroc")),
        ("data generation s", _get(results, "data", "seconds")),
        ("gpu_check wall s", results.get("wall_s")),
    ]
    lines = ["| what | measured |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in rows]
    profiles = next((v for k, v in bench.items() if k.startswith("profile_batch")), {})
    if profiles:
        lines += ["", f"torch.profiler, batch {bs} ({', '.join(profiles)}):", ""]
        keys = [
            "step_ms",
            "kernels_per_step",
            "kernel_ms_per_step",
            "launches_per_step",
            "host_syncs_per_step",
            "between_steps_ms",
        ]
        lines += ["| figure | " + " | ".join(profiles) + " |", "|---" * (len(profiles) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(_fmt(p.get(k)) for p in profiles.values()) + " |" for k in keys]
        for name, p in profiles.items():
            if p.get("top_ops"):
                lines += ["", f"top ops ({name}, {p.get('time_basis')}, ms per step):", ""]
                lines += [
                    f"- {op['name']}: {op['ms_per_step']} ({op['calls_per_step']} calls)"
                    for op in p["top_ops"]
                ]
            if p.get("error"):
                lines += ["", f"profile {name}: {p['error'][-300:]}"]
    errors = [
        f"{k}: {v['error'][-300:]}"
        for k, v in {**train, **best}.items()
        if isinstance(v, dict) and "error" in v
    ]
    if errors:
        lines += ["", "errors:", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny data, tiny steps, the CPU: checks the plumbing"
    )
    parser.add_argument(
        "--budget-s", type=float, default=450, help="the whole check, data generation included"
    )
    parser.add_argument(
        "--paper-max-s", type=float, default=150, help="trainer.max_time of the paper-size run (its training)"
    )
    parser.add_argument("--out-dir", default=str(ROOT / "experiments" / "results"))
    parser.add_argument("--work-dir", default=str(ROOT / "outputs" / "gpu_check"))
    args = parser.parse_args()
    if args.tiny:
        args.device = "cpu"
    started = time.perf_counter()
    out_dir, work = Path(args.out_dir), Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    size = TINY if args.tiny else PAPER

    import torch

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda but torch sees no CUDA device (use --tiny to check the plumbing on a CPU)"
        )
    results: dict = {
        "device": torch.cuda.get_device_name()
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "cpu_cores": os.cpu_count(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "batch_size": 8 if args.tiny else 128,
        "tiny": args.tiny,
    }

    def save() -> None:
        results["wall_s"] = round(time.perf_counter() - started, 1)
        (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / "gpu_check.md").write_text(f"# gpu_check ({results['started_utc']})\n\n" + render(results))

    results["data"] = make_data(data_dir, size)
    print(f"[gpu_check] data ready in {results['data']['seconds']} s", flush=True)
    save()

    # The paper-size run first: it is the headline, and its compilation fills inductor's cache for the
    # benchmark's batch-128 configuration. trainer.max_time stops its training at --paper-max-s.
    run_dir = work / "paper_size"
    cmd = train_command(args, data_dir, run_dir, size, int(args.paper_max_s))
    code, seconds = run(cmd, work / "paper_size.log", timeout=args.paper_max_s + 120)
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    results["paper_size_run"] = {
        "command": " ".join(cmd[1:]),
        "exit": code,
        "seconds": seconds,
        "epochs": size["epochs"],
        "max_time_s": int(args.paper_max_s),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None},
    }
    print(f"[gpu_check] paper-size run exit {code} in {seconds} s", flush=True)
    save()

    # The benchmark gets the rest of the budget; it writes its JSON after each section, so a stopped run
    # keeps what it measured (sections in order: batch 128, profile, inference, best batch).
    bench_json = work / "bench.json"
    left = max(60.0, args.budget_s - (time.perf_counter() - started))
    code, seconds = run(
        bench_command(args, results["data"]["train_csv"], bench_json), work / "bench.log", timeout=left
    )
    results["bench"] = json.loads(bench_json.read_text()) if bench_json.is_file() else {}
    results["bench_run"] = {"exit": code, "seconds": seconds, "log": str(work / "bench.log")}
    print(f"[gpu_check] bench exit {code} in {seconds} s", flush=True)
    save()
    print(render(results))


if __name__ == "__main__":
    main()
