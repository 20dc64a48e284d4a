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
    path.write_text('a.jpg,boat;traffic light\nb,  boat | traffic light \n'
                    'c.v2.jpg,boat,traffic light\n')
    table = read_tags_table(str(path), names)
    assert {k: v.tolist() for k, v in table.items()} == {
        'a': [1, 2], 'b': [1, 2], 'c.v2': [1, 2]}
    path.write_text('a.jpg,boat;plane\n')
    with pytest.raises(ValueError,
                       match=r"tags.csv, line 1: image a has classes \['plane'\]"):
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
    (tmp_path / 'classes.txt').write_text('boat\ntraffic light\n\n\n')
    assert read_class_names(str(tmp_path / 'classes.txt')) == names


@pytest.mark.parametrize('text, match', [
    ('a.jpg,boat\nb.jpg,\n', r'tags.csv, line 2: image b lists no class'),
    ('a.jpg,background\n', r'line 1: image a lists no class \(background alone'),
    ('a.jpg,Boat\n', r"the class list has 'boat', not 'Boat'"),
    ('../x.jpg,boat\n', r"line 1: '\.\./x\.jpg' is not an image name: it holds a "
                         r'folder separator'),
    ('image,classes\na.jpg,boat\n\na.png,boat\n', r'line 4: image a is listed twice '
                                                r'\(first at line 2\)'),
])
def test_tags_rows_name_the_line(tmp_path, text, match):
    path = tmp_path / 'tags.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_tags_table(str(path), ['background', 'boat'])


def test_user_files_with_a_byte_order_mark_and_crlf(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; Windows editors end lines in CRLF."""
    (tmp_path / 'classes.txt').write_bytes('boat\r\ncar\r\n'.encode('utf-8-sig'))
    names = read_class_names(str(tmp_path / 'classes.txt'))
    assert names == ['background', 'boat', 'car']
    (tmp_path / 'tags.csv').write_bytes(
        'image,classes\r\nx.jpg,car;boat\r\n'.encode('utf-8-sig'))
    assert read_tags_table(str(tmp_path / 'tags.csv'), names)['x'].tolist() == [1, 2]
    (tmp_path / 'tags.json').write_bytes(
        json.dumps({'y.jpg': ['car']}).encode('utf-8-sig'))
    assert read_tags_table(str(tmp_path / 'tags.json'), names)['y'].tolist() == [2]


@pytest.mark.parametrize('text, match', [
    ('boat\n\ncar\n', r'classes.txt, line 2: empty line between class names'),
    ('boat\ncar\nbackground\n', r'line 3: background is class 0'),
    ('boat\ncar\nboat\n', r"class 'boat' is listed twice \(lines 1 and 3\)"),
])
def test_class_list_problems_name_the_line(tmp_path, text, match):
    (tmp_path / 'classes.txt').write_text(text)
    with pytest.raises(ValueError, match=match):
        read_class_names(str(tmp_path / 'classes.txt'))


def test_split_image_without_a_tags_row_is_one_clear_error(tmp_path):
    root = str(tmp_path / 'mine')
    made = make_tagged_folder(root)
    with open(osp.join(root, 'tags.csv')) as handle:
        rows = handle.read().splitlines()
    stem = made['train'][1]
    with open(osp.join(root, 'tags.csv'), 'w') as handle:
        handle.write('\n'.join(row for row in rows
                               if not row.startswith(stem + '.')) + '\n')
    with pytest.raises(ValueError, match=rf'tags.csv: no row for image {stem}, '
                       r'which .*train.txt lists'):
        _build(root, ann_file='train.txt')


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
