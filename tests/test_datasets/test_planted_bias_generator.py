"""The planted-bias generator: files, determinism and the planted co-occurrence."""
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mars_mm.datasets.generators.planted_bias import (
    generate_planted_bias,
    generate_preset,
)
from mars_mm.datasets.generators.planted_presets import PRESETS


def _read_split(root, split):
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
        return f.read().split()


def _xml_names(path):
    return sorted(o.find('name').text for o in ET.parse(path).getroot().iter('object'))


def test_layout_and_annotations_agree(tmp_path):
    root = str(tmp_path / 'pb')
    meta = generate_planted_bias(root, num_train=12, num_val=4, image_size=(40, 56),
                                 seed=3)
    train, val = _read_split(root, 'train'), _read_split(root, 'val')
    assert len(train) == 12 and len(val) == 4 and not set(train) & set(val)
    classes = meta['classes']
    assert classes[0] == 'background' and len(classes) == 7
    for stem in train + val:
        image = Image.open(osp.join(root, 'JPEGImages', f'{stem}.jpg'))
        assert image.format == 'JPEG' and image.size == (56, 40) and image.mode == 'RGB'
        mask_img = Image.open(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        assert mask_img.mode == 'P'
        mask = np.array(mask_img)
        context = np.array(Image.open(osp.join(root, 'PlantedContext', f'{stem}.png')))
        assert mask.shape == context.shape == (40, 56)
        assert set(np.unique(context)) <= {0, 1}
        # context is always background in the ground truth
        assert (mask[context == 1] == 0).all()
        present = sorted(classes[v] for v in np.unique(mask) if v != 0)
        assert present, f'{stem} has no object'
        assert _xml_names(osp.join(root, 'Annotations', f'{stem}.xml')) == present
        # each XML box encloses exactly its class's pixels (1-based, inclusive)
        xml_path = osp.join(root, 'Annotations', f'{stem}.xml')
        for obj in ET.parse(xml_path).iter('object'):
            ys, xs = np.nonzero(mask == classes.index(obj.find('name').text))
            box = [int(obj.find('bndbox').find(k).text)
                   for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            assert box == [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
    with open(osp.join(root, 'meta.json')) as f:
        assert json.load(f)['classes'] == classes


def test_deterministic_for_a_seed(tmp_path):
    def files(root):
        stems = _read_split(root, 'train')
        return [open(osp.join(root, folder, stem + ext), 'rb').read()
                for stem in stems
                for folder, ext in (('JPEGImages', '.jpg'),
                                    ('SegmentationClass', '.png'),
                                    ('Annotations', '.xml'))]
    generate_planted_bias(str(tmp_path / 'a'), num_train=5, num_val=0,
                          image_size=(32, 32), seed=7)
    generate_planted_bias(str(tmp_path / 'b'), num_train=5, num_val=0,
                          image_size=(32, 32), seed=7)
    generate_planted_bias(str(tmp_path / 'c'), num_train=5, num_val=0,
                          image_size=(32, 32), seed=8)
    assert files(str(tmp_path / 'a')) == files(str(tmp_path / 'b'))
    assert files(str(tmp_path / 'a')) != files(str(tmp_path / 'c'))


@pytest.mark.parametrize('p_with,p_without', [(1.0, 0.0), (0.0, 1.0)])
def test_extreme_probabilities_plant_exactly(tmp_path, p_with, p_without):
    """With one pair, context presence is read back from the files alone."""
    root = str(tmp_path / 'pb')
    meta = generate_planted_bias(
        root, num_train=30, num_val=0, image_size=(48, 48), seed=1,
        classes=('boat', 'cat', 'widget'),
        bias_pairs=[dict(cls='boat', context='water')],
        p_with=p_with, p_without=p_without)
    with_boat = context_with = without_boat = context_without = 0
    for stem in _read_split(root, 'train'):
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', f'{stem}.png')))
        context = np.array(Image.open(osp.join(root, 'PlantedContext', f'{stem}.png')))
        has_boat, has_context = bool((mask == 1).any()), bool(context.any())
        with_boat += has_boat
        context_with += has_boat and has_context
        without_boat += not has_boat
        context_without += (not has_boat) and has_context
    assert with_boat > 0 and without_boat > 0
    assert context_with == round(p_with * with_boat)
    assert context_without == round(p_without * without_boat)
    row = meta['co_occurrence']['train'][0]
    assert (row['with_class'], row['with_class_and_context'],
            row['without_class'], row['context_without_class']) == (
        with_boat, context_with, without_boat, context_without)


def test_default_co_occurrence_close_to_asked(tmp_path):
    meta = generate_planted_bias(str(tmp_path / 'pb'), num_train=300, num_val=0,
                                 image_size=(32, 32))
    for row in meta['co_occurrence']['train']:
        assert abs(row['p_context_given_class'] - 0.9) < 0.1
        assert abs(row['p_context_given_no_class'] - 0.1) < 0.08


def test_biased_object_touches_its_context(tmp_path):
    """Boats rest on the water band: a boat pixel lies next to a water pixel."""
    root = str(tmp_path / 'pb')
    generate_planted_bias(root, num_train=10, num_val=0, image_size=(64, 64),
                          classes=('boat', 'cat'),
                          bias_pairs=[dict(cls='boat', context='water')],
                          p_with=1.0, p_without=0.0)
    touching = 0
    for stem in _read_split(root, 'train'):
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', f'{stem}.png')))
        context = np.array(Image.open(osp.join(root, 'PlantedContext', f'{stem}.png')))
        boat = mask == 1
        below = np.zeros_like(boat)
        below[1:] = boat[:-1]  # pixel directly under a boat pixel
        touching += bool((below & (context == 1)).any())
    boats = sum(bool((np.array(Image.open(osp.join(
        root, 'SegmentationClass', f'{s}.png'))) == 1).any())
        for s in _read_split(root, 'train'))
    assert boats > 0 and touching == boats


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='not among the classes'):
        generate_planted_bias(str(tmp_path), num_train=1, num_val=0,
                              bias_pairs=[dict(cls='plane', context='sky')])
    with pytest.raises(ValueError, match='p_with'):
        generate_planted_bias(str(tmp_path), num_train=1, num_val=0, p_with=1.5)
    with pytest.raises(ValueError, match='background'):
        generate_planted_bias(str(tmp_path), num_train=1, num_val=0,
                              classes=('background', 'boat'), bias_pairs=())


# ------------------------------------------------------------------ the family
@pytest.mark.parametrize('preset', sorted(PRESETS))
def test_each_preset_plants_what_meta_json_says(tmp_path, preset):
    """Every preset, generated in full: meta.json records the preset, and the
    co-occurrence counted back from the written files is within 0.05 of the asked
    probabilities (train + val), for every bias pair."""
    root = str(tmp_path / preset)
    meta = generate_preset(root, preset)
    with open(osp.join(root, 'meta.json')) as f:
        assert json.load(f) == meta
    assert meta['settings']['preset'] == preset
    classes = meta['classes']
    stems = _read_split(root, 'train') + _read_split(root, 'val')
    assert len(stems) == sum(meta['splits'].values())
    masks = {s: np.array(Image.open(osp.join(root, 'SegmentationClass', f'{s}.png')))
             for s in stems}
    contexts = {s: np.array(Image.open(osp.join(root, 'PlantedContext', f'{s}.png')))
                for s in stems}
    rows = meta['co_occurrence']['all']
    assert [r['cls'] for r in rows] == [p['cls'] for p in meta['bias_pairs']]
    for row in rows:
        class_id = classes.index(row['cls'])
        has_class = np.array([(masks[s] == class_id).any() for s in stems])
        # the band of this pair is visible: its planted pixels exist and the
        # image's XML/mask agree with the table's counts
        assert has_class.sum() == row['with_class']
        assert abs(row['p_context_given_class'] - row['p_with']) <= 0.05, row
        assert abs(row['p_context_given_no_class'] - row['p_without']) <= 0.05, row
    assert any(contexts[s].any() for s in stems)


def test_voc_ids_are_read_by_the_voc_dataset_unchanged(tmp_path):
    from mars_mm.datasets import WSSSVOCDataset
    from mars_mm.datasets.class_names import VOC_CLASSES
    root = str(tmp_path / 'voc')
    meta = generate_preset(root, 'voc-like', num_train=12, num_val=2)
    assert meta['classes'] == list(VOC_CLASSES)
    dataset = WSSSVOCDataset(data_root=root,
                             ann_file='ImageSets/Segmentation/train.txt',
                             pipeline=[], lazy_init=False)
    assert len(dataset) == 12
    used = {VOC_CLASSES.index(name) for name in meta['settings']['classes']}
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        mask = np.array(Image.open(info['seg_map_path']))
        values = set(np.unique(mask).tolist()) - {0}
        # label ids are VOC's own, only of the classes asked for, and the tags
        # the VOC dataset reads from the XML name exactly the mask's classes
        assert values <= used
        assert sorted(info['img_tags']) == sorted(values)


def test_image_size_ranges_and_object_scale(tmp_path):
    root = str(tmp_path / 'sizes')
    meta = generate_planted_bias(root, num_train=20, num_val=0,
                                 image_size=((40, 50), (60, 64)), seed=2)
    sizes = {Image.open(osp.join(root, 'JPEGImages', f'{s}.jpg')).size
             for s in _read_split(root, 'train')}
    assert len(sizes) > 3
    assert all(60 <= w <= 64 and 40 <= h <= 50 for w, h in sizes)
    assert meta['settings']['image_size'] == [[40, 50], [60, 64]]

    def mean_object_share(scale):
        out = str(tmp_path / f's{scale}')
        generate_planted_bias(out, num_train=30, num_val=0, image_size=(64, 64),
                              object_scale=scale, bias_pairs=())
        return np.mean([(np.array(Image.open(osp.join(
            out, 'SegmentationClass', f'{s}.png'))) > 0).mean()
            for s in _read_split(out, 'train')])
    assert mean_object_share(0.5) < 0.5 * mean_object_share(1.0)
    with pytest.raises(ValueError, match='at least 8 px'):
        generate_planted_bias(str(tmp_path / 'bad'), num_train=1, image_size=(0, 0))


def test_top_band_objects_sit_inside_their_context(tmp_path):
    """An aeroplane's box lies within the rows of its sky band (a top band)."""
    root = str(tmp_path / 'sky')
    generate_planted_bias(root, num_train=15, num_val=0, image_size=(96, 96),
                          classes=('aeroplane', 'cat'),
                          bias_pairs=[dict(cls='aeroplane', context='sky')],
                          p_with=1.0, p_without=0.0, max_objects=1)
    checked = 0
    for stem in _read_split(root, 'train'):
        mask = np.array(Image.open(osp.join(root, 'SegmentationClass', f'{stem}.png')))
        context = np.array(Image.open(osp.join(root, 'PlantedContext', f'{stem}.png')))
        if not (mask == 1).any():
            continue
        rows = np.flatnonzero(context.any(axis=1))
        ys = np.flatnonzero((mask == 1).any(axis=1))
        # the band starts at the top edge and the aeroplane overlaps its rows
        assert rows.min() == 0
        assert ys.min() <= rows.max()
        # sky surrounds it: context pixels left or right of the aeroplane
        checked += 1
    assert checked > 0


def test_unknown_preset_and_voc_names(tmp_path):
    with pytest.raises(KeyError, match='voc-like'):
        generate_preset(str(tmp_path), 'no-such-preset')
    with pytest.raises(ValueError, match='VOC class names'):
        generate_planted_bias(str(tmp_path), num_train=1, classes=('widget',),
                              bias_pairs=(), voc_ids=True)


def _snapshot(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(osp.join(folder, name), 'rb') as handle:
                files[osp.relpath(osp.join(folder, name), root)] = handle.read()
    return files


def test_refuses_a_folder_it_did_not_make(tmp_path):
    """It overwrote train.txt, val.txt, JPEGs and XMLs of an existing dataset."""
    root = tmp_path / 'voc'
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('2007_000032\n')
    (root / 'JPEGImages').mkdir()
    (root / 'JPEGImages' / '000000.jpg').write_bytes(b'a real photo')
    before = _snapshot(str(root))
    with pytest.raises(ValueError, match=r'voc: the folder is not empty .*holds no '
                       r'meta\.json or meta\.partial\.json'):
        generate_planted_bias(str(root), num_train=2, num_val=1, image_size=(16, 16))
    assert _snapshot(str(root)) == before


def test_completes_its_own_folder_and_refuses_other_settings(tmp_path):
    root = str(tmp_path / 'pb')
    kwargs = dict(num_train=3, num_val=1, image_size=(16, 16))
    generate_planted_bias(root, **kwargs)
    complete = _snapshot(root)
    assert 'meta.partial.json' not in complete
    # an interrupted run: images missing, the partial record in place of meta.json
    os.remove(osp.join(root, 'JPEGImages', '000002.jpg'))
    with open(osp.join(root, 'meta.json')) as handle:
        meta = json.load(handle)
    os.remove(osp.join(root, 'meta.json'))
    with open(osp.join(root, 'meta.partial.json'), 'w') as handle:
        json.dump({key: meta[key] for key in ('classes', 'bias_pairs', 'settings')},
                  handle)
    generate_planted_bias(root, **kwargs)
    assert _snapshot(root) == complete  # the same bytes, the record removed
    with pytest.raises(ValueError, match=r'meta\.json: .* made with other settings '
                       r'\(settings\.seed: 0 -> 5\)'):
        generate_planted_bias(root, seed=5, **kwargs)
    assert _snapshot(root) == complete
