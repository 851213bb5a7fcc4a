import numpy as np
import pytest

from irisgan.data.degrade import DEGRADATIONS, RandomDegradation, degrade, degrade_batch, parse


def test_every_named_degradation_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    for name in DEGRADATIONS:
        out = degrade(img, name, np.random.default_rng(1))
        if name.startswith("shrink"):  # photo-level: a smaller photo, not scaled back
            scale = parse(name)[1]
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
        parse("sharpen2")
    with pytest.raises(ValueError, match="valid"):
        RandomDegradation(kinds=["sharpen"])
