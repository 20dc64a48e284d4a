"""Streaming segmentation metrics on a confusion matrix.

A :class:`ConfusionMatrix` holds ``counts[true, pred]`` for C classes and is updated
image by image, so evaluating 40k COCO masks needs O(C^2) memory. From it come the
per-class IoU, and the WSSS literature's over/under-activation ratios
``FP = (P - TP) / union`` and ``FN = (T - TP) / union`` (P predicted, T true pixels).
Ignored pixels (255 in the ground truth) are dropped, as mmseg's ``IoUMetric`` does.

These serve offline label scoring (``mars_mm.apis``, ``mars_mm.debias``, tools); the
Runner's metric, ``SegFPFNMetric``, is mmseg's ``IoUMetric`` itself.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``(C, C)`` int64 counts of (true class, predicted class) over valid pixels.

    Args:
        gt: ``(H, W)`` true labels in ``0..C-1`` or ``ignore_index``.
        pred: ``(H, W)`` predicted labels in ``0..C-1``.
        num_classes: C.
        ignore_index: true label that is skipped.

    Raises:
        ValueError: shapes differ, or a valid label falls outside ``0..C-1``.
    """
    gt = np.asarray(gt).astype(np.int64, copy=False).ravel()
    pred = np.asarray(pred).astype(np.int64, copy=False).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth has {gt.size} pixels, prediction {pred.size}')
    valid = gt != ignore_index
    gt, pred = gt[valid], pred[valid]
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(f'ground-truth label {gt.max()} outside 0..{num_classes - 1}')
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f'predicted label {pred.max()} outside 0..{num_classes - 1}')
    return np.bincount(gt * num_classes + pred,
                       minlength=num_classes * num_classes).reshape(
                           num_classes, num_classes)


def map_special_labels(pred: np.ndarray, biased_as: Optional[int] = 0,
                       ignore_as: Optional[int] = 0) -> np.ndarray:
    """Map the special values of a (debiased) pseudo label before scoring it.

    A pseudo label may hold 254 (removed by MARS) and 255 (left unlabelled by the
    method). Scoring treats both as background by default: the label claims no class
    there. ``None`` keeps the value (the caller must then drop those pixels).
    """
    pred = np.asarray(pred).astype(np.int64)
    if biased_as is not None:
        pred = np.where(pred == BIASED_INDEX, biased_as, pred)
    if ignore_as is not None:
        pred = np.where(pred == IGNORE_INDEX, ignore_as, pred)
    return pred


class ConfusionMatrix:
    """Accumulates a confusion matrix over many images.

    Args:
        num_classes: C, background included.
        ignore_index: ground-truth value that is not scored.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image (``(H, W)`` true and predicted labels)."""
        self.counts += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def summary(self) -> Dict[str, np.ndarray]:
        """Per-class scores in percent, NaN for classes absent from GT and prediction.

        Returns:
            dict: ``iou``, ``fp``, ``fn``, ``precision``, ``recall`` (each ``(C,)``),
            ``miou`` / ``mfp`` / ``mfn`` (NaN-means) and ``pixel_acc``.
        """
        return scores_from_confusion(self.counts)


def scores_from_confusion(counts: np.ndarray) -> Dict[str, np.ndarray]:
    """IoU / FP / FN / precision / recall in percent from ``(C, C)`` counts."""
    counts = np.asarray(counts, dtype=np.float64)
    true_pos = np.diag(counts)
    true_total = counts.sum(axis=1)
    pred_total = counts.sum(axis=0)
    union = true_total + pred_total - true_pos
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = true_pos / union
        fp = (pred_total - true_pos) / union
        fn = (true_total - true_pos) / union
        precision = true_pos / pred_total
        recall = true_pos / true_total
    total = counts.sum()
    return dict(
        iou=iou * 100, fp=fp * 100, fn=fn * 100,
        precision=precision * 100, recall=recall * 100,
        miou=np.nanmean(iou) * 100 if np.isfinite(iou).any() else np.nan,
        mfp=np.nanmean(fp) * 100 if np.isfinite(fp).any() else np.nan,
        mfn=np.nanmean(fn) * 100 if np.isfinite(fn).any() else np.nan,
        pixel_acc=true_pos.sum() / total * 100 if total else np.nan)


def format_table(scores: Dict[str, np.ndarray], class_names: Sequence[str]) -> str:
    """A plain-text table of per-class IoU/FP/FN and the means."""
    lines = [f'{"class":<16}{"IoU":>8}{"FP":>8}{"FN":>8}']
    for index, name in enumerate(class_names):
        lines.append(f'{name:<16}{scores["iou"][index]:8.2f}'
                     f'{scores["fp"][index]:8.2f}{scores["fn"][index]:8.2f}')
    lines.append(f'{"mean":<16}{scores["miou"]:8.2f}{scores["mfp"]:8.2f}'
                 f'{scores["mfn"]:8.2f}')
    return '\n'.join(lines)
