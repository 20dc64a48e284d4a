"""Your own data (TaggedImageDataset): tags files, class lists and split files as
users write them (Excel, Windows editors, by hand), read by the CAM export.

Each case turns the world's planted images into an own-data folder
(``images/``, ``masks/``, ``tags.csv``, ``classes.txt``, ``train.txt``,
``val.txt``), changes one file and runs ``tools/cam/generate_cams.py`` on it with
the world's CAM classifier (same six classes).
"""
import json
import os
import os.path as osp
import shutil
from xml.etree import ElementTree

import pytest

from tests.test_bad_inputs.harness import Case

TOOL = 'cam/generate_cams.py'
STEM = '000003'  # a train image; row 5 of tags.csv (after the header)

OWN = """
own = dict(type='TaggedImageDataset', data_root='{root}', tag_file='{tags}',
           classes_file='classes.txt', img_dir='images', mask_dir='masks')
train_dataloader = dict(dataset=dict(own, _delete_=True, ann_file='train.txt',
                                     pipeline=cls_pipeline))
train_infer_dataloader = dict(dataset=dict(
    own, _delete_=True, ann_file='train.txt',
    pipeline=_base_.train_infer_dataloader.dataset.pipeline))
val_dataloader = dict(dataset=dict(
    own, _delete_=True, ann_file='val.txt', empty_tags='keep',
    pipeline=_base_.val_dataloader.dataset.pipeline))
test_dataloader = val_dataloader
"""


def own_folder(sb):
    """``own/`` from the world's planted data; tags from its XML annotations."""
    source, root = sb.world.data, sb.path('own')
    for folder in ('images', 'masks'):
        os.makedirs(osp.join(root, folder))
    with open(osp.join(source, 'meta.json')) as handle:
        classes = json.load(handle)['classes'][1:]
    rows = []
    for split in ('train', 'val'):
        stems = sb.world.train_stems() if split == 'train' else sb.world.val_stems()
        with open(osp.join(root, f'{split}.txt'), 'w') as handle:
            handle.write(''.join(f'{stem}\n' for stem in stems))
        for stem in stems:
            shutil.copy(osp.join(source, 'JPEGImages', stem + '.jpg'),
                        osp.join(root, 'images'))
            shutil.copy(osp.join(source, 'SegmentationClass', stem + '.png'),
                        osp.join(root, 'masks'))
            xml = ElementTree.parse(osp.join(source, 'Annotations', stem + '.xml'))
            names = sorted({node.text for node in xml.getroot().iter('name')})
            rows.append(f'{stem}.jpg,{";".join(names)}')
    with open(osp.join(root, 'classes.txt'), 'w') as handle:
        handle.write(''.join(f'{name}\n' for name in classes))
    with open(osp.join(root, 'tags.csv'), 'w') as handle:
        handle.write('image,classes\n' + ''.join(f'{row}\n' for row in rows))
    return root


def _rewrite(path, edit, encoding='utf-8', newline=None):
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    with open(path, 'w', encoding=encoding, newline=newline) as handle:
        handle.write(edit(text))


def _lines(edit):
    """``edit`` applied to a file's list of lines."""
    return lambda text: '\n'.join(edit(text.splitlines())) + '\n'


def _own(files, edit, tags='tags.csv', **options):
    """A case: ``files`` of the own folder rewritten by ``edit``, then CAMs."""
    def run(sb):
        root = own_folder(sb)
        if tags.endswith('.json'):
            _to_json(root, tags)
        for name in (files,) if isinstance(files, str) else files:
            _rewrite(osp.join(root, name), edit, **options)
        config = sb.config('cam', OWN.format(root=root, tags=tags))
        return sb.tool(TOOL, config, sb.world.cam_ckpt, '--out', sb.path('cams'),
                       '--device', 'cpu', '--scales', '1.0')
    return run


def _to_json(root, name):
    with open(osp.join(root, 'tags.csv')) as handle:
        rows = [line.split(',') for line in handle.read().splitlines()[1:]]
    with open(osp.join(root, name), 'w') as handle:
        json.dump({image: names.split(';') for image, names in rows}, handle)


def _same(text):
    return text


