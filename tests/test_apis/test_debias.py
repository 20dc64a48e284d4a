"""The streaming Stage 3 job: merge, resume, report, bad input."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mars_mm.apis import debias as api
from mars_mm.core import debias as core
from mars_mm.utils.io import load_label_png, save_label_png
from tests.debias_fixtures import CLASS_NAMES, NUM_CLASSES, make_scene, scene_samples


def _settings(scene, work_dir, **overrides):
    options = dict(pseudo_label_dir=scene['pseudo'], embedding_dir=scene['emb'],
                   work_dir=str(work_dir), num_classes=NUM_CLASSES,
                   class_names=CLASS_NAMES, refinement=dict(type='crf'),
                   report=dict(gallery=3, dpi=60))
    options.update(overrides)
    return api.DebiasSettings(**options)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return make_scene(str(tmp_path_factory.mktemp('scene')))


def _outputs(work_dir, stems):
    with np.load(osp.join(work_dir, 'centroids.npz')) as data:
        arrays = {key: data[key] for key in data.files}
    labels = {stem: load_label_png(osp.join(work_dir, 'labels', stem + '.png'))
              for stem in stems}
    return arrays, np.load(osp.join(work_dir, 'centroid_vectors.npy')), labels


def test_removes_planted_context_only(scene, tmp_path):
    settings = _settings(scene, tmp_path)
    api.debias_pseudo_labels(scene_samples(scene), settings)
    for stem in scene['stems']:
        baseline = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        label = load_label_png(settings.output_label_path(stem))
        context = load_label_png(osp.join(scene['context'], stem + '.png')) > 0
        gt = load_label_png(osp.join(scene['gt'], stem + '.png'))
        np.testing.assert_array_equal(label[context], 254)
        # true object pixels survive (up to the CRF's edge pixels)
        assert np.mean(label[gt > 0] == gt[gt > 0]) > 0.97
        np.testing.assert_array_equal(label[baseline == 255], 255)
        np.testing.assert_array_equal(label[baseline == 0], 0)


def test_merge_equals_in_memory_computation(scene, tmp_path):
    settings = _settings(scene, tmp_path, centring='dataset', alpha=0.5)
    samples = scene_samples(scene)
    api.debias_pseudo_labels(samples, settings, report=False)
    arrays, vectors, _ = _outputs(tmp_path, scene['stems'])
    # independent: embeddings averaged in one go, centroids per image, O(N^2) mean
    raw = [np.load(osp.join(scene['emb'], s + '.npy')).astype(np.float64)
           for s in scene['stems']]
    mean = np.concatenate([r.reshape(r.shape[0], -1) for r in raw], 1).mean(1)
    np.testing.assert_allclose(arrays['embedding_mean'], mean, rtol=1e-5)
    rows = []
    for stem, emb in zip(scene['stems'], raw):
        label = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        unit = core.normalise_embedding(emb.astype(np.float16),
                                        arrays['embedding_mean'])
        result = core.image_centroids(unit, core.resize_label_to_grid(
            label, emb.shape[1:]))
        rows += list(zip(result.class_ids, result.vectors))
    class_ids = np.array([c for c, _ in rows])
    expected_vectors = np.stack([v for _, v in rows])
    np.testing.assert_array_equal(arrays['class_ids'], class_ids)
    np.testing.assert_allclose(vectors, expected_vectors, atol=1e-6)
    background = expected_vectors[class_ids == 0]
    distance = np.array([np.mean((1 - background @ v) / 2)
                         for v in expected_vectors])
    np.testing.assert_allclose(arrays['distance'], distance, atol=1e-5)
    for class_id in (1, 2):
        own = np.flatnonzero(class_ids == class_id)
        count = int(np.ceil(0.5 * len(own)))
        top = own[np.argsort(-distance[own], kind='stable')[:count]]
        assert set(np.flatnonzero(arrays['selected'] & (class_ids == class_id))) \
            == set(top)
        np.testing.assert_allclose(arrays['debiased'][class_id],
                                   expected_vectors[top].mean(0), atol=1e-5)


def test_killed_run_resumes_to_identical_outputs(scene, tmp_path, monkeypatch):
    samples = scene_samples(scene)
    reference_dir = tmp_path / 'reference'
    api.debias_pseudo_labels(samples, _settings(scene, reference_dir), report=False)
    reference = _outputs(reference_dir, scene['stems'])

    work_dir = tmp_path / 'killed'
    settings = _settings(scene, work_dir)
    original_centroids = api.centroids_of_image
    calls = {'n': 0}

    def dies_after_four(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] > 4:
            raise KeyboardInterrupt('killed')
        return original_centroids(*args, **kwargs)

    monkeypatch.setattr(api, 'centroids_of_image', dies_after_four)
    with pytest.raises(KeyboardInterrupt):
        api.debias_pseudo_labels(samples, settings, report=False)
    assert len(os.listdir(work_dir / 'centroids')) == 4
    monkeypatch.setattr(api, 'centroids_of_image', original_centroids)
    # a leftover temporary file of the kill is cleaned up
    (work_dir / 'centroids' / '.tmp-abc.npz').write_bytes(b'partial')

    original_debias = api.debias_sample
    calls['n'] = 0

    def dies_after_three(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] > 3:
            raise KeyboardInterrupt('killed')
        return original_debias(*args, **kwargs)

    monkeypatch.setattr(api, 'debias_sample', dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        api.debias_pseudo_labels(samples, settings, report=False)
    assert len(os.listdir(work_dir / 'labels')) == 3
    monkeypatch.setattr(api, 'debias_sample', original_debias)
    api.debias_pseudo_labels(samples, settings, report=False)
    resumed = _outputs(work_dir, scene['stems'])
    assert not (work_dir / 'centroids' / '.tmp-abc.npz').exists()
    for key, value in reference[0].items():
        np.testing.assert_array_equal(resumed[0][key], value, err_msg=key)
    np.testing.assert_array_equal(resumed[1], reference[1])
    for stem in scene['stems']:
        np.testing.assert_array_equal(resumed[2][stem], reference[2][stem])


def test_resume_with_other_settings_is_refused(scene, tmp_path):
    samples = scene_samples(scene)
    api.debias_pseudo_labels(samples, _settings(scene, tmp_path), report=False)
    with pytest.raises(ValueError, match='pass1_params.json'):
        api.debias_pseudo_labels(samples, _settings(scene, tmp_path, k_fg=3))


def test_report_numbers_and_files(scene, tmp_path):
    settings = _settings(scene, tmp_path, refinement=dict(type='threshold'))
    samples = scene_samples(scene)
    api.debias_pseudo_labels(samples, settings)
    report_dir = tmp_path / 'report'
    for name in ('report.md', 'report.json', 'removed.png', 'distances.png',
                 'gallery.png'):
        assert (report_dir / name).stat().st_size > 0, name
    report = json.loads((report_dir / 'report.json').read_text())
    foreground = np.zeros(NUM_CLASSES, int)
    removed = np.zeros(NUM_CLASSES, int)
    for stem in scene['stems']:
        baseline = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        label = load_label_png(settings.output_label_path(stem))
        for class_id in (1, 2):
            foreground[class_id] += np.sum(baseline == class_id)
            removed[class_id] += np.sum((baseline == class_id) & (label == 254))
    for row in report['classes']:
        assert row['foreground_pixels'] == foreground[row['class_id']]
        assert row['removed_pixels'] == removed[row['class_id']]
    assert report['gt']['debiased']['miou'] > report['gt']['baseline']['miou'] + 10
    assert len(report['gallery']) == 3
    fractions = [entry['removed_fraction'] for entry in report['gallery']]
    assert fractions[0] == max(fractions)
    assert '| boat |' in (report_dir / 'report.md').read_text()


def test_bad_inputs_name_the_file(scene, tmp_path):
    bad_labels = tmp_path / 'labels'
    bad_labels.mkdir()
    for stem in scene['stems']:
        label = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        save_label_png(str(bad_labels / (stem + '.png')), label)
    save_label_png(str(bad_labels / (scene['stems'][1] + '.png')),
                   np.full((48, 64), 9, np.uint8))
    settings = _settings(scene, tmp_path / 'out', pseudo_label_dir=str(bad_labels))
    with pytest.raises(ValueError, match=scene['stems'][1] + '.png.*outside'):
        api.debias_pseudo_labels(scene_samples(scene), settings)
    small = tmp_path / 'small.npy'
    np.save(small, np.zeros((8, 3, 3), np.float16))
    with pytest.raises(ValueError, match='small.npy.*does not match'):
        api.load_embedding(str(small), (48, 64), 8)
    with pytest.raises(FileNotFoundError, match='missing.npy'):
        api.load_embedding(str(tmp_path / 'missing.npy'))
    with pytest.raises(ValueError, match='centring'):
        _settings(scene, tmp_path, centring='yes')


def test_evaluate_debiasing_on_the_scene(scene, tmp_path):
    settings = _settings(scene, tmp_path, refinement=dict(type='threshold'))
    api.debias_pseudo_labels(scene_samples(scene), settings, report=False)
    result = api.evaluate_debiasing(scene['stems'], scene['gt'], scene['pseudo'],
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
    embedding = api.oracle_embedding(gt, context, num_classes=3, stride=2)
    assert embedding.shape == (4, 2, 3) and embedding.dtype == np.float16
    np.testing.assert_array_equal(embedding[:, 0, 0], [0, 0, 0, 1])  # class 2
    np.testing.assert_array_equal(embedding[:, 1, 1], [.5, .5, 0, 0])  # context
    np.testing.assert_array_equal(embedding[:, 0, 2], [1, 0, 0, 0])  # plain + 255
    label = api.oracle_biased_label(gt, context, biased_classes=[1, 2])
    assert set(np.unique(label[context])) == {2}
    np.testing.assert_array_equal(api.oracle_biased_label(gt, context, [1]), gt)


def test_rank_auc_equals_pair_count():
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 5, 30), rng.integers(0, 5, 20)
    pairs = np.mean([1.0 if p > n else 0.5 if p == n else 0.0
                     for p in positive for n in negative])
    assert api.rank_auc(positive, negative) == pytest.approx(pairs)


def test_map_separability_on_the_scene(scene, tmp_path):
    settings = _settings(scene, tmp_path, refinement=dict(type='threshold'))
    api.debias_pseudo_labels(scene_samples(scene), settings, report=False)
    result = api.map_separability(scene['stems'], scene['gt'], scene['context'],
                                  settings)
    for name in ('selected', 'oracle'):
        assert result[name]['auc'] > 0.95, name
        assert result[name]['object_mean'] > result[name]['context_mean']
