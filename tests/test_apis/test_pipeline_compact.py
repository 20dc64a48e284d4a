"""COCO-scale disk in the pipeline driver: the fused Stage-1 job
(``pseudo_labels.fused``) and compact Stage-2 embeddings (``embeddings.compact``).

Dry runs of the shipped VOC / COCO pipelines, ``extract_features.py
--compact-bits`` against its own lossless output, and a tiny planted run of the
driver with both on (about 35 s on 2 loaded cores).
"""
import json
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest

from mars_mm.apis.pipeline import (
    PipelineConfigError,
    load_pipeline_config,
    run_pipeline,
)
from mars_mm.apis.pipeline.stamps import read_stamp
from mars_mm.debias.quantised import (
    QUANTISED_SUFFIX,
    load_quantised_embedding,
    save_quantised_embedding,
)
from tests.pipeline_fixtures import working_directory

#: The shipped pipelines, which turn both on (test_pipeline_config.py checks the
#: two-job Stage 1 with pseudo_labels.fused=False).
SHIPPED = [('configs/pipelines/coco2014.py', {}),
           ('configs/pipelines/voc12aug.py', {})]


def _option(command, key):
    for token in command.split():
        if token.startswith(key + '='):
            return token.split('=', 1)[1]
    raise AssertionError(f'{key} not in {command}')


def _flag(command, flag):
    """The value after ``flag`` in a printed command line."""
    tokens = command.split()
    return tokens[tokens.index(flag) + 1]


# ------------------------------------------------------------------ dry runs
@pytest.mark.parametrize('path,options', SHIPPED, ids=['coco', 'voc'])
def test_shipped_pipelines_fuse_stage1_and_compact_embeddings(path, options, capsys,
                                                              tmp_path, repo_root):
    work = str(tmp_path / 'w')
    with working_directory(repo_root):
        cfg = load_pipeline_config(path)
        commands = run_pipeline(path, work_dir=work, cfg_options=dict(options),
                                dry_run=True)['commands']
    capsys.readouterr()
    assert cfg.embeddings.compact.bits == 4 and cfg.embeddings.compact.pool == 1
    lines = [line for stage in commands.values() for line in stage]
    assert not any('generate_cams.py' in line or 'make_pseudo_labels.py' in line
                   for line in lines)
    assert 'cams' not in commands
    labels = commands['pseudo_labels']
    assert len(labels) == 1 and 'tools/cam/generate_pseudo_labels.py' in labels[0]
    cam_train = cfg.cam_train.config
    # the CAM job's config, checkpoint and settings, the label settings, no workers
    assert f'generate_pseudo_labels.py {cam_train} {work}/cam_train/epoch_5.pth ' \
           f'--out {work}/pseudo_labels --split train --data-root ' \
           f'{cfg.dataset.data_root} --scales 1.0 0.5 1.5 2.0 --bg-power 2.0' \
           in labels[0]
    assert '--no-crf' not in labels[0] and '--workers' not in labels[0]
    assert f'--nproc_per_node={cfg.gpus}' in labels[0]  # sharded like the CAM job
    assert labels[0].endswith('--launcher pytorch')
    embeddings = commands['embeddings'][0]
    assert _flag(embeddings, '--compact-bits') == '4'
    assert _flag(embeddings, '--compact-pool') == '1'
    assert _option(commands['debias'][0], 'debias.embedding_suffix') == \
        QUANTISED_SUFFIX


def test_fused_job_takes_every_stage1_setting(capsys, tmp_path, repo_root):
    options = {'pseudo_labels.fused': True, 'pseudo_labels.crf': False,
               'pseudo_labels.bg_threshold': 0.3, 'cams.flip': False,
               'cams.max_batch': 2, 'cams.scales': [1.0],
               'cams.cfg_options': {'model.head.in_channels': 256}, 'gpus': 2,
               'cams.gpus': 1}
    with working_directory(repo_root):
        commands = run_pipeline('configs/pipelines/planted.py',
                                work_dir=str(tmp_path / 'w'), cfg_options=options,
                                to_stage='pseudo_labels',
                                dry_run=True)['commands']
    capsys.readouterr()
    line = commands['pseudo_labels'][0]
    assert line.startswith('python tools/cam/generate_pseudo_labels.py')  # 1 GPU
    for part in ('--scales 1.0 ', '--no-flip', '--max-batch 2',
                 '--bg-threshold 0.3', '--no-crf'):
        assert part in line, part
    assert '--bg-power' not in line
    assert _option(line, 'model.head.in_channels') == '256'
    assert _option(line, 'model.head.num_classes') == '6'  # the CAM config's


