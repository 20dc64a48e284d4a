"""TagMetric (mAP / F1 over image tags) on a hand-worked example."""
import numpy as np
import pytest
import torch

from mars_mm.registry import METRICS


def test_tag_metric_hand_worked():
    metric = METRICS.build(dict(type='TagMetric', threshold=0.5))
    scores = [[0.9, 0.2], [0.6, 0.7], [0.1, 0.8]]
    tags = [[1], [2], [1, 2]]
    metric.process({}, [dict(pred_scores=torch.tensor(s), img_tags=np.array(t))
                        for s, t in zip(scores, tags)])
    result = metric.compute_metrics(metric.results)
    # class 1 ranking 0.9(+) 0.6(-) 0.1(+): AP = (1/1 + 2/3) / 2
    # class 2 ranking 0.8(+) 0.7(+) 0.2(-): AP = 1
    assert result['mAP'] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2 * 100)
    # predicted at 0.5: (1,1) (2,1) (2,2) (3,2); true: (1,1) (2,2) (3,1) (3,2)
    assert result['precision'] == pytest.approx(75.0)
    assert result['recall'] == pytest.approx(75.0)
    assert result['F1'] == pytest.approx(75.0)
