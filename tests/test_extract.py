"""The extractor end to end: statuses for bad inputs, the manifest, reruns, interruptions, the 20 photos."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image
from skimage import data

from irisgan.config import CONFIG_DIR
from irisgan.data.pairs_format import read_pairs_csv
from irisgan.extraction.faces import LEFT_EYE, FaceLandmarker
from irisgan.extraction.loop import run_extraction
from irisgan.extraction.manifest import read_manifest
from irisgan.extraction.photos import list_inputs
from irisgan.extraction.pipeline import IrisPairExtractor

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / ".." / "shared" / "data" / "faces"
needs_faces = pytest.mark.skipif(
    not FACES.is_dir(), reason=f"the 20 test photos are not here: {FACES} is absent"
)


def extraction_config(faces, out, *overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="extract",
            overrides=[
                f"faces={faces}",
                f"out={out}",
                "num_workers=0",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def by_name(out: Path) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in manifest_lines(out)}


# ------------------------------------------------------------------------------------ generated inputs


def _save(path: Path, image: Image.Image, fmt: str, **kwargs) -> None:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    path.write_bytes(buf.getvalue())


def _face_crop(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head, square: a photo that is mostly face."""
    return astronaut[40:220, 135:315]


def make_bad_inputs(root: Path) -> dict[str, str]:
    """Writes odd photos into root/real and root/fake; returns file name -> expected status."""
    astronaut = data.astronaut()
    real, fake = root / "real", root / "fake"
    real.mkdir(parents=True)
    fake.mkdir()
    pil = Image.fromarray(astronaut)
    expected = {}

    _save(real / "astronaut.png", pil, "PNG")
    expected["astronaut.png"] = "ok"
    _save(real / "gray.jpg", pil.convert("L"), "JPEG", quality=95)
    expected["gray.jpg"] = "ok"
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    _save(real / "rgba.png", Image.fromarray(rgba, "RGBA"), "PNG")
    expected["rgba.png"] = "ok"
    _save(real / "cmyk.jpg", pil.convert("CMYK"), "JPEG", quality=95)
    expected["cmyk.jpg"] = "ok"
    cv2.imwrite(
        str(real / "sixteen_bit.png"), cv2.cvtColor(astronaut.astype(np.uint16) * 257, cv2.COLOR_RGB2BGR)
    )
    expected["sixteen_bit.png"] = "ok"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees; viewers (and we) rotate it upright
    _save(
        real / "exif_rotated.jpg",
        Image.fromarray(np.ascontiguousarray(np.rot90(astronaut))),
        "JPEG",
        exif=exif,
    )
    expected["exif_rotated.jpg"] = "ok"
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    _save(real / "large.jpg", Image.fromarray(big), "JPEG", quality=90)
    expected["large.jpg"] = "ok"

    whole = io.BytesIO()
    pil.save(whole, format="JPEG", quality=95)
    (fake / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    expected["truncated.jpg"] = "unreadable"
    (fake / "text.jpg").write_text("not a photo\n")
    expected["text.jpg"] = "unreadable"
    tiny = cv2.resize(_face_crop(astronaut), (40, 40), interpolation=cv2.INTER_AREA)
    _save(fake / "tiny.png", Image.fromarray(tiny), "PNG")
    expected["tiny.png"] = "iris_too_small"
    _save(fake / "blank.png", Image.new("RGB", (300, 300), (200, 200, 200)), "PNG")
    expected["blank.png"] = "no_face"
    head = _face_crop(astronaut)
    two = np.concatenate(
        [cv2.resize(head, (256, 256)), np.pad(cv2.resize(head, (200, 200)), ((28, 28), (0, 0), (0, 0)))], 1
    )
    _save(fake / "two_faces.png", Image.fromarray(two), "PNG")
    expected["two_faces.png"] = "several_faces"
    hidden = astronaut.copy()
    landmarker = FaceLandmarker()
    eye = landmarker.landmarks(astronaut, landmarker.detect(astronaut)[0].box)[LEFT_EYE]
    (x0, y0), (x1, y1) = eye.min(axis=0), eye.max(axis=0)
    center, axes = (int((x0 + x1) / 2), int((y0 + y1) / 2)), (int((x1 - x0) / 2) + 6, int((y1 - y0) / 2) + 6)
    cv2.ellipse(hidden, center, axes, 0, 0, 360, (223, 188, 160), -1)  # skin over the image-left eye
    _save(fake / "left_eye_hidden.png", Image.fromarray(hidden), "PNG")
    expected["left_eye_hidden.png"] = "eyes_hidden"  # covered eye: a status of its own (iris_quality.py)
    (fake / "notes.txt").write_text("not an input: no image suffix\n")
    (fake / "folder.jpg").mkdir()  # a directory that looks like a photo: listed with its reason
    return expected


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    expected = make_bad_inputs(root)
    out = tmp_path_factory.mktemp("out")
    summary = run_extraction(extraction_config(root, out, "face.several_faces=reject", "overlay=true"))
    return root, out, expected, summary


def test_every_bad_input_gets_its_status(bad_inputs):
    _, out, expected, _ = bad_inputs
    records = by_name(out)
    assert {name: r["status"] for name, r in records.items()} == expected
    assert (
        "Error" in records["truncated.jpg"]["message"] or "truncated" in records["truncated.jpg"]["message"]
    )
    assert records["exif_rotated.jpg"]["image_size"] == [512, 512]  # upright, as a viewer shows it
    assert records["large.jpg"]["face_box"][2] - records["large.jpg"]["face_box"][0] > 300  # full-size boxes
    assert records["two_faces.png"]["n_faces"] == 2


def test_manifest_csv_and_summary_account_for_every_file(bad_inputs):
    root, out, expected, summary = bad_inputs
    lines = manifest_lines(out)
    assert len(lines) == len({r["path"] for r in lines}) == len(expected)
    assert summary["inputs"] == summary["in_manifest"] == len(expected)
    assert [Path(p).name for p in summary["ignored_files"]] == ["notes.txt"]
    assert [(Path(i["path"]).name, i["reason"]) for i in summary["ignored_not_files"]] == [
        ("folder.jpg", "a directory, not a file")
    ]
    counted = {name: c["total"] for name, c in summary["per_class"].items()}
    assert counted == {"real": 7, "fake": 6}
    rows = read_pairs_csv(out / "pairs.csv")
    ok = [r for r in lines if r["status"] == "ok"]
    assert sorted(r["path"] for r in rows) == sorted(r["pair"] for r in ok)
    assert {r["label"] for r in rows} == {"0"}  # every ok photo here sits in real/
    assert sorted(p.name for p in (out / "pairs").iterdir()) == sorted(Path(r["pair"]).name for r in ok)
    assert json.loads((out / "summary.json").read_text()) == summary


def test_pairs_are_96x96_and_irises_sit_in_their_eyes(bad_inputs):
    _, out, _, _ = bad_inputs
    for record in manifest_lines(out):
        if record["status"] != "ok":
            continue
        pair = cv2.imread(str(out / record["pair"]))
        assert pair.shape == (96, 96, 3)
        for side in ("left", "right"):
            ex0, ey0, ex1, ey1 = record["eye_boxes"][side]
            ix0, iy0, ix1, iy1 = record["iris"][side]["box"]
            assert ex0 <= (ix0 + ix1) / 2 <= ex1 and ey0 <= (iy0 + iy1) / 2 <= ey1
        assert record["eye_boxes"]["left"][0] < record["eye_boxes"]["right"][0]  # image-left eye first


def test_overlays_are_written_for_every_decoded_photo(bad_inputs):
    _, out, _, summary = bad_inputs
    for record in manifest_lines(out):
        if record["status"] == "unreadable":
            assert "overlay" not in record
        else:
            assert (out / record["overlay"]).is_file()
    assert summary["overlay_sheet"] == "overlays.png" and (out / "overlays.png").is_file()


def test_several_faces_largest_keeps_the_bigger_face(tmp_path, bad_inputs):
    root, _, _, _ = bad_inputs
    out = tmp_path / "out"
    run_extraction(
        extraction_config(f"{root}/fake/two_faces.png", out, "label=fake", "face.several_faces=largest")
    )
    record = manifest_lines(out)[0]
    assert record["status"] == "ok" and record["n_faces"] == 2
    assert record["face_box"][2] <= 256  # the larger head is the left one, 256 px wide


def test_rerun_adds_nothing_and_a_changed_file_is_redone(tmp_path, bad_inputs):
    root, _, _, _ = bad_inputs
    out = tmp_path / "out"
    photo = tmp_path / "photo.png"
    photo.write_bytes((root / "real" / "astronaut.png").read_bytes())
    run_extraction(extraction_config(photo, out, "label=0"))
    first = (out / "manifest.jsonl").read_text()
    summary = run_extraction(extraction_config(photo, out, "label=0"))
    assert (out / "manifest.jsonl").read_text() == first
    assert summary["this_run"]["processed"] == 0 and summary["pairs"] == 1

    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, not changed
    summary = run_extraction(extraction_config(photo, out, "label=0"))
    assert summary["this_run"]["processed"] == 0

    Image.open(root / "real" / "astronaut.png").save(photo, format="PNG", compress_level=1)  # same photo,
    summary = run_extraction(extraction_config(photo, out, "label=0"))  # other bytes: done again
    assert summary["this_run"]["processed"] == 1
    assert len(manifest_lines(out)) == 1 and summary["pairs"] == 1

    Image.new("RGB", (300, 300), (90, 90, 90)).save(photo)  # replaced by a photo with no face
    summary = run_extraction(extraction_config(photo, out, "label=0"))
    assert [r["status"] for r in manifest_lines(out)] == ["no_face"]
    assert summary["pairs"] == 0 and read_pairs_csv(out / "pairs.csv") == []
    assert list((out / "pairs").iterdir()) == []  # the old pair went with its record


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, bad_inputs, monkeypatch):
    root, _, expected, _ = bad_inputs
    out = tmp_path / "out"
    original = IrisPairExtractor.predict_step

    def crash_on_third_batch(self, batch, batch_idx=0):
        if batch_idx == 2:
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(IrisPairExtractor, "predict_step", crash_on_third_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_extraction(extraction_config(root, out, "batch_size=2"))
    assert len(manifest_lines(out)) == 4  # the two batches written before the crash
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"path": "/torn/line", "sta')  # a crash in mid-write

    monkeypatch.setattr(IrisPairExtractor, "predict_step", original)
    summary = run_extraction(extraction_config(root, out, "batch_size=2"))
    assert summary["this_run"]["processed"] == len(expected) - 4
    lines = manifest_lines(out)
    assert len(lines) == len({r["path"] for r in lines}) == len(expected)
    assert {Path(r["path"]).name: r["status"] for r in lines} == expected | {"two_faces.png": "ok"}
    rows = read_pairs_csv(out / "pairs.csv")
    assert len(rows) == len({r["path"] for r in rows}) == sum(r["status"] == "ok" for r in lines)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_input_specs(tmp_path, bad_inputs):
    root, _, _, _ = bad_inputs
    photos, ignored = list_inputs(str(root))
    assert len(photos) == 13 and [Path(p.path).name for p in ignored] == ["folder.jpg", "notes.txt"]
    _, ignored = list_inputs(f"{root}/fake/*.jpg", label=1)  # a glob matching the directory, too
    assert [(Path(p.path).name, p.reason) for p in ignored] == [("folder.jpg", "a directory, not a file")]
    assert {p.label for p in photos if "/real/" in p.path} == {0}
    assert {p.label for p in photos if "/fake/" in p.path} == {1}
    photos, _ = list_inputs({"real": f"{root}/fake/*.png", "fake": [f"{root}/real/gray.jpg"]})
    assert {(Path(p.path).name, p.label) for p in photos} >= {("tiny.png", 0), ("gray.jpg", 1)}
    photos, _ = list_inputs(f"{root}/real", label="1")
    assert len(photos) == 7 and {p.label for p in photos} == {1}
    with pytest.raises(ValueError, match="label=0"):
        list_inputs(str(tmp_path))  # no real/ or fake/ and no label
    with pytest.raises(ValueError, match="0/real or 1/fake"):
        list_inputs(str(root / "real"), label="maybe")
    with pytest.raises(FileNotFoundError, match="matches"):
        list_inputs(str(tmp_path / "nothing*.jpg"), label=0)
    with pytest.raises(ValueError, match="real or fake"):
        list_inputs({"gan": str(root / "fake")})


# ------------------------------------------------------------------------------------ the 20 photos


@needs_faces
def test_twenty_photos_yield_pairs_and_a_rerun_adds_nothing(tmp_path):
    out = tmp_path / "out"
    summary = run_extraction(extraction_config(FACES.resolve(), out, "num_workers=2"))
    assert summary["inputs"] == summary["in_manifest"] == 20
    assert summary["pairs"] >= 18
    for name in ("real", "fake"):
        assert summary["per_class"][name]["total"] == 10
        assert summary["per_class"][name].get("ok", 0) >= 8
    lines = manifest_lines(out)
    assert len(lines) == 20 and all(r["n_faces"] == 1 for r in lines)
    first = (out / "manifest.jsonl").read_text()
    again = run_extraction(extraction_config(FACES.resolve(), out, "num_workers=2"))
    assert again["this_run"]["processed"] == 0
    assert (out / "manifest.jsonl").read_text() == first
    assert len(read_pairs_csv(out / "pairs.csv")) == summary["pairs"]


# ------------------------------------------------------------------------------------ command line


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "irisgan.extract", *args, "trainer.enable_progress_bar=false"]


