"""The Stage 3 entry point: the split from a config, and the v0.1 names."""
import numpy as np
import pytest
from mmengine.config import Config

from mars_mm.apis import debias as api
from tests.debias_fixtures import make_scene


def _dataset(root):
    return dict(type='WSSSVOCDataset', data_root=root,
                ann_file='ImageSets/Segmentation/train.txt',
                data_prefix=dict(img_path='JPEGImages',
                                 seg_map_path='SegmentationClass'),
                pipeline=[dict(type='LoadImageFromFile')])


def test_build_samples_from_the_configs_dataset(tmp_path):
    scene = make_scene(str(tmp_path / 'scene'), num_images=3)
    cfg = Config(dict(debias=dict(),
                      train_infer_dataloader=dict(dataset=_dataset(scene['root'])),
                      train_dataloader=dict(dataset=dict(type='Nothing'))))
    samples, class_names = api.build_samples(cfg)
    assert [sample.stem for sample in samples] == scene['stems']
    assert len(class_names) == 21 and class_names[0] == 'background'
    assert all(sample.gt_path and sample.img_path.endswith('.jpg')
               for sample in samples)
    np.testing.assert_array_equal(samples[0].tags, scene['tags'][samples[0].stem])
    # debias.dataset wins over the dataloaders
    cfg.debias.dataset = dict(_dataset(scene['root']),
                              ann_file='ImageSets/Segmentation/missing.txt')
    with pytest.raises(Exception, match='missing.txt'):
        api.build_samples(cfg)
    with pytest.raises(ValueError, match='names no dataset'):
        api.build_samples(Config(dict(debias=dict())))


