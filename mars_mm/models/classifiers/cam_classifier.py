"""A multi-label image classifier whose head yields class activation maps."""
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseModel
from mmseg.structures import SegDataSample
from torch import Tensor

from mars_mm.registry import MODELS


def sample_tags(data_sample: SegDataSample) -> List[int]:
    """Foreground class ids of one sample (``metainfo['img_tags']``).

    Raises:
        KeyError: naming the image when the pipeline did not carry ``img_tags``.
    """
    if 'img_tags' not in data_sample.metainfo:
        name = data_sample.metainfo.get('img_path', '<unknown image>')
        raise KeyError(f'{name}: data sample has no `img_tags` in its metainfo; pack '
                       'the inputs with PackWSSSInputs (meta_keys include img_tags)')
    return [int(tag) for tag in data_sample.metainfo['img_tags']]


@MODELS.register_module()
class CAMClassifier(BaseModel):
    """Backbone + :class:`CAMHead`, trained on image tags.

    Modes of :meth:`forward`: ``loss`` (dict with ``loss_cls``), ``predict`` (data
    samples with ``pred_scores``: ``(C,)`` sigmoid scores) and ``tensor`` (``(N, C)``
    logits). :meth:`cam` gives the raw class activation maps used by
    :mod:`mars_mm.core.cam`.

    Args:
        backbone: any mmseg/mmpretrain backbone config; its last output is used.
        head: the CAM head config (``in_channels`` must match the backbone).
        neck: optional neck.
        data_preprocessor: e.g. mmseg's ``SegDataPreProcessor``.
        pretrained: checkpoint of the backbone (a URL, ``open-mmlab://`` name or a
            local file), turned into the backbone's ``init_cfg``.
        train_cfg, test_cfg: kept for API symmetry with mmseg segmentors.
        init_cfg: initialisation of the whole model.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if isinstance(data_preprocessor, dict):
            # build it from mmseg's registry: mmengine's BaseModel would look it up in
            # mmengine's root registry, which only finds it under the mmseg scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            if backbone.get('init_cfg') is not None:
                raise ValueError('give the backbone weights either as `pretrained` or '
                                 'as backbone.init_cfg, not both')
            backbone = dict(backbone,
                            init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self.num_classes = self.head.num_classes
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """The last feature map ``(N, D, h, w)`` of ``(N, 3, H, W)`` images."""
        features = self.backbone(inputs)
        if self.neck is not None:
            features = self.neck(features)
        if isinstance(features, (list, tuple)):
            features = features[-1]
        return features

    def cam(self, inputs: Tensor) -> Tensor:
        """Raw class activation maps ``(N, C, h, w)`` (before ReLU) of images."""
        return self.head.cams(self.extract_feat(inputs))

    def forward(self, inputs: Tensor,
                data_samples: Optional[List[SegDataSample]] = None,
                mode: str = 'tensor'):
        """The unified entry (``loss`` / ``predict`` / ``tensor``), as mmengine's."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}"; use loss, predict or tensor')

    def loss(self, inputs: Tensor, data_samples: List[SegDataSample]) -> dict:
        """``loss_cls`` of a batch: multi-label soft margin on the image tags."""
        tags = [sample_tags(sample) for sample in data_samples]
        return self.head.loss(self.extract_feat(inputs), tags)

    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[SegDataSample]] = None
                ) -> List[SegDataSample]:
        """Per-class sigmoid scores stored as ``pred_scores`` ``(C,)`` per sample."""
        scores = torch.sigmoid(self._forward(inputs))
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.set_field(score, 'pred_scores')
        return list(data_samples)

    def _forward(self, inputs: Tensor,
                 data_samples: Optional[Sequence[SegDataSample]] = None) -> Tensor:
        """Logits ``(N, C)``."""
        return self.head(self.extract_feat(inputs))