@pytest.mark.slow
@needs_faces
def test_cli_killed_mid_run_resumes(tmp_path):
    out = tmp_path / "out"
    args = _cli(f"faces={FACES.resolve()}", f"out={out}", "batch_size=2", "num_workers=1")
    # Its own process group, so that the kill takes the DataLoader workers too (as a power cut would).
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    manifest = out / "manifest.jsonl"
    while time.time() < deadline and process.poll() is None:
        if manifest.is_file() and manifest.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(read_manifest(out))
    assert 4 <= done_before < 20, "kill the run in the middle"

    result = subprocess.run(
        _cli(f"faces={FACES.resolve()}", f"out={out}"), cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = manifest_lines(out)
    assert len(lines) == len({r["path"] for r in lines}) == 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["processed"] == 20 - done_before
    assert "input photos in the manifest" in result.stdout


@pytest.mark.slow
@needs_faces
def test_cli_two_processes_split_the_photos(tmp_path):
    """trainer.devices=2 (DDP on the CPU here; GPUs or nodes elsewhere): no photo twice, none lost."""
    out = tmp_path / "out"
    args = _cli(
        f"faces={FACES.resolve()}",
        f"out={out}",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "num_workers=0",
        "batch_size=4",
    )
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = manifest_lines(out)
    assert len(lines) == len({r["path"] for r in lines}) == 20
    assert not list(out.glob("manifest.rank*.jsonl"))  # merged
    assert len(read_pairs_csv(out / "pairs.csv")) >= 18


def test_output_inside_the_input_folder_is_not_read_back(tmp_path, bad_inputs):
    root, _, _, _ = bad_inputs
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "astronaut.png").write_bytes((root / "real" / "astronaut.png").read_bytes())
    out = photos / "extracted"
    run_extraction(extraction_config(photos, out, "label=real", "overlay=true"))
    summary = run_extraction(extraction_config(photos, out, "label=real", "overlay=true"))
    assert summary["inputs"] == 1 and summary["this_run"]["processed"] == 0
    assert summary["ignored_files"] == []  # not even the manifest or Hydra's logs


def test_faces_mapping_from_the_command_line(tmp_path, bad_inputs):
    root, _, _, _ = bad_inputs
    out = tmp_path / "out"
    cfg = extraction_config(f"{{real:{root}/real/astronaut.png,fake:[{root}/fake/blank.png]}}", out)
    summary = run_extraction(cfg)
    assert summary["per_class"] == {"real": {"total": 1, "ok": 1}, "fake": {"total": 1, "no_face": 1}}
