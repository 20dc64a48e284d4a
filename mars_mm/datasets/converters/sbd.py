"""SBD (Hariharan et al. 2011) to VOC-style PNG masks and the ``train_aug`` split.

SBD ships ``dataset/cls/<stem>.mat`` files holding a MATLAB struct ``GTcls`` whose
field ``Segmentation`` is the ``(H, W)`` class-index mask (0 background, 1..20 the VOC
classes, no border labels), and ``dataset/{train,val}.txt``.

``train_aug`` is the standard WSSS training set: the union of SBD train, SBD val and
VOC 2012 train, minus VOC 2012 val (10,582 images). Its masks go to
``SegmentationClassAug/``: images with a VOC 2012 mask keep it (finer, with the 255
border band), the others get their SBD mask.
"""
import functools
import os.path as osp
import shutil
from typing import List, Optional, Sequence

import numpy as np
import scipy.io

from mars_mm.utils.io import (
    IGNORE_INDEX,
    load_label_png,
    save_label_png,
    save_text,
    save_with,
)
from mars_mm.utils.offline import get_dist_info, run_offline_job

from ..wsss_base import read_split_file

VOC_NUM_CLASSES = 21


def read_sbd_mat(path: str) -> np.ndarray:
    """The ``GTcls.Segmentation`` mask of an SBD ``cls/*.mat`` file.

    Returns:
        np.ndarray: ``(H, W)`` uint8 class indices 0..20.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when the file is missing, is
        not a MATLAB file, lacks ``GTcls.Segmentation`` or holds values above 20.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'SBD annotation not found: {path}')
    try:
        content = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for broken files
        raise ValueError(f'{path}: cannot read MATLAB file ({err})') from err
    try:
        mask = np.asarray(content['GTcls'].Segmentation)
    except (KeyError, AttributeError) as err:
        raise ValueError(f'{path}: no GTcls.Segmentation in the file') from err
    if mask.ndim != 2:
        raise ValueError(f'{path}: GTcls.Segmentation has shape {mask.shape}, '
                         'expected (H, W)')
    if mask.size and (mask.min() < 0 or mask.max() >= VOC_NUM_CLASSES):
        raise ValueError(f'{path}: class values {mask.min()}..{mask.max()} outside '
                         f'0..{VOC_NUM_CLASSES - 1}')
    return mask.astype(np.uint8)


def check_voc_mask(path: str) -> np.ndarray:
    """A VOC ``SegmentationClass`` mask, decoded and checked before it is copied.

    Raises:
        ValueError: naming ``path`` when it does not decode (truncated) or holds a
        value other than 0..20 and 255.
    """
    mask = load_label_png(path)
    values = np.unique(mask)
    bad = values[(values >= VOC_NUM_CLASSES) & (values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f'{path}: class values {bad.tolist()} outside '
                         f'0..{VOC_NUM_CLASSES - 1} (and not 255)')
    return mask


def train_aug_stems(sbd_train: Sequence[str], sbd_val: Sequence[str],
                    voc_train: Sequence[str], voc_val: Sequence[str]) -> List[str]:
    """(SBD train + SBD val + VOC train) - VOC val, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def convert_one(stem: str, voc_root: str, sbd_root: str, out_dir: str) -> str:
    """Write ``<out_dir>/<stem>.png`` from the VOC mask if it exists, else from SBD.

    Returns:
        str: ``'voc'`` or ``'sbd'``, the source used.
    """
    out_path = osp.join(out_dir, f'{stem}.png')
    voc_mask = osp.join(voc_root, 'SegmentationClass', f'{stem}.png')
    if osp.isfile(voc_mask):
        check_voc_mask(voc_mask)
        save_with(out_path, lambda tmp: shutil.copyfile(voc_mask, tmp))
        return 'voc'
    save_label_png(out_path, read_sbd_mat(osp.join(sbd_root, 'cls', f'{stem}.mat')))
    return 'sbd'


def sbd_job_items(voc_root: str, sbd_root: str) -> List[str]:
    """The ``train_aug`` stems from the four split files (errors name a missing one)."""
    split_dir = osp.join(voc_root, 'ImageSets', 'Segmentation')
    return train_aug_stems(read_split_file(osp.join(sbd_root, 'train.txt')),
                           read_split_file(osp.join(sbd_root, 'val.txt')),
                           read_split_file(osp.join(split_dir, 'train.txt')),
                           read_split_file(osp.join(split_dir, 'val.txt')))


def write_split(path: str, stems: Sequence[str]) -> None:
    """Atomically write one stem per line."""
    save_text(path, ''.join(f'{stem}\n' for stem in stems))


def check_images(voc_root: str, stems: Sequence[str],
                 img_suffix: str = '.jpg') -> Optional[str]:
    """The first stem whose image is missing from ``JPEGImages``, or None."""
    for stem in stems:
        if not osp.isfile(osp.join(voc_root, 'JPEGImages', stem + img_suffix)):
            return stem
    return None


def convert_sbd(voc_root: str, sbd_root: str, out_name: str = 'SegmentationClassAug',
                split_name: str = 'train_aug', num_workers: int = 0,
                resume: bool = True) -> dict:
    """Write ``<voc_root>/<out_name>/*.png`` and the ``train_aug`` split file.

    Args:
        voc_root: ``VOCdevkit/VOC2012``.
        sbd_root: SBD's ``benchmark_RELEASE/dataset`` (holds ``cls/`` and the splits).
        out_name: mask folder under ``voc_root``.
        split_name: split file name under ``ImageSets/Segmentation``.
        num_workers: worker processes.
        resume: skip masks already written.

    Returns:
        dict: ``images`` (in the split), ``converted`` (this call and rank),
        ``from_voc`` / ``from_sbd`` counts of the converted masks.

    Raises:
        FileNotFoundError: a split file, an image or an SBD ``.mat`` is missing
            (named in the message).
    """
    stems = sbd_job_items(voc_root, sbd_root)
    missing = check_images(voc_root, stems)
    if missing is not None:
        raise FileNotFoundError(
            f'{missing} is in train_aug but {voc_root}/JPEGImages/{missing}.jpg does '
            'not exist (is voc_root VOCdevkit/VOC2012?)')
    out_dir = osp.join(voc_root, out_name)
    sources = run_offline_job(
        stems,
        functools.partial(convert_one, voc_root=voc_root, sbd_root=sbd_root,
                          out_dir=out_dir),
        output_path=lambda stem: osp.join(out_dir, f'{stem}.png'),
        num_workers=num_workers, desc='SBD -> PNG', resume=resume)
    if get_dist_info()[0] == 0:
        write_split(osp.join(voc_root, 'ImageSets', 'Segmentation',
                             f'{split_name}.txt'), stems)
    return dict(images=len(stems), converted=len(sources),
                from_voc=sources.count('voc'), from_sbd=sources.count('sbd'))
