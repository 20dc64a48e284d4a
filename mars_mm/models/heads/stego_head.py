"""STEGO's projection head: frozen features -> low-dimensional codes."""
from typing import Optional, Sequence, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from mars_mm.registry import MODELS


@MODELS.register_module()
class STEGOHead(BaseModule):
    """``code = linear(x) + mlp(x)`` with 1x1 convolutions.

    ``linear`` maps ``in_channels -> channels``; ``mlp`` is ``in_channels ->
    in_channels``, ReLU, ``in_channels -> channels``. While training, whole feature
    channels are dropped (``Dropout2d``) before both branches.

    Args:
        in_channels: channels of the backbone features.
        channels: code dimension D (STEGO: 70).
        dropout_ratio: ``Dropout2d`` probability on the features in training.
        nonlinear: add the MLP branch (STEGO's "nonlinear" projection).
    """

    def __init__(self, in_channels: int, channels: int = 70,
                 dropout_ratio: float = 0.1, nonlinear: bool = True,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.channels = channels
        self.dropout = nn.Dropout2d(dropout_ratio)
        self.linear = nn.Conv2d(in_channels, channels, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, channels, 1)) if nonlinear else None

    def forward(self, feats: Tensor) -> Tensor:
        """``(B, C, h, w)`` features -> ``(B, D, h, w)`` codes."""
        feats = self.dropout(feats)
        codes = self.linear(feats)
        if self.mlp is not None:
            codes = codes + self.mlp(feats)
        return codes
