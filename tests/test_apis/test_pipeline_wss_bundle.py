"""The pipelines over other methods' released masks (DHR's "WSS labels" bundle).

A fixture tree in the bundle's layout, ``WSS/VOC2012/{RSEPM,MARS,DHR}/train_aug/``
and ``WSS/COCO2014/DHR/train/``, holds masks written as DHR writes them (a grey
image converted to mode P, then the VOC colour map put on it: the indices are the
classes, 255 ignored). The fast tests dry-run every bundle pipeline against it; the
slow test runs Stage 2-4 of the planted pipeline on masks in that layout.
"""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mars_mm.apis.pipeline import load_pipeline_config, run_pipeline
from mars_mm.utils.io import load_label_png, voc_palette
from tests.pipeline_fixtures import working_directory

VOC_STEMS = ['2007_000032', '2007_000039', '2008_000002']
COCO_STEMS = ['COCO_train2014_000000000009', 'COCO_train2014_000000000025']
#: pipeline config -> (dataset folder, method, split folder) of the bundle
BUNDLE_PIPELINES = {
    'configs/pipelines/wss-mars_voc12aug.py': ('VOC2012', 'MARS', 'train_aug'),
    'configs/pipelines/wss-rsepm_voc12aug.py': ('VOC2012', 'RSEPM', 'train_aug'),
    'configs/pipelines/wss-dhr_voc12aug.py': ('VOC2012', 'DHR', 'train_aug'),
    'configs/pipelines/wss-dhr_coco2014.py': ('COCO2014', 'DHR', 'train'),
}


def write_bundle_mask(path: str, label: np.ndarray) -> None:
    """A mask as DHR's release writes it: grey -> mode P -> VOC colour map."""
    image = Image.fromarray(label.astype(np.uint8)).convert('P')
    image.putpalette(voc_palette().ravel().tolist())
    image.save(path)


def make_bundle(root: str, stems=None, size=(6, 8), seed=0) -> str:
    """``root/WSS/...`` in the bundle's layout; returns ``root/WSS``."""
    rng = np.random.default_rng(seed)
    for dataset, method, split in BUNDLE_PIPELINES.values():
        folder = osp.join(root, 'WSS', dataset, method, split)
        os.makedirs(folder, exist_ok=True)
        names = stems or (VOC_STEMS if dataset == 'VOC2012' else COCO_STEMS)
        classes = 21 if dataset == 'VOC2012' else 81
        for stem in names:
            label = rng.integers(0, classes, size)
            label[0] = 255
            write_bundle_mask(osp.join(folder, stem + '.png'), label)
    return osp.join(root, 'WSS')


