"""STEGO: unsupervised semantic segmentation by distilling frozen-feature
correlations into a small head (Hamilton et al., ICLR 2022), as an mmseg segmentor.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, OptMultiConfig, OptSampleList, SampleList
from torch import Tensor

from mars_mm.datasets.uss_pair_dataset import USS_ROLE_KEY
from mars_mm.registry import MODELS

from .frozen_backbone import FrozenFeaturesMixin


@MODELS.register_module()
class STEGO(FrozenFeaturesMixin, BaseSegmentor):
    """Frozen backbone + :class:`STEGOHead` + evaluation probes.

    Modes: ``loss`` (batches from ``USSPairDataset``: correlation loss on the head,
    probe losses on detached codes), ``predict`` (cluster-probe ids in
    ``pred_sem_seg`` and cluster similarities in ``seg_logits``; linear-probe labels
    in ``pred_linear``), ``tensor`` (the raw codes ``(B, D, h, w)``).

    Args:
        backbone: a :class:`FrozenBackbone` config.
        head: a :class:`STEGOHead` config (``in_channels`` = backbone channels).
        loss_corr: a :class:`ContrastiveCorrelationLoss` config.
        cluster_probe: a :class:`ClusterProbe` config.
        linear_probe: a :class:`LinearProbe` config, or None.
        data_preprocessor: usually :class:`USSDataPreProcessor`.
    """

    def __init__(self, backbone: dict, head: dict, loss_corr: dict,
                 cluster_probe: dict, linear_probe: Optional[dict] = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        self.build_frozen_parts(backbone, data_preprocessor, init_cfg)
        self.head = MODELS.build(head)
        self.loss_corr = MODELS.build(loss_corr)
        self.cluster_probe = MODELS.build(cluster_probe)
        self.linear_probe = MODELS.build(linear_probe) if linear_probe else None
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.align_corners = False

    def dense_codes(self, inputs: Tensor) -> Tensor:
        """Codes ``(B, D, h, w)`` of normalised images ``(B, 3, H, W)``."""
        return self.head(self.extract_feat(inputs))

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Cluster similarities ``(B, K, H, W)`` at the input size."""
        sims = self.cluster_probe(self.dense_codes(inputs))
        return F.interpolate(sims, size=inputs.shape[2:], mode='bilinear',
                             align_corners=False)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        roles = [sample.metainfo.get(USS_ROLE_KEY) for sample in data_samples]
        anchors = [i for i, role in enumerate(roles) if role == 'anchor']
        positives = [i for i, role in enumerate(roles) if role == 'positive']
        negatives = [i for i, role in enumerate(roles) if role == 'negative']
        if not anchors or len(positives) != len(anchors):
            raise ValueError(
                'STEGO.loss needs batches of USSPairDataset items (data samples with '
                f'metainfo {USS_ROLE_KEY!r} = anchor/positive[/negative]); got roles '
                f'{sorted(set(map(str, roles)))}')
        feats = self.extract_feat(inputs)
        codes = self.head(feats)
        neg = torch.tensor(negatives, dtype=torch.long, device=inputs.device)
        losses = self.loss_corr(
            feats[anchors], codes[anchors], feats[positives], codes[positives],
            feats[neg] if negatives else None, codes[neg] if negatives else None)
        probe_codes = codes[anchors].detach()
        losses.update(self.cluster_probe.loss(probe_codes))
        if self.linear_probe is not None:
            gts = [data_samples[i].gt_sem_seg.data for i in anchors
                   if 'gt_sem_seg' in data_samples[i]]
            if len(gts) == len(anchors):
                losses.update(self.linear_probe.loss(probe_codes,
                                                     torch.cat(gts).to(codes.device)))
        return losses

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        codes = self.dense_codes(inputs)
        linear_preds = None
        if self.linear_probe is not None:
            logits = F.interpolate(self.linear_probe(codes), size=inputs.shape[2:],
                                   mode='bilinear', align_corners=False)
            # a copy of the samples, so the cluster results below do not clash
            copies = None if data_samples is None else [
                SegDataSample(metainfo=dict(sample.metainfo))
                for sample in data_samples]
            linear_preds = [sample.pred_sem_seg for sample in
                            self.postprocess_result(logits, copies)]
        sims = F.interpolate(self.cluster_probe(codes), size=inputs.shape[2:],
                             mode='bilinear', align_corners=False)
        results = self.postprocess_result(sims, data_samples)
        if linear_preds is not None:
            for sample, pred in zip(results, linear_preds):
                sample.pred_linear = PixelData(data=pred.data)
        return results

    def _forward(self, inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        return self.dense_codes(inputs)
