"""mIoU with the WSSS literature's per-class FP/FN ratios, as an mmengine metric."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist

from mars_mm.core.metrics import confusion_matrix, format_table, scores_from_confusion
from mars_mm.registry import METRICS
from mars_mm.utils.io import IGNORE_INDEX, save_label_png


@METRICS.register_module()
class SegFPFNMetric(BaseMetric):
    """mIoU, pixel accuracy and per-class IoU / FP / FN (all in percent).

    ``FP_c = (P_c - TP_c) / union_c`` and ``FN_c = (T_c - TP_c) / union_c``
    (over- and under-activation, as the WSSS literature reports them). Built on
    :mod:`mars_mm.core.metrics`; mIoU and aAcc equal mmseg's ``IoUMetric`` on the same
    predictions. Each image is stored as the sparse non-zero entries of its
    confusion matrix, so distributed collection keeps mmengine's per-sample
    de-duplication and COCO's 81 classes cost a few hundred bytes per image.

    Args:
        ignore_index: ground-truth value that is not scored.
        per_class: also return ``IoU.<class>``, ``FP.<class>``, ``FN.<class>``
            (the table is always printed to the log).
        output_dir: save the predicted label maps here as palette PNGs.
        keep_results: with ``output_dir``, still compute the metrics.
        format_only: only save predictions (no ground truth needed).
        collect_device: ``'cpu'`` or ``'gpu'``.
        prefix: metric-name prefix.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 ignore_index: int = IGNORE_INDEX,
                 per_class: bool = False,
                 output_dir: Optional[str] = None,
                 keep_results: bool = True,
                 format_only: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.per_class = per_class
        self.output_dir = output_dir
        self.format_only = format_only or (output_dir is not None and not keep_results)
        if output_dir and is_main_process():
            mkdir_or_exist(output_dir)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Add each sample's confusion counts (and save its prediction if asked)."""
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            if self.output_dir is not None:
                stem = osp.splitext(osp.basename(sample['img_path']))[0]
                save_label_png(osp.join(self.output_dir, f'{stem}.png'),
                               pred.astype(np.uint8))
            if self.format_only:
                continue
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy()
            counts = confusion_matrix(gt, pred, num_classes, self.ignore_index)
            flat = np.flatnonzero(counts)
            self.results.append((flat.astype(np.int32), counts.ravel()[flat]))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the per-image confusion counts and score them."""
        if self.format_only:
            print_log(f'predictions saved to {self.output_dir}', logger='current')
            return OrderedDict()
        classes = list(self.dataset_meta['classes'])
        num_classes = len(classes)
        counts = np.zeros(num_classes * num_classes, dtype=np.int64)
        for flat, values in results:
            np.add.at(counts, flat, values)
        scores = scores_from_confusion(counts.reshape(num_classes, num_classes))
        print_log('\n' + format_table(scores, classes), logger='current')
        metrics = OrderedDict(aAcc=float(np.round(scores['pixel_acc'], 2)),
                              mIoU=float(np.round(scores['miou'], 2)),
                              mFP=float(np.round(scores['mfp'], 2)),
                              mFN=float(np.round(scores['mfn'], 2)))
        if self.per_class:
            for key, name in (('iou', 'IoU'), ('fp', 'FP'), ('fn', 'FN')):
                for index, class_name in enumerate(classes):
                    metrics[f'{name}.{class_name}'] = float(
                        np.round(scores[key][index], 2))
        return metrics
