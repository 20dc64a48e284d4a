"""Dataset tools: the planted generator, the COCO and SBD converters, eval_labels."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mars_mm.utils.io import save_label_png
from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

PLANTED = 'dataset_converters/planted_bias.py'
COCO = 'dataset_converters/coco_wsss.py'
VOC = 'dataset_converters/voc_aug.py'
EVAL = 'analysis/eval_labels.py'


# --------------------------------------------------------------------- planted
def _planted(sb, *args):
    return sb.tool(PLANTED, sb.path('planted'), '--num-train', '2', '--num-val', '1',
                   *args)


def _no_folder(sb, result):
    assert not osp.exists(sb.path('planted')), os.listdir(sb.path('planted'))


# ------------------------------------------------------------------------ COCO
def _coco(sb, edit):
    from tests.test_datasets.test_converters import _coco_fixture
    root = sb.path('coco')
    json_path, _ = _coco_fixture(root)
    with open(json_path) as handle:
        content = json.load(handle)
    edit(content)
    with open(json_path, 'w') as handle:
        json.dump(content, handle)
    return sb.tool(COCO, root, '--splits', 'x2014')


def _duplicate_name(content):
    content['images'][2]['file_name'] = content['images'][0]['file_name']


def _no_category(content):
    del content['annotations'][1]['category_id']


def _string_segmentation(content):
    content['annotations'][3]['segmentation'] = 'polygon'


def _unknown_category(content):
    content['annotations'][0]['category_id'] = 12


def _unknown_image(content):
    content['annotations'][0]['image_id'] = 99


def coco_absolute_name(sb):
    """A file_name that is an absolute path outside the output folder."""
    elsewhere = sb.path('elsewhere', 'evil.jpg')
    return _coco(sb, lambda content: content['images'][1].update(file_name=elsewhere))


def coco_parent_name(sb):
    """A file_name that climbs out of the output folder."""
    return _coco(sb, lambda content: content['images'][1].update(
        file_name='../../../evil.jpg'))


def _nothing_outside(sb, result):
    """Nothing was written beside the COCO folder (sb.path() holds only it)."""
    outside = [name for name in os.listdir(sb.path()) if name != 'coco']
    assert not outside, outside


def coco_not_json(sb):
    root = sb.path('coco')
    os.makedirs(osp.join(root, 'annotations'))
    with open(osp.join(root, 'annotations', 'instances_x2014.json'), 'w') as handle:
        handle.write('{"images": [')
    return sb.tool(COCO, root, '--splits', 'x2014')


# ------------------------------------------------------------------------- SBD
def _voc(sb, edit):
    from tests.test_datasets.test_converters import _sbd_fixture
    voc, sbd, _, _ = _sbd_fixture(sb.path('sbd_case'))
    edit(voc, sbd)
    return sb.tool(VOC, voc, sbd)


def _voc_mask(voc, stem='v_train'):
    return osp.join(voc, 'SegmentationClass', f'{stem}.png')


def voc_split_parent(sb):
    """SBD's train.txt naming ../../s_train (it was read as s_train)."""
    def edit(voc, sbd):
        with open(osp.join(sbd, 'train.txt'), 'a') as handle:
            handle.write('../../s_train\n')
    return _voc(sb, edit)


# ---------------------------------------------------------- oracle inputs
ORACLE = 'analysis/oracle_debias_inputs.py'


def oracle_split_parent(sb):
    """A split line ../../x/evil: its embedding and label went to sb/x/."""
    from mars_mm.utils.io import save_label_png
    data = sb.copy(sb.world.data, 'data')
    os.makedirs(sb.path('x'))
    save_label_png(sb.path('x', 'evil.png'), np.zeros((32, 32), np.uint8))
    with open(osp.join(data, 'ImageSets', 'Segmentation', 'train.txt'), 'a') as f:
        f.write('../../x/evil\n')
    return sb.tool(ORACLE, data, sb.path('out'))


def _nothing_beside_out(sb, result):
    assert os.listdir(sb.path('x')) == ['evil.png'], os.listdir(sb.path('x'))


