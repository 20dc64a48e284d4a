"""CAM export (resume after a crash, sharding), pseudo labels and the CAM sweep."""
import copy
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mars_mm.apis import cam as cam_api
from mars_mm.registry import MODELS
from mars_mm.utils.io import load_label_png
from tests.fixtures import make_tiny_voc

CLASSES = ('background', 'square', 'disc')


def tiny_config(data_root: str) -> Config:
    dataset = dict(type='PlantedBiasDataset', data_root=data_root, xml_dir=None,
                   metainfo=dict(classes=CLASSES),
                   ann_file='ImageSets/Segmentation/train.txt')
    return Config(dict(
        default_scope='mmseg',
        model=dict(
            type='CAMClassifier',
            data_preprocessor=dict(type='SegDataPreProcessor',
                                   mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
            backbone=dict(type='ResNetV1c', depth=18, stem_channels=8,
                          base_channels=8, strides=(1, 2, 2, 1),
                          dilations=(1, 1, 1, 2), out_indices=(3, )),
            head=dict(type='CAMHead', in_channels=64, num_classes=2)),
        cam_pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadImageTags'),
                      dict(type='PackWSSSInputs')],
        train_dataloader=dict(dataset=dataset),
        val_dataloader=dict(dataset=dict(
            dataset, ann_file='ImageSets/Segmentation/val.txt'))))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('voc'))
    make_tiny_voc(root, num_train=6, num_val=2, size=32)
    cfg = tiny_config(root)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    checkpoint = osp.join(root, 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return root, cfg, checkpoint


def read_all(folder):
    result = {}
    for path in sorted(glob.glob(osp.join(folder, '*.npz'))):
        with np.load(path) as data:
            result[osp.basename(path)] = (data['cams'].copy(), data['keys'].copy())
    return result


def test_cam_files_follow_the_format(setup, tmp_path):
    root, cfg, checkpoint = setup
    out = str(tmp_path / 'cams')
    assert cam_api.generate_cams(cfg, checkpoint, out, device='cpu') == 6
    files = read_all(out)
    assert len(files) == 6
    for name, (cams, keys) in files.items():
        gt = load_label_png(osp.join(root, 'SegmentationClass',
                                     name.replace('.npz', '.png')))
        assert cams.dtype == np.float16 and keys.dtype == np.int64
        assert cams.shape == (len(keys), *gt.shape)
        present = sorted(set(np.unique(gt).tolist()) - {0, 255})
        assert keys.tolist() == present
        assert cams.max() <= 1.0


def test_crashed_export_resumes_to_identical_files(setup, tmp_path, monkeypatch):
    root, cfg, checkpoint = setup
    reference = str(tmp_path / 'reference')
    cam_api.generate_cams(cfg, checkpoint, reference, device='cpu')

    out = str(tmp_path / 'resumed')
    real_savez = np.savez_compressed
    calls = dict(count=0)

    def crash_on_third_write(file, **arrays):
        calls['count'] += 1
        if calls['count'] == 3:
            with open(file, 'wb') as handle:  # half-written file, then the crash
                handle.write(b'PK\x03\x04 truncated')
            raise RuntimeError('simulated crash')
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, 'savez_compressed', crash_on_third_write)
    with pytest.raises(RuntimeError, match='simulated crash'):
        cam_api.generate_cams(cfg, checkpoint, out, device='cpu')
    monkeypatch.setattr(np, 'savez_compressed', real_savez)
    assert len(glob.glob(osp.join(out, '*.npz'))) == 2
    assert not [name for name in os.listdir(out) if name.startswith('.tmp-')]
    # a SIGKILL cannot clean up: leave a stale temporary as a killed job would
    with open(osp.join(out, '.tmp-killed.npz'), 'wb') as handle:
        handle.write(b'partial')

    assert cam_api.generate_cams(cfg, checkpoint, out, device='cpu') == 4
    assert sorted(os.listdir(out)) == sorted(os.listdir(reference))
    expected, got = read_all(reference), read_all(out)
    for name in expected:
        assert np.array_equal(expected[name][0], got[name][0])
        assert np.array_equal(expected[name][1], got[name][1])


def test_export_shards_over_ranks(setup, tmp_path, monkeypatch):
    _, cfg, checkpoint = setup
    out = str(tmp_path / 'rank1')
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    assert cam_api.generate_cams(cfg, checkpoint, out, device='cpu') == 3
    # the settings record is rank 0's to write
    assert sorted(os.listdir(out)) == [f'img_{i:03d}.npz' for i in (1, 3, 5)]


def perfect_cams(root, out_dir, stems):
    """CAMs equal to the ground-truth masks (1 on the class, 0 elsewhere)."""
    for stem in stems:
        gt = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        keys = sorted(set(np.unique(gt).tolist()) - {0, 255})
        cams = np.stack([(gt == key).astype(np.float32) for key in keys])
        cam_api.save_cams(osp.join(out_dir, f'{stem}.npz'), cams, keys)


def test_pseudo_labels_and_sweep_on_perfect_cams(setup, tmp_path):
    root, cfg, _ = setup
    cam_dir, label_dir = str(tmp_path / 'cams'), str(tmp_path / 'labels')
    stems = [f'img_{i:03d}' for i in range(6)]
    perfect_cams(root, cam_dir, stems)

    result = cam_api.eval_cams(cam_dir, cfg, split='train', thresholds=[0.2, 0.5])
    assert result['miou'] == pytest.approx([100.0, 100.0])
    assert result['num_images'] == 6

    written = cam_api.make_pseudo_labels(cam_dir, cfg, label_dir, crf=False,
                                         num_workers=2)
    assert written == 6
    for stem in stems:
        gt = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        label = load_label_png(osp.join(label_dir, f'{stem}.png'))
        valid = gt != 255
        assert np.array_equal(label[valid], gt[valid])
    # rerun: everything exists, nothing is rewritten
    assert cam_api.make_pseudo_labels(cam_dir, cfg, label_dir, crf=False) == 0


def test_pseudo_labels_with_crf(setup, tmp_path):
    pytest.importorskip('pydensecrf')
    root, cfg, _ = setup
    cam_dir, label_dir = str(tmp_path / 'cams'), str(tmp_path / 'labels')
    stems = [f'img_{i:03d}' for i in range(6)]
    perfect_cams(root, cam_dir, stems)
    cam_api.make_pseudo_labels(cam_dir, cfg, label_dir, bg_threshold=0.3)
    for stem in stems:
        gt = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        label = load_label_png(osp.join(label_dir, f'{stem}.png'))
        valid = gt != 255
        assert (label[valid] == gt[valid]).mean() > 0.9


def test_missing_cam_file_is_named(setup, tmp_path):
    root, cfg, _ = setup
    cam_dir = str(tmp_path / 'cams')
    perfect_cams(root, cam_dir, [f'img_{i:03d}' for i in range(5)])
    with pytest.raises(FileNotFoundError, match='img_005.npz'):
        cam_api.make_pseudo_labels(cam_dir, cfg, str(tmp_path / 'labels'))
    bad = osp.join(cam_dir, 'broken.npz')
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match='broken.npz'):
        cam_api.load_cams(bad)
