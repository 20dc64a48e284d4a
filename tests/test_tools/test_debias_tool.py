"""tools/mars/debias.py end to end on a tiny VOC-layout fixture (1 and 2 ranks)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mars_mm.utils.io import load_label_png
from tests.debias_fixtures import gallery_rows, make_scene

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'mars', 'debias.py')


def _write_config(tmp_path, scene):
    path = tmp_path / 'debias_scene.py'
    path.write_text(f"""
_base_ = [{osp.join(REPO_ROOT, 'configs', 'mars', 'debias_voc12aug.py')!r}]
train_infer_dataloader = dict(dataset=dict(
    data_root={scene['root']!r},
    ann_file='ImageSets/Segmentation/train.txt',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass')))
debias = dict(pseudo_label_dir={scene['pseudo']!r}, embedding_dir={scene['emb']!r},
              centring='none', refinement=dict(type='crf', gamma=1.0),
              num_workers=2, report=dict(gallery=2, dpi=50))
""")
    return str(path)


def _run(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=REPO_ROOT)
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, TOOL] + args, cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(process):
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


@pytest.fixture(scope='module')
def single(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('tool')
    scene = make_scene(str(tmp_path / 'scene'))
    config = _write_config(tmp_path, scene)
    work_dir = str(tmp_path / 'single')
    _finish(_run([config, '--work-dir', work_dir]))
    return tmp_path, scene, config, work_dir


def test_tool_writes_labels_centroids_and_report(single):
    _, scene, config, work_dir = single
    for name in ('centroids.npz', 'centroid_vectors.npy', 'report/report.md',
                 'report/report.json', 'report/gallery.png',
                 'report/distances.png'):
        assert osp.getsize(osp.join(work_dir, name)) > 0, name
    removed_context = total_context = 0
    for stem in scene['stems']:
        label = load_label_png(osp.join(work_dir, 'labels', stem + '.png'))
        context = load_label_png(osp.join(scene['context'], stem + '.png')) > 0
        removed_context += int(np.sum(label[context] == 254))
        total_context += int(context.sum())
    assert total_context and removed_context == total_context
    # the config's overrides reached the job
    with np.load(osp.join(work_dir, 'centroids.npz')) as data:
        assert data['embedding_mean'].size == 0  # centring='none' from the config
        assert float(data['alpha']) == 0.4
        assert len(data['debiased']) == 21  # VOC classes from the dataset
    assert _gallery(work_dir) == (2, 2)  # report=dict(gallery=2) of the config


def test_tool_cfg_options_and_report_only(single):
    _, _, config, work_dir = single
    os.remove(osp.join(work_dir, 'report', 'report.md'))
    _finish(_run([config, '--work-dir', work_dir, '--report-only', '--cfg-options',
                  'debias.report.gallery=1']))
    assert osp.isfile(osp.join(work_dir, 'report', 'report.md'))
    assert _gallery(work_dir) == (1, 1)  # the option reached the report


def _gallery(work_dir):
    """(images listed in report.json, image rows drawn in gallery.png)."""
    with open(osp.join(work_dir, 'report', 'report.json')) as file:
        listed = len(json.load(file)['gallery'])
    return listed, gallery_rows(osp.join(work_dir, 'report', 'gallery.png'))


@pytest.mark.slow
def test_two_ranks_without_process_group_equal_one(single):
    tmp_path, scene, config, work_dir = single
    sharded = str(tmp_path / 'sharded')
    ranks = [_run([config, '--work-dir', sharded, '--no-report'],
                  dict(RANK=str(rank), WORLD_SIZE='2')) for rank in (0, 1)]
    for process in ranks:
        _finish(process)
    with np.load(osp.join(work_dir, 'centroids.npz')) as one, \
            np.load(osp.join(sharded, 'centroids.npz')) as two:
        for key in one.files:
            np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    for stem in scene['stems']:
        np.testing.assert_array_equal(
            load_label_png(osp.join(work_dir, 'labels', stem + '.png')),
            load_label_png(osp.join(sharded, 'labels', stem + '.png')))
