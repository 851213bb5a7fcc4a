import numpy as np
import pytest

from irisgan.data.degrade import (
    ADVERSARY_DEGRADATIONS,
    DEGRADATIONS,
    RESIZING,
    VIVID_DEGRADATIONS,
    VIVID_RANGES,
    RandomDegradation,
    degrade,
    degrade_batch,
    parse,
    vivid,
    vivid_copy,
)


def test_every_named_degradation_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    for name in DEGRADATIONS:
        out = degrade(img, name, np.random.default_rng(1))
        kind, scale = parse(name)
        if kind in RESIZING:  # photo-level: a smaller or larger photo, not scaled back
            assert out.shape == (round(96 * scale), round(96 * scale), 3) and out.dtype == np.uint8
            continue
        assert out.shape == img.shape and out.dtype == np.uint8
        if name == "clean":
            assert np.array_equal(out, img)
        else:
            assert not np.array_equal(out, img), name


def test_stronger_degradation_loses_more():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    err = {
        n: np.abs(degrade(img, n).astype(int) - img).mean() for n in ("jpeg90", "jpeg50", "blur1", "blur2")
    }
    assert err["jpeg50"] > err["jpeg90"] and err["blur2"] > err["blur1"]


def test_batch_is_deterministic_and_names_are_checked():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 96, 96), dtype=np.uint8)
    with pytest.raises(ValueError, match="photo-level"):
        degrade_batch(x, "shrink0.5")
    assert np.array_equal(degrade_batch(x, "noise5", seed=3), degrade_batch(x, "noise5", seed=3))
    assert parse("blur1.5") == ("blur", 1.5)
    with pytest.raises(ValueError, match="unknown degradation"):
        parse("sepia2")
    with pytest.raises(ValueError, match="valid"):
        RandomDegradation(kinds=["sepia"])
    with pytest.raises(ValueError, match="photo-level"):
        degrade_batch(x, "crop0.8")


def test_the_adversarys_edits_do_what_they_say():
    yy, xx = np.mgrid[0:64, 0:64]
    board = ((xx // 8 + yy // 8) % 2 * 120 + 60).astype(np.uint8)  # a checkerboard
    img = np.repeat(board[..., None], 3, axis=2)
    assert set(ADVERSARY_DEGRADATIONS) <= set(DEGRADATIONS)
    sharp = degrade(img, "sharpen1").astype(float)
    assert sharp.std() > img.std()  # edges overshoot
    assert degrade(img, "gamma0.7").mean() > img.mean() > degrade(img, "gamma1.4").mean()
    assert np.array_equal(degrade(img, "crop0.5"), img[16:48, 16:48])
    assert np.array_equal(degrade(img, "rotate0"), img)
    rotated = degrade(img, "rotate90")
    assert np.abs(rotated.astype(int) - np.rot90(img).astype(int)).mean() < 2
    big = degrade(img, "upscale2")
    assert big.shape == (128, 128, 3) and abs(big.mean() - img.mean()) < 2


def _face_like(seed: int = 0) -> np.ndarray:
    """A muted, smoothly shaded colour image with fine grain: room for saturation, contrast and detail to grow."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    base = np.stack([150 + 40 * xx, 120 + 30 * yy, 100 + 20 * xx * yy], axis=2)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def test_vivid_edits_raise_saturation_local_contrast_and_detail():
    img = _face_like()
    assert set(VIVID_DEGRADATIONS) <= set(DEGRADATIONS)
    sat = lambda x: (x.max(axis=2).astype(int) - x.min(axis=2)).mean()  # noqa: E731
    detail = lambda x: np.abs(np.diff(x.astype(int), axis=1)).mean()  # noqa: E731
    assert sat(degrade(img, "saturate1.3")) > 1.2 * sat(img)
    grey = np.repeat(img[..., :1], 3, axis=2)
    assert np.array_equal(degrade(grey, "saturate1.3"), grey)  # a grey photo has no colour to raise
    assert degrade(img, "clahe2")[..., 0].std() > img[..., 0].std()
    v = degrade(img, "vivid1")
    assert sat(v) > sat(img) and detail(v) > detail(img)
    assert np.array_equal(v, vivid(img, 1.3, 2.0, 0.6))


def test_a_vivid_copy_is_fixed_by_the_photos_pixels():
    img, other = _face_like(0), _face_like(1)
    assert np.array_equal(vivid_copy(img), vivid_copy(img.copy()))  # no state, no key: the same copy each run
    # another photo draws other strengths: its copy is not the first's strengths applied to it
    rng = np.random.default_rng(__import__("zlib").crc32(img.tobytes()))
    first = [rng.uniform(lo, hi) for lo, hi in VIVID_RANGES]
    assert np.array_equal(vivid_copy(img), vivid(img, *first))
    assert not np.array_equal(vivid_copy(other), vivid(other, *first))
