"""TagMetric (mAP / F1 over image tags) on hand-worked examples."""
import numpy as np
import pytest
import torch
from mmpretrain.evaluation import AveragePrecision, MultiLabelMetric

from mars_mm.registry import METRICS


def evaluate(scores, tags, threshold=0.5):
    metric = METRICS.build(dict(type='TagMetric', threshold=threshold))
    metric.process({}, [dict(pred_scores=torch.tensor(s), img_tags=np.array(t))
                        for s, t in zip(scores, tags)])
    return metric.compute_metrics(metric.results)


def test_tag_metric_hand_worked():
    scores = [[0.9, 0.2], [0.6, 0.7], [0.1, 0.8]]
    tags = [[1], [2], [1, 2]]
    result = evaluate(scores, tags)
    # class 1 ranking 0.9(+) 0.6(-) 0.1(+): AP = (1/1 + 2/3) / 2
    # class 2 ranking 0.8(+) 0.7(+) 0.2(-): AP = 1
    assert result['mAP'] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2 * 100)
    # predicted at 0.5: (1,1) (2,1) (2,2) (3,2); true: (1,1) (2,2) (3,1) (3,2)
    assert result['precision'] == pytest.approx(75.0)
    assert result['recall'] == pytest.approx(75.0)
    assert result['F1'] == pytest.approx(75.0)
    assert set(result) == {'mAP', 'F1', 'precision', 'recall'}
    # the same numbers as mmpretrain's own metrics on the multi-hot targets
    target = torch.tensor([[1, 0], [0, 1], [1, 1]])
    assert result['mAP'] == pytest.approx(
        AveragePrecision.calculate(torch.tensor(scores), target).item())
    precision, recall, f1, _ = MultiLabelMetric.calculate(
        torch.tensor(scores), target, average='micro', thr=0.5)
    assert (result['precision'], result['recall'], result['F1']) == pytest.approx(
        (precision.item(), recall.item(), f1.item()))


def test_class_without_positive_images_is_left_out_of_the_map():
    # class 3 is no image's tag: its AP is undefined (mmpretrain would count 0)
    scores = [[0.9, 0.2, 0.4], [0.3, 0.7, 0.9]]
    result = evaluate(scores, [[1], [2]], threshold=0.8)
    assert result['mAP'] == pytest.approx(100.0)
    # predicted at 0.8: (1,1) (2,3); true: (1,1) (2,2)
    assert result['precision'] == pytest.approx(50.0)
    assert result['recall'] == pytest.approx(50.0)
    assert result['F1'] == pytest.approx(50.0)
