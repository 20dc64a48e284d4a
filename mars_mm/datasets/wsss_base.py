"""Shared loading logic of the weakly-supervised datasets.

Every WSSS dataset lists images from a split file and gives, per image, ``img_path``,
``seg_map_path`` (when a ground-truth mask exists) and ``img_tags``: the sorted int64
array of foreground class ids in ``1..C`` (see ``docs/en/data_formats.md``). Tags come,
in order of preference, from a tag file (COCO converter), a VOC XML annotation, or
the ground-truth mask.

Bad input raises an error naming the file: a split file naming a missing image or
mask, an XML naming an unknown class, a mask value outside ``0..C`` (other than 255),
a mask whose size differs from its image's (checked when the dataset is read).
Split and tag files are UTF-8 with or without a byte-order mark.
Images without any foreground tag are skipped with one warning (``empty_tags='skip'``,
the default), kept (``'keep'``, for evaluation) or rejected (``'error'``).
"""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple
from xml.etree import ElementTree

import numpy as np
from mmseg.datasets import BaseSegDataset

from mars_mm.utils.io import (
    BIASED_INDEX,
    IGNORE_INDEX,
    image_size,
    label_size,
    listed_image_name,
    load_label_png,
    read_user_text,
)

EMPTY_TAG_POLICIES = ('skip', 'keep', 'error')


def split_line_name(line: str) -> str:
    """The image name of one line of a split file.

    A line is a name (``2007_000032``, ``2007_000032.jpg``; inner dots and spaces
    belong to the name, only an image suffix is dropped), or the
    ``/JPEGImages/x.jpg /SegmentationClassAug/x.png`` form of common ``train_aug``
    lists, whose first path gives the name.

    Raises:
        ValueError: the line is a path, or not a plain file name.
    """
    fields = line.split()
    if len(fields) == 2 and all('/' in field for field in fields):
        return listed_image_name(osp.basename(fields[0]))
    return listed_image_name(line)


def read_split_file(path: str) -> List[str]:
    """Image names listed in a split file, one per line (:func:`split_line_name`).

    Read as UTF-8 with or without a byte-order mark, any line ending.

    Raises:
        FileNotFoundError: naming ``path``.
        ValueError: naming ``path`` (and the line) when it lists no image, a name
            twice, or a line that is not an image name (a path, ``..``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file not found: {path}')
    names: List[str] = []
    line_of: Dict[str, int] = {}
    for number, line in enumerate(read_user_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            name = split_line_name(line)
        except ValueError as err:
            raise ValueError(f'{path}, line {number}: {err}') from None
        if name in line_of:
            raise ValueError(f'{path}: image {name} is listed twice (lines '
                             f'{line_of[name]} and {number})')
        line_of[name] = number
        names.append(name)
    if not names:
        raise ValueError(f'{path}: the split file lists no image')
    return names


def tags_from_xml(path: str, class_names: Sequence[str],
                  known_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Class ids of the ``<object><name>`` entries of a VOC annotation.

    Args:
        path: the XML file.
        class_names: the dataset's classes, background first; a name's id is its
            position.
        known_names: names that are valid but not scored (e.g. classes dropped by a
            ``metainfo`` subset); they give no tag. Defaults to ``class_names``.

    Raises:
        ValueError: naming ``path`` for unparsable XML or an unknown class name.
    """
    known = set(known_names if known_names is not None else class_names)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as err:
        raise ValueError(f'{path}: cannot parse annotation XML ({err})') from err
    tags = set()
    for obj in root.iter('object'):
        name_node = obj.find('name')
        name = (name_node.text or '').strip() if name_node is not None else ''
        if name not in known:
            raise ValueError(f'{path}: unknown class {name!r} (known: '
                             f'{sorted(known - {"background"})})')
        if name in class_names:
            tags.add(list(class_names).index(name))
    tags.discard(0)
    return np.array(sorted(tags), dtype=np.int64)


def tags_from_label(label: np.ndarray, num_classes: int,
                    path: str = '<array>') -> np.ndarray:
    """Foreground class ids present in a label map (0, 254 and 255 ignored).

    Args:
        label: ``(H, W)`` label map.
        num_classes: classes including background; valid ids are
            ``1..num_classes-1``.
        path: the file, for the error message.

    Raises:
        ValueError: naming ``path`` when a value lies outside ``0..num_classes-1``
            and is not 254/255.
    """
    values = np.unique(np.asarray(label))
    values = values[(values != IGNORE_INDEX) & (values != BIASED_INDEX)]
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(f'{path}: label values {bad.tolist()} outside the class '
                         f'range 0..{num_classes - 1} (254/255 excepted)')
    return values[values > 0].astype(np.int64)


