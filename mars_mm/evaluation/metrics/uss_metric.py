"""Unsupervised segmentation scores: Hungarian-matched clusters, linear probe."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mars_mm.core.metrics import confusion_matrix, scores_from_confusion
from mars_mm.core.uss_eval import cluster_confusion, uss_scores
from mars_mm.registry import METRICS
from mars_mm.utils.io import IGNORE_INDEX


@METRICS.register_module()
class USSMetric(BaseMetric):
    """mIoU and pixel accuracy of cluster predictions after Hungarian matching
    (``pred_sem_seg`` holds cluster ids) and, when present, of the linear probe
    (``pred_linear`` holds class ids).

    Args:
        num_clusters: K; defaults to the number of classes.
        ignore_index: ground-truth value that is not scored.
    """

    default_prefix = 'uss'

    def __init__(self, num_clusters: Optional[int] = None,
                 ignore_index: int = IGNORE_INDEX, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_clusters = num_clusters
        self.ignore_index = ignore_index

    @property
    def num_classes(self) -> int:
        return len(self.dataset_meta['classes'])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_clusters = self.num_clusters or self.num_classes
        for sample in data_samples:
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy()
            clusters = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            counts = cluster_confusion(gt, clusters, self.num_classes, num_clusters,
                                       self.ignore_index)
            linear = None
            if 'pred_linear' in sample:
                pred = sample['pred_linear']['data'].squeeze().cpu().numpy()
                linear = confusion_matrix(gt, pred, self.num_classes,
                                          self.ignore_index)
            self.results.append((counts, linear))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        counts = np.sum([result[0] for result in results], axis=0)
        scores = uss_scores(counts)
        metrics = OrderedDict(cluster_mIoU=float(np.round(scores['miou'], 2)),
                              cluster_aAcc=float(np.round(scores['pixel_acc'], 2)))
        linears = [result[1] for result in results if result[1] is not None]
        if linears:
            linear = scores_from_confusion(np.sum(linears, axis=0))
            metrics['linear_mIoU'] = float(np.round(linear['miou'], 2))
            metrics['linear_aAcc'] = float(np.round(linear['pixel_acc'], 2))
        names = self.dataset_meta['classes']
        lines = [f'{"class":<16}{"cluster IoU":>12}'] + [
            f'{name:<16}{iou:12.2f}' for name, iou in zip(names, scores['iou'])]
        MMLogger.get_current_instance().info(
            'USS per-class IoU (Hungarian):\n' + '\n'.join(lines)
            + f'\ncluster -> class: {scores["mapping"].tolist()}')
        return metrics