def _all_cams(sb, result):
    cams = [name for name in os.listdir(sb.path('cams')) if name.endswith('.npz')]
    assert len(cams) == 16, sorted(cams)


def _row(edit):
    """Edit the row of STEM in tags.csv."""
    def lines(rows):
        index = next(i for i, row in enumerate(rows) if row.startswith(STEM + '.'))
        rows[index] = edit(rows[index])
        return rows
    return _lines(lines)


def _drop_row(rows):
    return [row for row in rows if not row.startswith(STEM + '.')]


def _blank_second_line(rows):
    return rows[:1] + [''] + rows[1:]


def _capitalised(row):
    image, names = row.split(',')
    return f'{image},{";".join(name.capitalize() for name in names.split(";"))}'


CASES = [
    Case('own-tags-bom', TOOL, 'unclear 7', '`tags.csv` saved as Excel\'s "CSV UTF-8" '
         '(byte-order mark)', _own('tags.csv', _same, encoding='utf-8-sig'), 0,
         r"exit 0", _all_cams, issue=20),
    Case('own-tags-json-bom', TOOL, 'unclear 7', '`tags.json` with a byte-order mark',
         _own('tags.json', _same, tags='tags.json', encoding='utf-8-sig'), 0,
         r"exit 0", _all_cams, issue=20),
    Case('own-classes-bom', TOOL, 'unclear 7', '`classes.txt` with a byte-order mark',
         _own('classes.txt', _same, encoding='utf-8-sig'), 0, r"exit 0", _all_cams,
         issue=20),
    Case('own-split-bom', TOOL, 'unclear 7', '`train.txt` with a byte-order mark',
         _own('train.txt', _same, encoding='utf-8-sig'), 0, r"exit 0", _all_cams,
         issue=20),
    Case('own-tags-empty-row', TOOL, 'unclear 8', f'an empty tags row (`{STEM}.jpg,`)',
         _own('tags.csv', _row(lambda row: row.split(',')[0] + ',')), 1,
         rf"own/tags\.csv, line 5: image {STEM} lists no class", issue=20),
    Case('own-no-tags-row', TOOL, 'unclear 14', 'an image of `train.txt` without a '
         'tags row', _own('tags.csv', _lines(_drop_row)), 1,
         rf"ValueError: .*own/tags\.csv: no row for image {STEM}, which "
         r".*own/train\.txt lists", issue=20),
    Case('own-tags-path', TOOL, 'unsafe 2', f'a tags row naming `sub/{STEM}.jpg`',
         _own('tags.csv', _row(lambda row: 'sub/' + row)), 1,
         rf"own/tags\.csv, line 5: 'sub/{STEM}\.jpg' is not an image name: it holds "
         r"a folder separator", issue=20),
    Case('own-tags-case', TOOL, 'own', f'a tags row with `Boat` for `boat` ({STEM})',
         _own('tags.csv', _row(_capitalised)), 1,
         r"line 5: image 000003 has classes \[.*\] that the class list lacks .*"
         r"case-sensitive \(the class list has '\w+', not '\w+'", issue=20),
    Case('own-tags-commas', TOOL, 'own', 'classes separated by commas '
         '(`img.jpg,boat,car`)', _own('tags.csv', lambda text: text.replace(';', ',')),
         0, r"exit 0", _all_cams, issue=20),
    Case('own-classes-blank-line', TOOL, 'own', 'an empty line between two names of '
         '`classes.txt`', _own('classes.txt', _lines(_blank_second_line)), 1,
         r"own/classes\.txt, line 2: empty line between class names", issue=20),
    Case('own-classes-background-last', TOOL, 'own', '`background` on the last line '
         'of `classes.txt`', _own('classes.txt', lambda text: text + 'background\n'),
         1, r"own/classes\.txt, line 7: background is class 0", issue=20),
    Case('own-crlf', TOOL, 'own', '`tags.csv`, `classes.txt` and `train.txt` with '
         'Windows line ends', _own(('tags.csv', 'classes.txt', 'train.txt'),
                                   lambda text: text.replace('\n', '\r\n'),
                                   newline=''), 0, r"exit 0", _all_cams, issue=20),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
