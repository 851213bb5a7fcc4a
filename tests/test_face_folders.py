"""data=faces: face photos -> cached iris pairs -> splits; the cache, the splits and the bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from irisgan.data.face_folders import FaceFoldersDataModule, read_face_csv, read_face_folder
from tests.conftest import FACES, TINY_NET, run_cli

needs_faces = pytest.mark.skipif(not FACES.is_dir(), reason=f"sample face photos not found at {FACES}")


def _photos(kind: str, n: int) -> list[Path]:
    return sorted((FACES / kind).glob("*.jpg"))[:n]


def _dm(tmp_path: Path, **kw) -> FaceFoldersDataModule:
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    kw.setdefault("extract_overrides", ["num_workers=0"])
    kw.setdefault("batch_size", 4)
    return FaceFoldersDataModule(**kw)


@pytest.fixture
def face_csv(tmp_path: Path) -> Path:
    """Six real and six GAN photos from the sample faces, the GAN ones under two generator labels."""
    folder = tmp_path / "photos"
    rows = []
    for kind, label in (("real", 0), ("fake", 1)):
        for i, src in enumerate(_photos(kind, 6)):
            dst = folder / kind / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            generator = "celeba" if label == 0 else ("gan-a" if i % 2 else "gan-b")
            rows.append({"path": f"{kind}/{src.name}", "label": label, "generator": generator, "source": "t"})
    path = folder / "sources.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "generator", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@needs_faces
def test_extracts_once_then_reuses_the_cache_and_redoes_only_a_changed_photo(tmp_path, face_csv):
    dm = _dm(tmp_path, csv=str(face_csv))
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) >= 8
    (key_dir,) = (tmp_path / "cache").iterdir()
    manifest = key_dir / "manifest.jsonl"
    faces = list(csv.DictReader(open(key_dir / "faces.csv")))
    assert len(faces) == 12 and {r["status"] for r in faces} <= {
        "ok",
        "no_irises",
        "no_left_iris",
        "no_right_iris",
    }
    summary = json.loads((key_dir / "summary.json").read_text())
    assert summary["this_run"]["processed"] == 12

    before = manifest.read_text()
    _dm(tmp_path, csv=str(face_csv))._csvs()  # a rerun: nothing extracted
    assert json.loads((key_dir / "summary.json").read_text())["this_run"]["processed"] == 0
    assert manifest.read_text() == before

    changed = face_csv.parent / "fake" / _photos("fake", 1)[0].name
    changed.write_bytes(_photos("fake", 2)[1].read_bytes())  # new content under the same name
    _dm(tmp_path, csv=str(face_csv))._csvs()
    assert json.loads((key_dir / "summary.json").read_text())["this_run"]["processed"] == 1

    # other extractor settings: a cache of their own
    _dm(tmp_path, csv=str(face_csv), extract_overrides=["num_workers=0", "pair.iris_margin=0.2"])._csvs()
    assert len(list((tmp_path / "cache").iterdir())) == 2

    # undistorted pairs (data.width = 2 x data.size): a cache of their own, at that shape; a square pair
    # keeps the key it had before pair.width existed
    assert _dm(tmp_path, csv=str(face_csv), width=96)._extract_config()[1] == key_dir
    wide = _dm(tmp_path, csv=str(face_csv), size=64, width=128)
    wide.setup("fit")
    assert len(list((tmp_path / "cache").iterdir())) == 3
    assert tuple(wide.train_set.images.shape[1:]) == (3, 64, 128)
    with pytest.raises(ValueError, match="data.size / data.width"):
        _dm(tmp_path, csv=str(face_csv), extract_overrides=["pair.width=192"])


@needs_faces
def test_by_generator_split_tests_on_the_held_out_generator_and_held_out_reals(tmp_path, face_csv):
    dm = _dm(tmp_path, csv=str(face_csv), split="by_generator", holdout="gan-a", test_real_fraction=0.34)
    csvs = dm._csvs()
    test = list(csv.DictReader(open(csvs["test"])))
    train = list(csv.DictReader(open(csvs["fit"]))) + list(csv.DictReader(open(csvs["val"])))
    assert {r["generator"] for r in test} == {"gan-a", "celeba"}
    assert "gan-a" not in {r["generator"] for r in train}
    assert not {r["photo"] for r in test} & {r["photo"] for r in train}
    assert all((csvs["test"].parent / r["path"]).is_file() for r in test)
    with pytest.raises(ValueError, match="no photos of"):
        _dm(tmp_path, csv=str(face_csv), split="by_generator", holdout="stylegan9")._csvs()


def test_split_rows_is_seeded_stratified_and_disjoint(tmp_path):
    rows = [
        {
            "label": i % 2,
            "generator": ("real" if i % 2 == 0 else f"g{i % 3}"),
            "status": "ok",
            "pair": f"p{i}",
        }
        for i in range(60)
    ] + [{"label": 1, "generator": "g0", "status": "no_face", "pair": ""}]
    dm = FaceFoldersDataModule(csv="unused.csv", split="by_generator", holdout=["g1"], split_seed=3)
    parts = dm.split_rows(rows)
    assert parts == dm.split_rows(rows)  # seeded
    assert sum(len(v) for v in parts.values()) == 60  # every pair once; the photo without one nowhere
    assert not set(parts["train"]) & set(parts["test"]) and not set(parts["val"]) & set(parts["test"])
    assert {rows[i]["generator"] for i in parts["test"]} == {"g1", "real"}
    n_real_test = sum(rows[i]["label"] == 0 for i in parts["test"])
    assert n_real_test == round(30 * 0.25)


def test_a_holdout_without_the_by_generator_split_is_refused():
    with pytest.raises(ValueError, match="data.split=by_generator"):
        FaceFoldersDataModule(csv="unused.csv", split="random", holdout=["boredhumans"])


def test_a_holdout_glob_keeps_part_of_a_generator_for_the_test():
    rows = [
        {"label": 0, "generator": "ffhq", "status": "ok", "pair": f"r{i}", "photo": f"/x/real/ffhq_{i}.jpg"}
        for i in range(40)
    ] + [
        {"label": 1, "generator": "sd", "status": "ok", "pair": f"f{i}", "photo": f"/x/fake/sd_{g}{i}.jpg"}
        for i in range(30)
        for g in ("ma", "bb")
    ]
    dm = FaceFoldersDataModule(csv="unused.csv", split="by_generator", holdout=["sd/sd_ma*"], split_seed=0)
    parts = dm.split_rows(rows)
    test = [rows[i] for i in parts["test"]]
    fakes = {Path(r["photo"]).name[:5] for r in test if r["label"] == 1}
    assert fakes == {"sd_ma"} and sum(r["label"] == 1 for r in test) == 30  # every adult, no other
    assert sum(r["label"] == 0 for r in test) == 10  # with 25% of the reals, as a held-out generator
    trained = [rows[i] for i in parts["train"] + parts["val"]]
    assert {Path(r["photo"]).name[:5] for r in trained if r["label"] == 1} == {"sd_bb"}  # the rest trains
    with pytest.raises(ValueError, match=r"no photos of \['sd/sd_xx\*'\]"):
        FaceFoldersDataModule(csv="u.csv", split="by_generator", holdout=["sd/sd_xx*"]).split_rows(rows)


def test_holding_out_a_real_source_tests_it_against_held_out_gan_photos():
    rows = [
        {"label": 0, "generator": "studio" if i < 10 else "ffhq", "status": "ok", "pair": f"r{i}"}
        for i in range(40)
    ] + [{"label": 1, "generator": f"g{i % 2}", "status": "ok", "pair": f"f{i}"} for i in range(40)]
    dm = FaceFoldersDataModule(
        csv="unused.csv", split="by_generator", holdout=["studio"], test_fake_fraction=0.25, split_seed=0
    )
    parts = dm.split_rows(rows)
    test = [rows[i] for i in parts["test"]]
    assert {r["generator"] for r in test if r["label"] == 0} == {"studio"}  # no other real photo
    assert sum(r["label"] == 0 for r in test) == 10
    fakes = [r for r in test if r["label"] == 1]
    assert len(fakes) == 10 and {r["generator"] for r in fakes} == {"g0", "g1"}  # 25% of each family
    trained = {rows[i]["pair"] for i in parts["train"] + parts["val"]}
    assert not trained & {r["pair"] for r in test} and "studio" not in {
        rows[i]["generator"] for i in parts["train"]
    }
    with pytest.raises(ValueError, match="test_fake_fraction"):
        FaceFoldersDataModule(
            csv="unused.csv", split="by_generator", holdout=["studio"], test_fake_fraction=1.0
        )


def test_bad_inputs_stop_with_a_message_that_names_the_file(tmp_path):
    good = tmp_path / "a.jpg"
    good.write_bytes(b"x")
    cases = {
        "path,label\na.jpg,2\n": "line 2: label '2'",
        "path,label\nmissing.jpg,1\n": "line 2: photo 'missing.jpg' not found",
        "file,label\na.jpg,1\n": "missing column",
        "path,label\n": "lists no photos",
    }
    for text, match in cases.items():
        path = tmp_path / "faces.csv"
        path.write_text(text)
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            read_face_csv(path)
    (tmp_path / "root" / "real").mkdir(parents=True)
    with pytest.raises(ValueError, match="fake is missing"):
        read_face_folder(tmp_path / "root")
    (tmp_path / "root" / "fake").mkdir()
    with pytest.raises(ValueError, match="holds no photos"):
        read_face_folder(tmp_path / "root")
    with pytest.raises(ValueError, match="exactly one of"):
        FaceFoldersDataModule()
    with pytest.raises(ValueError, match="needs data.holdout"):
        FaceFoldersDataModule(csv="x.csv", split="by_generator")
    with pytest.raises(ValueError, match="split='weird' unknown"):
        FaceFoldersDataModule(csv="x.csv", split="weird")


@needs_faces
def test_one_class_only_stops(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("path,label\n" + "".join(f"{p},0\n" for p in _photos("real", 2)))
    with pytest.raises(ValueError, match="only real photos"):
        _dm(tmp_path, csv=str(path))._csvs()


@needs_faces
def test_train_data_faces_end_to_end_and_export(tmp_path, face_csv):
    net = [f"model.net.{k}={v}".replace(" ", "") for k, v in TINY_NET.items()]
    run_cli(
        "irisgan.train", "experiment=faces", f"data.csv={face_csv}", f"data.cache_dir={tmp_path / 'cache'}",
        'data.extract_overrides=["num_workers=0"]', "data.batch_size=4", *net, "trainer.max_epochs=1",
        "logger=none", "hydra.run.dir=run", "export=run/weights.pt", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/auroc" in metrics and metrics["exported"].endswith("weights.pt")
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert weights["irisgan"]["kind"] == "classifier" and "optimizer_states" not in weights
    assert not any(k.startswith(("val_", "test_")) for k in weights["state_dict"])
    assert weights["meta"]["data"]["csv"] == str(face_csv)
    from irisgan.inference import load_classifier

    model = load_classifier(tmp_path / "run" / "weights.pt")
    assert float(model.threshold) == pytest.approx(metrics["val/threshold"], abs=1e-6)


@needs_faces
def test_runs_started_together_extract_once(tmp_path, face_csv):
    # A sweep's or the study's runs build the same cache at once: one extracts, the others wait and reuse it.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: _dm(tmp_path, csv=str(face_csv)).build_splits(), range(2)))
    assert built[0] == built[1]
    (key_dir,) = (d for d in (tmp_path / "cache").iterdir() if d.is_dir())
    photos = [json.loads(line)["path"] for line in (key_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(photos) == len(set(photos)) == 12
    assert json.loads((key_dir / "summary.json").read_text())["this_run"]["processed"] == 0  # the second run
