"""Complementing rule and confidence weight on hand-worked numbers."""

import numpy as np
import pytest
import torch

from mars_mm.core.complement import (
    candidate_class_mask,
    complement_labels,
    complement_statistics,
    ignore_biased,
)

B, X = 254, 255  # BIASED and IGNORE (X = ignored)

# One image, K = 4 classes (background + 3), 2 x 3 pixels, tags {1, 2}.
LABELS = [[0, B, 1],
          [X, B, 2]]
# Teacher probabilities per pixel (over classes 0..3).
PROBS = [[[0.70, 0.10, 0.10, 0.10], [0.50, 0.20, 0.10, 0.20], [0.10, 0.60, 0.20, 0.10]],
         [[0.25, 0.25, 0.25, 0.25], [0.05, 0.10, 0.25, 0.60], [0.20, 0.10, 0.60, 0.10]]]
# Worked by hand: (0,1) argmax 0 (background), weight max(p1, p2) = 0.20;
# (1,1) argmax 3 (not a tag), weight max(p1, p2) = 0.25; nothing else changes.
EXPECTED_LABELS = [[0, 0, 1],
                   [X, 3, 2]]
EXPECTED_WEIGHTS = [[1.0, 0.20, 1.0],
                    [1.0, 0.25, 1.0]]


def _batch():
    labels = torch.tensor([LABELS])
    probs = torch.tensor([PROBS]).permute(0, 3, 1, 2)  # (1, K, H, W)
    return labels, probs


def test_complement_changes_only_biased_pixels_and_weights_by_tag_max():
    labels, probs = _batch()
    mask = candidate_class_mask([[1, 2]], num_classes=4)
    assert mask.tolist() == [[False, True, True, False]]
    labels_co, weights = complement_labels(labels, probs, mask)
    assert labels_co.tolist() == [EXPECTED_LABELS]
    np.testing.assert_allclose(weights.numpy(), [EXPECTED_WEIGHTS], atol=1e-6)


def test_background_in_weight_is_an_option():
    labels, probs = _batch()
    mask = candidate_class_mask([[1, 2]], num_classes=4, include_background=True)
    _, weights = complement_labels(labels, probs, mask)
    # (0,1): max(p0, p1, p2) = 0.50; (1,1): max(0.05, 0.10, 0.25) = 0.25.
    np.testing.assert_allclose(weights[0, 0, 1].item(), 0.50, atol=1e-6)
    np.testing.assert_allclose(weights[0, 1, 1].item(), 0.25, atol=1e-6)


def test_image_without_tags_gets_zero_weight():
    labels, probs = _batch()
    _, weights = complement_labels(labels, probs, candidate_class_mask([[]], 4))
    assert weights[0, 0, 1].item() == 0.0 and weights[0, 1, 1].item() == 0.0
    assert weights[0, 0, 0].item() == 1.0


def test_bad_tags_raise():
    with pytest.raises(ValueError, match='tag ids'):
        candidate_class_mask([[0, 1]], num_classes=4)
    with pytest.raises(ValueError, match='tag ids'):
        candidate_class_mask([[4]], num_classes=4)


def test_shape_mismatch_raises():
    labels, probs = _batch()
    with pytest.raises(ValueError, match='do not match'):
        complement_labels(labels[:, :1], probs, candidate_class_mask([[1]], 4))


def test_ignore_biased_and_statistics():
    labels, probs = _batch()
    assert ignore_biased(labels).tolist() == [[[0, X, 1], [X, X, 2]]]
    _, weights = complement_labels(labels, probs, candidate_class_mask([[1, 2]], 4))
    stats = complement_statistics(labels, weights)
    assert stats['complement_ratio'].item() == pytest.approx(2 / 5)
    assert stats['complement_weight'].item() == pytest.approx((0.20 + 0.25) / 2)
