"""Your own data: a folder of images, a tags file and class names (masks optional).

Layout under ``data_root`` (every name is an argument)::

    images/<stem>.jpg       the images
    tags.csv | tags.json    per image, the names of the classes it shows
    classes.txt             the class names, one per line (background added)
    masks/<stem>.png        optional: class-index masks (0 background, 255 ignore),
                            used for scoring only
    train.txt, val.txt      optional split files (one stem per line); without one,
                            every image of the tags file

Tags files: CSV rows ``image,classes`` (an optional header row; classes separated
by ``;`` or ``|``; the image as a stem or a file name), or JSON
``{"image": ["class", ...]}``. A class name that ``classes.txt`` lacks is an error
naming the file and the image.
"""
import csv
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from mars_mm.registry import DATASETS
from mars_mm.utils.io import stem_of, voc_palette

from .wsss_base import WSSSBaseDataset

TAG_SEPARATORS = (';', '|')


def read_class_names(path: str) -> List[str]:
    """Class names of a ``classes.txt``, background first (added if absent).

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'class list not found: {path} (one class name per '
                                'line, or give metainfo=dict(classes=...))')
    with open(path, encoding='utf-8') as handle:
        names = [line.strip() for line in handle if line.strip()]
    if not names:
        raise ValueError(f'{path}: lists no class')
    if names[0] != 'background':
        names.insert(0, 'background')
    if len(set(names)) != len(names):
        raise ValueError(f'{path}: a class is listed twice')
    if len(names) > 254:
        raise ValueError(f'{path}: at most 253 classes (254 and 255 are reserved)')
    return names


def _split_tags(text: str) -> List[str]:
    for separator in TAG_SEPARATORS:
        if separator in text:
            return [name.strip() for name in text.split(separator) if name.strip()]
    return [text.strip()] if text.strip() else []


def read_tags_table(path: str, class_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """``{stem: sorted class ids}`` from a CSV or JSON tags file.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` (and the image) for a
        missing or unreadable file, an unknown class or an image listed twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'tags file not found: {path}')
    rows = []
    if path.endswith('.json'):
        try:
            with open(path, encoding='utf-8') as handle:
                content = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not JSON ({err})') from err
        if not isinstance(content, dict):
            raise ValueError(f'{path}: expected {{"image": ["class", ...]}}')
        rows = [(image, names if isinstance(names, list) else _split_tags(names))
                for image, names in content.items()]
    elif path.endswith('.csv'):
        with open(path, encoding='utf-8', newline='') as handle:
            for index, row in enumerate(csv.reader(handle)):
                if not row or not row[0].strip():
                    continue
                if index == 0 and row[0].strip().lower() in ('image', 'stem', 'file',
                                                             'filename', 'name'):
                    continue  # header
                rows.append((row[0].strip(), _split_tags(','.join(row[1:]))))
    else:
        raise ValueError(f'{path}: a tags file ends in .csv or .json')
    index_of = {name: index for index, name in enumerate(class_names)}
    table: Dict[str, np.ndarray] = {}
    for image, names in rows:
        stem = stem_of(image)
        if stem in table:
            raise ValueError(f'{path}: image {stem} is listed twice')
        unknown = [name for name in names if name not in index_of]
        if unknown:
            raise ValueError(f'{path}: image {stem} has classes {unknown} that the '
                             f'class list lacks (known: {list(class_names[1:])})')
        ids = sorted({index_of[name] for name in names} - {0})
        table[stem] = np.array(ids, dtype=np.int64)
    if not table:
        raise ValueError(f'{path}: lists no image')
    return table


@DATASETS.register_module()
class TaggedImageDataset(WSSSBaseDataset):
    """A folder of images with per-image class tags; masks only for scoring.

    Args:
        tag_file: CSV or JSON tags file (image -> class names), relative to
            ``data_root`` (not the base class's COCO-style JSON of ids).
        classes_file: class names, one per line (ignored when ``metainfo`` gives
            ``classes``).
        img_dir, mask_dir: folders under ``data_root``.
        ann_file: split file (one stem per line); ``''``: every image of the tags
            file.
        with_seg_map: ``'auto'``: masks are used when ``mask_dir`` exists.
        img_suffix: the images' file ending.
        **kwargs: :class:`WSSSBaseDataset` arguments (``pseudo_label_dir``,
            ``empty_tags``, ...).
    """
    METAINFO = dict(classes=('background', ))

    def __init__(self, tag_file: str = 'tags.csv',
                 classes_file: str = 'classes.txt', img_dir: str = 'images',
                 mask_dir: Optional[str] = 'masks', ann_file: str = '',
                 with_seg_map='auto', img_suffix: str = '.jpg',
                 metainfo: Optional[dict] = None, data_root: Optional[str] = None,
                 **kwargs) -> None:
        root = data_root or ''
        metainfo = dict(metainfo or {})
        if 'classes' not in metainfo:
            metainfo['classes'] = tuple(read_class_names(osp.join(root, classes_file)))
        metainfo.setdefault('palette', voc_palette(len(metainfo['classes'])).tolist())
        if with_seg_map == 'auto':
            with_seg_map = bool(mask_dir) and osp.isdir(osp.join(root, mask_dir))
        self.tags_path = osp.join(root, tag_file)
        self._tag_table: Optional[Dict[str, np.ndarray]] = None
        kwargs.pop('xml_dir', None)  # tags come from the tags file
        super().__init__(ann_file=ann_file, with_seg_map=with_seg_map,
                         data_prefix=dict(img_path=img_dir,
                                          seg_map_path=mask_dir or ''),
                         img_suffix=img_suffix, seg_map_suffix='.png',
                         metainfo=metainfo, data_root=data_root, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence] = None) -> None:
        """No remapping: the ids are positions in the dataset's own class list."""
        return None

    def known_class_names(self) -> List[str]:
        return list(self._metainfo['classes'])

    def tag_table(self) -> Dict[str, np.ndarray]:
        if self._tag_table is None:
            self._tag_table = read_tags_table(self.tags_path,
                                              list(self._metainfo['classes']))
        return self._tag_table

    def list_stems(self) -> List[str]:
        """The split file's stems, or every image of the tags file."""
        if self.ann_file:
            return super().list_stems()
        return sorted(self.tag_table())

    def _tags_of(self, stem: str, info: dict, tag_table: Optional[dict],
                 class_names: List[str], known_names: List[str]) -> np.ndarray:
        table = self.tag_table()
        if stem not in table:
            raise KeyError(f'{self.tags_path}: no tags for image {stem}')
        return table[stem]
