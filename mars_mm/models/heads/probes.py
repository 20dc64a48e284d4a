"""Evaluation probes trained on detached USS codes.

Neither probe changes the codes (their inputs are detached by the caller); they only
measure how much class information the codes hold: the cluster probe without labels
(scored after Hungarian matching), the linear probe with them.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mars_mm.registry import MODELS
from mars_mm.utils.io import IGNORE_INDEX


@MODELS.register_module()
class ClusterProbe(BaseModule):
    """K learnable centres; a code's score for cluster k is its cosine similarity to
    centre k.

    Training maximises, for every pixel, the similarity to its best centre (spherical
    k-means by gradient descent).

    Args:
        in_channels: code dimension D.
        num_clusters: K.
    """

    def __init__(self, in_channels: int, num_clusters: int,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_clusters = num_clusters
        self.centres = nn.Parameter(torch.randn(num_clusters, in_channels))

    def forward(self, codes: Tensor) -> Tensor:
        """``(B, D, h, w)`` codes -> ``(B, K, h, w)`` cosine similarities."""
        return torch.einsum('bdhw,kd->bkhw', F.normalize(codes, dim=1),
                            F.normalize(self.centres, dim=1))

    def loss(self, codes: Tensor) -> Dict[str, Tensor]:
        """``loss_cluster``: minus the mean best-centre similarity."""
        return dict(loss_cluster=-self(codes).max(dim=1).values.mean())


@MODELS.register_module()
class LinearProbe(BaseModule):
    """A 1x1 convolution from codes to class logits, trained with cross-entropy.

    Args:
        in_channels: code dimension D.
        num_classes: classes including background.
        ignore_index: ground-truth value without a loss.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 ignore_index: int = IGNORE_INDEX,
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, codes: Tensor) -> Tensor:
        """``(B, D, h, w)`` codes -> ``(B, num_classes, h, w)`` logits."""
        return self.classifier(codes)

    def loss(self, codes: Tensor, gt: Tensor) -> Dict[str, Tensor]:
        """``loss_linear``: cross-entropy of logits upsampled to ``gt`` ``(B, H, W)``.

        Pixels labelled ``ignore_index`` (or any value outside the classes, such as
        254) carry no loss; a batch without any labelled pixel gives zero.
        """
        logits = F.interpolate(self(codes), size=gt.shape[-2:], mode='bilinear',
                               align_corners=False)
        gt = gt.long()
        gt = torch.where(gt < self.num_classes, gt,
                         torch.full_like(gt, self.ignore_index))
        if not (gt != self.ignore_index).any():
            return dict(loss_linear=logits.sum() * 0)
        return dict(loss_linear=F.cross_entropy(logits, gt,
                                                ignore_index=self.ignore_index))
