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
by ``;``, ``|`` or further columns; the image as a name or a file name), or JSON
``{"image": ["class", ...]}``. Every row names at least one class. A class name
that ``classes.txt`` lacks, an empty row, an image name that is a path and a split
file listing an image the tags file lacks are errors naming the file and the line
(or image). Text files are UTF-8 with or without a byte-order mark.
"""
import csv
import io
import json
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mars_mm.registry import DATASETS
from mars_mm.utils.io import listed_image_name, read_user_text, voc_palette

from .wsss_base import WSSSBaseDataset

TAG_SEPARATORS = (';', '|')


def read_class_names(path: str) -> List[str]:
    """Class names of a ``classes.txt``, background first (added if absent).

    One name per line; a class's id is its position (background 0), so an empty
    line between names is an error (it would shift every later id), as is
    ``background`` anywhere but on the first line. Blank lines at the end are
    ignored; UTF-8 with or without a byte-order mark, any line ending.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` (and the line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'class list not found: {path} (one class name per '
                                'line, or give metainfo=dict(classes=...))')
    lines = read_user_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names: List[str] = []
    line_of: Dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise ValueError(f'{path}, line {number}: empty line between class '
                             'names; a class id is its position in the list, so '
                             'every later class would shift: remove the line')
        if name in line_of:
            raise ValueError(f'{path}: class {name!r} is listed twice (lines '
                             f'{line_of[name]} and {number})')
        if name == 'background' and number != 1:
            raise ValueError(f'{path}, line {number}: background is class 0: list '
                             'it on the first line or not at all')
        line_of[name] = number
        names.append(name)
    if not names:
        raise ValueError(f'{path}: lists no class')
    if names[0] != 'background':
        names.insert(0, 'background')
    if len(names) > 254:
        raise ValueError(f'{path}: at most 253 classes (254 and 255 are reserved)')
    return names


def _split_tags(text: str) -> List[str]:
    """Class names of one tags cell: separated by ``;``, ``|`` or ``,``."""
    for separator in TAG_SEPARATORS:
        text = text.replace(separator, ',')
    return [name.strip() for name in text.split(',') if name.strip()]


def _csv_rows(path: str) -> Iterator[Tuple[str, str, List[str]]]:
    """``(where, image, class names)`` of each row of a tags CSV."""
    reader = csv.reader(io.StringIO(read_user_text(path), newline=''))
    first = True
    for row in reader:
        if not row or not ''.join(row).strip():
            continue
        if first and row[0].strip().lower() in ('image', 'stem', 'file', 'filename',
                                                'name'):
            first = False
            continue  # header
        first = False
        names = [name for cell in row[1:] for name in _split_tags(cell)]
        yield f'{path}, line {reader.line_num}', row[0], names


def _json_rows(path: str) -> Iterator[Tuple[str, str, List[str]]]:
    """``(where, image, class names)`` of each entry of a tags JSON."""
    try:
        content = json.loads(read_user_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: not JSON ({err})') from err
    if not isinstance(content, dict):
        raise ValueError(f'{path}: expected {{"image": ["class", ...]}}')
    for image, names in content.items():
        if isinstance(names, str):
            names = _split_tags(names)
        elif not isinstance(names, list) or not all(isinstance(name, str)
                                                    for name in names):
            raise ValueError(f'{path}: image {image!r}: expected a list of class '
                             f'names, got {names!r}')
        yield f'{path}, image {image!r}', image, [name.strip() for name in names]


def read_tags_table(path: str, class_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """``{image name: sorted class ids}`` from a CSV or JSON tags file.

    Every row names an image (a plain name; an image suffix is dropped, see
    :func:`~mars_mm.utils.io.listed_image_name`) and at least one class of the
    class list: an image showing none of them cannot teach the classifier, and
    every stage must see the same images, so it is left out of the tags file
    (and the split files) rather than given an empty row.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` and the line (CSV) or image
        (JSON): a missing or unreadable file, a path instead of a name, a row
        without a class, an unknown class or an image listed twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'tags file not found: {path}')
    if path.endswith('.json'):
        rows = _json_rows(path)
    elif path.endswith('.csv'):
        rows = _csv_rows(path)
    else:
        raise ValueError(f'{path}: a tags file ends in .csv or .json')
    index_of = {name: index for index, name in enumerate(class_names)}
    table: Dict[str, np.ndarray] = {}
    where_of: Dict[str, str] = {}
    for where, image, names in rows:
        try:
            stem = listed_image_name(image)
        except ValueError as err:
            raise ValueError(f'{where}: {err}') from None
        if stem in table:
            raise ValueError(f'{where}: image {stem} is listed twice (first at '
                             f'{where_of[stem].rsplit(", ", 1)[-1]})')
        unknown = [name for name in names if name not in index_of]
        if unknown:
            raise ValueError(f'{where}: image {stem} has classes {unknown} that the '
                             f'class list lacks (known: {list(class_names[1:])})'
                             + _case_hint(unknown, class_names))
        ids = sorted({index_of[name] for name in names} - {0})
        if not ids:
            raise ValueError(
                f'{where}: image {stem} lists no class'
                + (' (background alone is no tag)' if names else '') +
                '; every image needs at least one: leave an image that shows none '
                'of the classes out of the tags file and the split files')
        table[stem] = np.array(ids, dtype=np.int64)
        where_of[stem] = where
    if not table:
        raise ValueError(f'{path}: lists no image')
    return table


def _case_hint(unknown: Sequence[str], class_names: Sequence[str]) -> str:
    """A note for names that differ from a known class only in case."""
    lower = {name.lower(): name for name in class_names[1:]}
    matches = [f'{lower[name.lower()]!r}, not {name!r}' for name in unknown
               if name.lower() in lower]
    if not matches:
        return ''
    return ('; class names are case-sensitive (the class list has '
            f'{"; ".join(matches)})')


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
            raise ValueError(f'{self.tags_path}: no row for image {stem}, which '
                             f'{self.ann_file} lists; add "{stem}{self.img_suffix},'
                             'class;class" or remove the image from the split file')
        return table[stem]
