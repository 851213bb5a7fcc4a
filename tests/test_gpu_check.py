"""experiments/gpu_check.sh and .py: the script parses, the commands it runs compose, and its table shows
what the results hold (the GPU figures themselves are measured on a GPU machine)."""

import os
import subprocess
import sys

import pytest

from irisgan.config import compose_config
from tests.conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "experiments"))
import gpu_check  # noqa: E402


def test_shell_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "experiments" / "gpu_check.sh")], check=True)


class Args:
    device, tiny = "cuda", False


def test_paper_size_run_is_the_issue_s_command_and_composes(tmp_path):
    cmd = gpu_check.train_command(Args(), tmp_path / "data", tmp_path / "run", gpu_check.PAPER, 200)
    assert cmd[1:4] == ["-m", "irisgan.train", "stage=ran"]
    overrides = cmd[3:]
    for expected in (
        "trainer=gpu",
        "data.batch_size=128",
        "data.synthetic.n_pairs=10000",
        "trainer.max_epochs=100",
        "+trainer.max_time=00:00:03:20",
    ):
        assert expected in overrides
    cfg = compose_config("train", [o for o in overrides if not o.startswith("hydra.")])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.max_time == "00:00:03:20"
    assert cfg.data.device_resident == "auto" and cfg.model.compile == "auto"


def test_bench_command_names_only_options_the_bench_has(tmp_path):
    cmd = gpu_check.bench_command(Args(), "pairs.csv", tmp_path / "b.json")
    help_text = run_cli("irisgan.bench", "--help", cwd=tmp_path).stdout
    for flag in (a for a in cmd if a.startswith("--")):
        assert flag in help_text, flag


def test_table_reports_every_measured_figure_and_dashes_the_missing():
    results = {
        "device": "NVIDIA H200",
        "torch": "2.11.0",
        "batch_size": 128,
        "wall_s": 400.0,
        "data": {"seconds": 20.0},
        "bench": {
            "train_batch128": {
                "naive_fp32": {"pairs_per_s": 1000.0},
                "framework_bf16": {"pairs_per_s": 21000.0, "speedup_vs_naive": 21.0, "mfu": 0.1},
                "framework_bf16_eager": {"error": "exit 1: boom"},
            },
            "train_best_batch": {
                "batch_size": 1024,
                "framework": "framework_bf16",
                "naive_fp32": {"pairs_per_s": 4000.0},
                "framework_bf16": {"pairs_per_s": 40000.0, "speedup_vs_naive": 10.0, "mfu": 0.2},
            },
            "inference_batch1024": {"pairs_per_s_fp32": 30000.0, "pairs_per_s_bf16_compiled": 90000.0},
            "profile_batch128": {
                "switches_on": {"step_ms": 6.1, "kernels_per_step": 40.0, "top_ops": []},
                "eager": {"step_ms": 100.0, "kernels_per_step": 2100.0, "top_ops": []},
            },
        },
        "paper_size_run": {
            "seconds": 150.0,
            "epochs": 100,
            "metrics": {"epochs_run": 100, "test/auroc": 0.91, "wall_time_s": 140.0},
        },
    }
    table = gpu_check.render(results)
    assert "| device | NVIDIA H200 |" in table
    assert "| framework (framework_bf16), batch 128: pairs/s | 21,000 |" in table
    assert (
        "| best batch | 1024 |" in table and "| framework, best batch: speed-up over naive | 10.00 |" in table
    )
    assert "| inference, batch 1024: pairs/s bf16 compiled | 90,000 |" in table
    assert "| inference, batch 1024: pairs/s bf16 | - |" in table
    assert "| paper-size run: test AUROC | 0.9100 |" in table and "| 100 / 100 |" in table
    assert "| kernels_per_step | 40.00 | 2,100 |" in table
    assert "framework_bf16_eager: exit 1: boom" in table


@pytest.mark.slow
def test_tiny_mode_runs_every_step_on_the_cpu(tmp_path):
    subprocess.run(
        ["bash", str(ROOT / "experiments" / "gpu_check.sh"), "--tiny", "--out-dir", str(tmp_path / "r")]
        + ["--work-dir", str(tmp_path / "w")],
        check=True,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )
    table = (tmp_path / "r" / "gpu_check.md").read_text()
    assert "naive loop, batch 8: pairs/s" in table and "paper-size run: test AUROC" in table
