"""WSSSVOCDataset, PlantedBiasDataset and WSSSCOCODataset on tiny real-format data."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine import Config
from mmengine.registry import init_default_scope

import mars_mm  # noqa: F401  (registration)
from mars_mm.datasets.generators.planted_bias import generate_planted_bias
from mars_mm.registry import DATASETS, TRANSFORMS
from mars_mm.utils.io import save_label_png

from .wsss_fixtures import block_mask, make_coco_like, make_voc

init_default_scope('mmseg')
SHAPE = (16, 24)


def info_shape(img_path):
    from PIL import Image
    with Image.open(img_path) as image:
        return image.height, image.width
VOC_ARGS = dict(type='WSSSVOCDataset', ann_file='ImageSets/Segmentation/train.txt')


def _voc_fixture(root):
    masks = dict(
        a=block_mask(SHAPE, [(4, 0, 5, 0, 5), (255, 5, 6, 0, 6)]),   # boat + border
        b=block_mask(SHAPE, [(15, 2, 9, 2, 9), (20, 9, 12, 9, 20)]),  # person, tv
        c=block_mask(SHAPE, [(8, 0, 3, 0, 3)]),                        # cat, no XML
    )
    # XML tags may name objects the mask lacks (small, occluded): XML wins
    make_voc(root, masks, dict(a=['boat', 'boat'], b=['tvmonitor', 'person', 'dog']))
    return masks


def test_voc_tags_from_xml_and_mask(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    dataset = DATASETS.build(dict(VOC_ARGS, data_root=root))
    assert len(dataset) == 3 and len(dataset.metainfo['classes']) == 21
    infos = [dataset.get_data_info(i) for i in range(3)]
    infos = {osp.basename(info['img_path']): info for info in infos}
    assert infos['a.jpg']['img_tags'].tolist() == [4]
    assert infos['b.jpg']['img_tags'].tolist() == [12, 15, 20]   # dog from the XML
    assert infos['c.jpg']['img_tags'].tolist() == [8]            # from the mask
    assert infos['a.jpg']['img_tags'].dtype == np.int64
    assert infos['a.jpg']['seg_map_path'] == osp.join(root, 'SegmentationClass',
                                                      'a.png')
    assert infos['a.jpg']['num_classes'] == 21


def test_pseudo_label_dir_names_each_images_label(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    plain = DATASETS.build(dict(VOC_ARGS, data_root=root)).get_data_info(0)
    assert 'pseudo_label_path' not in plain
    # relative to the working directory (labels are outputs), not to data_root
    dataset = DATASETS.build(dict(VOC_ARGS, data_root=root,
                                  pseudo_label_dir='work_dirs/labels'))
    paths = [dataset.get_data_info(i)['pseudo_label_path'] for i in range(3)]
    assert paths == [osp.join('work_dirs', 'labels', f'{stem}.png')
                     for stem in 'abc']


def test_default_data_prefix_is_the_datasets_layout(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    info = DATASETS.build(dict(VOC_ARGS, data_root=root)).get_data_info(0)
    assert info['img_path'] == osp.join(root, 'JPEGImages', 'a.jpg')
    from mars_mm.datasets.wsss_coco import WSSSCOCODataset
    assert WSSSCOCODataset.DEFAULT_DATA_PREFIX == dict(
        img_path='train2014', seg_map_path='SegmentationClass/train2014')


def test_voc_test_split_without_masks_or_tags(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    os.remove(osp.join(root, 'SegmentationClass', 'a.png'))
    dataset = DATASETS.build(dict(VOC_ARGS, data_root=root, with_seg_map=False,
                                  with_tags=False))
    info = dataset.get_data_info(0)
    assert 'seg_map_path' not in info and 'img_tags' not in info


def test_voc_unknown_class_in_xml(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    with open(osp.join(root, 'Annotations', 'a.xml'), 'w') as f:
        f.write('<annotation><object><name>unicorn</name></object></annotation>')
    with pytest.raises(ValueError, match=r"a\.xml: unknown class 'unicorn'"):
        DATASETS.build(dict(VOC_ARGS, data_root=root))


def test_voc_split_names_missing_image_or_mask(tmp_path):
    root = str(tmp_path)
    _voc_fixture(root)
    os.remove(osp.join(root, 'JPEGImages', 'b.jpg'))
    with pytest.raises(FileNotFoundError, match=r'train\.txt: lists b.*b\.jpg'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))
    _voc_fixture(root)
    os.remove(osp.join(root, 'SegmentationClass', 'c.png'))
    with pytest.raises(FileNotFoundError, match=r'lists c.*mask .*c\.png'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))
    with pytest.raises(FileNotFoundError, match='split file not found'):
        DATASETS.build(dict(VOC_ARGS, data_root=root, ann_file='nope.txt'))


@pytest.mark.parametrize('stem', ['000024.v2', '2021.05.000003', 'my photo'])
def test_split_lines_are_names_not_stem_of_a_path(tmp_path, stem):
    """Only an image suffix is dropped: 000024.v2 used to become 000024 (another
    image, maybe of another split), 2021.05.000003 2021.05, 'my photo' 'my'."""
    root = str(tmp_path)
    masks = {stem: block_mask(SHAPE, [(4, 0, 5, 0, 5)]),
             stem.split('.')[0].split(' ')[0]: block_mask(SHAPE, [(8, 0, 5, 0, 5)])}
    make_voc(root, masks)
    split = osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')
    for line in (stem, f'{stem}.jpg', f'  {stem}  '):
        with open(split, 'w') as handle:
            handle.write(line + '\n')
        info = DATASETS.build(dict(VOC_ARGS, data_root=root)).get_data_info(0)
        assert info['img_path'] == osp.join(root, 'JPEGImages', f'{stem}.jpg')
        assert info['img_tags'].tolist() == [4]


def test_split_train_aug_two_column_form(tmp_path):
    root = str(tmp_path)
    make_voc(root, dict(a=block_mask(SHAPE, [(4, 0, 5, 0, 5)]),
                        b=block_mask(SHAPE, [(8, 0, 5, 0, 5)])))
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'), 'w') as f:
        f.write('/JPEGImages/a.jpg /SegmentationClassAug/a.png\n'
                'JPEGImages/b.jpg SegmentationClassAug/b.png\n')
    dataset = DATASETS.build(dict(VOC_ARGS, data_root=root))
    assert [osp.basename(dataset.get_data_info(i)['img_path'])
            for i in range(2)] == ['a.jpg', 'b.jpg']


@pytest.mark.parametrize('line, problem', [
    ('../../../evil', 'folder separator'), ('/abs/evil.jpg', 'absolute'),
    ('sub/a', 'folder separator'), ('..', 'names a folder'),
])
def test_split_lines_that_are_paths_are_refused(tmp_path, line, problem):
    """A name becomes output file names (CAMs, labels): never a path."""
    root = str(tmp_path)
    make_voc(root, dict(a=block_mask(SHAPE, [(4, 0, 5, 0, 5)])))
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'), 'w') as f:
        f.write(f'a\n{line}\n')
    with pytest.raises(ValueError, match=rf'train\.txt, line 2: .*{problem}'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))


def test_split_file_with_bom_crlf_and_a_name_twice(tmp_path):
    root = str(tmp_path)
    make_voc(root, dict(a=block_mask(SHAPE, [(4, 0, 5, 0, 5)]),
                        b=block_mask(SHAPE, [(8, 0, 5, 0, 5)])))
    split = osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')
    with open(split, 'wb') as f:
        f.write('a\r\nb.jpg\r\n'.encode('utf-8-sig'))
    assert len(DATASETS.build(dict(VOC_ARGS, data_root=root))) == 2
    with open(split, 'w') as f:
        f.write('a\nb\na.jpg\n')
    with pytest.raises(ValueError, match=r'image a is listed twice \(lines 1 and 3\)'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))


def test_mask_of_another_size_is_named_when_the_dataset_is_read(tmp_path):
    root = str(tmp_path)
    make_voc(root, dict(a=block_mask(SHAPE, [(4, 0, 5, 0, 5)])),
             dict(a=['boat']))
    save_label_png(osp.join(root, 'SegmentationClass', 'a.png'),
                   np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r'a\.png: mask of size \(8, 8\).*a\.jpg is '
                       r'\(16, 24\)'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))
    # many images: the headers are read in threads, same answer
    from mars_mm.datasets.wsss_base import check_mask_sizes
    pairs = [(osp.join(root, 'JPEGImages', 'a.jpg'),
              osp.join(root, 'SegmentationClass', 'a.png'))] * 100
    with pytest.raises(ValueError, match='mask of size'):
        check_mask_sizes(pairs)


def test_mask_size_follows_the_exif_rotation_of_its_image(tmp_path):
    """A phone photo stored sideways with an orientation tag: every loader turns
    it, so its mask has the turned size."""
    from PIL import Image
    root = str(tmp_path)
    make_voc(root, dict(a=block_mask((24, 16), [(4, 0, 5, 0, 5)])),
             dict(a=['boat']))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.new('RGB', (24, 16)).save(osp.join(root, 'JPEGImages', 'a.jpg'),
                                    exif=exif.tobytes())
    dataset = DATASETS.build(dict(VOC_ARGS, data_root=root))  # (24, 16) mask fits
    sample = TRANSFORMS.build(dict(type='LoadImageFromFile'))(
        dict(img_path=dataset.get_data_info(0)['img_path']))
    assert sample['img'].shape[:2] == (24, 16)


def test_mask_values_out_of_range_name_the_file(tmp_path):
    root = str(tmp_path)
    masks = dict(a=block_mask(SHAPE, [(21, 0, 4, 0, 4)]))
    make_voc(root, masks)
    with pytest.raises(ValueError, match=r'a\.png: label values \[21\]'):
        DATASETS.build(dict(VOC_ARGS, data_root=root))


def test_empty_tags_policies(tmp_path):
    root = str(tmp_path)
    make_voc(root, dict(full=block_mask(SHAPE, [(3, 0, 4, 0, 4)]),
                        empty=block_mask(SHAPE, [(255, 0, 2, 0, 2)])))
    with pytest.warns(UserWarning, match=r"skipped 1 images .*'empty'"):
        dataset = DATASETS.build(dict(VOC_ARGS, data_root=root))
    assert len(dataset) == 1
    assert osp.basename(dataset.get_data_info(0)['img_path']) == 'full.jpg'
    kept = DATASETS.build(dict(VOC_ARGS, data_root=root, empty_tags='keep'))
    assert len(kept) == 2 and kept.get_data_info(1)['img_tags'].size == 0
    with pytest.raises(ValueError, match='empty has no foreground tag'):
        DATASETS.build(dict(VOC_ARGS, data_root=root, empty_tags='error'))


def test_planted_bias_dataset_and_custom_classes(tmp_path):
    root = str(tmp_path / 'default')
    generate_planted_bias(root, num_train=6, num_val=2, image_size=(32, 32))
    dataset = DATASETS.build(dict(type='PlantedBiasDataset', data_root=root,
                                  ann_file='ImageSets/Segmentation/train.txt'))
    assert dataset.metainfo['classes'] == ('background', 'boat', 'train', 'bird',
                                           'cat', 'car', 'bottle')
    from mars_mm.utils.io import load_label_png
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        mask = load_label_png(info['seg_map_path'])
        assert info['img_tags'].tolist() == sorted(set(np.unique(mask)) - {0})

    custom = str(tmp_path / 'custom')
    generate_planted_bias(custom, num_train=4, num_val=0, image_size=(32, 32),
                          classes=('duck', 'pond_toy'),
                          bias_pairs=[dict(cls='duck', context='pond')])
    from_meta = DATASETS.build(dict(type='PlantedBiasDataset', data_root=custom,
                                    ann_file='ImageSets/Segmentation/train.txt'))
    assert from_meta.metainfo['classes'] == ('background', 'duck', 'pond_toy')
    assert from_meta.label_map is None
    explicit = DATASETS.build(dict(
        type='PlantedBiasDataset', data_root=custom,
        ann_file='ImageSets/Segmentation/train.txt',
        metainfo=dict(classes=('background', 'duck', 'pond_toy'))))
    assert len(explicit) == 4
    with pytest.raises(ValueError, match='meta.json: the dataset was generated'):
        DATASETS.build(dict(type='PlantedBiasDataset', data_root=custom,
                            ann_file='ImageSets/Segmentation/train.txt',
                            metainfo=dict(classes=('background', 'boat'))))


def test_coco_dataset_tag_file(tmp_path):
    from mars_mm.datasets.wsss_coco import COCO_CLASSES
    root = str(tmp_path)
    masks = dict(x=block_mask(SHAPE, [(1, 0, 4, 0, 4), (255, 5, 9, 5, 9)]),
                 y=block_mask(SHAPE, []))
    make_coco_like(root, masks, dict(x=[80, 1], y=[]), COCO_CLASSES)
    args = dict(type='WSSSCOCODataset', data_root=root)
    with pytest.warns(UserWarning, match='skipped 1 images'):
        dataset = DATASETS.build(args)
    assert len(dataset) == 1 and len(dataset.metainfo['classes']) == 81
    assert dataset.get_data_info(0)['img_tags'].tolist() == [1, 80]
    assert len(DATASETS.build(dict(args, empty_tags='keep'))) == 2
    # a tag file written for another class list is refused, naming the file
    with open(osp.join(root, 'tags', 'train2014.json'), 'w') as f:
        json.dump(dict(classes=['background', 'a'], tags={}), f)
    with pytest.raises(ValueError, match=r'train2014\.json: written for classes'):
        DATASETS.build(args)


@pytest.mark.parametrize('name', ['planted_bias', 'voc12aug_wsss', 'coco2014_wsss'])
def test_base_configs_build_their_datasets(tmp_path, repo_root, name):
    cfg = Config.fromfile(osp.join(repo_root, 'configs', '_base_', 'datasets',
                                   f'{name}.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'train_infer_dataloader'):
        dataset_cfg = cfg[key]['dataset']
        assert dataset_cfg['type'] in DATASETS
        assert dataset_cfg['pipeline']
    if name == 'planted_bias':
        root = str(tmp_path / 'pb')
        generate_planted_bias(root, num_train=3, num_val=2, image_size=(40, 48))
        val_cfg = dict(cfg.val_dataloader.dataset, data_root=root)
        dataset = DATASETS.build(val_cfg)
        sample = dataset[0]
        assert sample['inputs'].shape[0] == 3
        assert 'img_tags' in sample['data_samples'].metainfo
        assert tuple(sample['data_samples'].gt_sem_seg.data.shape[1:]) == (40, 48)
        # Stage 4's training pipeline reads the labels of the dataset's
        # pseudo_label_dir: one key moves it to another folder
        label_dir = str(tmp_path / 'labels')
        train_set = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=root,
                                        pseudo_label_dir=label_dir))
        info = train_set.get_data_info(0)
        label = np.full(info_shape(info['img_path']), 3, np.uint8)
        label[:5] = 254
        save_label_png(osp.join(label_dir, osp.basename(info['img_path'])[:-4]
                                + '.png'), label)
        loader = TRANSFORMS.build(cfg.train_pipeline[1])
        loaded = loader(dict(info, img_shape=label.shape))
        np.testing.assert_array_equal(loaded['gt_seg_map'], label)
