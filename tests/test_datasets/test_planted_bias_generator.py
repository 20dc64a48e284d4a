"""The planted-bias generator: files, determinism and the planted co-occurrence."""
import json
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mars_mm.datasets.generators.planted_bias import generate_planted_bias


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
