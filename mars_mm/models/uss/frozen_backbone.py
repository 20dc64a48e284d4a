"""A frozen feature extractor: any mmseg/mmpretrain backbone, never trained."""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mars_mm.registry import MODELS


@MODELS.register_module()
class FrozenBackbone(BaseModule):
    """Wraps a backbone built from config; its weights get no gradient, it stays in
    eval mode (no dropout, BN statistics fixed) and it returns one dense feature map.

    For STEGO the backbone is a self-supervised ViT, e.g.
    ``dict(type='DINOVisionTransformer', arch='base', patch_size=8,
    out_type='featmap', init_cfg=dict(type='Pretrained', checkpoint=...))`` (an
    ``mmpretrain.VisionTransformer`` resizing position embeddings as DINO), whose
    last-layer patch tokens form the ``(B, C, H / 8, W / 8)`` map.

    Args:
        backbone: config of any registered backbone returning a tensor or a tuple of
            ``(B, C, h, w)`` maps.
        out_channels: C of the returned map (the head is built with it).
        feature_stride: input pixels per feature cell (the ViT patch size).
        out_index: which element of a tuple output to use.
        centre_features: subtract the dataset mean feature (a running average over
            every training batch, stored as a buffer in the checkpoint). Untrained
            features need it: their raw cosine similarities are all close to 1.
        random_init_seed: initialise the backbone from this seed, independently of the
            global RNG, so that the kNN tool, training and export all see the same
            random network (for demos without pretrained weights).
        init_cfg: usually left None; pretrained weights go in ``backbone.init_cfg``.
    """

    def __init__(self, backbone: dict, out_channels: int, feature_stride: int = 8,
                 out_index: int = -1, centre_features: bool = False,
                 random_init_seed: Optional[int] = None,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.backbone.requires_grad_(False)
        self.out_channels = out_channels
        self.feature_stride = feature_stride
        self.out_index = out_index
        self.centre_features = centre_features
        self.random_init_seed = random_init_seed
        self.register_buffer('feature_mean', torch.zeros(out_channels))
        self.register_buffer('feature_count', torch.zeros((), dtype=torch.float64))
        self.backbone.eval()

    def init_weights(self) -> None:
        if self.random_init_seed is None:
            super().init_weights()
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_init_seed)
            # modules left at their constructor's init would otherwise depend on
            # the global RNG state at build time
            for module in self.backbone.modules():
                if hasattr(module, 'reset_parameters'):
                    module.reset_parameters()
            super().init_weights()
        self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> 'FrozenBackbone':
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> Tensor:
        """``(B, 3, H, W)`` images -> ``(B, C, h, w)`` features (no gradient)."""
        outputs = self.backbone(inputs)
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[self.out_index]
        if outputs.shape[1] != self.out_channels:
            raise ValueError(f'backbone returned {outputs.shape[1]} channels, the '
                             f'config says out_channels={self.out_channels}')
        if not self.centre_features:
            return outputs
        if self.training:
            self._update_mean(outputs)
        return outputs - self.feature_mean.to(outputs.dtype)[None, :, None, None]

    def _update_mean(self, feats: Tensor) -> None:
        """Running mean over all feature vectors seen in training."""
        count = feats.shape[0] * feats.shape[2] * feats.shape[3]
        batch_mean = feats.double().mean(dim=(0, 2, 3))
        total = self.feature_count + count
        mean = self.feature_mean.double()
        self.feature_mean.copy_(mean + (batch_mean - mean) * count / total)
        self.feature_count.copy_(total)


class FrozenFeaturesMixin:
    """What every Stage 2 model built on a :class:`FrozenBackbone` shares.

    A model mixes it in before its mmengine base class and calls
    :meth:`build_frozen_parts` instead of ``super().__init__``: the data
    preprocessor is built from mmseg's registry (so no default scope is needed) and
    ``self.backbone`` from the backbone config.
    """

    backbone: FrozenBackbone

    def build_frozen_parts(self, backbone: dict, data_preprocessor=None,
                           init_cfg=None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor,  # type: ignore[call-arg]
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)

    @property
    def feature_stride(self) -> int:
        """Input pixels per feature cell."""
        return self.backbone.feature_stride

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """Frozen features ``(B, C, h, w)`` of normalised images ``(B, 3, H, W)``."""
        return self.backbone(inputs)
