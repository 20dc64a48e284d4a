"""mmseg's IoUMetric plus the WSSS literature's per-class FP/FN ratios."""
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from mmseg.evaluation.metrics import IoUMetric

from mars_mm.core.metrics import format_table
from mars_mm.registry import METRICS
from mars_mm.utils.io import IGNORE_INDEX


def fp_fn_from_areas(area_intersect: torch.Tensor, area_union: torch.Tensor,
                     area_pred: torch.Tensor, area_label: torch.Tensor
                     ) -> Dict[str, np.ndarray]:
    """Over- and under-activation per class from mmseg's four pixel areas.

    ``FP_c = (P_c - TP_c) / union_c`` and ``FN_c = (T_c - TP_c) / union_c`` with
    ``TP`` the intersection, ``P`` the predicted and ``T`` the true pixels of class
    c (so ``IoU + FP + FN = 1``). NaN where the union is empty.

    Args:
        area_intersect, area_union, area_pred, area_label: ``(C,)`` totals, as
            summed from :meth:`IoUMetric.intersect_and_union`.

    Returns:
        dict: ``fp`` and ``fn``, ``(C,)`` float64 fractions.
    """
    intersect = area_intersect.double()
    union = area_union.double()
    fp = (area_pred.double() - intersect) / union
    fn = (area_label.double() - intersect) / union
    return dict(fp=fp.numpy(), fn=fn.numpy())


def _two_decimals(value) -> float:
    """A rounded numpy value as the Python float of its two-decimal reading."""
    return round(float(value), 2)


@METRICS.register_module()
class SegFPFNMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (mIoU, aAcc) with per-class IoU / FP / FN (percent).

    ``process`` is ``IoUMetric``'s (per-image intersection/union/prediction/label
    areas; ``output_dir`` saves the predictions as mmseg does); the FP/FN ratios of
    :func:`fp_fn_from_areas` come from the same summed areas, so ``mIoU`` and
    ``aAcc`` are ``IoUMetric``'s own numbers. The log shows a per-class
    IoU / FP / FN table (:func:`mars_mm.core.metrics.format_table`).

    Args:
        ignore_index: ground-truth value that is not scored.
        per_class: also return ``IoU.<class>``, ``FP.<class>``, ``FN.<class>``
            (the table is always printed to the log).
        output_dir: save the predicted label maps here as PNGs.
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
        super().__init__(
            ignore_index=ignore_index, iou_metrics=['mIoU'],
            collect_device=collect_device, output_dir=output_dir,
            format_only=format_only or (output_dir is not None and not keep_results),
            prefix=prefix)
        self.per_class = per_class

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """``aAcc``, ``mIoU``, ``mFP``, ``mFN`` (and per class) from summed areas."""
        if self.format_only:
            print_log(f'predictions saved to {self.output_dir}', logger='current')
            return OrderedDict()
        areas = [sum(column) for column in zip(*results)]
        scores = self.total_area_to_metrics(*areas, metrics=['mIoU'])
        scores.update(fp_fn_from_areas(*areas))
        classes = list(self.dataset_meta['classes'])
        percent = {key: scores[key] * 100 for key in ('IoU', 'fp', 'fn')}
        # IoUMetric's own summary (nan-mean over classes, times 100, rounded to 2, in
        # its float32), then a plain float: 44.17, not float32's 44.169998.
        means = {key: _two_decimals(np.round(np.nanmean(scores[key]) * 100, 2))
                 for key in percent}
        print_log('\n' + format_table(
            dict(iou=percent['IoU'], fp=percent['fp'], fn=percent['fn'],
                 miou=means['IoU'], mfp=means['fp'], mfn=means['fn']), classes),
            logger='current')
        metrics = OrderedDict(aAcc=_two_decimals(np.round(scores['aAcc'] * 100, 2)),
                              mIoU=means['IoU'], mFP=means['fp'], mFN=means['fn'])
        if self.per_class:
            for key, name in (('IoU', 'IoU'), ('fp', 'FP'), ('fn', 'FN')):
                for index, class_name in enumerate(classes):
                    metrics[f'{name}.{class_name}'] = _two_decimals(
                        np.round(percent[key][index], 2))
        return metrics
