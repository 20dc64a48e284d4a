"""A Stage 2 model that needs no training: a frozen backbone is the embedding."""
from typing import List, Optional

from mmengine.model import BaseModel
from torch import Tensor

from mars_mm.registry import MODELS

from .frozen_backbone import FrozenFeaturesMixin


@MODELS.register_module()
class DenseEmbedder(FrozenFeaturesMixin, BaseModel):
    """Data preprocessor + :class:`FrozenBackbone`; its features are the codes.

    For Stage 2 embeddings that are not trained (a descriptor such as
    :class:`ColourTextureEmbedding`, a seeded random network, a pretrained
    backbone used as is). ``tools/uss/extract_features.py CONFIG --out DIR``
    exports it without a checkpoint; :meth:`dense_codes` and :meth:`extract_feat`
    are the same map, so ``--what codes`` and ``--what features`` agree.

    Args:
        backbone: a :class:`FrozenBackbone` config.
        data_preprocessor: e.g. mmseg's ``SegDataPreProcessor``.
    """

    def __init__(self, backbone: dict, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        self.build_frozen_parts(backbone, data_preprocessor, init_cfg)

    def dense_codes(self, inputs: Tensor) -> Tensor:
        """The embedding: the features themselves."""
        return self.extract_feat(inputs)

    def forward(self, inputs: Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Tensor:
        """Only ``tensor`` mode: there is nothing to train or predict."""
        if mode != 'tensor':
            raise RuntimeError(f'DenseEmbedder has no {mode!r} mode: it is not '
                               'trained; export it with tools/uss/extract_features.py')
        return self.dense_codes(inputs)
