"""Stage 2 tools end to end on a tiny VOC-layout dataset: kNN -> train -> export ->
evaluation, with a tiny random ViT."""
import os
import os.path as osp
import runpy
import sys

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from mars_mm.datasets.uss_pair_dataset import read_knn_file
from tests.fixtures import make_tiny_voc

CONFIG = """
_base_ = ['{repo}/configs/_base_/default_runtime.py',
          '{repo}/configs/_base_/schedules/schedule_stego_5k.py']
data_root = '{root}'
model = dict(
    type='STEGO',
    data_preprocessor=dict(type='USSDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                           size_divisor=8),
    backbone=dict(type='FrozenBackbone', out_channels=24, feature_stride=8,
                  centre_features=True, random_init_seed=0,
                  backbone=dict(type='mmpretrain.VisionTransformer',
                                arch=dict(embed_dims=24, num_layers=1, num_heads=2,
                                          feedforward_channels=48),
                                img_size=32, patch_size=8, out_type='featmap')),
    head=dict(type='STEGOHead', in_channels=24, channels=5),
    loss_corr=dict(type='ContrastiveCorrelationLoss', grid_size=3, num_negatives=2),
    cluster_probe=dict(type='ClusterProbe', in_channels=5, num_clusters=3),
    linear_probe=dict(type='LinearProbe', in_channels=5, num_classes=3))
inner = dict(type='WSSSVOCDataset', data_root=data_root, xml_dir=None,
             metainfo=dict(classes=('background', 'aeroplane', 'bicycle')),
             ann_file='ImageSets/Segmentation/train.txt',
             pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                       dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')])
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='USSPairDataset', knn_file='{work}/knn.npz', dataset=inner))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='WSSSVOCDataset', data_root=data_root, xml_dir=None,
                 metainfo=dict(classes=('background', 'aeroplane', 'bicycle')),
                 ann_file='ImageSets/Segmentation/val.txt', empty_tags='keep',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
val_dataloader = test_dataloader
val_evaluator = dict(type='USSMetric', num_clusters=3)
test_evaluator = val_evaluator
knn_cfg = dict(size=None, centre=True)
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1),
                     visualization=dict(type='SegVisualizationHook', draw=False))
work_dir = '{work}'
"""


def run_tool(repo_root, script, *args, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [script, *map(str, args)])
    runpy.run_path(osp.join(repo_root, script), run_name='__main__')


def independent_export(model, image_path):
    """Scales 0.5-2 and flips of a 32 px image, written out (all sizes multiples of
    8, so sampling at output-cell centres is a plain bilinear resize)."""
    image = np.asarray(Image.open(image_path).convert('RGB'), dtype=np.float32)
    mean = np.array([123.675, 116.28, 103.53], dtype=np.float32)
    std = np.array([58.395, 57.12, 57.375], dtype=np.float32)
    tensor = torch.from_numpy((image - mean) / std).permute(2, 0, 1)[None]
    total = 0
    for scale in (0.5, 1.0, 1.5, 2.0):
        side = int(32 * scale)
        scaled = F.interpolate(tensor, size=(side, side), mode='bilinear',
                               align_corners=False)
        for flipped in (False, True):
            with torch.no_grad():
                codes = model.head(model.backbone(scaled.flip(-1) if flipped
                                                  else scaled))
            codes = codes.flip(-1) if flipped else codes
            total = total + F.interpolate(codes, size=(4, 4), mode='bilinear',
                                          align_corners=False)[0]
    return (total / 8).numpy()


def test_knn_train_export_eval(tmp_path, monkeypatch, repo_root):
    root, work = str(tmp_path / 'voc'), str(tmp_path / 'work')
    stems = make_tiny_voc(root, num_train=4, num_val=2, size=32)
    os.makedirs(work)
    config = osp.join(work, 'stego_tiny.py')
    with open(config, 'w') as handle:
        handle.write(CONFIG.format(repo=repo_root, root=root, work=work))

    run_tool(repo_root, 'tools/uss/precompute_knn.py', config, '--out',
             osp.join(work, 'knn.npz'), '--k', 2, monkeypatch=monkeypatch)
    indices, knn_stems = read_knn_file(osp.join(work, 'knn.npz'))
    assert knn_stems.tolist() == stems[:4] and indices.shape == (4, 2)
    assert all(row not in indices[row] for row in range(4))

    run_tool(repo_root, 'tools/train.py', config, '--work-dir', work,
             monkeypatch=monkeypatch)
    checkpoint = osp.join(work, 'iter_2.pth')
    assert osp.isfile(checkpoint)

    out = osp.join(work, 'emb')
    run_tool(repo_root, 'tools/uss/extract_features.py', config, checkpoint, '--out',
             out, monkeypatch=monkeypatch)
    files = sorted(os.listdir(out))
    assert files == [stem + '.npy' for stem in stems[:4]] + ['job_settings.json']
    exported = np.load(osp.join(out, files[0]))
    assert exported.dtype == np.float16 and exported.shape == (5, 4, 4)

    from mars_mm.apis.uss import build_uss_model, evaluate_uss
    model = build_uss_model(Config.fromfile(config), checkpoint, device='cpu')
    # the trained running feature mean is part of the checkpoint
    assert float(model.backbone.feature_count) > 0
    expected = independent_export(model, osp.join(root, 'JPEGImages',
                                                   stems[0] + '.jpg'))
    np.testing.assert_allclose(exported.astype(np.float32), expected, atol=2e-3,
                               rtol=2e-3)

    # a rerun skips finished files
    before = os.path.getmtime(osp.join(out, files[0]))
    run_tool(repo_root, 'tools/uss/extract_features.py', config, checkpoint, '--out',
             out, monkeypatch=monkeypatch)
    assert os.path.getmtime(osp.join(out, files[0])) == before

    # backbone features instead of codes, one scale, no flip: the feature map itself
    feat_dir = osp.join(work, 'feats')
    run_tool(repo_root, 'tools/uss/extract_features.py', config, checkpoint, '--out',
             feat_dir, '--what', 'features', '--scales', 1.0, '--no-flip',
             monkeypatch=monkeypatch)
    image = np.asarray(Image.open(osp.join(root, 'JPEGImages', stems[1] + '.jpg'))
                       .convert('RGB'), dtype=np.float32)
    image = (image - np.array([123.675, 116.28, 103.53], dtype=np.float32)) / \
        np.array([58.395, 57.12, 57.375], dtype=np.float32)
    with torch.no_grad():
        feats = model.backbone(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
    np.testing.assert_allclose(np.load(osp.join(feat_dir, stems[1] + '.npy')),
                               feats.numpy(), atol=2e-2, rtol=2e-3)

    metrics = evaluate_uss(Config.fromfile(config), checkpoint)
    assert {'uss/cluster_mIoU', 'uss/cluster_aAcc', 'uss/linear_mIoU'} <= set(metrics)
    assert 0 <= metrics['uss/cluster_aAcc'] <= 100
