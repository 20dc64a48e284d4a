import numpy as np
import pytest
import torch

from mars_mm.core.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    map_special_labels,
    scores_from_confusion,
)


def _random_pair(rng, num_classes, shape=(17, 23)):
    gt = rng.integers(0, num_classes, shape)
    gt[rng.random(shape) < 0.1] = 255
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, num_classes, shape))
    pred[pred == 255] = 0
    return gt, pred


def test_confusion_matrix_equals_pixel_loop():
    rng = np.random.default_rng(0)
    gt, pred = _random_pair(rng, 4)
    expected = np.zeros((4, 4), np.int64)
    for true_label, pred_label in zip(gt.ravel(), pred.ravel()):
        if true_label != 255:
            expected[true_label, pred_label] += 1
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 4), expected)


def test_hand_worked_scores():
    # 2 classes: gt = [0 0 1 1], pred = [0 1 1 1]
    counts = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    scores = scores_from_confusion(counts)
    # class 0: TP 1, P 1, T 2, union 2 -> IoU 50, FP 0, FN 50
    # class 1: TP 2, P 3, T 2, union 3 -> IoU 66.7, FP 33.3, FN 0
    np.testing.assert_allclose(scores['iou'], [50, 200 / 3])
    np.testing.assert_allclose(scores['fp'], [0, 100 / 3])
    np.testing.assert_allclose(scores['fn'], [50, 0])
    assert scores['miou'] == pytest.approx((50 + 200 / 3) / 2)
    assert scores['pixel_acc'] == pytest.approx(75)


def test_streaming_matches_mmseg_iou_metric():
    from mmseg.evaluation.metrics import IoUMetric
    rng = np.random.default_rng(1)
    num_classes = 5
    stream = ConfusionMatrix(num_classes)
    results = []
    for _ in range(6):
        gt, pred = _random_pair(rng, num_classes)
        stream.update(gt, pred)
        results.append(IoUMetric.intersect_and_union(
            torch.from_numpy(pred), torch.from_numpy(gt), num_classes, 255))
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(num_classes)])
    mmseg_scores = metric.compute_metrics(results)
    ours = stream.summary()
    assert ours['miou'] == pytest.approx(mmseg_scores['mIoU'], abs=0.01)
    assert ours['pixel_acc'] == pytest.approx(mmseg_scores['aAcc'], abs=0.01)


def test_absent_class_is_nan_and_excluded_from_mean():
    scores = scores_from_confusion(confusion_matrix(
        np.array([0, 1]), np.array([0, 1]), 3))
    assert np.isnan(scores['iou'][2])
    assert scores['miou'] == pytest.approx(100)


def test_invalid_labels_are_rejected():
    with pytest.raises(ValueError, match='predicted label'):
        confusion_matrix(np.array([0]), np.array([254]), 3)
    with pytest.raises(ValueError, match='pixels'):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)


def test_special_labels_map_to_background_by_default():
    pred = np.array([1, 254, 255])
    np.testing.assert_array_equal(map_special_labels(pred), [1, 0, 0])
    np.testing.assert_array_equal(map_special_labels(pred, biased_as=None,
                                                     ignore_as=None), pred)
