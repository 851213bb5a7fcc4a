from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from irisgan.data.pairs import (
    IrisPairsDataModule,
    channel_stats,
    parse_ratio,
    rebalance,
    sampling_weights,
    stratified_split,
)
from irisgan.data.pairs_format import join_pair, read_pairs_csv, write_pairs_csv
from tests.conftest import write_random_pairs


def make_dm(csv, **kw):
    dm = IrisPairsDataModule(csv=str(csv), batch_size=8, **kw)
    dm.setup("fit")
    return dm


def test_datamodule_loads_splits_and_batches_uint8(pairs_csv):
    dm = make_dm(pairs_csv)
    assert len(dm.train_set) == 32 and len(dm.val_set) == 8
    assert dm.train_set.class_counts() == {"real": 16, "fake": 16}  # stratified
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 96, 96)
    assert labels.dtype == torch.float32
    # statistics come from the training split alone
    mean, std = channel_stats(dm.train_set.images)
    assert dm.mean == pytest.approx(mean) and dm.std == pytest.approx(std)
    assert not np.allclose(channel_stats(dm.val_set.images)[0], dm.mean, atol=1e-6)


def test_split_is_seeded_and_disjoint():
    labels = torch.tensor([0.0, 1.0] * 50)
    a = stratified_split(labels, 0.2, seed=3)
    b = stratified_split(labels, 0.2, seed=3)
    c = stratified_split(labels, 0.2, seed=4)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], c[1])
    assert set(a[0].tolist()).isdisjoint(a[1].tolist()) and len(a[0]) + len(a[1]) == 100


def test_fake_to_real_ratio_option(pairs_csv):
    assert parse_ratio("1:4") == 0.25 and parse_ratio(2) == 2.0 and parse_ratio(None) is None
    with pytest.raises(ValueError, match="FAKE:REAL"):
        parse_ratio("1:0")
    dm = make_dm(pairs_csv, train_fake_to_real="1:4")
    counts = dm.train_set.class_counts()
    assert counts == {"real": 16, "fake": 4}
    labels = torch.tensor([1.0] * 10 + [0.0] * 10)
    kept = rebalance(labels, torch.arange(20), 4.0, seed=0)
    assert int(labels[kept].sum()) == 10 and len(kept) == 12  # reals subsampled to 10 / 4


def test_sampling_weights_share_classes_then_groups():
    # 6 real pairs from two sources (5 + 1), 2 GAN pairs of one generator
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    groups = ["ffhq"] * 5 + ["studio", "gan", "gan"]

    def shares(w):
        w = w / w.sum()
        return {g: round(float(w[[i for i, x in enumerate(groups) if x == g]].sum()), 4) for g in set(groups)}

    assert shares(sampling_weights(labels, groups, classes=True, within=False)) == {
        "ffhq": round(0.5 * 5 / 6, 4), "studio": round(0.5 / 6, 4), "gan": 0.5
    }  # fmt: skip
    assert shares(sampling_weights(labels, groups, classes=True, within=True)) == {
        "ffhq": 0.25,
        "studio": 0.25,
        "gan": 0.5,
    }
    # groups alone keep each class's natural share (6:2) and split it among its groups
    assert shares(sampling_weights(labels, groups, classes=False, within=True)) == {
        "ffhq": 0.375,
        "studio": 0.375,
        "gan": 0.25,
    }


def test_balance_groups_reads_the_generator_column(tmp_path):
    csv = write_random_pairs(tmp_path / "set", n=40)
    rows = read_pairs_csv(csv)
    for i, row in enumerate(rows):  # real pairs: 15 of one source, 5 of another
        row["generator"] = "gan" if row["label"] == "1" else "big" if i < 30 else "small"
    write_pairs_csv(csv, rows)
    dm = IrisPairsDataModule(
        csv=str(csv), batch_size=8, balance_classes=True, balance_groups=True, val_fraction=0.25
    )
    dm.setup("fit")
    assert set(dm.train_set.groups) == {"gan", "big", "small"}
    weights = dm.train_dataloader().sampler.weights
    small = [i for i, g in enumerate(dm.train_set.groups) if g == "small"]
    big = [i for i, g in enumerate(dm.train_set.groups) if g == "big"]
    assert weights[small].sum() == pytest.approx(weights[big].sum())
    assert weights[small].sum() == pytest.approx(0.25 * weights.sum())


