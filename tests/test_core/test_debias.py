"""MARS Stage 3 maths on hand-worked examples and brute-force checks."""
import math

import numpy as np
import pytest
import torch

from mars_mm.core import debias as core
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_linear_distance_equals_quadratic_pairwise_mean():
    rng = np.random.default_rng(0)
    foreground = _unit(rng.normal(size=(37, 12)))
    background = _unit(rng.normal(size=(53, 12)) + 0.5)
    fast = core.distance_to_background(foreground, core.background_mean(background))
    slow = np.array([np.mean([(1 - np.dot(v, b)) / 2 for b in background])
                     for v in foreground])
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    # b_mean is the plain mean: renormalising it would change the distances
    renormalised = core.distance_to_background(
        foreground, _unit(core.background_mean(background)))
    assert not np.allclose(renormalised, slow)


def test_background_mean_needs_background():
    with pytest.raises(ValueError, match='no background centroid'):
        core.background_mean(np.zeros((0, 4)))


def test_selection_hand_worked():
    # class 1: 5 centroids, ceil(0.4 * 5) = 2 farthest (rows 3 and 0);
    # class 2: 1 centroid, ceil(0.4) = 1; background rows never selected
    class_ids = np.array([1, 1, 0, 1, 2, 1, 1, 0])
    distance = np.array([0.40, 0.10, 0.90, 0.45, 0.20, 0.30, 0.35, 0.95])
    selected, num_selected, cut = core.select_centroids(class_ids, distance, 0.4, 4)
    assert selected.tolist() == [True, False, False, True, True, False, False, False]
    assert num_selected.tolist() == [0, 2, 1, 0]
    np.testing.assert_allclose(cut[1:3], [0.40, 0.20])
    assert math.isnan(cut[0]) and math.isnan(cut[3])
    vectors = np.arange(16, dtype=np.float64).reshape(8, 2)
    debiased, valid = core.debiased_centroids(vectors, class_ids, selected, 4)
    np.testing.assert_allclose(debiased[1], (vectors[0] + vectors[3]) / 2)
    np.testing.assert_allclose(debiased[2], vectors[4])
    assert valid.tolist() == [False, True, True, False]
    assert np.all(debiased[[0, 3]] == 0)


def test_selection_ties_and_alpha_one():
    class_ids = np.array([1, 1, 1])
    selected, _, _ = core.select_centroids(class_ids, np.array([0.3, 0.3, 0.3]),
                                           0.5, 2)
    assert selected.tolist() == [True, True, False]  # ceil(1.5) = 2, earlier first
    selected, _, _ = core.select_centroids(class_ids, np.array([0.1, 0.2, 0.3]),
                                           1.0, 2)
    assert selected.all()
    with pytest.raises(ValueError, match='alpha'):
        core.select_centroids(class_ids, np.zeros(3), 0.0, 2)


def test_resize_label_to_grid_samples_pixel_centres():
    label = np.arange(16 * 12).reshape(16, 12)
    grid = core.resize_label_to_grid(label, (2, 3))
    # rows floor((i + .5) * 16 / 2) = 4, 12; cols floor((j + .5) * 12 / 3) = 2, 6, 10
    np.testing.assert_array_equal(grid, label[np.ix_([4, 12], [2, 6, 10])])
    # a VOC-size image on its stride-8 grid (ceil): every index in range
    voc = np.zeros((375, 500), np.uint8)
    assert core.resize_label_to_grid(voc, (47, 63)).shape == (47, 63)


