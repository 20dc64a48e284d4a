"""Analysis of a run where the truth is known: evaluation, oracles, separability."""
import os.path as osp

import numpy as np
import pytest

from mars_mm.debias import analysis
from mars_mm.debias.job import debias_pseudo_labels
from tests.debias_fixtures import NUM_CLASSES, scene_samples, scene_settings


def test_evaluate_debiasing_on_the_scene(scene, tmp_path):
    settings = scene_settings(scene, tmp_path, refinement=dict(type='threshold'))
    debias_pseudo_labels(scene_samples(scene), settings, report=False)
    result = analysis.evaluate_debiasing(scene['stems'], scene['gt'], scene['pseudo'],
                                    osp.join(str(tmp_path), 'labels'), NUM_CLASSES,
                                    scene['context'], biased_classes=[1])
    removal = result['removal']
    # every water pixel was painted boat and is removed; object losses are edges only
    assert removal['recall'] == 100.0
    assert removal['context_fg'] == 6 * 2 * 8 * 64 - 6 * 8 * 32  # water minus hull
    assert removal['precision'] > 95 and removal['object_removed'] < 5
    assert result['removal_per_class'][1]['recall'] == 100.0
    assert result['debiased']['iou'][1] > result['baseline']['iou'][1] + 30


def test_oracle_inputs_hand_worked():
    gt = np.zeros((4, 6), np.uint8)
    gt[:2, :2] = 2
    gt[0, 5] = 255
    context = np.zeros((4, 6), bool)
    context[2:, :] = True
    embedding = analysis.oracle_embedding(gt, context, num_classes=3, stride=2)
    assert embedding.shape == (4, 2, 3) and embedding.dtype == np.float16
    np.testing.assert_array_equal(embedding[:, 0, 0], [0, 0, 0, 1])  # class 2
    np.testing.assert_array_equal(embedding[:, 1, 1], [.5, .5, 0, 0])  # context
    np.testing.assert_array_equal(embedding[:, 0, 2], [1, 0, 0, 0])  # plain + 255
    label = analysis.oracle_biased_label(gt, context, biased_classes=[1, 2])
    assert set(np.unique(label[context])) == {2}
    np.testing.assert_array_equal(analysis.oracle_biased_label(gt, context, [1]), gt)


def test_rank_auc_equals_pair_count():
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 5, 30), rng.integers(0, 5, 20)
    pairs = np.mean([1.0 if p > n else 0.5 if p == n else 0.0
                     for p in positive for n in negative])
    assert analysis.rank_auc(positive, negative) == pytest.approx(pairs)


def test_map_separability_on_the_scene(scene, tmp_path):
    settings = scene_settings(scene, tmp_path, refinement=dict(type='threshold'))
    debias_pseudo_labels(scene_samples(scene), settings, report=False)
    result = analysis.map_separability(scene['stems'], scene['gt'], scene['context'],
                                  settings)
    for name in ('selected', 'oracle'):
        assert result[name]['auc'] > 0.95, name
        assert result[name]['object_mean'] > result[name]['context_mean']


def test_removal_counts_hand_worked():
    gt = np.array([[0, 0, 1, 1, 255]])
    baseline = np.array([[0, 1, 1, 1, 1]])
    debiased = np.array([[0, 254, 254, 1, 254]])
    context = np.array([[1, 1, 0, 0, 0]], bool)
    assert analysis.removal_counts(gt, baseline, debiased, context) == dict(
        removed=3, removed_context=1, context_fg=1, removed_object=1, object_fg=2,
        object=2)