def test_defaults_and_the_one_key_way_back(capsys, tmp_path, repo_root):
    """Both off by default (the planted pipelines); the COCO pipeline's lossless
    path is one key each; bad values name the key."""
    with working_directory(repo_root):
        planted = run_pipeline('configs/pipelines/planted.py',
                               work_dir=str(tmp_path / 'p'), to_stage='debias',
                               dry_run=True)['commands']
        back = run_pipeline('configs/pipelines/coco2014.py',
                            work_dir=str(tmp_path / 'c'), to_stage='debias',
                            cfg_options={'pseudo_labels.fused': False,
                                         'embeddings.compact': None},
                            dry_run=True)['commands']
    capsys.readouterr()
    for commands in (planted, back):
        assert 'generate_cams.py' in commands['cams'][0]
        assert 'make_pseudo_labels.py' in commands['pseudo_labels'][0]
        assert '--compact-bits' not in commands['embeddings'][0]
        assert 'embedding_suffix' not in commands['debias'][0]
    base = dict(work_dir='w', dataset=dict(config='c', data_root='d'),
                cam_train=dict(config='x'), embeddings=dict(config='y'),
                debias=dict(config='z'), seg_baseline=dict(enabled=False),
                seg_mars=dict(enabled=False))
    for key, value, match in (
            ('compact', dict(bits=3), 'compact.bits'),
            ('compact', dict(bits=4, pool=0), 'compact.pool'),
            ('compact', dict(bitz=4), 'bitz'),
            ('compact', 4, 'embeddings.compact')):
        cfg = json.loads(json.dumps(base))
        cfg['embeddings'][key] = value
        with pytest.raises(PipelineConfigError, match=match):
            load_pipeline_config(cfg)
    cfg = json.loads(json.dumps(base))
    cfg['pseudo_labels'] = dict(fused='yes')
    with pytest.raises(PipelineConfigError, match='pseudo_labels.fused'):
        load_pipeline_config(cfg)


