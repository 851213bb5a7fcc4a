"""The Mask R-CNN builder: torchvision's MaskRCNN with a chosen backbone, normalisation and size.

``build_maskrcnn(**network)`` takes plain values only (they come from ``conf/model/*.yaml`` and are
stored in checkpoints). Two configurations matter:

- ``maskrcnn_r50``: the paper's ResNet-50-FPN with new box and mask predictors for two classes
  (background, iris). From scratch by default; ``weights: coco`` (or a path to torchvision's
  ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``) starts from COCO, which must already be on disk:
  nothing is ever downloaded.
- ``maskrcnn_light``: a ResNet-18-FPN with narrower FPN and heads, a small input size and fewer
  proposals, for training on a CPU.

Normalisation from scratch at a small batch: BatchNorm trains the deep network worse at batch 2 and ties
evaluation to the statistics of the training data (the measurements are in experiments/README.md).
GroupNorm, which does not depend on the batch, is the default when training from scratch;
``frozen_batch_norm`` is for pretrained (COCO) weights only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18, resnet34, resnet50
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _mobilenet_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
BACKBONES = (*RESNETS, "mobilenet_v3_large")
NORMS = ("group_norm", "batch_norm", "frozen_batch_norm")
COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_Weights.COCO_V1


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)  # 32 groups where they divide the channels


def norm_layer(norm: str):
    if norm == "group_norm":
        return _group_norm
    if norm == "batch_norm":
        return nn.BatchNorm2d
    if norm == "frozen_batch_norm":
        return FrozenBatchNorm2d
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


def coco_weights_file(weights: str) -> Path:
    """The local file for ``weights`` ('coco' = torchvision's file in the torch hub cache, or a path)."""
    if weights == "coco":
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(COCO_WEIGHTS.url).name
        hint = f"download {COCO_WEIGHTS.url} yourself and put it there, or give its path as model.network.weights"
    else:
        path, hint = (
            Path(weights).expanduser(),
            "give the path of torchvision's Mask R-CNN ResNet-50-FPN COCO weights",
        )
    if not path.is_file():
        raise FileNotFoundError(f"COCO weights not found at {path}: {hint} (irisgan never downloads weights)")
    return path


def build_maskrcnn(
    backbone: str = "resnet50",
    norm: str = "group_norm",
    weights: str | None = None,
    num_classes: int = 2,
    min_size: int = 800,
    max_size: int = 1333,
    fpn_channels: int = 256,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    trainable_backbone_layers: int = 5,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_batch_size_per_image: int = 256,
    box_batch_size_per_image: int = 512,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
    box_representation_size: int = 1024,
    mask_head_channels: int = 256,
    mask_head_layers: int = 4,
) -> MaskRCNN:
    """A torchvision MaskRCNN for ``num_classes`` (background included) with fresh box and mask predictors."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    if weights is not None:
        standard = dict(
            backbone="resnet50",
            norm="frozen_batch_norm",
            fpn_channels=256,
            returned_layers=(1, 2, 3, 4),
            box_representation_size=1024,
            mask_head_channels=256,
            mask_head_layers=4,
        )
        given = dict(
            backbone=backbone,
            norm=norm,
            fpn_channels=fpn_channels,
            returned_layers=tuple(returned_layers),
            box_representation_size=box_representation_size,
            mask_head_channels=mask_head_channels,
            mask_head_layers=mask_head_layers,
        )
        differ = {k: v for k, v in given.items() if standard[k] != v}
        if differ:
            raise ValueError(
                f"COCO weights fit torchvision's ResNet-50-FPN only; these settings differ: {differ} "
                f"(needed: { {k: standard[k] for k in differ} })"
            )
    norm_fn = norm_layer(norm)
    # The FPN and the mask head get GroupNorm when the backbone has it (as in torchvision's v2 model);
    # with BatchNorm variants they stay un-normalised, as in the original Mask R-CNN.
    head_norm = _group_norm if norm == "group_norm" else None

    if backbone in RESNETS:
        body = RESNETS[backbone](weights=None, norm_layer=norm_fn)
        features = _resnet_fpn(body, trainable_backbone_layers, returned_layers, fpn_channels, head_norm)
    else:
        body = mobilenet_v3_large(weights=None, norm_layer=norm_fn)
        features = _mobilenet_extractor(body, True, trainable_backbone_layers, norm_layer=head_norm)
        if fpn_channels != 256:
            raise ValueError("the mobilenet_v3_large backbone supports fpn_channels=256 only")
    n_levels = len(features.fpn.layer_blocks) + 1  # + the max-pool level
    if len(anchor_sizes) != n_levels:
        raise ValueError(
            f"anchor_sizes {list(anchor_sizes)} needs one size per feature level ({n_levels} for "
            f"{backbone} with returned_layers {list(returned_layers)})"
        )
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * n_levels)
    channels = features.out_channels
    mask_layers = (mask_head_channels,) * mask_head_layers
    model = MaskRCNN(
        features,
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        box_head=TwoMLPHead(channels * 7 * 7, box_representation_size),
        box_predictor=FastRCNNPredictor(box_representation_size, 91 if weights else num_classes),
        box_batch_size_per_image=box_batch_size_per_image,
        box_detections_per_img=box_detections_per_img,
        box_score_thresh=box_score_thresh,
        mask_head=MaskRCNNHeads(channels, mask_layers, 1, norm_layer=head_norm),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], mask_head_channels, 91 if weights else num_classes),
    )
    if weights is not None:
        state = torch.load(coco_weights_file(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    # New predictors for our classes (for COCO weights: replacing the 91-class ones, as in the tutorial).
    model.roi_heads.box_predictor = FastRCNNPredictor(box_representation_size, num_classes)
    model.roi_heads.mask_predictor = MaskRCNNPredictor(mask_layers[-1], mask_head_channels, num_classes)
    return model


def _resnet_fpn(body, trainable_layers: int, returned_layers: Sequence[int], out_channels: int, fpn_norm):
    """torchvision's ``_resnet_fpn_extractor`` with a choice of FPN width (it fixes 256)."""
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in body.named_parameters():
        if all(not name.startswith(layer) for layer in layers_to_train):
            parameter.requires_grad_(False)
    stage_channels = body.inplanes // 8  # channels of layer1's output (64 for resnet18/34, 256 for resnet50)
    in_channels_list = [stage_channels * 2 ** (i - 1) for i in returned_layers]
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    return BackboneWithFPN(
        body,
        return_layers,
        in_channels_list,
        out_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=fpn_norm,
    )