def read_tag_file(path: str, class_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Per-image tags from a JSON tag file ``{"classes": [...], "tags": {stem: ids}}``.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when missing, unreadable,
        written for other classes, or holding ids outside ``1..C``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'tag file not found: {path}')
    try:
        content = json.loads(read_user_text(path))
        classes, tags = content['classes'], content['tags']
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f'{path}: not a tag file with "classes" and "tags" '
                         f'({err!r})') from err
    if list(classes) != list(class_names):
        raise ValueError(f'{path}: written for classes {classes[:4]}... '
                         f'({len(classes)}), the dataset has {len(class_names)}')
    result = {}
    for stem, ids in tags.items():
        ids = np.array(sorted(set(ids)), dtype=np.int64)
        if ids.size and (ids.min() < 1 or ids.max() >= len(class_names)):
            raise ValueError(f'{path}: image {stem} has tags {ids.tolist()} outside '
                             f'1..{len(class_names) - 1}')
        result[stem] = ids
    return result


def _mask_size_problem(pair: Tuple[str, str]) -> Optional[str]:
    img_path, seg_map_path = pair
    mask = label_size(seg_map_path)
    image = image_size(img_path)
    if mask == image:
        return None
    return (f'{seg_map_path}: mask of size {mask} (H, W), but its image {img_path} '
            f'is {image}; a mask must cover its image pixel for pixel')


def check_mask_sizes(pairs: Sequence[Tuple[str, str]], threads: int = 8) -> None:
    """Raise naming the mask whose size differs from its image's.

    Only the files' headers are read (in threads: on a network file system the
    time is latency); an image's size is the one its loader gives, EXIF rotation
    applied (:func:`~mars_mm.utils.io.image_size`), a mask's its stored size
    (masks are decoded unchanged: :func:`~mars_mm.utils.io.label_size`).
    """
    if len(pairs) > 64 and threads > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(threads) as pool:
            problems = pool.map(_mask_size_problem, pairs, chunksize=64)
            first = next((problem for problem in problems if problem), None)
    else:
        first = next((problem for problem in map(_mask_size_problem, pairs)
                      if problem), None)
    if first is not None:
        raise ValueError(first)


