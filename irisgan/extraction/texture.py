"""The face's texture: what an ImageNet network's early layers make of the aligned face, in grey.

The face cue's second view of a face (``irisgan.models.face_cue``), beside dlib's identity descriptor: the grey
aligned face (dlib's face chip, 224 px) through the first 14 blocks of torchvision's ImageNet MobileNetV2, each of
three stages' maps averaged over the image (24 + 32 + 96 numbers). Early layers of a network never trained on GAN
faces describe texture and fine structure, where generators leave their traces; a linear probe on them adds to
the descriptor on generator families and real sources the study holds out (``experiments/face_features_probe.py``;
``experiments/README.md``, ninth round). Grey by construction: a photo and its grey copy have the same texture
features. It is an option of the face cue (``irisgan.ensemble --face-cue --texture``, ``make model
MODEL_TEXTURE=1``), not part of the shipped detector: a blurred or resampled copy of a GAN photo, and a real photo
made by super-resolution (CelebA-HQ), fool it.

The weights (``irisgan/weights/mobilenet_v2_trunk.pt``, 2.2 MB) are those 14 blocks of torchvision's
``MobileNet_V2_Weights.IMAGENET1K_V1`` (``mobilenet_v2-b0353104.pth``, BSD-3-Clause, trained on ImageNet-1k),
cut by ``export_trunk``: nothing is downloaded at run time.

``face_features`` joins the views a cue names (its ``FaceView``: dlib's descriptor at one or more borders, the
texture or not, the inner features of dlib's network or not) into what it reads of a photo.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from irisgan.extraction.face_net import aligned_face, face_inner
from irisgan.extraction.faces import face_descriptor
from irisgan.models.face_cue import FaceView

TRUNK = Path(__file__).resolve().parents[1] / "weights" / "mobilenet_v2_trunk.pt"
BLOCKS = 14  # MobileNetV2's features[:14]: strides up to 16, 96 channels
TAPS = (4, 7, 14)  # the blocks whose output maps are averaged
TEXTURE_SIZE = 24 + 32 + 96
CHIP = 224  # the aligned face's side, ImageNet's input size
SOURCE_SHA256 = (
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"  # mobilenet_v2-b0353104.pth
)
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TextureTrunk(torch.nn.Module):
    """MobileNetV2's first ``BLOCKS`` blocks; ``forward`` gives the tapped maps' spatial means, (N, 152)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.blocks = mobilenet_v2().features[:BLOCKS]
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        """``grey``: (N, H, W) uint8 or float in [0, 255]."""
        return self.pooled_taps(grey.float().unsqueeze(1).expand(-1, 3, -1, -1))

    def pooled_taps(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 255], ImageNet-normalised here -> the tapped maps' spatial means."""
        x = (rgb.float().div(255) - self.mean) / self.std
        taps = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in TAPS:
                taps.append(x.mean(dim=(2, 3)))
        return torch.cat(taps, dim=1)


_LOADED: dict[str, TextureTrunk] = {}


def load_trunk(path: str | Path = TRUNK) -> TextureTrunk:
    """The trunk with its ImageNet weights (one per file and process), in eval mode."""
    key = str(Path(path).resolve())
    if key not in _LOADED:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"the face texture weights are missing: {path} (they come with the package; re-clone or "
                "re-install irisgan, or cut them from torchvision's mobilenet_v2-b0353104.pth with "
                "irisgan.extraction.texture.export_trunk)"
            )
        trunk = TextureTrunk()
        trunk.blocks.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _LOADED[key] = trunk.eval()
    return _LOADED[key]


def export_trunk(full_state_dict: str | Path, out: str | Path = TRUNK) -> Path:
    """Cut the trunk's weights from torchvision's ImageNet MobileNetV2 file (checked by its SHA-256)."""
    data = Path(full_state_dict).read_bytes()
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        raise ValueError(
            f"{full_state_dict} is not torchvision's mobilenet_v2-b0353104.pth (SHA-256 differs)"
        )
    state = torch.load(full_state_dict, map_location="cpu", weights_only=True)
    prefixes = tuple(f"features.{i}." for i in range(BLOCKS))
    trunk = {k.removeprefix("features."): v for k, v in state.items() if k.startswith(prefixes)}
    TextureTrunk().blocks.load_state_dict(trunk)  # every key present, shapes right
    torch.save(trunk, out)
    return Path(out)


def aligned_grey_face(image: np.ndarray, face_box, landmarks: np.ndarray, size: int = CHIP) -> np.ndarray:
    """The face aligned by its 68 landmarks (dlib's face chip, border 0.25), ``size`` px, grey (uint8)."""
    import cv2

    return cv2.cvtColor(aligned_face(image, face_box, landmarks, size), cv2.COLOR_RGB2GRAY)


def face_texture(image: np.ndarray, face_box, landmarks: np.ndarray) -> np.ndarray:
    """(152,) texture features of an RGB photo's face (full-resolution box and landmarks)."""
    chip = torch.from_numpy(aligned_grey_face(image, face_box, landmarks))
    with torch.inference_mode():
        return load_trunk()(chip[None]).numpy()[0].astype(np.float32)


def face_features(
    image: np.ndarray, face_box, landmarks, view: FaceView = FaceView(texture=True)
) -> np.ndarray:
    """(``view.width``,) face features of an RGB photo's face: dlib's descriptor at each of the view's borders,
    then the texture features and the inner features of dlib's network (``face_net``) if the view has them (the
    default view: the descriptor at 0.25 and the texture)."""
    points = np.asarray(landmarks, np.float64)
    parts = [face_descriptor(image, face_box, points, padding) for padding in view.paddings]
    if view.texture:
        parts.append(face_texture(image, face_box, points))
    if view.inner:
        parts.append(face_inner(image, face_box, points))
    return np.concatenate(parts).astype(np.float32)
