"""SBD .mat and COCO instances converters on fixtures in the real formats."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import scipy.io
from mmengine.registry import init_default_scope
from PIL import Image
from pycocotools import mask as mask_utils

import mars_mm  # noqa: F401  (registration)
from mars_mm.datasets.converters.coco import convert_coco
from mars_mm.datasets.converters.sbd import convert_sbd, read_sbd_mat
from mars_mm.registry import DATASETS
from mars_mm.utils.io import load_label_png, save_label_png

init_default_scope('mmseg')


# ------------------------------------------------------------------------------ SBD
def _write_sbd_mat(path, mask):
    os.makedirs(osp.dirname(path), exist_ok=True)
    boundaries = np.empty((20,), dtype=object)
    for index in range(20):
        boundaries[index] = np.zeros(mask.shape, np.uint8)
    scipy.io.savemat(path, dict(GTcls=dict(
        Segmentation=mask, Boundaries=boundaries,
        CategoriesPresent=np.unique(mask[mask > 0]).astype(np.uint8))))


def _sbd_fixture(root):
    voc, sbd = osp.join(root, 'VOC2012'), osp.join(root, 'sbd')
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(voc, sub), exist_ok=True)
    stems = ['v_train', 'v_val', 's_train', 's_val', 'both']
    for stem in stems:
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(
            osp.join(voc, 'JPEGImages', f'{stem}.jpg'))
    voc_masks = {stem: np.full((10, 12), value, np.uint8)
                 for stem, value in (('v_train', 3), ('v_val', 4), ('both', 5))}
    voc_masks['both'][0] = 255
    for stem, mask in voc_masks.items():
        save_label_png(osp.join(voc, 'SegmentationClass', f'{stem}.png'), mask)
    sbd_masks = {stem: np.pad(np.full((4, 4), value, np.uint8), ((3, 3), (4, 4)))
                 for stem, value in (('s_train', 7), ('s_val', 20), ('both', 9),
                                     ('v_val', 2))}
    for stem, mask in sbd_masks.items():
        _write_sbd_mat(osp.join(sbd, 'cls', f'{stem}.mat'), mask)
    for path, names in ((osp.join(sbd, 'train.txt'), ['s_train', 'both']),
                        (osp.join(sbd, 'val.txt'), ['s_val', 'v_val']),
                        (osp.join(voc, 'ImageSets/Segmentation/train.txt'),
                         ['v_train', 'both']),
                        (osp.join(voc, 'ImageSets/Segmentation/val.txt'), ['v_val'])):
        with open(path, 'w') as handle:
            handle.write('\n'.join(names) + '\n')
    return voc, sbd, voc_masks, sbd_masks


def test_read_sbd_mat_and_its_errors(tmp_path):
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _write_sbd_mat(str(tmp_path / 'a.mat'), mask)
    np.testing.assert_array_equal(read_sbd_mat(str(tmp_path / 'a.mat')), mask)
    scipy.io.savemat(str(tmp_path / 'b.mat'), dict(other=np.zeros(3)))
    with pytest.raises(ValueError, match=r'b\.mat: no GTcls\.Segmentation'):
        read_sbd_mat(str(tmp_path / 'b.mat'))
    _write_sbd_mat(str(tmp_path / 'c.mat'), np.full((2, 2), 21, np.uint8))
    with pytest.raises(ValueError, match=r'c\.mat: class values'):
        read_sbd_mat(str(tmp_path / 'c.mat'))
    (tmp_path / 'd.mat').write_bytes(b'not a mat file at all')
    with pytest.raises(ValueError, match=r'd\.mat: cannot read'):
        read_sbd_mat(str(tmp_path / 'd.mat'))
    with pytest.raises(FileNotFoundError, match=r'e\.mat'):
        read_sbd_mat(str(tmp_path / 'e.mat'))


def test_convert_sbd_train_aug(tmp_path):
    voc, sbd, voc_masks, sbd_masks = _sbd_fixture(str(tmp_path))
    summary = convert_sbd(voc, sbd)
    with open(osp.join(voc, 'ImageSets/Segmentation/train_aug.txt')) as handle:
        assert handle.read().split() == ['both', 's_train', 's_val', 'v_train']
    assert summary == dict(images=4, converted=4, from_voc=2, from_sbd=2)
    out = osp.join(voc, 'SegmentationClassAug')
    np.testing.assert_array_equal(load_label_png(osp.join(out, 'both.png')),
                                  voc_masks['both'])     # VOC mask preferred
    np.testing.assert_array_equal(load_label_png(osp.join(out, 's_val.png')),
                                  sbd_masks['s_val'])
    assert Image.open(osp.join(out, 's_val.png')).mode == 'P'
    assert not osp.exists(osp.join(out, 'v_val.png'))    # VOC val is excluded
    # resumable: nothing left to do, then only the removed mask
    assert convert_sbd(voc, sbd)['converted'] == 0
    os.remove(osp.join(out, 's_train.png'))
    assert convert_sbd(voc, sbd, num_workers=2)['converted'] == 1
    np.testing.assert_array_equal(load_label_png(osp.join(out, 's_train.png')),
                                  sbd_masks['s_train'])
    # the dataset reads the result
    dataset = DATASETS.build(dict(
        type='WSSSVOCDataset', data_root=voc, xml_dir=None,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug')))
    assert [d['img_tags'].tolist() for d in dataset.load_data_list()] == \
        [[5], [7], [20], [3]]


def test_convert_sbd_missing_inputs(tmp_path):
    voc, sbd, _, _ = _sbd_fixture(str(tmp_path))
    os.remove(osp.join(sbd, 'cls', 's_train.mat'))
    with pytest.raises(FileNotFoundError, match=r's_train\.mat'):
        convert_sbd(voc, sbd)
    os.remove(osp.join(voc, 'JPEGImages', 's_val.jpg'))
    with pytest.raises(FileNotFoundError, match=r'JPEGImages/s_val\.jpg'):
        convert_sbd(voc, sbd)


# ----------------------------------------------------------------------------- COCO
COCO_IDS = [i for i in range(1, 91)
            if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
H, W = 20, 30


def _rle_compressed(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')   # as stored in the JSON
    return rle


def _rle_uncompressed(mask):
    flat = mask.astype(np.uint8).ravel(order='F')
    runs, current, length = [], 0, 0
    for value in flat:           # column-major runs starting with zeros
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return dict(counts=runs, size=[int(mask.shape[0]), int(mask.shape[1])])


def _box(y0, y1, x0, x1):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _coco_fixture(root):
    """Image 1: a big dog, a small person on it, a crowd of people (partly under the
    dog). Image 2: nothing. Image 3: a polygon toothbrush."""
    big, small, crowd = _box(2, 18, 2, 20), _box(5, 9, 5, 9), _box(10, 20, 15, 30)
    polygon = [3.0, 3.0, 25.0, 3.0, 25.0, 15.0, 3.0, 15.0]
    annotations = [
        dict(id=1, image_id=1, category_id=1, segmentation=_rle_compressed(small),
             area=float(small.sum()), iscrowd=0),
        dict(id=2, image_id=1, category_id=18, segmentation=_rle_compressed(big),
             area=float(big.sum()), iscrowd=0),
        dict(id=3, image_id=1, category_id=1, segmentation=_rle_uncompressed(crowd),
             area=float(crowd.sum()), iscrowd=1),
        dict(id=4, image_id=3, category_id=90, segmentation=[polygon], area=264.0,
             iscrowd=0),
    ]
    images = [dict(id=i, height=H, width=W, file_name=f'COCO_x2014_{i:012d}.jpg')
              for i in (1, 2, 3)]
    categories = [dict(id=i, name=f'cat{i}') for i in COCO_IDS]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', 'instances_x2014.json')
    with open(path, 'w') as handle:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), handle)
    expected1 = np.zeros((H, W), np.uint8)
    expected1[crowd] = 255
    expected1[big] = 17          # dog: category 18 is the 17th id
    expected1[small] = 1         # person drawn on top (smaller)
    polygon_mask = mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects([polygon], H, W)))
    expected3 = polygon_mask.astype(np.uint8) * 80
    return path, {1: expected1, 2: np.zeros((H, W), np.uint8), 3: expected3}


def test_convert_coco_overlaps_crowd_and_empty_images(tmp_path):
    root = str(tmp_path)
    json_path, expected = _coco_fixture(root)
    summary = convert_coco(json_path, root, 'x2014')
    assert summary == dict(images=3, converted=3, without_annotation=1, classes=81)
    for image_id, mask in expected.items():
        path = osp.join(root, 'SegmentationClass', 'x2014',
                        f'COCO_x2014_{image_id:012d}.png')
        np.testing.assert_array_equal(load_label_png(path), mask)
    with open(osp.join(root, 'tags', 'x2014.json')) as handle:
        tags = json.load(handle)
    assert tags['classes'][:2] == ['background', 'cat1'] and len(tags['classes']) == 81
    assert tags['tags'] == {'COCO_x2014_000000000001': [1, 17],
                            'COCO_x2014_000000000002': [],
                            'COCO_x2014_000000000003': [80]}
    with open(osp.join(root, 'ImageSets', 'x2014.txt')) as handle:
        assert handle.read().split() == [f'COCO_x2014_{i:012d}' for i in (1, 2, 3)]


def test_convert_coco_resume_and_workers(tmp_path):
    root = str(tmp_path)
    json_path, _ = _coco_fixture(root)
    convert_coco(json_path, root, 'x2014')
    mask_dir = osp.join(root, 'SegmentationClass', 'x2014')
    first = {name: open(osp.join(mask_dir, name), 'rb').read()
             for name in sorted(os.listdir(mask_dir))}
    assert convert_coco(json_path, root, 'x2014')['converted'] == 0
    os.remove(osp.join(mask_dir, 'COCO_x2014_000000000003.png'))
    open(osp.join(mask_dir, '.tmp-leftover.png'), 'wb').close()  # killed earlier run
    assert convert_coco(json_path, root, 'x2014', num_workers=2)['converted'] == 1
    assert {name: open(osp.join(mask_dir, name), 'rb').read()
            for name in sorted(os.listdir(mask_dir))} == first


def test_convert_coco_bad_json(tmp_path):
    root = str(tmp_path)
    json_path, _ = _coco_fixture(root)
    with open(json_path) as handle:
        content = json.load(handle)
    content['annotations'][0]['category_id'] = 12      # not a COCO category
    with open(json_path, 'w') as handle:
        json.dump(content, handle)
    with pytest.raises(ValueError, match=r'instances_x2014\.json: annotation 1 has '
                       'unknown category 12'):
        convert_coco(json_path, root, 'x2014')
    with pytest.raises(FileNotFoundError, match='instances_y2014.json'):
        convert_coco(json_path.replace('x2014', 'y2014'), root, 'y2014')


def test_coco_dataset_reads_converter_output(tmp_path):
    root = str(tmp_path)
    json_path, _ = _coco_fixture(root)
    os.makedirs(osp.join(root, 'x2014'))
    for i in (1, 2, 3):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
            osp.join(root, 'x2014', f'COCO_x2014_{i:012d}.jpg'))
    convert_coco(json_path, root, 'x2014')
    # the fixture's category names are not COCO's: the dataset must refuse them...
    args = dict(type='WSSSCOCODataset', data_root=root, ann_file='ImageSets/x2014.txt',
                tag_file='tags/x2014.json',
                data_prefix=dict(img_path='x2014',
                                 seg_map_path='SegmentationClass/x2014'))
    with pytest.raises(ValueError, match=r'x2014\.json: written for classes'):
        DATASETS.build(args)
    # ...and accept them once renamed to COCO's names
    from mars_mm.datasets.wsss_coco import COCO_CLASSES
    tag_path = osp.join(root, 'tags', 'x2014.json')
    with open(tag_path) as handle:
        tags = json.load(handle)
    tags['classes'] = list(COCO_CLASSES)
    with open(tag_path, 'w') as handle:
        json.dump(tags, handle)
    with pytest.warns(UserWarning, match='skipped 1 images'):
        dataset = DATASETS.build(args)
    assert [dataset.get_data_info(i)['img_tags'].tolist()
            for i in range(len(dataset))] == [[1, 17], [80]]
