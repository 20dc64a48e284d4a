"""TaggedImageDataset: your own folder of images + tags file + class names."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.datasets.tagged_images import read_class_names, read_tags_table
from mars_mm.registry import DATASETS
from tests.pipeline_fixtures import make_tagged_folder


def _build(root, **kwargs):
    return DATASETS.build(dict(type='TaggedImageDataset', data_root=root,
                               pipeline=[], **kwargs))


@pytest.mark.parametrize('tags_format', ['csv', 'json'])
def test_tag_file_and_classes(tmp_path, tags_format):
    root = str(tmp_path / 'mine')
    made = make_tagged_folder(root, tags_format=tags_format)
    dataset = _build(root, tag_file=f'tags.{tags_format}', ann_file='train.txt')
    assert list(dataset.metainfo['classes']) == made['classes']
    assert len(dataset) == len(made['train'])
    for index, stem in enumerate(made['train']):
        info = dataset.get_data_info(index)
        assert info['img_path'].endswith(f'images/{stem}.jpg')
        assert info['seg_map_path'].endswith(f'masks/{stem}.png')  # masks/ exists
        names = [made['classes'][i] for i in info['img_tags']]
        assert names == sorted(made['tags'][stem], key=made['classes'].index)


def test_without_split_file_or_masks(tmp_path):
    root = str(tmp_path / 'mine')
    made = make_tagged_folder(root, masks=False, splits=False)
    dataset = _build(root)
    assert len(dataset) == len(made['train']) + len(made['val'])  # every image
    assert 'seg_map_path' not in dataset.get_data_info(0)  # no masks/: none


def test_bad_tags_name_the_file_and_image(tmp_path):
    names = ['background', 'boat', 'traffic light']
    path = tmp_path / 'tags.csv'
    path.write_text('a.jpg,boat;traffic light\nb,  boat | traffic light \nc,\n')
    table = read_tags_table(str(path), names)
    assert {k: v.tolist() for k, v in table.items()} == {
        'a': [1, 2], 'b': [1, 2], 'c': []}
    path.write_text('a.jpg,boat;plane\n')
    with pytest.raises(ValueError, match=r"tags.csv: image a has classes \['plane'\]"):
        read_tags_table(str(path), names)
    path.write_text('a,boat\na.png,boat\n')
    with pytest.raises(ValueError, match='image a is listed twice'):
        read_tags_table(str(path), names)
    json_path = tmp_path / 'tags.json'
    json_path.write_text(json.dumps({'x.jpg': ['traffic light']}))
    assert read_tags_table(str(json_path), names)['x'].tolist() == [2]
    with pytest.raises(ValueError, match='ends in .csv or .json'):
        read_tags_table(str(tmp_path / 'tags.txt'), names) if (
            tmp_path / 'tags.txt').write_text('a') else None
    with pytest.raises(FileNotFoundError, match='class list not found'):
        read_class_names(str(tmp_path / 'classes.txt'))
    (tmp_path / 'classes.txt').write_text('boat\n\ntraffic light\n')
    assert read_class_names(str(tmp_path / 'classes.txt')) == names


def test_base_config_builds_the_dataset(tmp_path, repo_root):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # the pipelines' transforms
    root = str(tmp_path / 'mine')
    make_tagged_folder(root)
    cfg = Config.fromfile(osp.join(repo_root, 'configs', '_base_', 'datasets',
                                   'tagged_images.py'))
    for key in ('val_dataloader', 'train_infer_dataloader'):
        dataset = DATASETS.build(dict(cfg[key]['dataset'], data_root=root))
        sample = dataset[0]
        assert 'img_tags' in sample['data_samples'].metainfo
        assert sample['data_samples'].gt_sem_seg.data.shape[1:] == (48, 48)
    train = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=root))
    assert train.get_data_info(0)['pseudo_label_path'].startswith(
        cfg.pseudo_label_dir)
