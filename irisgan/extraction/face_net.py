"""dlib's face recognition ResNet in PyTorch, read from its own file, for what its inner layers see of a face.

dlib's network (``dlib_face_recognition_resnet_model_v1.dat`` in ``face-recognition-models``, the one behind the
face cue's descriptor) is a 29-layer ResNet trained on real faces to tell identities apart. dlib gives only its
last output, the 128-d descriptor. Its inner stages describe the aligned face at 35, 17, 8, 4 and 2 px per side:
skin, eyes and features at the scale of a face seen at 150 px. A linear probe on them finds generated faces of
families it never saw better than the descriptor does, and, because the face is seen at 150 px, a blurred or
resampled copy of a photo barely moves them (``experiments/face_descriptor_probe.py --inner``;
``experiments/README.md``, eleventh round).

The file is dlib's serialisation of ``anet_type`` (``dlib/examples/dnn_face_recognition_ex.cpp``): its layers are
written input first; each convolution and affine layer's parameters are a tensor of little-endian float32, and
its shape and stride are dlib's packed integers (a control byte with the sign in bit 7 and the byte count in
the low four bits, then the bytes, least significant first). ``read_face_net`` reads those tensors and checks
the file has the layers the architecture needs; ``FaceNet`` runs them. Its descriptor matches dlib's
``compute_face_descriptor`` to 1e-6 (``tests/test_face_net.py``). Nothing is downloaded: the weights are those
the descriptor already uses.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from irisgan.extraction.faces import face_models_dir

CHIP = 150  # the aligned face the network was trained on (dlib's face chip, border 0.25)
MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input layer subtracts these, then divides by 256
# the residual stages after the stem: (channels, blocks, first block halves the maps)
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
INNER_SIZE = 2 * sum(c for c, _, _ in STAGES)  # each stage's maps: mean and standard deviation, 1,472 numbers
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# each layer's serialisation starts with its name, a string: its packed length, then its bytes
_LAYER = re.compile(rb"\x01\x05con_4|\x01\x07affine_|\x01\x04fc_2")


class FaceNetFileError(ValueError):
    """The file is not dlib's face recognition ResNet v1 as this reader knows it."""


def _int(data: bytes, at: int) -> tuple[int, int]:
    """One dlib packed integer at ``at``: (value, where the next item starts)."""
    control = data[at]
    size = control & 0x0F
    if size == 0 or size > 8 or at + 1 + size > len(data):
        raise FaceNetFileError(f"a packed integer at byte {at} is malformed")
    value = int.from_bytes(data[at + 1 : at + 1 + size], "little")
    return (-value if control & 0x80 else value), at + 1 + size


def _tensor(data: bytes, at: int) -> tuple[np.ndarray, int]:
    """One serialised dlib tensor (version 2: four packed dimensions, then float32 little-endian)."""
    version, at = _int(data, at)
    if version != 2:
        raise FaceNetFileError(f"a tensor at byte {at} has serialisation version {version}, not 2")
    dims = []
    for _ in range(4):
        d, at = _int(data, at)
        dims.append(d)
    n = int(np.prod(dims))
    if at + 4 * n > len(data):
        raise FaceNetFileError(f"a tensor at byte {at} runs past the end of the file")
    return np.frombuffer(data, "<f4", n, at).astype(np.float32), at + 4 * n


def read_face_net(path: str | Path) -> dict[str, list]:
    """The layers of dlib's face recognition ResNet v1 file, input first: ``conv`` (29 (filters (out, in, k, k),
    biases, stride, padding)), ``affine`` (29 (scale, shift)) and ``fc`` ([(256, 128)], no bias). A clear error
    for another file."""
    data = Path(path).read_bytes()
    conv: list[tuple] = []
    affine: list[tuple] = []
    fc: list[np.ndarray] = []
    for match in _LAYER.finditer(data):
        kind, at = match.group()[2:], match.end()
        if kind == b"con_4":
            params, at = _tensor(data, at)
            # filters, rows, columns, stride (y, x), padding (y, x)
            ints = []
            for _ in range(7):
                v, at = _int(data, at)
                ints.append(v)
            filters, rows, cols, stride, _, padding, _ = ints
            per = filters * rows * cols
            if per <= 0 or (len(params) - filters) % per:
                raise FaceNetFileError(f"a convolution at byte {match.start()} has {len(params)} parameters")
            inputs = (len(params) - filters) // per
            weights = params[: per * inputs].reshape(filters, inputs, rows, cols)
            conv.append((weights, params[per * inputs :], stride, padding))
        elif kind == b"affine_":
            params, _ = _tensor(data, at)
            half = len(params) // 2
            affine.append((params[:half], params[half:]))
        else:
            outputs, at = _int(data, at)
            inputs, at = _int(data, at)
            params, _ = _tensor(data, at)
            if params.size != outputs * inputs:
                raise FaceNetFileError(f"the fully connected layer has {params.size} weights")
            fc.append(params.reshape(inputs, outputs))
    expected = 1 + 2 * sum(n for _, n, _ in STAGES)
    widths = [c for c, n, _ in STAGES for _ in range(2 * n)]
    if (
        len(conv) != expected
        or len(affine) != expected
        or len(fc) != 1
        or [w.shape[0] for w, *_ in conv[1:]] != widths
        or fc[0].shape != (STAGES[-1][0], 128)
    ):
        raise FaceNetFileError(
            f"{path}: not dlib's face recognition ResNet v1 ({len(conv)} convolutions, {len(affine)} affine "
            f"layers, {len(fc)} fully connected; expected {expected}, {expected}, 1)"
        )
    return {"conv": conv, "affine": affine, "fc": fc}


