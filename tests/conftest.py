from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from irisgan.bench_workers import TINY_NET  # noqa: F401 - one tiny RAN for the tests and the bench's --tiny-net

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "faces"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# Synthetic data sets are deterministic and cached: one cache for the whole test session.
DATA_CACHE = Path(tempfile.gettempdir()) / "irisgan-test-data"


def run_cli(*args: str, cwd: Path, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` the way a user would, in ``cwd``."""
    if args[0] in ("irisgan.train", "irisgan.evaluate") and not any(
        a.startswith("paths.data_dir=") for a in args
    ):
        args = (*args, f"paths.data_dir={DATA_CACHE}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
            f"--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def write_random_pairs(folder: Path, n: int = 40, seed: int = 0, size: int = 96) -> Path:
    """A tiny iris-pairs set whose GAN pairs are brighter on the right half: learnable in a few steps."""
    from irisgan.data.pairs_format import write_image_atomic, write_pairs_csv

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        img = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        if label:
            img[:, size // 2 :] += 100
        rel = f"pairs/{i:04d}.png"
        write_image_atomic(folder / rel, img)
        rows.append({"path": rel, "label": label})
    return write_pairs_csv(folder / "pairs.csv", rows)


@pytest.fixture
def pairs_csv(tmp_path: Path) -> Path:
    return write_random_pairs(tmp_path / "set")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One tiny trained classifier run (experiment=smoke), shared by the tests that need a checkpoint."""
    cwd = tmp_path_factory.mktemp("smoke")
    run_cli("irisgan.train", "experiment=smoke", "logger=wandb", "hydra.run.dir=run", cwd=cwd)
    return cwd / "run"
