"""Validation metric of the CAM classifier: how well it recognises the image tags."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.evaluation.metrics import AveragePrecision, MultiLabelMetric

from mars_mm.registry import METRICS


@METRICS.register_module()
class TagMetric(BaseMetric):
    """mAP and F1 of predicted tag scores against ``metainfo['img_tags']``.

    The maths is mmpretrain's: per-class AP from ``AveragePrecision.calculate``
    (mAP = their mean over the classes that have at least one positive image;
    mmpretrain would count a class without positives as AP 0) and overall (micro)
    precision / recall / F1 at ``threshold`` from ``MultiLabelMetric.calculate``.
    This class only turns mars_mm's samples (``pred_scores`` and ``img_tags``)
    into mmpretrain's ``(N, C)`` scores and multi-hot targets.

    Expects data samples from :class:`CAMClassifier` ``predict`` (``pred_scores``,
    ``(C,)`` sigmoid scores) whose metainfo carries ``img_tags`` (ids in 1..C).

    Args:
        threshold: score at which a tag counts as predicted (for F1).
        collect_device, prefix: as in mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'tags'

    def __init__(self, threshold: float = 0.5, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.threshold = threshold

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ``(C,)`` scores and multi-hot target."""
        for sample in data_samples:
            scores = torch.as_tensor(sample['pred_scores']).detach().float().cpu()
            tags = torch.as_tensor(sample['img_tags'], dtype=torch.long).reshape(-1)
            target = torch.zeros(scores.shape[-1], dtype=torch.long)
            target[tags - 1] = 1
            self.results.append((scores, target))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """mAP, F1, precision, recall in percent."""
        scores = torch.stack([scores for scores, _ in results])
        targets = torch.stack([target for _, target in results])
        per_class_ap = AveragePrecision.calculate(scores, targets, average=None)
        has_positive = targets.sum(0) > 0
        mean_ap = per_class_ap[has_positive].mean().item() \
            if bool(has_positive.any()) else float('nan')
        precision, recall, f1, _ = MultiLabelMetric.calculate(
            scores, targets, average='micro', thr=self.threshold)
        return dict(mAP=mean_ap, F1=f1.item(), precision=precision.item(),
                    recall=recall.item())
