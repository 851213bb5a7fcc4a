"""`python -m irisgan.predict` on real face photos, bad files and a tiny trained checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FACES, run_cli


def _photo_set(tmp_path: Path) -> Path:
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(folder / "blank.jpg")
    return folder


def test_predict_gives_every_photo_a_score_or_a_status(tmp_path, smoke_run):
    folder = _photo_set(tmp_path)
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    run_cli(
        "irisgan.predict",
        f"ckpt={ckpt}",
        f"images={folder}",
        "explain=true",
        "hydra.run.dir=pred",
        cwd=tmp_path,
    )
    records = {
        Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "pred" / "predictions.jsonl").open())
    }
    assert set(records) == {"astronaut.png", "broken.jpg", "blank.jpg"}
    astronaut = records["astronaut.png"]
    assert astronaut["status"] == "ok" and 0 <= astronaut["p_gan"] <= 1
    assert astronaut["decision"] in ("GAN", "real")
    assert astronaut["decision"] == ("GAN" if astronaut["p_gan"] >= astronaut["threshold"] else "real")
    assert records["broken.jpg"]["status"] == "unreadable" and records["broken.jpg"]["p_gan"] is None
    assert records["blank.jpg"]["status"] == "no_face" and records["blank.jpg"]["decision"] is None
    for r in records.values():
        assert (tmp_path / "pred" / r["explanation"]).stat().st_size > 5000


def test_predict_csv_and_bad_arguments(tmp_path, smoke_run):
    folder = _photo_set(tmp_path)
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    run_cli(
        "irisgan.predict",
        f"ckpt={ckpt}",
        f"images={folder}/astronaut.png",
        "format=csv",
        "hydra.run.dir=pred",
        cwd=tmp_path,
    )
    lines = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("path,status,p_gan,decision") and len(lines) == 2
    proc = run_cli("irisgan.predict", f"ckpt={ckpt}", "images=nowhere/*.jpg", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "not a file, a folder or a glob" in proc.stderr
    proc = run_cli(
        "irisgan.predict", f"ckpt={folder}/astronaut.png", f"images={folder}", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0 and "not a checkpoint irisgan can load" in proc.stderr


@pytest.mark.skipif(not FACES.is_dir(), reason="sample face photos ../shared/data/faces not present")
def test_predict_on_the_sample_faces(tmp_path, smoke_run):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    run_cli("irisgan.predict", f"ckpt={ckpt}", f"images={FACES}", "hydra.run.dir=pred", cwd=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "pred" / "predictions.jsonl").open()]
    assert len(records) == 20
    assert sum(r["p_gan"] is not None for r in records) >= 18
