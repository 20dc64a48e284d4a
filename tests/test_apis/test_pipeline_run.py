"""The pipeline driver end to end on tiny generated datasets (real tools, CPU).

One tiny planted run (24 train / 8 val images of 64 px, 2 CAM epochs, 6 Stage-4
iterations) is shared by the tests of this module: its table must equal scores
computed independently on the stage outputs, a rerun must skip every stage, and a
changed setting must be named and rerun. A your-own-data run without masks follows.
"""
import json
import os
import os.path as osp
import time

import numpy as np
import pytest

from mars_mm.apis.cam import eval_cams
from mars_mm.apis.eval_labels import eval_labels
from mars_mm.apis.launch import load_config
from mars_mm.apis.pipeline import run_pipeline
from mars_mm.apis.pipeline.stamps import read_stamp
from mars_mm.debias.analysis import evaluate_debiasing
from tests.pipeline_fixtures import make_tagged_folder, working_directory

pytestmark = pytest.mark.slow

TINY = {
    'dataset.generate.num_train': 24, 'dataset.generate.num_val': 8,
    'dataset.generate.image_size': (64, 64),
    'cam_train.schedule.max_epochs': 2,
    'seg_baseline.schedule.max_iters': 6, 'seg_mars.schedule.max_iters': 6,
}
PIPELINE = 'configs/pipelines/planted_demo.py'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, repo_root=osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__))))):
    work = str(tmp_path_factory.mktemp('pipeline') / 'work')
    with working_directory(repo_root):
        results = run_pipeline(PIPELINE, work_dir=work, cfg_options=dict(TINY))
    return dict(work=work, results=results, root=repo_root)


def _close(a, b):
    return a is None and b is None or abs(a - b) <= 0.006


def _check_row(row, summary, biased):
    assert _close(row['miou'], summary['miou'])
    assert _close(row['mfp'], summary['mfp'])
    assert _close(row['mfn'], summary['mfn'])
    for name in biased:
        assert _close(row['biased_iou'][name], summary['per_class'][name]['iou'])


def test_table_equals_scores_computed_independently(tiny):
    work, results = tiny['work'], tiny['results']
    data = osp.join(work, 'dataset')
    with working_directory(tiny['root']):
        cfg = load_config('configs/_base_/datasets/planted_bias.py', work_dir='.',
                          data_root=data)
    biased = results['dataset']['biased_classes']
    assert biased == ['boat', 'train']  # meta.json's bias pairs
    rows = results['rows']
    for key, folder in (('baseline', 'pseudo_labels'), ('debiased', 'debias/labels'),
                        ('oracle', 'oracle/debias/labels')):
        path = osp.join(work, folder)
        assert rows[key]['path'] == path and rows[key]['split'] == 'train'
        _check_row(rows[key], eval_labels(path, cfg, split='train'), biased)
    cams = eval_cams(osp.join(work, 'cams'), cfg, split='train')
    assert _close(rows['cam']['miou'], cams['miou'][cams['best']])
    assert rows['cam']['threshold'] == cams['thresholds'][cams['best']]
    # removal against the planted context, for the real and the oracle embedding
    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')) as handle:
        stems = handle.read().split()
    for key, folder in (('debiased', 'debias/labels'),
                        ('oracle', 'oracle/debias/labels')):
        truth = evaluate_debiasing(
            stems, osp.join(data, 'SegmentationClass'),
            osp.join(work, 'pseudo_labels'), osp.join(work, folder), 7,
            osp.join(data, 'PlantedContext'), [1, 2])['removal']
        for name in ('precision', 'recall', 'object_removed'):
            assert _close(rows[key]['removal']['all'][name], truth[name] and round(
                truth[name], 2))
    # Stage 4: every test setting of both models, on the val split
    for name in ('seg_baseline', 'seg_mars'):
        assert osp.isfile(rows[name]['checkpoint'])
        assert sorted(rows[name]['modes']) == ['ms_flip', 'ms_flip_crf', 'ss']
        for mode, row in rows[name]['modes'].items():
            assert row['split'] == 'test' and row['num_images'] == 8
            pred = osp.join(work, 'test', name, mode, 'pred')
            _check_row(row, eval_labels(pred, cfg, split='val'), biased)
    assert _close(results['effect']['pseudo_labels']['miou'],
                  rows['debiased']['miou'] - rows['baseline']['miou'])
    # the files: the table names its settings, splits and paths
    with open(osp.join(work, 'results.json')) as handle:
        assert json.load(handle)['rows'].keys() == rows.keys()
    with open(osp.join(work, 'results.md')) as handle:
        table = handle.read()
    assert f'{rows["debiased"]["miou"]:.2f}' in table
    assert 'train (24)' in table and 'val (8)' in table and 'seed 0' in table
    assert 'picked with the GT' in table
    assert osp.join(work, 'debias', 'report') in table
    assert osp.isfile(osp.join(work, 'debias', 'report', 'report.md'))
    # the two Stage 4 configs train with the same loss normalisation
    for name in ('seg_baseline', 'seg_mars'):
        stamp = read_stamp(osp.join(work, name))
        assert stamp['settings']['config'][
            'model.decode_head.loss_decode.avg_non_ignore'] is True


