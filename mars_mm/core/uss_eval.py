"""Scoring unsupervised segmentation: clusters matched to classes (Hungarian).

An unsupervised model outputs cluster ids with no fixed meaning. The standard USS
protocol (STEGO, PiCIE) accumulates a ``(C, K)`` confusion of true class vs. cluster
over the whole evaluation set, finds the one-to-one assignment of clusters to classes
that maximises the matched pixel count (the Hungarian algorithm), and scores the
relabelled prediction with the usual mIoU and pixel accuracy. With ``K > C`` the
unmatched clusters count as wrong everywhere.
"""
from typing import Dict

import numpy as np
from scipy.optimize import linear_sum_assignment

from mars_mm.core.metrics import confusion_matrix, scores_from_confusion
from mars_mm.utils.io import IGNORE_INDEX


def cluster_confusion(gt: np.ndarray, clusters: np.ndarray, num_classes: int,
                      num_clusters: int,
                      ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``(C, K)`` int64 counts of (true class, cluster id) over non-ignored pixels.

    Args:
        gt: ``(H, W)`` true labels in ``0..C-1`` or ``ignore_index``.
        clusters: ``(H, W)`` cluster ids in ``0..K-1``.
    """
    size = max(num_classes, num_clusters)
    return confusion_matrix(gt, clusters, size, ignore_index)[:num_classes,
                                                               :num_clusters]


def hungarian_match(counts: np.ndarray) -> np.ndarray:
    """Cluster -> class assignment maximising the matched pixels.

    Args:
        counts: ``(C, K)`` confusion of true class vs. cluster.

    Returns:
        np.ndarray: ``(K,)`` int64, the class of each cluster, ``-1`` for clusters
        left unmatched (when ``K > C``).
    """
    classes, clusters = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(counts.shape[1], -1, dtype=np.int64)
    mapping[clusters] = classes
    return mapping


def relabel_confusion(counts: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """``(C + 1, C + 1)`` confusion after relabelling clusters by ``mapping``.

    Row/column ``C`` collects the pixels of unmatched clusters (its row is empty).
    """
    num_classes = counts.shape[0]
    target = np.where(mapping < 0, num_classes, mapping)
    relabelled = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for cluster, column in enumerate(target):
        relabelled[:num_classes, column] += counts[:, cluster]
    return relabelled


def uss_scores(counts: np.ndarray) -> Dict[str, np.ndarray]:
    """Hungarian-matched scores in percent from a ``(C, K)`` cluster confusion.

    Returns:
        dict: ``iou`` ``(C,)``, ``miou``, ``pixel_acc`` and ``mapping`` ``(K,)``.
    """
    mapping = hungarian_match(counts)
    scores = scores_from_confusion(relabel_confusion(counts, mapping))
    iou = scores['iou'][:counts.shape[0]]
    return dict(iou=iou,
                miou=np.nanmean(iou) if np.isfinite(iou).any() else np.nan,
                pixel_acc=scores['pixel_acc'], mapping=mapping)


class SetCosine:
    """Mean cosine similarity between two growing sets of vectors, in O(N).

    For unit vectors, ``mean_{a in A, b in B} a . b = (sum A / |A|) . (sum B / |B|)``,
    so each set only needs its running sum of normalised vectors and its size.
    """

    def __init__(self, dims: int) -> None:
        self.sums: Dict[str, np.ndarray] = {}
        self.counts: Dict[str, int] = {}
        self.dims = dims

    def add(self, name: str, vectors: np.ndarray) -> None:
        """Add ``(N, D)`` vectors (normalised here) to set ``name``."""
        vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, self.dims)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, 1e-12)
        self.sums[name] = self.sums.get(name, np.zeros(self.dims)) + unit.sum(axis=0)
        self.counts[name] = self.counts.get(name, 0) + len(unit)

    def mean_direction(self, name: str) -> np.ndarray:
        """Mean of the set's unit vectors (not renormalised)."""
        if not self.counts.get(name):
            return np.full(self.dims, np.nan)
        return self.sums[name] / self.counts[name]

    def mean_cosine(self, first: str, second: str) -> float:
        """Mean cosine over all pairs (a in first, b in second); NaN if one is
        empty."""
        return float(self.mean_direction(first) @ self.mean_direction(second))
