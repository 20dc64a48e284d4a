"""Pipeline test helpers: your-own-data folders (TaggedImageDataset layout) made from
a planted dataset, and running the driver from the repository root."""
import json
import os
import os.path as osp
import shutil
from contextlib import contextmanager

from mars_mm.datasets.generators.planted_bias import generate_planted_bias


def make_tagged_folder(root: str, num_train: int = 6, num_val: int = 3,
                       size=(48, 48), masks: bool = True, tags_format: str = 'csv',
                       splits: bool = True) -> dict:
    """``images/``, ``tags.csv|json``, ``classes.txt``, optional ``masks/`` and
    ``train.txt`` / ``val.txt``, from a generated planted-bias dataset.

    Returns:
        dict: ``classes`` (background first), ``tags`` (stem -> names),
        ``train`` / ``val`` stems.
    """
    source = root + '_planted'
    meta = generate_planted_bias(source, num_train=num_train, num_val=num_val,
                                 image_size=size)
    classes = meta['classes']
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    if masks:
        os.makedirs(osp.join(root, 'masks'), exist_ok=True)
    stems = {}
    for split in ('train', 'val'):
        with open(osp.join(source, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
            stems[split] = [line.strip() for line in f if line.strip()]
    tags = {}
    from xml.etree import ElementTree
    for stem in stems['train'] + stems['val']:
        shutil.copy(osp.join(source, 'JPEGImages', stem + '.jpg'),
                    osp.join(root, 'images', stem + '.jpg'))
        if masks:
            shutil.copy(osp.join(source, 'SegmentationClass', stem + '.png'),
                        osp.join(root, 'masks', stem + '.png'))
        names = sorted({node.text for node in ElementTree.parse(
            osp.join(source, 'Annotations', stem + '.xml')).iter('name')})
        tags[stem] = names
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes[1:]) + '\n')
    if tags_format == 'csv':
        with open(osp.join(root, 'tags.csv'), 'w') as f:
            f.write('image,classes\n')
            for stem, names in tags.items():
                f.write(f'{stem}.jpg,{";".join(names)}\n')
    else:
        with open(osp.join(root, 'tags.json'), 'w') as f:
            json.dump(tags, f)
    if splits:
        for split in ('train', 'val'):
            with open(osp.join(root, f'{split}.txt'), 'w') as f:
                f.write('\n'.join(stems[split]) + '\n')
    shutil.rmtree(source)
    return dict(classes=classes, tags=tags, **stems)


@contextmanager
def working_directory(path: str):
    """Run the block in ``path`` (pipeline configs name files relative to the repo);
    for module-scoped fixtures, where pytest's ``monkeypatch.chdir`` is not offered."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
