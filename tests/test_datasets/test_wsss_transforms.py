"""LoadImageTags, LoadPseudoLabel, LoadCheckedAnnotations and PackWSSSInputs."""
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import mars_mm  # noqa: F401  (registration)
from mars_mm.registry import TRANSFORMS
from mars_mm.utils.io import save_label_png

init_default_scope('mmseg')


def _image_results(tmp_path, shape=(6, 8), stem='img'):
    path = str(tmp_path / f'{stem}.jpg')
    Image.fromarray(np.full(shape + (3,), 90, np.uint8)).save(path)
    loader = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    return loader(dict(img_path=path, num_classes=21, seg_fields=[]))


def test_load_image_tags_from_dataset_and_from_mask():
    transform = TRANSFORMS.build(dict(type='LoadImageTags'))
    results = transform(dict(img_tags=[7, 3, 3], num_classes=21))
    assert results['img_tags'].tolist() == [3, 7]
    assert results['img_tags'].dtype == np.int64
    mask = np.array([[0, 5, 255], [254, 2, 5]], np.uint8)
    results = transform(dict(gt_seg_map=mask, num_classes=21))
    assert results['img_tags'].tolist() == [2, 5]   # 0, 254, 255 ignored
    forced = TRANSFORMS.build(dict(type='LoadImageTags', from_seg_map=True))
    assert forced(dict(img_tags=[9], gt_seg_map=mask))['img_tags'].tolist() == [2, 5]
    with pytest.raises(ValueError, match=r'x\.jpg: image tags \[21\]'):
        transform(dict(img_tags=[21], num_classes=21, img_path='x.jpg'))
    with pytest.raises(KeyError, match='y.jpg: no img_tags'):
        transform(dict(img_path='y.jpg'))
    assert 'LoadImageTags' in repr(transform)


def test_load_pseudo_label_keeps_special_values(tmp_path):
    results = _image_results(tmp_path)
    label = np.zeros((6, 8), np.uint8)
    label[0, :3] = 254
    label[1, :2] = 255
    label[2:4, 2:6] = 20
    label_dir = tmp_path / 'labels'
    save_label_png(str(label_dir / 'img.png'), label)
    transform = TRANSFORMS.build(dict(type='LoadPseudoLabel', label_dir=str(label_dir)))
    out = transform(results)
    np.testing.assert_array_equal(out['gt_seg_map'], label)
    assert out['gt_seg_map'].dtype == np.uint8
    assert out['seg_fields'] == ['gt_seg_map']
    assert out['pseudo_label_path'] == str(label_dir / 'img.png')
    assert 'label_dir' in repr(transform)


def test_load_pseudo_label_reads_the_datasets_file_unless_overridden(tmp_path):
    label = np.full((6, 8), 2, np.uint8)
    save_label_png(str(tmp_path / 'from_dataset' / 'img.png'), label)
    save_label_png(str(tmp_path / 'override' / 'img.png'), label * 0 + 5)
    results = _image_results(tmp_path)
    results['pseudo_label_path'] = str(tmp_path / 'from_dataset' / 'img.png')
    plain = TRANSFORMS.build(dict(type='LoadPseudoLabel'))
    np.testing.assert_array_equal(plain(dict(results))['gt_seg_map'], label)
    override = TRANSFORMS.build(dict(type='LoadPseudoLabel',
                                     label_dir=str(tmp_path / 'override')))
    out = override(dict(results))
    assert (out['gt_seg_map'] == 5).all()
    assert out['pseudo_label_path'] == str(tmp_path / 'override' / 'img.png')
    with pytest.raises(KeyError, match="img.jpg: no pseudo label.*pseudo_label_dir"):
        plain(_image_results(tmp_path))


def test_load_pseudo_label_bad_inputs_name_the_file(tmp_path):
    label_dir = tmp_path / 'labels'
    transform = TRANSFORMS.build(dict(type='LoadPseudoLabel', label_dir=str(label_dir)))
    with pytest.raises(FileNotFoundError, match=r'labels/img\.png'):
        transform(_image_results(tmp_path))
    save_label_png(str(label_dir / 'img.png'), np.zeros((5, 8), np.uint8))
    with pytest.raises(ValueError, match=r'img\.png: label size \(5, 8\) differs'):
        transform(_image_results(tmp_path))
    bad = np.zeros((6, 8), np.uint8)
    bad[0, 0] = 30
    save_label_png(str(label_dir / 'img.png'), bad)
    with pytest.raises(ValueError, match=r'img\.png: label values \[30\]'):
        transform(_image_results(tmp_path))


def test_load_checked_annotations(tmp_path):
    results = _image_results(tmp_path)
    mask = np.zeros((6, 8), np.uint8)
    mask[2, 2] = 255
    mask[3, 3] = 7
    results['seg_map_path'] = str(tmp_path / 'gt.png')
    results['reduce_zero_label'] = False
    save_label_png(results['seg_map_path'], mask)
    transform = TRANSFORMS.build(dict(type='LoadCheckedAnnotations'))
    np.testing.assert_array_equal(transform(dict(results))['gt_seg_map'], mask)
    save_label_png(results['seg_map_path'], np.zeros((6, 9), np.uint8))
    with pytest.raises(ValueError, match=r'gt\.png: label size'):
        transform(dict(results, seg_fields=[]))