@pytest.mark.parametrize(
    "damage,match",
    [
        ("missing", "not found"),
        ("unreadable", "unreadable"),
        ("wrong_size", "expected 96x96"),
        ("bad_label", "is not 0"),
        ("empty", "lists no pairs"),
        ("single_class", "single class"),
        ("no_label_column", "missing column"),
    ],
)
def test_bad_inputs_stop_with_a_clear_message(tmp_path: Path, damage, match):
    csv = write_random_pairs(tmp_path, n=20)
    rows = read_pairs_csv(csv)
    if damage == "missing":
        (tmp_path / rows[3]["path"]).unlink()
    elif damage == "unreadable":
        (tmp_path / rows[3]["path"]).write_bytes(b"not an image")
    elif damage == "wrong_size":
        cv2.imwrite(str(tmp_path / rows[3]["path"]), np.zeros((64, 64, 3), np.uint8))
    elif damage == "bad_label":
        rows[3]["label"] = "2"
        write_pairs_csv(csv, rows)
    elif damage == "empty":
        write_pairs_csv(csv, [])
    elif damage == "single_class":
        write_pairs_csv(csv, [r for r in rows if r["label"] == "0"])
    elif damage == "no_label_column":
        csv.write_text("path\n" + "\n".join(r["path"] for r in rows) + "\n")
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        make_dm(csv)
    if damage in ("missing", "unreadable", "wrong_size", "bad_label"):
        assert "line 5" in str(err.value) and str(csv) in str(err.value)  # names the row and the file


def test_join_pair_puts_left_iris_left():
    left = np.zeros((50, 50, 3), np.uint8)
    right = np.full((70, 70, 3), 255, np.uint8)
    pair = join_pair(left, right)
    assert pair.shape == (96, 96, 3)
    assert pair[:, :40].max() == 0 and pair[:, 56:].min() == 255


def test_wide_pairs_keep_each_eye_square_and_load_at_their_shape(tmp_path):
    """pair.width = 2 x size: each eye keeps its shape (no horizontal squeeze); the loader checks the shape."""
    ring = np.zeros((60, 60, 3), np.uint8)
    cv2.circle(ring, (30, 30), 20, (255, 255, 255), -1)
    pair = join_pair(ring, ring, 64, 128)
    assert pair.shape == (64, 128, 3)
    assert np.array_equal(pair[:, :64], pair[:, 64:])
    bright = pair[:, :64, 0] > 127
    rows, cols = np.nonzero(bright)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1  # a circle stays a circle
    square = join_pair(ring, ring, 64)  # the paper's pair: the same eye squeezed to half its width
    rows, cols = np.nonzero(square[:, :32, 0] > 127)
    assert (rows.max() - rows.min()) > 1.8 * (cols.max() - cols.min())
    for width in (63, 130, 4):
        with pytest.raises(ValueError, match="even width"):
            join_pair(ring, ring, 64, width)
    rows = []
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), pair)
        rows.append({"path": f"{i}.png", "label": i % 2})
    write_pairs_csv(tmp_path / "pairs.csv", rows)
    dm = IrisPairsDataModule(
        csv=str(tmp_path / "pairs.csv"), size=64, width=128, batch_size=2, val_fraction=0.5
    )
    dm.setup("fit")
    assert tuple(dm.train_set.images.shape[1:]) == (3, 64, 128)
    with pytest.raises(ValueError, match="expected 96x96 iris pairs"):
        IrisPairsDataModule(csv=str(tmp_path / "pairs.csv"), batch_size=2).setup("fit")


def test_hflip_only_while_training(pairs_csv):
    dm = make_dm(pairs_csv)
    batch = next(iter(dm.val_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)  # no trainer: evaluation path, untouched
    assert torch.equal(out[0], batch[0])


def test_training_degradations_change_training_pairs_only(pairs_csv):
    dm = make_dm(pairs_csv, degrade={"p": 1.0, "kinds": ["jpeg", "noise"]})
    img, _ = dm.train_set[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 96, 96)
    assert not torch.equal(img, dm.train_set.images[0])
    assert torch.equal(dm.val_set[0][0], dm.val_set.images[0])