@pytest.fixture(autouse=True)
def _at_repo_root(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # pipeline configs name files relative to the repo


def _option(command, key):
    for token in command.split():
        if token.startswith(key + '='):
            return token.split('=', 1)[1]
    raise AssertionError(f'{key} not in {command}')


def test_bundle_masks_read_as_class_indices(tmp_path):
    path = str(tmp_path / 'mask.png')
    label = np.array([[0, 15, 20], [255, 4, 0]], np.uint8)
    write_bundle_mask(path, label)
    with Image.open(path) as image:
        assert image.mode == 'P'
    np.testing.assert_array_equal(load_label_png(path), label)


@pytest.mark.parametrize('config', sorted(BUNDLE_PIPELINES))
def test_default_path_follows_the_bundle_layout(config):
    dataset, method, split = BUNDLE_PIPELINES[config]
    cfg = load_pipeline_config(config)
    assert cfg.pseudo_labels.external == f'data/WSS/{dataset}/{method}/{split}'
    assert cfg.work_dir == 'work_dirs/pipelines/' + osp.basename(config)[:-3]


@pytest.mark.parametrize('config', sorted(BUNDLE_PIPELINES))
def test_bundle_pipeline_dry_run_reads_the_unpacked_masks(config, tmp_path, capsys):
    dataset, method, split = BUNDLE_PIPELINES[config]
    masks = osp.join(make_bundle(str(tmp_path / 'unpacked')), dataset, method, split)
    work = str(tmp_path / 'work')
    commands = run_pipeline(config, work_dir=work, dry_run=True,
                            cfg_options={'pseudo_labels.external': masks})['commands']
    out = capsys.readouterr().out
    # Stage 1 is the bundle: no CAM stage, the masks are read where they lie
    assert not {'cam_train', 'cams'} & set(commands)
    assert commands['pseudo_labels'] == []
    assert f'(external pseudo labels: {masks})' in out
    assert _option(commands['debias'][0], 'debias.pseudo_label_dir') == masks
    # Stage 4 trains on the masks themselves, and on their debiased version
    assert _option(commands['seg_baseline'][0],
                   'train_dataloader.dataset.pseudo_label_dir') == masks
    assert _option(commands['seg_mars'][0],
                   'train_dataloader.dataset.pseudo_label_dir') == \
        f'{work}/debias/labels'
    assert len(commands['test']) == 6  # ss, ms+flip, +CRF for both models


def _brute_force_miou(data: str, masks: str, stems) -> float:
    """mIoU of ``masks`` against the GT written out: mask 255 counts as background,
    GT 255 is skipped, classes absent from both are left out of the mean."""
    classes = len(json.load(open(osp.join(data, 'meta.json')))['classes'])
    both, gt_count, pred_count = (np.zeros(classes) for _ in range(3))
    for stem in stems:
        gt = np.asarray(Image.open(osp.join(data, 'SegmentationClass', stem + '.png')))
        pred = np.asarray(Image.open(osp.join(masks, stem + '.png'))).copy()
        pred[pred == 255] = 0
        for cls in range(classes):
            valid = gt != 255
            both[cls] += np.sum((gt == cls) & (pred == cls) & valid)
            gt_count[cls] += np.sum((gt == cls) & valid)
            pred_count[cls] += np.sum((pred == cls) & valid)
    union = gt_count + pred_count - both
    return float(np.mean([b / u for b, u in zip(both, union) if u]) * 100)


@pytest.mark.slow
def test_stage4_on_masks_in_the_bundle_layout(tmp_path, repo_root):
    """Stages 2-4 of the planted pipeline on another method's masks in the bundle's
    layout: the table scores those very masks, and both Stage-4 models train and
    test."""
    work = str(tmp_path / 'work')
    data = osp.join(work, 'dataset')
    tiny = {'dataset.generate.num_train': 16, 'dataset.generate.num_val': 6,
            'dataset.generate.image_size': (64, 64),
            'seg_baseline.schedule.max_iters': 4, 'seg_mars.schedule.max_iters': 4,
            'test.modes': ['ss'], 'oracle.enabled': False}
    with working_directory(repo_root):
        run_pipeline('configs/pipelines/planted.py', work_dir=work, cfg_options=tiny,
                     to_stage='dataset')
    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')) as handle:
        stems = handle.read().split()
    # "another method": the ground truth with every second image's objects lost
    masks = osp.join(str(tmp_path), 'WSS', 'VOC2012', 'MARS', 'train_aug')
    os.makedirs(masks)
    for index, stem in enumerate(stems):
        label = load_label_png(osp.join(data, 'SegmentationClass', stem + '.png'))
        if index % 2:
            label = np.where(label == 255, 255, 0)
        label[:, :2] = 255
        write_bundle_mask(osp.join(masks, stem + '.png'), label)
    options = dict(tiny, **{'pseudo_labels.external': masks})
    with working_directory(repo_root):
        results = run_pipeline('configs/pipelines/planted.py', work_dir=work,
                               cfg_options=options)
    baseline = results['rows']['baseline']
    assert baseline['miou'] == pytest.approx(_brute_force_miou(data, masks, stems),
                                             abs=0.006)
    for stage in ('seg_baseline', 'seg_mars'):
        assert osp.isfile(osp.join(work, stage, 'iter_4.pth'))
    assert not osp.isdir(osp.join(work, 'cam_train'))
    assert baseline['note'] == 'external pseudo labels'
    assert baseline['path'] == masks
    for stage in ('seg_baseline', 'seg_mars'):
        assert 0 <= results['rows'][stage]['modes']['ss']['miou'] <= 100