def _pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two maps of different channels or sizes, the smaller zero-padded at the
    end (the shortcut of a downsampling block has fewer channels, and can be a pixel larger)."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class FaceNet(torch.nn.Module):
    """dlib's ``anet_type``: a 7x7 stem, five residual stages, the mean over the maps, a 128-d projection."""

    def __init__(self, layers: dict[str, list]) -> None:
        super().__init__()
        t = lambda a, *shape: torch.nn.Parameter(torch.from_numpy(np.array(a)).view(*shape), False)  # noqa: E731
        self.filters = torch.nn.ParameterList([t(w, *w.shape) for w, *_ in layers["conv"]])
        self.biases = torch.nn.ParameterList([t(b, -1) for _, b, *_ in layers["conv"]])
        self.strides = [int(s) for *_, s, _ in layers["conv"]]
        self.paddings = [int(p) for *_, p in layers["conv"]]
        self.scales = torch.nn.ParameterList([t(g, 1, -1, 1, 1) for g, _ in layers["affine"]])
        self.shifts = torch.nn.ParameterList([t(b, 1, -1, 1, 1) for _, b in layers["affine"]])
        self.projection = t(layers["fc"][0], *layers["fc"][0].shape)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))

    def _conv(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Convolution ``i`` and its affine layer (the batch norm dlib folded in after training)."""
        x = F.conv2d(x, self.filters[i], self.biases[i], stride=self.strides[i], padding=self.paddings[i])
        return x * self.scales[i] + self.shifts[i]

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(N, 3, 150, 150) RGB aligned faces in [0, 255] -> the (N, 128) descriptors and each stage's maps."""
        x = (rgb.float() - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self._conv(x, 0)), 3, 2)
        maps, i = [], 1
        for _, blocks, down in STAGES:
            for b in range(blocks):
                y = self._conv(F.relu(self._conv(x, i)), i + 1)
                x = F.relu(_pad_add(y, F.avg_pool2d(x, 2, 2) if down and b == 0 else x))
                i += 2
            maps.append(x)
        return x.mean((2, 3)) @ self.projection, maps


@functools.lru_cache(maxsize=2)
def load_face_net(path: str | None = None) -> FaceNet:
    """The network from ``face-recognition-models`` (or ``path``), read once per process."""
    file = Path(path) if path else face_models_dir() / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"dlib's face recognition model not found: {file}")
    return FaceNet(read_face_net(file)).eval()


def inner_features(maps: list[torch.Tensor]) -> torch.Tensor:
    """(N, ``INNER_SIZE``): each stage's maps, their mean and standard deviation over the image."""
    return torch.cat([torch.cat([m.mean((2, 3)), m.std((2, 3))], 1) for m in maps], 1)


def aligned_face(image: np.ndarray, face_box, landmarks: np.ndarray, size: int = CHIP) -> np.ndarray:
    """The RGB face aligned by its 68 landmarks, as dlib's descriptor sees it (face chip, border 0.25, ``size``
    px; a grey photo as three equal channels)."""
    import dlib

    points = np.asarray(landmarks)
    if points.shape != (68, 2):
        raise ValueError(f"the aligned face needs the 68 landmarks as (68, 2), got {points.shape}")
    x0, y0, x1, y1 = (int(round(v)) for v in face_box)
    shape = dlib.full_object_detection(
        dlib.rectangle(x0, y0, x1, y1), [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    )
    rgb = np.ascontiguousarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))
    return dlib.get_face_chip(rgb, shape, size, 0.25)


def face_inner(image: np.ndarray, face_box, landmarks: np.ndarray) -> np.ndarray:
    """(``INNER_SIZE``,) inner features of an RGB photo's face (full-resolution box and landmarks)."""
    chip = torch.from_numpy(aligned_face(image, face_box, landmarks)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return inner_features(load_face_net()(chip)[1]).numpy()[0].astype(np.float32)