def test_debias_map_hand_worked():
    # 2-D embedding on a 1x4 grid, image of the same size (no interpolation)
    embedding = torch.tensor(_unit(np.array(
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])).T.reshape(2, 1, 4),
        dtype=torch.float32)
    debiased = np.array([[0, 0], [2.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    valid = np.array([False, True, True, False])
    tags = core.usable_tags([1, 2, 3], valid)  # class 3 has no V: cannot vote
    assert tags.tolist() == [1, 2]
    result = core.debias_map(embedding, debiased, tags, (1, 4))
    # per pixel max(cos to (1,0), cos to (0,1)), relu
    expected = [1.0, 1.0, 0.0, 1 / math.sqrt(2)]
    np.testing.assert_allclose(result[0], expected, atol=1e-6)
    only_one = core.debias_map(embedding, debiased, [1], (1, 4))
    np.testing.assert_allclose(only_one[0], [1.0, 0.0, 0.0, 1 / math.sqrt(2)],
                               atol=1e-6)
    # upsampling keeps the range and the size
    big = core.debias_map(embedding, debiased, tags, (8, 32))
    assert big.shape == (8, 32) and big.min() >= 0 and big.max() <= 1


def test_label_rule_hand_worked():
    label = np.array([[0, 1, 2, 255],
                      [0, 1, 2, 254],
                      [3, 3, 0, 255]], np.uint8)
    keep = np.array([[False, False, True, False],
                     [True, True, False, False],
                     [False, True, False, False]])
    expected = np.array([[0, 254, 2, 255],
                         [0, 1, 254, 254],
                         [254, 3, 0, 255]], np.uint8)
    np.testing.assert_array_equal(core.debias_label(label, keep), expected)
    # no pixel changes class; background and ignore never change
    out = core.debias_label(label, np.zeros_like(keep))
    assert set(np.unique(out[label == 0])) == {0}
    assert set(np.unique(out[label == IGNORE_INDEX])) == {IGNORE_INDEX}
    assert set(np.unique(out[label > 0])) <= {BIASED_INDEX, IGNORE_INDEX}


def test_image_centroids_degenerate_cases():
    rng = np.random.default_rng(1)
    embedding = core.normalise_embedding(rng.normal(size=(6, 4, 5)))
    label = np.zeros((4, 5), np.uint8)
    label[0, 0] = 7  # a class with one pixel and K=2: one centroid
    label[1, :] = 255  # ignored
    label[2, :2] = 254  # removed: not a class
    result = core.image_centroids(embedding, label, k_fg=2, k_bg=3)
    assert result.class_ids.tolist() == [0, 0, 0, 7]
    assert result.sizes.tolist()[-1] == 1
    np.testing.assert_allclose(result.vectors[-1], embedding[:, 0, 0].numpy(),
                               atol=1e-6)
    assert result.sizes[:3].sum() == 20 - 1 - 5 - 2
    # background only
    result = core.image_centroids(embedding, np.zeros((4, 5), np.uint8), 2, 2)
    assert result.class_ids.tolist() == [0, 0]
    # nothing valid: no rows
    result = core.image_centroids(embedding, np.full((4, 5), 255, np.uint8), 2, 2)
    assert result.vectors.shape == (0, 6)


def test_normalise_embedding_with_mean():
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(3, 2, 2)) + 5
    mean = raw.reshape(3, -1).mean(1)
    unit = core.normalise_embedding(raw.astype(np.float16), mean).numpy()
    centred = raw.astype(np.float16).astype(np.float64) - mean[:, None, None]
    np.testing.assert_allclose(unit, centred / np.linalg.norm(centred, axis=0),
                               atol=1e-5)


def test_debias_image_rules():
    rng = np.random.default_rng(3)
    embedding = rng.normal(size=(4, 2, 3)).astype(np.float16)
    debiased = _unit(rng.normal(size=(3, 4)))
    valid = np.array([False, True, False])
    background_only = np.zeros((16, 24), np.uint8)
    result = core.debias_image(background_only, embedding, [1], debiased, valid,
                               refinement=core.Refinement('threshold'))
    assert result.debias_map is None and np.array_equal(result.label, background_only)
    label = np.ones((16, 24), np.uint8) * 2
    # the only tag has no debiased centroid: unchanged
    result = core.debias_image(label, embedding, [2], debiased, valid,
                               refinement=core.Refinement('threshold'))
    assert result.debias_map is None and np.array_equal(result.label, label)
    result = core.debias_image(label, embedding, [1], debiased, valid,
                               refinement=core.Refinement('threshold'))
    expected = core.debias_map(core.normalise_embedding(embedding), debiased, [1],
                               (16, 24))
    np.testing.assert_array_equal(result.debias_map, expected)
    np.testing.assert_array_equal(result.label == 254, expected <= 0.5)


def test_tag_vocabulary_and_filter():
    assert core.TAG_SOURCES == ('img_tags', 'gt', 'pseudo_label')
    assert core.check_tag_source('gt') == 'gt'
    with pytest.warns(DeprecationWarning, match="'img_tags'"):
        assert core.check_tag_source('dataset') == 'img_tags'
    with pytest.raises(ValueError, match="one of \\('img_tags', 'pseudo_label'\\)"):
        core.check_tag_source('gt', ('img_tags', 'pseudo_label'))
    with pytest.raises(ValueError, match='tag_source'):
        core.check_tag_source('tags')
    label = np.array([[0, 3, 1, 254], [255, 1, 20, 3]], np.uint8)
    found = core.classes_in_label(label, num_classes=21)
    assert found.dtype == np.int64
    np.testing.assert_array_equal(found, [1, 3, 20])
    np.testing.assert_array_equal(core.classes_in_label(label, 4), [1, 3])
