"""The study script's table, from a fake sweep (fast) and from the real command (slow)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
import bce_vs_bce_auc as study  # noqa: E402


def test_aggregate_builds_the_table_in_the_papers_layout(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (loss, ratio, seed, auc) in enumerate(
        [
            ("bce", "null", 1, 0.8),
            ("bce", "null", 2, 0.9),
            ("bce_auc", "0.25", 1, 0.95),
            ("bce_auc", "0.25", 2, 0.97),
        ]
    ):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            f"- loss={loss}\n- data.train_fake_to_real={ratio}\n- seed={seed}\n"
        )
        metrics = {key: 0.5 for _, key in study.COLUMNS}
        metrics["test/auroc"] = auc
        (job / "metrics.json").write_text(json.dumps(metrics))
    md = study.aggregate(sweep, "test", tmp_path / "results")
    text = md.read_text()
    assert "| Acc | Precision | Recall | F1 | AUC |" in text
    assert (
        "| balanced | bce | 2 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.850 +- 0.071 |"
        in text
    )
    assert "| 1:4 | bce_auc | 2 |" in text
    assert (tmp_path / "results" / "bce_vs_bce_auc_test.csv").is_file()


@pytest.mark.slow
def test_study_command_runs_end_to_end(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "bce_vs_bce_auc.py"),
            "--seeds",
            "1",
            "--results-dir",
            str(tmp_path),
            "experiment=smoke",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        cwd=ROOT,
        check=True,
    )
    assert "| 1:4 | bce_auc | 1 |" in (tmp_path / "bce_vs_bce_auc_quick.md").read_text()
