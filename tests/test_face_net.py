import numpy as np
import pytest
import torch

from irisgan.extraction import face_net
from irisgan.extraction.face_net import (
    INNER_SIZE,
    FaceNetFileError,
    face_inner,
    inner_features,
    load_face_net,
    read_face_net,
)
from irisgan.extraction.faces import face_models_dir
from irisgan.models import face_cue


def test_dlib_packed_integers_are_read_as_dlib_writes_them():
    # control byte: the byte count in the low four bits, the sign in bit 7; then the bytes, least significant first
    assert face_net._int(bytes([0x01, 0x05]), 0) == (5, 2)
    assert face_net._int(bytes([0x82, 0x34, 0x12]), 0) == (-0x1234, 3)
    assert face_net._int(bytes([0xFF, 0x01, 0x01, 0x00]), 1) == (1, 3)
    for bad in (bytes([0x00]), bytes([0x09] + [0] * 9), bytes([0x04, 0x01])):
        with pytest.raises(FaceNetFileError, match="malformed"):
            face_net._int(bad, 0)


def test_the_ported_network_gives_dlibs_own_descriptor():
    import dlib

    path = face_models_dir() / face_net.MODEL_FILE
    layers = read_face_net(path)
    assert len(layers["conv"]) == len(layers["affine"]) == 29 and layers["fc"][0].shape == (256, 128)
    assert layers["conv"][0][0].shape == (32, 3, 7, 7) and layers["conv"][-1][0].shape == (256, 256, 3, 3)
    rng = np.random.default_rng(0)
    chips = [(rng.random((150, 150, 3)) * 255).astype(np.uint8) for _ in range(2)]
    chips.append(np.full((150, 150, 3), 128, np.uint8))
    net = load_face_net()
    descriptors, maps = net(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2))
    dlib_net = dlib.face_recognition_model_v1(str(path))
    expected = np.stack([np.array(dlib_net.compute_face_descriptor(c)) for c in chips])
    np.testing.assert_allclose(descriptors.numpy(), expected, atol=1e-5)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (32, 35, 35),
        (64, 17, 17),
        (128, 8, 8),
        (256, 4, 4),
        (256, 2, 2),
    ]
    features = inner_features(maps)
    assert features.shape == (3, INNER_SIZE) and INNER_SIZE == face_cue.INNER_SIZE == 1472
    np.testing.assert_allclose(features[:, :32].numpy(), maps[0].mean((2, 3)).numpy(), rtol=1e-6)


def test_another_file_is_refused_clearly(tmp_path):
    with pytest.raises(FaceNetFileError, match="not dlib's face recognition ResNet"):
        read_face_net(face_models_dir() / "shape_predictor_5_face_landmarks.dat")
    cut = tmp_path / "cut.dat"
    cut.write_bytes((face_models_dir() / face_net.MODEL_FILE).read_bytes()[:400_000])
    with pytest.raises(FaceNetFileError):
        read_face_net(cut)
    with pytest.raises(FileNotFoundError, match="face recognition model not found"):
        load_face_net(str(tmp_path / "missing.dat"))


def test_inner_features_of_a_photo_are_those_of_its_aligned_face_and_alike_in_grey():
    rng = np.random.default_rng(1)
    image = (rng.random((240, 240, 3)) * 255).astype(np.uint8)
    # a face-shaped set of 68 landmarks: a 2 x 34 grid inside the box
    xs, ys = np.meshgrid(np.linspace(70, 170, 34), [100, 150])
    landmarks = np.c_[xs.ravel(), ys.ravel()]
    box = (50, 50, 190, 190)
    x = face_inner(image, box, landmarks)
    assert x.shape == (INNER_SIZE,) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, face_inner(image, box, landmarks))
    grey = image.mean(2).astype(np.uint8)
    # a grey photo is read as three equal channels
    assert face_inner(grey, box, landmarks).shape == (INNER_SIZE,)
    np.testing.assert_allclose(
        face_inner(grey, box, landmarks), face_inner(np.repeat(grey[..., None], 3, 2), box, landmarks)
    )
    with pytest.raises(ValueError, match="68 landmarks"):
        face_inner(image, box, landmarks[:5])
