"""A plain stack of 3x3 conv-BN-ReLU layers (a small CAM backbone for CPUs)."""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mars_mm.registry import MODELS


@MODELS.register_module()
class PlainConvNet(BaseModule):
    """VGG-like convolutions without pooling: stride comes from strided convs.

    Its receptive field stays small (45 px for the default seven layers at output
    stride 8), so each CAM cell scores local evidence. Trained from scratch on a
    small dataset, a deep ResNet's CAMs spread over the whole context band of a
    small object (the receptive field covers the image); this one lights up the
    object and spills only partly onto its context, the kind of baseline MARS
    corrects (``configs/cam/README.md``, "CPU recipe").

    Args:
        widths: output channels of each layer.
        strides: stride of each layer (same length as ``widths``).
        out_indices: layers whose outputs are returned, as a tuple.
        in_channels: channels of the input images.
        norm_cfg: normalisation layer config (default: trainable BN).
        init_cfg: weight initialisation; None keeps PyTorch's default
            (kaiming-uniform with ``a = sqrt(5)``), see below.

    Initialisation matters here (measured, configs/cam/README.md "CPU recipe"):
    with mmcv's Kaiming-normal (fan-out) init the CAMs of the voc-like planted
    preset covered the sky instead of the aeroplane (pseudo-label IoU 6.84;
    PyTorch's default init: 52.22). A likely reason: behind BatchNorm the smaller
    default weights get a larger effective learning rate from the same SGD step.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 64, 128, 128, 256, 256),
                 strides: Sequence[int] = (1, 2, 1, 2, 1, 2, 1),
                 out_indices: Sequence[int] = (6, ),
                 in_channels: int = 3,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if norm_cfg is None:
            norm_cfg = dict(type='BN', requires_grad=True)
        super().__init__(init_cfg=init_cfg)
        if len(widths) != len(strides):
            raise ValueError(f'widths {tuple(widths)} and strides {tuple(strides)} '
                             'differ in length')
        if not out_indices or max(out_indices) >= len(widths):
            raise ValueError(f'out_indices {tuple(out_indices)} must index the '
                             f'{len(widths)} layers')
        self.out_indices = tuple(out_indices)
        layers = []
        for width, stride in zip(widths, strides):
            layers.append(nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=stride, padding=1,
                          bias=False),
                build_norm_layer(norm_cfg, width)[1],
                nn.ReLU(inplace=True)))
            in_channels = width
        self.layers = nn.ModuleList(layers)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """``(B, 3, H, W)`` -> the feature maps of ``out_indices``."""
        outs = []
        x = inputs
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
