"""COCO 2014 instance annotations to WSSS class-index masks and image tags.

Rule for turning instances into one label map (documented in docs/en/datasets.md):

* labels: background 0, then the categories sorted by category id as 1..80 (the
  standard order of :data:`mars_mm.datasets.wsss_coco.COCO_THING_CLASSES`);
* overlapping instances: painted in *descending area* (ties: ascending annotation
  id), so that a smaller instance lying on a larger one stays visible on top (a cup
  on a dining table);
* crowd regions (``iscrowd=1``): pixels that no single instance claims become 255
  (ignore), since the region mixes objects of the class with background;
* tags: every category annotated in the image, crowd included;
* images without any annotation get an all-background mask and no tag; they are
  listed in the split file and the WSSS dataset skips them for training with a
  warning (``empty_tags='skip'``).
"""
import functools
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from mars_mm.utils.io import IGNORE_INDEX, plain_file_name, save_label_png, save_text
from mars_mm.utils.offline import get_dist_info, run_offline_job

from .sbd import write_split


def category_labels(categories: Sequence[dict],
                    source: str = '<json>') -> Tuple[Dict[int, int], List[str]]:
    """Category id -> label 1..K (ids sorted), and the class names, background first.

    Raises:
        ValueError: naming ``source`` for duplicate ids or more than 253 categories.
    """
    ids = [int(cat['id']) for cat in categories]
    if len(set(ids)) != len(ids):
        raise ValueError(f'{source}: duplicate category ids')
    if len(ids) > 253:
        raise ValueError(f'{source}: {len(ids)} categories do not fit in a PNG '
                         'label map with 254/255 reserved')
    ordered = sorted(categories, key=lambda cat: int(cat['id']))
    mapping = {int(cat['id']): index + 1 for index, cat in enumerate(ordered)}
    return mapping, ['background'] + [cat['name'] for cat in ordered]


def _rle(segmentation, height: int, width: int) -> Optional[dict]:
    """One compressed RLE from a polygon list, an uncompressed or a compressed RLE.

    Polygons with fewer than 3 points are dropped (pycocotools would read a 4-value
    list as a box); an instance left without polygon gives None.
    """
    if isinstance(segmentation, list):            # polygons
        polygons = [poly for poly in segmentation if len(poly) >= 6]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation.get('counts'), list):  # uncompressed RLE (crowd)
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation                           # compressed RLE


def instances_to_label(height: int, width: int, annotations: Sequence[dict],
                       labels: Dict[int, int]) -> np.ndarray:
    """Paint one image's instances into a ``(H, W)`` uint8 label map.

    Args:
        height, width: the image size.
        annotations: COCO annotations with ``segmentation``, ``category_id``,
            ``area``, ``iscrowd`` and ``id``.
        labels: category id -> label (from :func:`category_labels`).

    Returns:
        np.ndarray: background 0, instances by the module's overlap rule, crowd-only
        pixels 255.
    """
    label = np.zeros((height, width), dtype=np.uint8)
    if not annotations:
        return label
    ordered = sorted(annotations, key=lambda ann: (-float(ann.get('area', 0)),
                                                   int(ann.get('id', 0))))
    rles = [_rle(ann['segmentation'], height, width) for ann in ordered]
    instances = [(ann, rle) for ann, rle in zip(ordered, rles)
                 if rle is not None and not ann.get('iscrowd', 0)]
    crowds = [rle for ann, rle in zip(ordered, rles)
              if rle is not None and ann.get('iscrowd', 0)]
    if not instances and not crowds:
        return label
    rles = [rle for _, rle in instances] + crowds
    # one C call decodes every instance: (H, W, N), Fortran order
    masks = mask_utils.decode(rles).astype(bool, copy=False)
    for index, (ann, _) in enumerate(instances):
        label[masks[:, :, index]] = labels[ann['category_id']]
    if crowds:
        crowd = masks[:, :, len(instances):].any(axis=2)
        claimed = np.zeros_like(crowd)
        if instances:
            claimed = masks[:, :, :len(instances)].any(axis=2)
        label[crowd & ~claimed] = IGNORE_INDEX
    return label


def load_instances(json_path: str) -> Tuple[List[dict], Dict[int, int], List[str]]:
    """Per-image job items from an ``instances_*.json``.

    Returns:
        tuple: items (``stem``, ``height``, ``width``, ``annotations``; sorted by
        stem), the category -> label mapping and the class names.

    Raises:
        FileNotFoundError / ValueError: naming ``json_path`` when it is missing,
        unreadable, or an annotation names an unknown image or category.
    """
    if not osp.isfile(json_path):
        raise FileNotFoundError(f'COCO annotation file not found: {json_path}')
    try:
        with open(json_path) as handle:
            content = json.load(handle)
        images, annotations = content['images'], content['annotations']
        categories = content['categories']
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f'{json_path}: not a COCO instances file ({err!r})') from err
    labels, class_names = category_labels(categories, json_path)
    sizes = _check_images(images, json_path)
    by_image = defaultdict(list)
    keep = ('id', 'category_id', 'segmentation', 'area', 'iscrowd')
    for ann in annotations:
        _check_annotation(ann, json_path, sizes, labels)
        by_image[int(ann['image_id'])].append({key: ann[key] for key in keep
                                               if key in ann})
    items = [dict(stem=osp.splitext(image['file_name'])[0],
                  height=int(image['height']), width=int(image['width']),
                  annotations=by_image.get(int(image['id']), []))
             for image in images]
    items.sort(key=lambda item: item['stem'])
    return items, labels, class_names


