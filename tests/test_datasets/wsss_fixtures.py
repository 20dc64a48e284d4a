"""Tiny on-disk datasets in the real formats (JPEG, palette PNG, VOC XML, tag JSON)."""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

from mars_mm.utils.io import save_label_png


def write_voc_xml(path: str, names: Sequence[str]) -> None:
    objects = ''.join(
        f'<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>'
        '<difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>'
        '<ymax>4</ymax></bndbox></object>' for name in names)
    with open(path, 'w') as handle:
        handle.write('<annotation><folder>VOC2012</folder><filename>x.jpg</filename>'
                     '<size><width>24</width><height>16</height><depth>3</depth>'
                     f'</size><segmented>1</segmented>{objects}</annotation>')


def make_voc(root: str, masks: Dict[str, np.ndarray],
             xml_names: Optional[Dict[str, Sequence[str]]] = None,
             split: str = 'train') -> None:
    """VOC layout: ``JPEGImages``, ``SegmentationClass``, ``Annotations``, split."""
    for sub in ('JPEGImages', 'SegmentationClass', 'Annotations',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, mask in masks.items():
        image = rng.integers(0, 255, mask.shape + (3,), dtype=np.uint8)
        Image.fromarray(image).save(osp.join(root, 'JPEGImages', f'{stem}.jpg'),
                                    quality=95)
        save_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'), mask)
    for stem, names in (xml_names or {}).items():
        write_voc_xml(osp.join(root, 'Annotations', f'{stem}.xml'), names)
    with open(osp.join(root, 'ImageSets', 'Segmentation', f'{split}.txt'), 'w') as f:
        f.write(''.join(f'{stem}\n' for stem in masks))


def make_coco_like(root: str, masks: Dict[str, np.ndarray],
                   tags: Dict[str, Sequence[int]], class_names: Sequence[str]) -> None:
    """The COCO converter's output layout for split ``train2014``."""
    for sub in ('train2014', 'SegmentationClass/train2014', 'ImageSets', 'tags'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for stem, mask in masks.items():
        Image.fromarray(np.zeros(mask.shape + (3,), np.uint8)).save(
            osp.join(root, 'train2014', f'{stem}.jpg'))
        save_label_png(osp.join(root, 'SegmentationClass', 'train2014', f'{stem}.png'),
                       mask)
    with open(osp.join(root, 'ImageSets', 'train2014.txt'), 'w') as f:
        f.write(''.join(f'{stem}\n' for stem in masks))
    with open(osp.join(root, 'tags', 'train2014.json'), 'w') as f:
        json.dump(dict(classes=list(class_names), tags=tags), f)


def block_mask(shape, blocks) -> np.ndarray:
    """``blocks``: list of (value, y0, y1, x0, x1)."""
    mask = np.zeros(shape, np.uint8)
    for value, y0, y1, x0, x1 in blocks:
        mask[y0:y1, x0:x1] = value
    return mask
