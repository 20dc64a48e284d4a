"""The Stage 3 passes run as one job: removal, merge, resume, tags, bad input."""
import os
import os.path as osp

import numpy as np
import pytest

from mars_mm.core import debias as core
from mars_mm.debias import passes
from mars_mm.debias.job import debias_pseudo_labels
from mars_mm.debias.settings import Sample
from mars_mm.utils.io import load_label_png, save_label_png
from tests.debias_fixtures import NUM_CLASSES, scene_samples, scene_settings


def _outputs(work_dir, stems):
    with np.load(osp.join(work_dir, 'centroids.npz')) as data:
        arrays = {key: data[key] for key in data.files}
    labels = {stem: load_label_png(osp.join(work_dir, 'labels', stem + '.png'))
              for stem in stems}
    return arrays, np.load(osp.join(work_dir, 'centroid_vectors.npy')), labels


def test_removes_planted_context_only(scene, tmp_path):
    settings = scene_settings(scene, tmp_path)
    debias_pseudo_labels(scene_samples(scene), settings)
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
    settings = scene_settings(scene, tmp_path, centring='dataset', alpha=0.5)
    samples = scene_samples(scene)
    debias_pseudo_labels(samples, settings, report=False)
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
    debias_pseudo_labels(samples, scene_settings(scene, reference_dir), report=False)
    reference = _outputs(reference_dir, scene['stems'])

    work_dir = tmp_path / 'killed'
    settings = scene_settings(scene, work_dir)
    original_centroids = passes.centroids_of_image
    calls = {'n': 0}

    def dies_after_four(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] > 4:
            raise KeyboardInterrupt('killed')
        return original_centroids(*args, **kwargs)

    monkeypatch.setattr(passes, 'centroids_of_image', dies_after_four)
    with pytest.raises(KeyboardInterrupt):
        debias_pseudo_labels(samples, settings, report=False)
    assert len(os.listdir(work_dir / 'centroids')) == 4
    monkeypatch.setattr(passes, 'centroids_of_image', original_centroids)
    # a leftover temporary file of the kill is cleaned up
    (work_dir / 'centroids' / '.tmp-abc.npz').write_bytes(b'partial')

    original_debias = passes.debias_sample
    calls['n'] = 0

    def dies_after_three(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] > 3:
            raise KeyboardInterrupt('killed')
        return original_debias(*args, **kwargs)

    monkeypatch.setattr(passes, 'debias_sample', dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        debias_pseudo_labels(samples, settings, report=False)
    assert len(os.listdir(work_dir / 'labels')) == 3
    monkeypatch.setattr(passes, 'debias_sample', original_debias)
    debias_pseudo_labels(samples, settings, report=False)
    resumed = _outputs(work_dir, scene['stems'])
    assert not (work_dir / 'centroids' / '.tmp-abc.npz').exists()
    for key, value in reference[0].items():
        np.testing.assert_array_equal(resumed[0][key], value, err_msg=key)
    np.testing.assert_array_equal(resumed[1], reference[1])
    for stem in scene['stems']:
        np.testing.assert_array_equal(resumed[2][stem], reference[2][stem])


def test_resume_with_other_settings_is_refused(scene, tmp_path):
    samples = scene_samples(scene)
    debias_pseudo_labels(samples, scene_settings(scene, tmp_path), report=False)
    with pytest.raises(ValueError, match='pass1_params.json'):
        debias_pseudo_labels(samples, scene_settings(scene, tmp_path, k_fg=3))


def test_a_bad_label_fails_the_run_naming_the_file(scene, tmp_path):
    bad_labels = tmp_path / 'labels'
    bad_labels.mkdir()
    for stem in scene['stems']:
        label = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        save_label_png(str(bad_labels / (stem + '.png')), label)
    save_label_png(str(bad_labels / (scene['stems'][1] + '.png')),
                   np.full((48, 64), 9, np.uint8))
    settings = scene_settings(scene, tmp_path / 'out',
                              pseudo_label_dir=str(bad_labels))
    with pytest.raises(ValueError, match=scene['stems'][1] + '.png.*outside'):
        debias_pseudo_labels(scene_samples(scene), settings)


def test_resolve_tags_from_each_source(scene):
    sample = scene_samples(scene)[0]  # a boat image: tags [1]
    label = load_label_png(osp.join(scene['pseudo'], sample.stem + '.png'))
    label[5, :3] = [2, 254, 7]  # a stray class, a removed pixel, a value >= C
    np.testing.assert_array_equal(
        passes.resolve_tags(sample, label, 'img_tags', NUM_CLASSES), [1])
    np.testing.assert_array_equal(
        passes.resolve_tags(sample, label, 'pseudo_label', NUM_CLASSES), [1, 2])
    np.testing.assert_array_equal(passes.resolve_tags(sample, label, 'gt', NUM_CLASSES),
                                  [1])
    with pytest.warns(DeprecationWarning, match="'img_tags'"):
        np.testing.assert_array_equal(
            passes.resolve_tags(sample, label, 'dataset', NUM_CLASSES), [1])
    with pytest.raises(ValueError, match='no img_tags'):
        passes.resolve_tags(sample._replace(tags=None), label, 'img_tags', 3)
    with pytest.raises(ValueError, match='GT mask'):
        passes.resolve_tags(Sample('x', None, None), label, 'gt', 3)


def test_sigkill_during_the_merge_resumes_to_identical_outputs(scene, tmp_path,
                                                               repo_root):
    """SIGKILL inside the merge (raw vectors half written, the .npy being written,
    before the centroid file): the leftovers are removed and a rerun gives the
    bytes of an uninterrupted run."""
    import json
    import subprocess
    import sys
    reference_dir = tmp_path / 'reference'
    debias_pseudo_labels(scene_samples(scene), scene_settings(scene, reference_dir),
                         report=False)
    scene_file = osp.join(scene['root'], 'scene.json')
    with open(scene_file, 'w') as handle:
        json.dump(scene, handle)
    work, out = tmp_path / 'killed', tmp_path / 'kills.json'
    subprocess.run([sys.executable, '-m', 'tests.kill_harness', 'debias',
                    scene['root'], str(work), str(out)], cwd=repo_root, check=True,
                   timeout=600, env=dict(os.environ, OMP_NUM_THREADS='1'))
    record = json.loads(out.read_text())
    ended = {attempt['point']: attempt for attempt in record['attempts']}
    assert all(attempt['ended'] == 'signal 9' for attempt in ended.values())
    assert any(name.startswith('.tmp-') and name.endswith('.raw')
               for name in ended['raw']['files'])
    assert any(name.startswith('.tmp-') and name.endswith('.npy')
               for name in ended['npy']['files'])
    assert 'centroid_vectors.npy' in ended['summary']['files']
    assert not [name for name in record['files']
                if name.startswith('.tmp-') or name.endswith('.raw')]
    for name in ('centroids.npz', 'centroid_vectors.npy'):
        assert (work / name).read_bytes() == (reference_dir / name).read_bytes(), name
    for stem in scene['stems']:
        assert (work / 'labels' / f'{stem}.png').read_bytes() == (
            reference_dir / 'labels' / f'{stem}.png').read_bytes()


def test_pass1_files_of_changed_inputs_are_recomputed(scene, tmp_path):
    """A centroid file made from an embedding that was fixed since is made again,
    and the labels of pass 2 follow (issue 13): the outputs equal a fresh run."""
    import shutil
    emb = tmp_path / 'emb'
    shutil.copytree(scene['emb'], emb)
    stem = scene['stems'][0]
    good = np.load(emb / f'{stem}.npy')
    np.save(emb / f'{stem}.npy', np.ascontiguousarray(good[:, ::-1, ::-1]))
    settings = scene_settings(scene, tmp_path / 'work', embedding_dir=str(emb))
    debias_pseudo_labels(scene_samples(scene), settings, report=False)
    np.save(emb / f'{stem}.npy', good)
    with pytest.warns(UserWarning, match=rf'recomputed 1 centroid files: .*{stem}\.npz '
                      'was made from other inputs'):
        debias_pseudo_labels(scene_samples(scene), settings, report=False)
    fresh = scene_settings(scene, tmp_path / 'fresh', embedding_dir=str(emb))
    debias_pseudo_labels(scene_samples(scene), fresh, report=False)
    reference, resumed = (_outputs(tmp_path / name, scene['stems'])
                          for name in ('fresh', 'work'))
    for key, value in reference[0].items():
        np.testing.assert_array_equal(resumed[0][key], value, err_msg=key)
    for name in scene['stems']:
        np.testing.assert_array_equal(resumed[2][name], reference[2][name])