def _check_images(images: Sequence[dict], json_path: str) -> Dict[int, tuple]:
    """Image id -> (height, width); errors name the JSON and the image.

    Two images with one ``file_name`` would write the same mask and tag entry,
    the second silently replacing the first: an error.
    """
    sizes, owners = {}, {}
    for index, image in enumerate(images):
        missing = [key for key in ('id', 'file_name', 'height', 'width')
                   if key not in image]
        if missing:
            raise ValueError(f'{json_path}: image entry {index} '
                             f'(id {image.get("id")}) has no {", ".join(missing)}')
        image_id, name = int(image['id']), str(image['file_name'])
        problem = plain_file_name(name)
        if problem is not None:
            # its mask, split line and tag entry are named after it: refuse
            # rather than write outside the output folder
            raise ValueError(
                f'{json_path}: image {image_id} has file_name {name!r}, but {problem};'
                ' COCO file names are plain names (COCO_train2014_000000000009.jpg) '
                'and the mask is written under the output folder by that name')
        if image_id in sizes:
            raise ValueError(f'{json_path}: image id {image_id} is listed twice')
        stem = osp.splitext(name)[0]
        if stem in owners:
            raise ValueError(
                f'{json_path}: file name {name} is used by images {owners[stem]} '
                f'and {image_id}; their masks and tags would overwrite each other')
        owners[stem] = image_id
        sizes[image_id] = (int(image['height']), int(image['width']))
    return sizes


def _check_annotation(ann: dict, json_path: str, sizes: Dict[int, tuple],
                      labels: Dict[int, int]) -> None:
    """Raise naming the JSON and the annotation when it cannot be painted."""
    name = f'{json_path}: annotation {ann.get("id")}'
    missing = [key for key in ('image_id', 'category_id', 'segmentation')
               if key not in ann]
    if missing:
        raise ValueError(f'{name} has no {", ".join(f"`{key}`" for key in missing)}')
    if int(ann['image_id']) not in sizes:
        raise ValueError(f'{name} names unknown image {ann["image_id"]}')
    if ann['category_id'] not in labels:
        raise ValueError(f'{name} has unknown category {ann["category_id"]}')
    segmentation = ann['segmentation']
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list) or not all(
                    isinstance(value, (int, float)) for value in polygon):
                raise ValueError(f'{name}: `segmentation` must be polygons (lists of '
                                 f'numbers), got {str(polygon)[:40]}')
    elif isinstance(segmentation, dict):
        if 'counts' not in segmentation or 'size' not in segmentation:
            raise ValueError(f'{name}: an RLE `segmentation` needs `counts` and '
                             '`size`')
        if [int(side) for side in segmentation['size']] != list(
                sizes[int(ann['image_id'])]):
            raise ValueError(f'{name}: RLE of size {segmentation["size"]} for an '
                             f'image of {list(sizes[int(ann["image_id"])])}')
    else:
        raise ValueError(f'{name}: `segmentation` is a {type(segmentation).__name__};'
                         ' expected polygons (a list) or an RLE (a dict with '
                         '`counts` and `size`)')


def convert_item(item: dict, out_dir: str, labels: Dict[int, int]) -> int:
    """Write one image's mask; returns its number of annotations."""
    label = instances_to_label(item['height'], item['width'], item['annotations'],
                               labels)
    save_label_png(osp.join(out_dir, f'{item["stem"]}.png'), label)
    return len(item['annotations'])


def image_tags(item: dict, labels: Dict[int, int]) -> List[int]:
    """Sorted labels of every category annotated in the image (crowd included)."""
    return sorted({labels[ann['category_id']] for ann in item['annotations']})


def write_tag_file(path: str, class_names: Sequence[str],
                   tags: Dict[str, List[int]]) -> None:
    """Atomically write ``{"classes": [...], "tags": {stem: [ids]}}``."""
    save_text(path, json.dumps(dict(classes=list(class_names), tags=tags)))


def convert_coco(json_path: str, out_root: str, split: str,
                 num_workers: int = 0, resume: bool = True,
                 chunksize: int = 16) -> dict:
    """Convert one COCO split to masks, a split file and a tag file.

    Writes ``<out_root>/SegmentationClass/<split>/<stem>.png``,
    ``<out_root>/ImageSets/<split>.txt`` (every image of the JSON) and
    ``<out_root>/tags/<split>.json``. Masks are written atomically, sharded over
    ranks and skipped when present (``resume``); split and tag files come from the
    JSON alone and are written by rank 0.

    Returns:
        dict: ``images``, ``converted`` (by this call on this rank),
        ``without_annotation`` and ``classes``.
    """
    items, labels, class_names = load_instances(json_path)
    mask_dir = osp.join(out_root, 'SegmentationClass', split)
    converted = run_offline_job(
        items, functools.partial(convert_item, out_dir=mask_dir, labels=labels),
        output_path=lambda item: osp.join(mask_dir, f'{item["stem"]}.png'),
        num_workers=num_workers, desc=f'COCO {split} -> PNG', resume=resume,
        chunksize=chunksize)
    if get_dist_info()[0] == 0:
        write_split(osp.join(out_root, 'ImageSets', f'{split}.txt'),
                    [item['stem'] for item in items])
        write_tag_file(osp.join(out_root, 'tags', f'{split}.json'), class_names,
                       {item['stem']: image_tags(item, labels) for item in items})
    return dict(images=len(items), converted=len(converted),
                without_annotation=sum(not item['annotations'] for item in items),
                classes=len(class_names))
