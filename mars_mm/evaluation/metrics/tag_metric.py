"""Validation metric of the CAM classifier: how well it recognises the image tags."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mars_mm.core.multilabel import multilabel_scores
from mars_mm.registry import METRICS


@METRICS.register_module()
class TagMetric(BaseMetric):
    """mAP and F1 of predicted tag scores against ``metainfo['img_tags']``.

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
        """Keep each sample's scores and multi-hot target."""
        for sample in data_samples:
            scores = sample['pred_scores']
            scores = scores.detach().cpu().numpy() if hasattr(scores, 'detach') \
                else np.asarray(scores)
            tags = np.asarray(sample['img_tags'], dtype=np.int64)
            target = np.zeros_like(scores, dtype=np.int64)
            target[tags - 1] = 1
            self.results.append((scores, target))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """mAP, F1, precision, recall in percent."""
        scores = np.stack([scores for scores, _ in results])
        targets = np.stack([target for _, target in results])
        return multilabel_scores(scores, targets, self.threshold)
