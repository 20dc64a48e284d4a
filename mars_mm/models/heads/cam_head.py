"""The CAM head: a bias-free 1x1 convolution whose pooled output is the logit."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mars_mm.registry import MODELS


def tags_to_multi_hot(tags_per_image: Sequence[Sequence[int]], num_classes: int,
                      device=None) -> Tensor:
    """Multi-hot targets from image tags (``target[c - 1] = 1`` for each tag ``c``).

    Args:
        tags_per_image: per image, foreground class ids in ``1..num_classes``.
        num_classes: C (no background channel).

    Returns:
        Tensor: ``(N, C)`` float32.
    """
    target = torch.zeros((len(tags_per_image), num_classes), dtype=torch.float32,
                         device=device)
    for row, tags in enumerate(tags_per_image):
        tags = [int(tag) for tag in tags]
        bad = [tag for tag in tags if not 1 <= tag <= num_classes]
        if bad:
            raise ValueError(f'image tags {bad} outside 1..{num_classes}')
        if tags:
            target[row, torch.as_tensor(tags, dtype=torch.long) - 1] = 1.0
    return target


@MODELS.register_module()
class CAMHead(BaseModule):
    """Global-average-pooled 1x1 conv classifier (Zhou et al., CVPR 2016 CAM).

    Pooling and the linear classifier commute, so the logits equal the spatial mean
    of :meth:`cams` and the maps are exactly what the classifier scores.

    The default loss, mmpretrain's ``CrossEntropyLoss(use_sigmoid=True)`` (the loss
    of mmpretrain's ``MultiLabelClsHead``), is the mean binary cross-entropy over the
    ``N x C`` logits, i.e. PyTorch's ``multilabel_soft_margin_loss`` (IRN's loss),
    equal up to float rounding of the summation order.

    Args:
        in_channels: channels of the backbone's last feature map.
        num_classes: foreground classes C (no background).
        loss_cls: config of a registered loss called as ``loss(logits, targets)``
            with ``(N, C)`` logits and multi-hot targets (``loss_weight`` goes here).
        init_cfg: weight initialisation; ``None`` means Xavier uniform.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 loss_cls: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if init_cfg is None:  # IRN's choice for the classifier
            init_cfg = dict(type='Xavier', layer='Conv2d', distribution='uniform')
        if loss_cls is None:
            loss_cls = dict(type='mmpretrain.CrossEntropyLoss', use_sigmoid=True,
                            loss_weight=1.0)
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.loss_cls = MODELS.build(loss_cls)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1, bias=False)

    def cams(self, feature: Tensor) -> Tensor:
        """Raw class activation maps.

        Args:
            feature: ``(N, in_channels, h, w)``.

        Returns:
            Tensor: ``(N, C, h, w)`` before ReLU.
        """
        return self.classifier(feature)

    def forward(self, feature: Tensor) -> Tensor:
        """Logits ``(N, C)`` of ``(N, in_channels, h, w)`` features."""
        pooled = feature.mean(dim=(2, 3), keepdim=True)
        return self.classifier(pooled).flatten(1)

    def loss_by_logits(self, logits: Tensor, targets: Tensor) -> dict:
        """``loss_cls``: the configured loss of ``(N, C)`` logits and multi-hot
        ``(N, C)`` targets."""
        return dict(loss_cls=self.loss_cls(logits, targets))

    def loss(self, feature: Tensor, tags_per_image: List[Sequence[int]]) -> dict:
        """Losses of a batch given each image's tags (class ids ``1..C``)."""
        logits = self.forward(feature)
        targets = tags_to_multi_hot(tags_per_image, self.num_classes, logits.device)
        return self.loss_by_logits(logits, targets)