# ----------------------------------------------------- planted, issue 20 (lost 6)
def _snapshot(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(osp.join(folder, name), 'rb') as handle:
                files[osp.relpath(osp.join(folder, name), root)] = handle.read()
    return files


def planted_into_dataset(sb):
    """An existing VOC-layout dataset folder (no meta.json: not generated)."""
    data = sb.copy(sb.world.data, 'planted')
    os.remove(osp.join(data, 'meta.json'))
    sb.before = _snapshot(data)
    return _planted(sb, '--image-size', '16', '16')


def planted_other_settings(sb):
    """Its own dataset, regenerated with another seed."""
    _planted(sb, '--image-size', '16', '16')
    sb.before = _snapshot(sb.path('planted'))
    return _planted(sb, '--image-size', '16', '16', '--seed', '3')


def _unchanged(sb, result):
    assert _snapshot(sb.path('planted')) == sb.before


def planted_complete(sb):
    """Its own dataset, an image deleted, rerun with the same settings."""
    _planted(sb, '--image-size', '16', '16')
    sb.before = _snapshot(sb.path('planted'))
    os.remove(sb.path('planted', 'JPEGImages', '000001.jpg'))
    return _planted(sb, '--image-size', '16', '16')


# ----------------------------------------------------------------- eval_labels
def _eval(sb, breaker):
    pred = sb.copy(sb.world.pseudo, 'pred')
    breaker(osp.join(pred, '000006.png'))
    return sb.tool(EVAL, pred, '--dataset', sb.world.config('cam'))


CASES = [
    Case('planted-image-size-0', PLANTED, 'unclear', '`--image-size 0 0`',
         lambda sb: _planted(sb, '--image-size', '0', '0'), 1,
         r"image_size=\(0, 0\)", _no_folder),
    Case('planted-bad-pair', PLANTED, 'handled', '`--bias-pairs boat`',
         lambda sb: _planted(sb, '--bias-pairs', 'boat'), 2, r"--bias-pairs.*boat",
         _no_folder),
    Case('planted-p-with', PLANTED, 'handled', '`--p-with 1.5`',
         lambda sb: _planted(sb, '--p-with', '1.5'), 1, r"p_with.*1\.5", _no_folder),
    Case('planted-no-images', PLANTED, 'handled', '`--num-train 0 --num-val 0`',
         lambda sb: sb.tool(PLANTED, sb.path('planted'), '--num-train', '0',
                            '--num-val', '0'), 1, r"num_train=0", _no_folder),
    Case('planted-unknown-preset', PLANTED, 'handled', '`--preset nope`',
         lambda sb: _planted(sb, '--preset', 'nope'), 2, r"--preset.*nope",
         _no_folder),
    Case('coco-duplicate-file-name', COCO, 'silent 8',
         'two images sharing one `file_name`', lambda sb: _coco(sb, _duplicate_name),
         1, r"instances_x2014\.json.*COCO_x2014_000000000001\.jpg.*images 1 and 3"),
    Case('coco-no-category-id', COCO, 'unclear', 'an annotation without `category_id`',
         lambda sb: _coco(sb, _no_category), 1,
         r"instances_x2014\.json.*annotation 2.*category_id"),
    Case('coco-string-segmentation', COCO, 'unclear',
         'an annotation whose `segmentation` is a string',
         lambda sb: _coco(sb, _string_segmentation), 1,
         r"instances_x2014\.json.*annotation 4.*segmentation"),
    Case('coco-unknown-category', COCO, 'handled', 'an unknown `category_id`',
         lambda sb: _coco(sb, _unknown_category), 1,
         r"instances_x2014\.json.*annotation 1.*category 12"),
    Case('coco-unknown-image', COCO, 'handled', 'an annotation naming no image',
         lambda sb: _coco(sb, _unknown_image), 1,
         r"instances_x2014\.json.*annotation 1.*image 99"),
    Case('coco-absolute-file-name', COCO, 'unsafe 2',
         'an image whose `file_name` is an absolute path elsewhere',
         coco_absolute_name, 1,
         r"instances_x2014\.json: image 2 has file_name .*elsewhere/evil\.jpg.*"
         r"absolute", _nothing_outside, issue=20),
    Case('coco-parent-file-name', COCO, 'unsafe 2',
         'an image whose `file_name` is `../../../evil.jpg`', coco_parent_name, 1,
         r"instances_x2014\.json: image 2 has file_name '\.\./\.\./\.\./evil\.jpg'"
         r".*separator", _nothing_outside, issue=20),
    Case('coco-json-missing', COCO, 'handled', 'no instances JSON',
         lambda sb: sb.tool(COCO, sb.path('coco'), '--splits', 'x2014'), 1,
         r"instances_x2014\.json"),
    Case('coco-json-truncated', COCO, 'handled', 'a truncated instances JSON',
         coco_not_json, 1, r"instances_x2014\.json"),
    Case('voc-mask-truncated', VOC, 'silent 8', 'a truncated VOC SegmentationClass PNG',
         lambda sb: _voc(sb, lambda voc, sbd: breakers.truncate(_voc_mask(voc))), 1,
         r"SegmentationClass/v_train\.png"),
    Case('voc-mask-bad-value', VOC, 'silent 8', 'a VOC mask holding 30',
         lambda sb: _voc(sb, lambda voc, sbd: save_label_png(
             _voc_mask(voc), np.full((10, 12), 30, np.uint8))), 1,
         r"SegmentationClass/v_train\.png.*30"),
    Case('voc-mat-missing', VOC, 'handled', 'an SBD .mat missing',
         lambda sb: _voc(sb, lambda voc, sbd: os.remove(
             osp.join(sbd, 'cls', 's_train.mat'))), 1, r"s_train\.mat"),
    Case('voc-mat-truncated', VOC, 'handled', 'a truncated SBD .mat',
         lambda sb: _voc(sb, lambda voc, sbd: breakers.truncate(
             osp.join(sbd, 'cls', 's_train.mat'))), 1, r"s_train\.mat"),
    Case('voc-image-missing', VOC, 'handled', 'a train_aug image missing',
         lambda sb: _voc(sb, lambda voc, sbd: os.remove(
             osp.join(voc, 'JPEGImages', 's_val.jpg'))), 1, r"s_val"),
    Case('voc-split-parent', VOC, 'unsafe 2', 'SBD `train.txt` lists '
         '`../../s_train`', voc_split_parent, 1,
         r"sbd/train\.txt, line 3: '\.\./\.\./s_train' is not an image name",
         issue=20),
    Case('oracle-split-parent', ORACLE, 'unsafe 2', 'a split line `../../x/evil` '
         '(outputs named after it)', oracle_split_parent, 1,
         r"train\.txt, line 17: '\.\./\.\./x/evil' is not an image name",
         _nothing_beside_out, issue=20),
    Case('planted-into-dataset', PLANTED, 'lost 6', 'into an existing dataset folder '
         'it did not make', planted_into_dataset, 1,
         r"planted: the folder is not empty .*holds no meta\.json", _unchanged,
         issue=20),
    Case('planted-other-settings', PLANTED, 'lost 6', 'into its own dataset, '
         'another `--seed`', planted_other_settings, 1,
         r"planted/meta\.json: .* made with other settings \(settings\.seed: 0 -> 3\)",
         _unchanged, issue=20),
    Case('planted-complete', PLANTED, 'lost 6', 'into its own dataset, same '
         'settings, an image deleted', planted_complete, 0, r"exit 0", _unchanged,
         issue=20),
    Case('eval-pred-missing', EVAL, 'handled', 'a label of the split missing',
         lambda sb: _eval(sb, os.remove), 1, r"000006\.png"),
    Case('eval-pred-wrong-size', EVAL, 'handled', 'a label of 16x16 for 32x32',
         lambda sb: _eval(sb, breakers.resize_label), 1, r"000006\.png.*"),
    Case('eval-pred-truncated', EVAL, 'handled', 'a truncated label',
         lambda sb: _eval(sb, breakers.truncate), 1, r"000006\.png"),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