def test_rerun_skips_every_stage(tiny, capsys):
    capsys.readouterr()
    start = time.time()
    with working_directory(tiny['root']):
        results = run_pipeline(PIPELINE, work_dir=tiny['work'],
                               cfg_options=dict(TINY))
    elapsed = time.time() - start
    out = capsys.readouterr().out
    stage_lines = [line for line in out.splitlines() if line.startswith('[')]
    assert len(stage_lines) == 11  # 10 stages + results
    assert all('up to date (same settings), skipped' in line for line in stage_lines)
    assert results['rows'] == tiny['results']['rows']
    assert elapsed < 60, f'a rerun that only resumes took {elapsed:.0f} s'


def test_changed_setting_is_named_and_rerun(tiny, capsys):
    work = tiny['work']
    labels = osp.join(work, 'debias', 'labels')
    before = read_stamp(osp.join(work, 'debias'))['digest']
    changed = dict(TINY, **{'debias.cfg_options.debias.alpha': 0.6})
    capsys.readouterr()
    with working_directory(tiny['root']):
        run_pipeline(PIPELINE, work_dir=work, cfg_options=changed,
                     to_stage='debias')
    out = capsys.readouterr().out
    assert 'debias         settings changed since the last run:' in out
    assert 'config.debias.alpha: 0.4 -> 0.6' in out
    assert 'removing its stale outputs' in out
    assert 'cams           up to date' in out  # upstream untouched
    assert read_stamp(osp.join(work, 'debias'))['digest'] != before
    assert len(os.listdir(labels)) == 24
    # back to the original settings: detected again, and the stamp is the old one
    with working_directory(tiny['root']):
        run_pipeline(PIPELINE, work_dir=work, cfg_options=dict(TINY),
                     to_stage='debias')
    assert 'config.debias.alpha: 0.6 -> 0.4' in capsys.readouterr().out
    assert read_stamp(osp.join(work, 'debias'))['digest'] == before


def test_own_data_without_masks(tmp_path, repo_root):
    root = str(tmp_path / 'mine')
    made = make_tagged_folder(root, num_train=12, num_val=4, masks=False)
    options = {'cam_train.schedule.max_epochs': 1}
    with working_directory(repo_root):
        results = run_pipeline('configs/pipelines/own_data.py',
                               work_dir=str(tmp_path / 'work'), data_root=root,
                               cfg_options=options, to_stage='debias')
    assert results['dataset']['masks'] is False
    assert results['dataset']['classes'] == made['classes']
    assert set(results['rows']) == {'debiased'}  # no GT: no scores
    shares = results['rows']['debiased']['removed_share']
    assert set(shares) == set(made['classes'][1:])
    labelled = [row['pixels'] for row in shares.values()]
    assert 0 < sum(labelled) <= 100.01
    assert results['tags'] and 'mAP' in results['tags']
    with open(osp.join(tmp_path, 'work', 'results.md')) as handle:
        table = handle.read()
    assert 'What can be measured without ground-truth masks' in table
    assert 'Not measurable without masks' in table
    assert np.isfinite(labelled).all()
