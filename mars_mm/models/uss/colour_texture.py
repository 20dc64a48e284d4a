"""A training-free dense embedding: colour and texture statistics per cell."""
from typing import Optional, Sequence

from mmengine.model import BaseModule
from torch import Tensor

from mars_mm.core.descriptors import colour_texture_descriptors
from mars_mm.registry import MODELS


@MODELS.register_module()
class ColourTextureEmbedding(BaseModule):
    """Backbone-shaped wrapper of :func:`~mars_mm.core.descriptors.
    colour_texture_descriptors`: no weights, deterministic, any device.

    It receives images normalised by the data preprocessor and undoes the
    normalisation first (the descriptors are defined on RGB in [0, 255]).

    Args:
        stride: output stride (the embedding format of Stage 3 uses 8).
        bins: gradient-orientation bins.
        context: neighbourhood (cells) whose mean is appended; 1 for none.
        mean, std: the data preprocessor's normalisation, RGB order.
    """

    def __init__(self, stride: int = 8, bins: int = 6, context: int = 3,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.stride = stride
        self.bins = bins
        self.context = context
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    @property
    def out_channels(self) -> int:
        """Channels of the output: ``(6 + bins)``, doubled with context."""
        return (6 + self.bins) * (2 if self.context > 1 else 1)

    def forward(self, inputs: Tensor) -> Tensor:
        """``(B, 3, H, W)`` normalised RGB -> ``(B, D, ceil(H/s), ceil(W/s))``."""
        mean = inputs.new_tensor(self.mean)[None, :, None, None]
        std = inputs.new_tensor(self.std)[None, :, None, None]
        rgb = (inputs * std + mean).clamp(0, 255)
        return colour_texture_descriptors(rgb, self.stride, self.bins, self.context)