def test_pack_wsss_inputs_matches_pack_seg_inputs(tmp_path):
    results = _image_results(tmp_path)
    results['img_tags'] = np.array([3, 15])
    results['gt_seg_map'] = np.arange(48, dtype=np.uint8).reshape(6, 8) % 21
    packer = TRANSFORMS.build(dict(type='PackWSSSInputs'))
    packed = packer(dict(results))
    reference = TRANSFORMS.build(dict(type='PackSegInputs'))(dict(results))
    assert packed['inputs'].equal(reference['inputs'])
    assert packed['data_samples'].gt_sem_seg.data.equal(
        reference['data_samples'].gt_sem_seg.data)
    assert packed['data_samples'].metainfo['img_tags'].tolist() == [3, 15]
    assert packed['data_samples'].metainfo['img_path'] == results['img_path']
    # classification: no mask, tags still carried
    del results['gt_seg_map']
    packed = packer(results)
    assert 'gt_sem_seg' not in packed['data_samples']
    assert packed['data_samples'].metainfo['img_tags'].tolist() == [3, 15]
    assert osp.basename(packed['data_samples'].img_path) == 'img.jpg'


def test_corrupt_or_truncated_files_name_the_file(tmp_path):
    """Images go through mmcv's loader (cv2 returns None -> error naming the file);
    masks through LoadCheckedAnnotations."""
    good = str(tmp_path / 'good.jpg')
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3),
                                                      dtype=np.uint8)).save(good)
    data = open(good, 'rb').read()
    (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) * 3 // 4])
    (tmp_path / 'garbage.jpg').write_bytes(b'not an image' * 20)
    loader = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    for name in ('truncated.jpg', 'garbage.jpg'):
        with pytest.raises(AssertionError, match=f'failed to load image: .*{name}'):
            loader(dict(img_path=str(tmp_path / name)))

    mask_path = str(tmp_path / 'mask.png')
    save_label_png(mask_path, np.random.default_rng(0).integers(
        0, 5, (32, 32)).astype(np.uint8))
    data = open(mask_path, 'rb').read()
    (tmp_path / 'cut.png').write_bytes(data[:len(data) // 2])
    transform = TRANSFORMS.build(dict(type='LoadCheckedAnnotations'))
    base = dict(img_path=good, reduce_zero_label=False, seg_fields=[])
    with pytest.raises(ValueError, match=r'cut\.png: cannot read the mask'):
        transform(dict(base, seg_map_path=str(tmp_path / 'cut.png')))
    with pytest.raises(FileNotFoundError, match=r'mask not found: .*absent\.png'):
        transform(dict(base, seg_map_path=str(tmp_path / 'absent.png')))
    (tmp_path / 'labels').mkdir()
    (tmp_path / 'labels' / 'good.png').write_bytes(data[:len(data) // 2])
    pseudo = TRANSFORMS.build(dict(type='LoadPseudoLabel',
                                   label_dir=str(tmp_path / 'labels')))
    with pytest.raises(ValueError, match=r'labels/good\.png: cannot read'):
        pseudo(dict(img_path=good))


def test_bare_images_pass_test_transforms_for_inference():
    """mmseg's inference_model feeds only the image through the test pipeline."""
    results = dict(img_path='x.jpg', img=np.zeros((4, 4, 3), np.uint8),
                   img_shape=(4, 4), ori_shape=(4, 4))
    checked = TRANSFORMS.build(dict(type='LoadCheckedAnnotations'))
    assert 'gt_seg_map' not in checked(dict(results))
    lenient = TRANSFORMS.build(dict(type='LoadImageTags', allow_missing=True))
    assert 'img_tags' not in lenient(dict(results))
    strict = TRANSFORMS.build(dict(type='LoadImageTags'))
    with pytest.raises(KeyError, match='x.jpg'):
        strict(dict(results))


def test_random_rescale_keeps_each_image_at_its_own_scale():
    """Factors stay in the range and apply to the image's own size (unlike
    RandomResize, which aims every image at one target scale); maps follow with
    nearest sampling."""
    import numpy as np

    from mars_mm.registry import TRANSFORMS
    transform = TRANSFORMS.build(dict(type='RandomRescale', ratio_range=(0.5, 2.0)))
    np.random.seed(0)
    for height, width in ((40, 60), (120, 90)):
        for _ in range(10):
            label = np.zeros((height, width), np.uint8)
            label[:, width // 2:] = 7
            results = transform(dict(img=np.zeros((height, width, 3), np.uint8),
                                     gt_seg_map=label, seg_fields=['gt_seg_map']))
            out_h, out_w = results['img'].shape[:2]
            ratio = out_h / height
            assert 0.5 - 1e-2 <= ratio <= 2.0 + 1e-2
            assert abs(out_w / width - ratio) < 0.05
            assert results['gt_seg_map'].shape == (out_h, out_w)
            assert set(np.unique(results['gt_seg_map'])) == {0, 7}
    with pytest.raises(ValueError, match='ratio_range'):
        TRANSFORMS.build(dict(type='RandomRescale', ratio_range=(2.0, 1.0)))
    assert 'RandomRescale(ratio_range=(0.5, 2.0)' in repr(transform)
