"""The embedded synthetic iris-pair set: format, determinism, caching, and that its cues are real."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from irisgan.data.pairs_format import read_pairs_csv
from irisgan.synthetic.pair_render import CUE_FAMILIES, TEXTURE_ARTIFACTS, render_pair
from irisgan.synthetic.pairs import ensure_synthetic_pairs, pair_rng, save_contact_sheet

KNOWN_CUES = set(CUE_FAMILIES) - {"texture"} | set(TEXTURE_ARTIFACTS)


def _image_files(csv_path):
    return sorted((csv_path.parent / "images").glob("*.png"))


def _read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_format_labels_and_cues(tmp_path):
    csv_path = ensure_synthetic_pairs(tmp_path, n_pairs=10, fake_fraction=0.3, seed=1)
    rows = read_pairs_csv(csv_path)
    assert [r["path"] for r in rows] == [f"images/{i:06d}.png" for i in range(10)]
    assert sum(r["label"] == "1" for r in rows) == 3
    for row in rows:
        image = _read_rgb(csv_path.parent / row["path"])
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        cues = [c for c in row["cues"].split(";") if c]
        if row["label"] == "0":
            assert cues == []
        else:
            assert 1 <= len(cues) <= 3 and set(cues) <= KNOWN_CUES


@pytest.mark.parametrize("fake_fraction, n_fake", [(0.0, 0), (0.5, 10), (1.0, 20), (0.25, 5)])
def test_fake_count_follows_fake_fraction(tmp_path, fake_fraction, n_fake):
    rows = read_pairs_csv(ensure_synthetic_pairs(tmp_path, n_pairs=20, fake_fraction=fake_fraction))
    assert sum(r["label"] == "1" for r in rows) == n_fake


def test_same_arguments_give_identical_bytes(tmp_path):
    first = ensure_synthetic_pairs(tmp_path / "a", n_pairs=8, seed=3)
    second = ensure_synthetic_pairs(tmp_path / "b", n_pairs=8, seed=3)
    assert first.read_bytes() == second.read_bytes()
    for a, b in zip(_image_files(first), _image_files(second), strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_pair_depends_only_on_seed_split_and_index(tmp_path):
    # A longer set starts with the same pairs: each pair is a function of (seed, split, index) alone.
    short = ensure_synthetic_pairs(tmp_path, n_pairs=4, seed=3)
    long = ensure_synthetic_pairs(tmp_path, n_pairs=8, seed=3)
    assert short.parent != long.parent
    assert read_pairs_csv(short) == read_pairs_csv(long)[:4]
    for a, b in zip(_image_files(short), _image_files(long)[:4], strict=True):
        assert a.read_bytes() == b.read_bytes()
    image, cues = render_pair(pair_rng(3, "train", 5), fake=True, difficulty=0.5)
    assert np.array_equal(image, _read_rgb(_image_files(long)[5]))
    assert ";".join(cues) == read_pairs_csv(long)[5]["cues"]


def test_different_splits_and_seeds_give_different_images(tmp_path):
    train = _image_files(ensure_synthetic_pairs(tmp_path, n_pairs=6, split="train"))
    test = _image_files(ensure_synthetic_pairs(tmp_path, n_pairs=6, split="test"))
    other_seed = _image_files(ensure_synthetic_pairs(tmp_path, n_pairs=6, split="train", seed=1))
    for a, b, c in zip(train, test, other_seed, strict=True):
        assert not np.array_equal(_read_rgb(a), _read_rgb(b))
        assert not np.array_equal(_read_rgb(a), _read_rgb(c))


def test_second_call_reuses_the_cached_set(tmp_path):
    csv_path = ensure_synthetic_pairs(tmp_path, n_pairs=6)
    files = [csv_path, *_image_files(csv_path)]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert ensure_synthetic_pairs(tmp_path, n_pairs=6) == csv_path
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert (csv_path.parent / "complete.json").is_file()  # the marker both generators write last


@pytest.mark.parametrize("damage", ["no_csv", "short_csv", "missing_image", "bad_label"])
def test_interrupted_or_damaged_set_is_regenerated(tmp_path, damage):
    csv_path = ensure_synthetic_pairs(tmp_path, n_pairs=6)
    original_csv = csv_path.read_bytes()
    original_image = _image_files(csv_path)[2].read_bytes()
    if damage == "no_csv":  # killed before the CSV, written last, was written
        csv_path.unlink()
    elif damage == "short_csv":
        csv_path.write_text("\n".join(original_csv.decode().splitlines()[:3]) + "\n")
    elif damage == "missing_image":
        _image_files(csv_path)[2].unlink()
    else:
        csv_path.write_text(original_csv.decode().replace(",0,", ",7,", 1))
    assert ensure_synthetic_pairs(tmp_path, n_pairs=6) == csv_path
    assert csv_path.read_bytes() == original_csv
    assert _image_files(csv_path)[2].read_bytes() == original_image


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_pairs": 0}, "n_pairs"),
        ({"fake_fraction": 1.5}, "fake_fraction"),
        ({"difficulty": -0.1}, "difficulty"),
        ({"seed": -1}, "seed"),
        ({"split": "../train"}, "split"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ensure_synthetic_pairs(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def _halves_disagreement(image: np.ndarray) -> float:
    """How much the two eyes of a pair disagree: highlight positions plus iris colour."""
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    halves = [grey[:, :48], grey[:, 48:]]
    spots = [np.array(np.unravel_index(np.argmax(h), h.shape), dtype=float) for h in halves]
    colours = [image[24:72, 8:40].reshape(-1, 3).mean(0), image[24:72, 56:88].reshape(-1, 3).mean(0)]
    return float(np.linalg.norm(spots[0] - spots[1]) / 10.0 + np.abs(colours[0] - colours[1]).sum() / 10.0)


def test_real_pairs_agree_between_the_eyes_more_than_fake_pairs():
    n = 60
    real = [_halves_disagreement(render_pair(pair_rng(0, "check", i), False, 0.5)[0]) for i in range(n)]
    fake = [_halves_disagreement(render_pair(pair_rng(0, "check", i), True, 0.5)[0]) for i in range(n)]
    assert np.mean(fake) > 1.3 * np.mean(real)


def test_render_pair_rejects_bad_difficulty():
    with pytest.raises(ValueError, match="difficulty"):
        render_pair(pair_rng(0, "train", 0), fake=True, difficulty=1.5)


def test_contact_sheet_is_written(tmp_path):
    csv_path = ensure_synthetic_pairs(tmp_path, n_pairs=8)
    out = save_contact_sheet(csv_path, tmp_path / "sheet.png", columns=4, rows=2)
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] > 96 and sheet.shape[1] > 4 * 96


def test_parallel_rendering_gives_the_same_set(tmp_path):
    serial = ensure_synthetic_pairs(tmp_path / "serial", n_pairs=6)
    parallel = ensure_synthetic_pairs(tmp_path / "parallel", n_pairs=6, workers=2)
    assert serial.read_bytes() == parallel.read_bytes()
    for a, b in zip(_image_files(serial), _image_files(parallel), strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_low_difficulty_plants_more_cue_families():
    from irisgan.synthetic.pair_render import _apply_cues, _draw_face

    def counts(difficulty):
        out = []
        for i in range(60):
            rng = pair_rng(0, "cue-count", i)
            out.append(len(_apply_cues(rng, _draw_face(rng, difficulty), difficulty)))
        return np.array(out)

    easy, default_hard = counts(0.0), counts(0.5)
    assert easy.min() == 2 and easy.max() == 4  # one more family than at 0.5, always
    assert default_hard.min() == 1 and default_hard.max() == 3
    assert 0.8 < easy.mean() - default_hard.mean() < 1.2