class WSSSBaseDataset(BaseSegDataset):
    """A split-file segmentation dataset with per-image tags.

    Args:
        ann_file: split file (one stem per line), relative to ``data_root``.
        with_seg_map: whether ground-truth masks exist for this split (False for
            VOC test); each listed mask must exist.
        with_tags: whether to give ``img_tags`` (False for a test split without
            annotations).
        xml_dir: folder of VOC XML annotations (relative to ``data_root``); None to
            skip XML.
        tag_file: JSON tag file (relative to ``data_root``); overrides ``xml_dir``.
        empty_tags: ``'skip'`` (warn once, drop the images), ``'keep'`` or
            ``'error'`` for images without any foreground tag.
        check_files: check that every listed image (and mask) exists.
        pseudo_label_dir: folder of training labels ``<stem><pseudo_label_suffix>``
            (Stage 1 pseudo labels, Stage 3 debiased labels, another method's);
            each data info then names its file as ``pseudo_label_path``, which
            ``LoadPseudoLabel`` reads. Relative to the working directory, like
            ``work_dir`` (labels are outputs, not part of ``data_root``). A config
            changes it with one key:
            ``train_dataloader = dict(dataset=dict(pseudo_label_dir=...))``.
        pseudo_label_suffix: file ending of the pseudo labels.
        data_prefix: folders of images and masks under ``data_root``; defaults to
            the class's ``DEFAULT_DATA_PREFIX``.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments.
    """
    #: ``data_prefix`` when none is given (the dataset's standard layout).
    DEFAULT_DATA_PREFIX: Dict[str, str] = dict(img_path='', seg_map_path='')

    def __init__(self,
                 ann_file: str = '',
                 with_seg_map: bool = True,
                 with_tags: bool = True,
                 xml_dir: Optional[str] = None,
                 tag_file: Optional[str] = None,
                 empty_tags: str = 'skip',
                 check_files: bool = True,
                 pseudo_label_dir: Optional[str] = None,
                 pseudo_label_suffix: str = '.png',
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        if empty_tags not in EMPTY_TAG_POLICIES:
            raise ValueError(f'empty_tags must be one of {EMPTY_TAG_POLICIES}, '
                             f'got {empty_tags!r}')
        self.with_seg_map = with_seg_map
        self.with_tags = with_tags
        self.empty_tags = empty_tags
        self.check_files = check_files
        self.pseudo_label_dir = pseudo_label_dir
        self.pseudo_label_suffix = pseudo_label_suffix
        data_root = kwargs.get('data_root')
        self.xml_dir = self._under_root(data_root, xml_dir)
        self.tag_file = self._under_root(data_root, tag_file)
        if data_prefix is None:
            data_prefix = dict(self.DEFAULT_DATA_PREFIX)
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    @staticmethod
    def _under_root(data_root: Optional[str], path: Optional[str]) -> Optional[str]:
        if path is None or data_root is None or osp.isabs(path):
            return path
        return osp.join(data_root, path)

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self._metainfo['classes'])

    def known_class_names(self) -> List[str]:
        """Names an annotation may use: the class's full list (``METAINFO``)."""
        return list(self.METAINFO.get('classes', self._metainfo['classes']))

    def _mask_tags(self, seg_map_path: str) -> np.ndarray:
        label = load_label_png(seg_map_path)
        if self.label_map:
            mapped = label.copy()
            for old, new in self.label_map.items():
                mapped[label == old] = new
            label = mapped
        return tags_from_label(label, self.num_classes, seg_map_path)

    def list_stems(self) -> List[str]:
        """The images of the split: the stems of the split file."""
        return read_split_file(self.ann_file)

    def load_data_list(self) -> List[dict]:
        """One dict per listed image: paths, ``img_tags`` and ``num_classes``.

        Paths: ``img_path``, ``seg_map_path`` (``with_seg_map``) and
        ``pseudo_label_path`` (with a ``pseudo_label_dir``).
        """
        stems = self.list_stems()
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path', '')
        class_names = list(self._metainfo['classes'])
        known_names = self.known_class_names()
        tag_table = (read_tag_file(self.tag_file, class_names)
                     if self.with_tags and self.tag_file else None)
        data_list, empty = [], []
        for stem in stems:
            img_path = osp.join(img_dir, stem + self.img_suffix)
            if self.check_files and not osp.isfile(img_path):
                raise FileNotFoundError(f'{self.ann_file}: lists {stem}, but the image '
                                        f'{img_path} does not exist')
            info = dict(img_path=img_path, label_map=self.label_map,
                        reduce_zero_label=self.reduce_zero_label, seg_fields=[],
                        num_classes=self.num_classes)
            if self.with_seg_map:
                seg_map_path = osp.join(ann_dir, stem + self.seg_map_suffix)
                if self.check_files and not osp.isfile(seg_map_path):
                    raise FileNotFoundError(f'{self.ann_file}: lists {stem}, but its '
                                            f'mask {seg_map_path} does not exist')
                info['seg_map_path'] = seg_map_path
            if self.pseudo_label_dir is not None:
                info['pseudo_label_path'] = osp.join(
                    self.pseudo_label_dir, stem + self.pseudo_label_suffix)
            if self.with_tags:
                info['img_tags'] = self._tags_of(stem, info, tag_table, class_names,
                                                 known_names)
                if info['img_tags'].size == 0:
                    empty.append(stem)
                    if self.empty_tags == 'error':
                        raise ValueError(f'{self.ann_file}: image {stem} has no '
                                         'foreground tag (empty_tags="error")')
                    if self.empty_tags == 'skip':
                        continue
            data_list.append(info)
        if empty and self.empty_tags == 'skip':
            warnings.warn(f'{self.ann_file}: skipped {len(empty)} images without any '
                          f'foreground tag (e.g. {empty[:3]}); pass '
                          'empty_tags="keep" to keep them', stacklevel=2)
        if self.check_files and self.with_seg_map:
            check_mask_sizes([(info['img_path'], info['seg_map_path'])
                              for info in data_list])
        return data_list

    def _tags_of(self, stem: str, info: dict, tag_table: Optional[dict],
                 class_names: List[str], known_names: List[str]) -> np.ndarray:
        if tag_table is not None:
            if stem not in tag_table:
                raise ValueError(f'{self.tag_file}: no tags for image {stem}, which '
                                 f'{self.ann_file} lists (convert the dataset again, '
                                 'or remove the image from the split file)')
            return tag_table[stem]
        if self.xml_dir is not None:
            xml_path = osp.join(self.xml_dir, stem + '.xml')
            if osp.isfile(xml_path):
                return tags_from_xml(xml_path, class_names, known_names)
        if 'seg_map_path' in info:
            return self._mask_tags(info['seg_map_path'])
        raise FileNotFoundError(
            f'{self.ann_file}: no tags for {stem}: no XML in {self.xml_dir}, no '
            'tag file and no mask (set with_tags=False for an unannotated split)')
