"""Hungarian matching of clusters to classes on hand-worked examples."""
import numpy as np
import pytest

from mars_mm.core.uss_eval import (
    cluster_confusion,
    hungarian_match,
    relabel_confusion,
    uss_scores,
)


def test_hungarian_beats_greedy():
    # rows: classes, columns: clusters. Greedy takes the largest cell (class 0 ->
    # cluster 0, 10 px) and is then forced into class 1 -> cluster 1 (1 px): 11 px.
    # The optimum is class 0 -> cluster 1 (9) + class 1 -> cluster 0 (8): 17 px.
    counts = np.array([[10, 9],
                       [8, 1]])
    mapping = hungarian_match(counts)
    assert mapping.tolist() == [1, 0]  # cluster 0 -> class 1, cluster 1 -> class 0
    scores = uss_scores(counts)
    # class 0: TP 9, true 19, predicted 9 + 1 = 10 -> IoU 9 / 20
    # class 1: TP 8, true 9, predicted 10 + 8 = 18 -> IoU 8 / 19
    assert scores['iou'][0] == pytest.approx(100 * 9 / 20)
    assert scores['iou'][1] == pytest.approx(100 * 8 / 19)
    assert scores['miou'] == pytest.approx(50 * (9 / 20 + 8 / 19))
    assert scores['pixel_acc'] == pytest.approx(100 * 17 / 28)


def test_more_clusters_than_classes():
    # 2 classes, 3 clusters: cluster 2 stays unmatched and counts as wrong
    counts = np.array([[5, 0, 3],
                       [0, 4, 2]])
    mapping = hungarian_match(counts)
    assert mapping.tolist() == [0, 1, -1]
    relabelled = relabel_confusion(counts, mapping)
    assert relabelled.tolist() == [[5, 0, 3], [0, 4, 2], [0, 0, 0]]
    scores = uss_scores(counts)
    assert scores['iou'].tolist() == pytest.approx([100 * 5 / 8, 100 * 4 / 6])
    assert scores['pixel_acc'] == pytest.approx(100 * 9 / 14)


def test_cluster_confusion_ignores_255():
    gt = np.array([[0, 1, 255], [1, 1, 0]])
    clusters = np.array([[2, 0, 1], [0, 2, 2]])
    counts = cluster_confusion(gt, clusters, num_classes=2, num_clusters=3)
    assert counts.tolist() == [[0, 0, 2], [2, 0, 1]]


def test_set_cosine_equals_mean_over_pairs():
    from mars_mm.core.uss_eval import SetCosine
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    stats = SetCosine(4)
    stats.add('a', first[:3])
    stats.add('a', first[3:])  # sets grow over several images
    stats.add('b', second)
    expected = np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                        for a in first for b in second])
    assert stats.mean_cosine('a', 'b') == pytest.approx(expected)
    assert np.isnan(stats.mean_cosine('a', 'empty'))
