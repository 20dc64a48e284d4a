"""DebiasPseudoLabel in a pipeline gives exactly the offline tool's labels."""
import os.path as osp

import numpy as np
import pytest
from mmengine.dataset import Compose

from mars_mm.debias.job import debias_pseudo_labels
from mars_mm.debias.settings import DebiasSettings, samples_from_dataset
from mars_mm.registry import DATASETS, TRANSFORMS
from mars_mm.utils.io import load_label_png
from tests.debias_fixtures import make_scene

DEFAULT_ARGS = dict(type='DebiasPseudoLabel', centroid_file=None, embedding_dir=None,
                    refinement=dict(type='crf', gamma=1.0))


@pytest.fixture(scope='module')
def offline(tmp_path_factory):
    """The scene, its dataset and an offline run with CRF refinement."""
    root = str(tmp_path_factory.mktemp('scene'))
    scene = make_scene(root)
    dataset_cfg = dict(type='WSSSVOCDataset', data_root=root,
                       ann_file='ImageSets/Segmentation/train.txt',
                       data_prefix=dict(img_path='JPEGImages',
                                        seg_map_path='SegmentationClass'),
                       pipeline=[])
    dataset = DATASETS.build(dataset_cfg)
    samples = samples_from_dataset(dataset)
    settings = DebiasSettings(
        pseudo_label_dir=scene['pseudo'], embedding_dir=scene['emb'],
        work_dir=osp.join(root, 'work'), num_classes=len(dataset.metainfo['classes']),
        centring='dataset', refinement=dict(type='crf', gamma=1.0))
    debias_pseudo_labels(samples, settings, report=False)
    return scene, dataset_cfg, settings


def _pipeline(scene, settings, **overrides):
    args = dict(DEFAULT_ARGS, centroid_file=settings.centroid_file,
                embedding_dir=scene['emb'], **overrides)
    return Compose([TRANSFORMS.build(cfg) for cfg in (
        dict(type='LoadImageFromFile'),
        dict(type='LoadPseudoLabel', label_dir=scene['pseudo']), args)])


def test_transform_equals_offline_labels(offline):
    scene, dataset_cfg, settings = offline
    dataset = DATASETS.build(dict(dataset_cfg,
                                  pipeline=_pipeline(scene, settings).transforms))
    changed = 0
    for index in range(len(dataset)):
        results = dataset[index]
        stem = osp.splitext(osp.basename(results['img_path']))[0]
        expected = load_label_png(settings.output_label_path(stem))
        np.testing.assert_array_equal(results['gt_seg_map'], expected, err_msg=stem)
        changed += int((expected == 254).any())
    assert changed >= 3  # the comparison covers images where something was removed


def test_transform_threshold_keep_map_and_repr(offline):
    scene, dataset_cfg, settings = offline
    transform = TRANSFORMS.build(dict(
        DEFAULT_ARGS, centroid_file=settings.centroid_file, embedding_dir=scene['emb'],
        refinement=dict(type='threshold', threshold=0.5), keep_map=True,
        tag_source='pseudo_label'))
    stem = scene['stems'][0]
    label = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
    results = transform(dict(img_path=osp.join(scene['images'], stem + '.jpg'),
                             gt_seg_map=label.copy()))
    debias = results['debias_map']
    assert debias.shape == label.shape
    foreground = (label > 0) & (label < 254)
    np.testing.assert_array_equal(results['gt_seg_map'] == 254,
                                  foreground & (debias <= 0.5))
    assert 'DebiasPseudoLabel(' in repr(transform) and 'threshold' in repr(transform)


def test_transform_errors(offline):
    scene, _, settings = offline
    transform = TRANSFORMS.build(dict(DEFAULT_ARGS,
                                      centroid_file=settings.centroid_file,
                                      embedding_dir=scene['emb']))
    stem = scene['stems'][0]
    label = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
    with pytest.raises(ValueError, match='before resizing'):
        transform(dict(img_path=f'{stem}.jpg', gt_seg_map=label, img_tags=[1],
                       img=np.zeros((10, 10, 3), np.uint8)))
    with pytest.raises(KeyError, match='img_tags'):
        transform(dict(img_path=f'{stem}.jpg', gt_seg_map=label,
                       img=np.zeros(label.shape + (3,), np.uint8)))
    missing = TRANSFORMS.build(dict(DEFAULT_ARGS, centroid_file='nowhere.npz',
                                    embedding_dir=scene['emb']))
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        missing(dict(img_path=f'{stem}.jpg', gt_seg_map=label, img_tags=[1],
                     img=np.zeros(label.shape + (3,), np.uint8)))


def test_transform_speaks_the_tools_tag_vocabulary(offline):
    scene, _, settings = offline
    args = dict(DEFAULT_ARGS, centroid_file=settings.centroid_file,
                embedding_dir=scene['emb'])
    with pytest.warns(DeprecationWarning, match="'img_tags'"):
        transform = TRANSFORMS.build(dict(args, tag_source='dataset'))
    assert transform.tag_source == 'img_tags'
    # a pipeline's gt_seg_map is the pseudo label: no GT classes to take tags from
    with pytest.raises(ValueError, match="one of \\('img_tags', 'pseudo_label'\\)"):
        TRANSFORMS.build(dict(args, tag_source='gt'))
