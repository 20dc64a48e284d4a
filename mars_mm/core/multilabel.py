"""Multi-label classification scores (for the CAM classifier's validation)."""
from typing import Dict

import numpy as np


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision (area under the stepwise precision-recall curve).

    AP of a class is the mean, over its positive samples, of the precision at the
    rank of each positive (ties broken by sample order after a stable sort).

    Args:
        scores: ``(N, C)`` predicted scores.
        targets: ``(N, C)`` binary ground truth.

    Returns:
        np.ndarray: ``(C,)`` AP in percent; NaN for classes with no positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f'scores {scores.shape} and targets {targets.shape} must be '
                         'equal (N, C) arrays')
    result = np.full(scores.shape[1], np.nan)
    for cls in range(scores.shape[1]):
        order = np.argsort(-scores[:, cls], kind='stable')
        hits = targets[order, cls]
        if not hits.any():
            continue
        precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        result[cls] = precision_at_rank[hits].mean() * 100
    return result


def multilabel_scores(scores: np.ndarray, targets: np.ndarray,
                      threshold: float = 0.5) -> Dict[str, float]:
    """mAP and overall F1 / precision / recall at ``threshold`` (percent).

    Args:
        scores: ``(N, C)`` probabilities.
        targets: ``(N, C)`` binary ground truth.
        threshold: a class is predicted where its score is >= threshold.
    """
    targets = np.asarray(targets) > 0
    predicted = np.asarray(scores) >= threshold
    true_pos = float((predicted & targets).sum())
    precision = true_pos / max(float(predicted.sum()), 1.0)
    recall = true_pos / max(float(targets.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    ap = average_precision(scores, targets)
    return dict(mAP=float(np.nanmean(ap)) if np.isfinite(ap).any() else float('nan'),
                F1=f1 * 100, precision=precision * 100, recall=recall * 100)