# --------------------------------------------------------- extract_features
def _extract(repo_root, monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', ['extract_features.py', *map(str, args)])
    runpy.run_path(osp.join(repo_root, 'tools', 'uss', 'extract_features.py'),
                   run_name='__main__')


def test_extract_features_writes_compact_codes(tmp_path, monkeypatch, repo_root,
                                               capsys):
    from mars_mm.datasets.generators.planted_bias import generate_planted_bias
    data = str(tmp_path / 'data')
    # 40 x 56 px: a 5 x 7 grid, an odd count of 4-bit codes per channel row
    generate_planted_bias(data, num_train=4, num_val=1, image_size=(40, 56))
    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')) as handle:
        stems = handle.read().split()
    config = osp.join(repo_root, 'configs', 'uss', 'colourtexture-d8_planted.py')
    lossless, compact = str(tmp_path / 'npy'), str(tmp_path / 'q4')
    common = ['--data-root', data, '--device', 'cpu']
    _extract(repo_root, monkeypatch, config, '--out', lossless, *common)
    _extract(repo_root, monkeypatch, config, '--out', compact, *common,
             '--compact-bits', 4)
    assert sorted(os.listdir(compact)) == sorted(
        [stem + QUANTISED_SUFFIX for stem in stems] + ['job_settings.json'])
    assert sorted(os.listdir(lossless)) == sorted(
        [stem + '.npy' for stem in stems] + ['job_settings.json'])
    with open(osp.join(lossless, 'job_settings.json')) as handle:
        assert 'compact' not in json.load(handle)  # the default record is as before
    with open(osp.join(compact, 'job_settings.json')) as handle:
        assert json.load(handle)['compact'] == dict(bits=4, pool=1)
    for stem in stems:
        exact = np.load(osp.join(lossless, stem + '.npy')).astype(np.float32)
        decoded = load_quantised_embedding(osp.join(compact, stem + QUANTISED_SUFFIX))
        assert decoded.shape == exact.shape == (24, 5, 7)
        # 16 levels over each channel's range: at most half a step off
        flat = exact.reshape(len(exact), -1)
        half_step = (flat.max(axis=1) - flat.min(axis=1)) / 15 / 2
        error = np.abs(decoded - exact).reshape(len(exact), -1).max(axis=1)
        assert (error <= half_step * (1 + 1e-5) + 1e-6).all(), (error, half_step)
        assert error.max() > 0  # 4-bit codes, not a lossless copy
        # the very file tools/uss/compact_embeddings.py makes of the .npy
        redo = str(tmp_path / f'{stem}{QUANTISED_SUFFIX}')
        save_quantised_embedding(redo, np.load(osp.join(lossless, stem + '.npy')),
                                 1, 4)
        with np.load(redo) as want, np.load(
                osp.join(compact, stem + QUANTISED_SUFFIX)) as got:
            assert sorted(want.files) == sorted(got.files)
            for name in want.files:
                np.testing.assert_array_equal(want[name], got[name])
    # a rerun skips the finished files (it looks for .q8.npz, not .npy)
    first = osp.join(compact, stems[0] + QUANTISED_SUFFIX)
    before = os.path.getmtime(first)
    os.remove(osp.join(compact, stems[1] + QUANTISED_SUFFIX))
    capsys.readouterr()
    _extract(repo_root, monkeypatch, config, '--out', compact, *common,
             '--compact-bits', 4)
    assert 'wrote 1 embeddings' in capsys.readouterr().out
    assert os.path.getmtime(first) == before
    assert not any(name.endswith('.npy') for name in os.listdir(compact))
    # other settings into the same folder are refused (bits, or lossless)
    for extra in (['--compact-bits', 8], []):
        with pytest.raises(ValueError, match='other settings'):
            _extract(repo_root, monkeypatch, config, '--out', compact, *common,
                     *extra)
    with pytest.raises(SystemExit):
        _extract(repo_root, monkeypatch, config, '--out', str(tmp_path / 'x'),
                 *common, '--compact-pool', 2)  # pooling needs --compact-bits


# ------------------------------------------------------------ the driver
TINY = {
    'dataset.generate.num_train': 12, 'dataset.generate.num_val': 4,
    'dataset.generate.image_size': (48, 48),
    'cam_train.schedule.max_epochs': 1,
    'pseudo_labels.fused': True,
    'embeddings.compact': dict(bits=4, pool=1),
}


def test_driver_with_fused_labels_and_compact_embeddings(tmp_path, repo_root,
                                                         capsys):
    work = str(tmp_path / 'work')
    with working_directory(repo_root):
        results = run_pipeline('configs/pipelines/planted_demo.py', work_dir=work,
                               cfg_options=dict(TINY), to_stage='debias')
    capsys.readouterr()
    with open(osp.join(work, 'dataset', 'ImageSets', 'Segmentation',
                       'train.txt')) as handle:
        stems = handle.read().split()
    assert len(stems) == 12
    # no CAM files (<stem>.npz) and no lossless embeddings (<stem>.npy) in Stages
    # 1-2 (Stage 3 keeps its own per-image centroid .npz files)
    assert not osp.isdir(osp.join(work, 'cams'))
    written = [name for stage in ('cam_train', 'pseudo_labels', 'embeddings')
               for _, _, names in os.walk(osp.join(work, stage)) for name in names]
    per_image = {name for name in written if name.split('.')[0] in stems}
    assert not {name for name in per_image if name.endswith('.npy') or (
        name.endswith('.npz') and not name.endswith(QUANTISED_SUFFIX))}
    assert sorted(name for name in os.listdir(osp.join(work, 'embeddings'))
                  if not name.startswith('.') and name != 'stage.log') == sorted(
        [stem + QUANTISED_SUFFIX for stem in stems] + ['job_settings.json'])
    for folder in ('pseudo_labels', osp.join('debias', 'labels')):
        names = set(os.listdir(osp.join(work, folder)))
        assert {stem + '.png' for stem in stems} <= names, folder
    # the CAM row says why it has no score
    cam = results['rows']['cam']
    assert cam['miou'] is None and 'not stored (fused CAM job' in cam['note']
    assert results['rows']['debiased']['miou'] is not None
    with open(osp.join(work, 'results.md')) as handle:
        assert '| CAMs: not stored (fused CAM job' in handle.read()
    assert 'generate_pseudo_labels.py' in open(
        osp.join(work, 'pseudo_labels', 'stage.log')).read()
    assert 'debias.embedding_suffix=.q8.npz' in open(
        osp.join(work, 'debias', 'stage.log')).read()
    # a rerun skips every stage
    with working_directory(repo_root):
        run_pipeline('configs/pipelines/planted_demo.py', work_dir=work,
                     cfg_options=dict(TINY), to_stage='debias')
    out = capsys.readouterr().out
    stage_lines = [line for line in out.splitlines() if line.startswith('[')]
    assert len(stage_lines) == 6, out  # dataset .. debias (no cams), results
    assert all('up to date (same settings), skipped' in line
               for line in stage_lines), out
    # 4 -> 8 bits is a changed setting: named, the stale files removed, rerun
    before = read_stamp(osp.join(work, 'embeddings'))['digest']
    with working_directory(repo_root):
        run_pipeline('configs/pipelines/planted_demo.py', work_dir=work,
                     cfg_options=dict(TINY, **{'embeddings.compact.bits': 8}),
                     to_stage='embeddings')
    out = capsys.readouterr().out
    assert 'embeddings     settings changed since the last run:' in out
    assert 'args: --compact-bits: 4 -> 8' in out
    assert 'removing its stale outputs' in out
    assert 'pseudo_labels  up to date' in out
    assert read_stamp(osp.join(work, 'embeddings'))['digest'] != before
    with open(osp.join(work, 'embeddings', 'job_settings.json')) as handle:
        assert json.load(handle)['compact']['bits'] == 8
