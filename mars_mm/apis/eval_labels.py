"""Score a folder of label PNGs (pseudo labels, predictions) against ground truth.

Used by ``tools/analysis/eval_labels.py``. The confusion matrix is accumulated image
by image (:class:`mars_mm.core.metrics.ConfusionMatrix`), so memory does not grow
with the number of images; workers score chunks of images and their matrices are
summed.

Pseudo labels may hold 254 (removed by MARS) and 255 (unlabelled). By default both
count as background (``special='background'``: the label claims no class there, the
convention of the WSSS literature for pseudo-label mIoU); ``special='ignore'`` drops
those pixels from scoring instead. Ground-truth 255 is always ignored, as in mmseg's
``IoUMetric``.
"""
import csv
import functools
import io
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from mars_mm.apis.splits import split_dataloader_key
from mars_mm.core.metrics import (
    ConfusionMatrix,
    format_table,
    map_special_labels,
    scores_from_confusion,
)
from mars_mm.utils.io import (
    BIASED_INDEX,
    IGNORE_INDEX,
    load_label_png,
    save_text,
    stem_of,
)
from mars_mm.utils.offline import iter_chunks, run_offline_job

SPECIAL_MODES = ('background', 'ignore')


def score_pair(gt: np.ndarray, pred: np.ndarray, num_classes: int,
               special: str = 'background', gt_path: str = '<gt>',
               pred_path: str = '<pred>') -> np.ndarray:
    """``(C, C)`` confusion counts of one image, with checks naming the files.

    Args:
        gt: ``(H, W)`` ground truth, values ``0..C-1`` or 255.
        pred: ``(H, W)`` label, values ``0..C-1``, 254 or 255.
        num_classes: C, background included.
        special: how pred 254/255 count: ``'background'`` or ``'ignore'``.
        gt_path, pred_path: the files, for error messages.

    Raises:
        ValueError: sizes differ, or a value is outside the allowed set.
    """
    if special not in SPECIAL_MODES:
        raise ValueError(f'special must be one of {SPECIAL_MODES}, got {special!r}')
    if gt.shape != pred.shape:
        raise ValueError(f'{pred_path}: size {pred.shape} differs from the ground '
                         f'truth {gt_path} {gt.shape}')
    pred_values = np.unique(pred)
    bad = pred_values[(pred_values >= num_classes) & (pred_values != BIASED_INDEX)
                      & (pred_values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f'{pred_path}: label values {bad.tolist()} outside '
                         f'0..{num_classes - 1} (254/255 excepted)')
    gt_values = np.unique(gt)
    bad = gt_values[(gt_values >= num_classes) & (gt_values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f'{gt_path}: ground-truth values {bad.tolist()} outside '
                         f'0..{num_classes - 1} (255 excepted)')
    gt = gt.astype(np.int64)
    if special == 'ignore':
        gt = np.where((pred == BIASED_INDEX) | (pred == IGNORE_INDEX), IGNORE_INDEX, gt)
        pred = np.where(gt == IGNORE_INDEX, 0, pred)
    else:
        pred = map_special_labels(pred, biased_as=0, ignore_as=0)
    matrix = ConfusionMatrix(num_classes)
    matrix.update(gt, pred)
    return matrix.counts


def _score_chunk(pairs: Sequence[Tuple[str, str]], num_classes: int,
                 special: str) -> np.ndarray:
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for gt_path, pred_path in pairs:
        if not osp.isfile(pred_path):
            raise FileNotFoundError(f'label not found for ground truth {gt_path}: '
                                    f'{pred_path}')
        counts += score_pair(load_label_png(gt_path), load_label_png(pred_path),
                             num_classes, special, gt_path, pred_path)
    return counts


def evaluate_label_files(pairs: Sequence[Tuple[str, str]], num_classes: int,
                         special: str = 'background', num_workers: int = 0,
                         chunk_size: int = 64) -> np.ndarray:
    """Confusion matrix over ``(gt_path, pred_path)`` pairs.

    Returns:
        np.ndarray: ``(C, C)`` int64 counts ``[true, predicted]``.
    """
    chunks = list(iter_chunks(list(pairs), chunk_size))
    partials = run_offline_job(
        chunks, functools.partial(_score_chunk, num_classes=num_classes,
                                  special=special),
        output_path=None, num_workers=num_workers, desc='scoring labels',
        resume=False, shard_over_ranks=False)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for partial in partials:
        counts += partial
    return counts


def dataset_gt_pairs(config: Config, pred_dir: str, split: str = 'train',
                     split_file: Optional[str] = None,
                     data_root: Optional[str] = None,
                     suffix: str = '.png') -> Tuple[List[Tuple[str, str]], List[str]]:
    """``(gt_path, pred_path)`` pairs and class names of a config's split.

    The dataset is ``train_infer_dataloader`` (else ``train_dataloader``) for
    ``split='train'``, ``<split>_dataloader`` otherwise, built without pipeline.

    Args:
        config: a config with the dataloaders of ``configs/_base_/datasets``.
        pred_dir: folder of ``<stem><suffix>`` labels.
        split: ``train``, ``val`` or ``test``.
        split_file: a list of stems to score instead of the config's split file.
        data_root: replaces the dataset's ``data_root``.
        suffix: extension of the labels in ``pred_dir``.
    """
    from mars_mm.datasets.wsss_base import WSSSBaseDataset
    from mars_mm.registry import DATASETS
    dataset_cfg = dict(config[split_dataloader_key(config, split)]['dataset'])
    dataset_cfg['pipeline'] = []
    if data_root is not None:
        dataset_cfg['data_root'] = data_root
    if split_file is not None:
        dataset_cfg['ann_file'] = osp.abspath(split_file)
    dataset_cls = DATASETS.get(dataset_cfg['type'])
    if dataset_cls is not None and issubclass(dataset_cls, WSSSBaseDataset):
        # scoring needs masks, not tags; keep images without foreground
        dataset_cfg.update(with_tags=False, empty_tags='keep', with_seg_map=True)
    dataset = DATASETS.build(dataset_cfg)
    pairs = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        if not info.get('seg_map_path'):
            raise ValueError(f'{info["img_path"]}: the {split} split has no ground '
                             'truth to score against')
        stem = stem_of(info['img_path'])
        pairs.append((info['seg_map_path'], osp.join(pred_dir, stem + suffix)))
    return pairs, list(dataset.metainfo['classes'])


def scores_to_dict(scores: Dict[str, np.ndarray], class_names: Sequence[str],
                   **extra) -> dict:
    """JSON-ready summary (NaN becomes None)."""
    def number(value):
        value = float(value)
        return None if math.isnan(value) else round(value, 4)
    per_class = {name: {key: number(scores[key][index])
                        for key in ('iou', 'fp', 'fn', 'precision', 'recall')}
                 for index, name in enumerate(class_names)}
    return dict(miou=number(scores['miou']), mfp=number(scores['mfp']),
                mfn=number(scores['mfn']), pixel_acc=number(scores['pixel_acc']),
                per_class=per_class, **extra)


def write_scores(path: str, summary: dict) -> None:
    """``.json``: the summary; ``.csv``: one row per class and a mean row."""
    if path.endswith('.csv'):
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(['class', 'iou', 'fp', 'fn', 'precision', 'recall'])
        for name, row in summary['per_class'].items():
            out.writerow([name] + [row[k] for k in ('iou', 'fp', 'fn', 'precision',
                                                    'recall')])
        out.writerow(['mean', summary['miou'], summary['mfp'], summary['mfn'], '',
                      ''])
        text = buffer.getvalue()
    elif path.endswith('.json'):
        text = json.dumps(summary, indent=2)
    else:
        raise ValueError(f'{path}: the output must end in .json or .csv')
    save_text(path, text)


def eval_labels(pred_dir: str, config: Config, split: str = 'train',
                split_file: Optional[str] = None, data_root: Optional[str] = None,
                special: str = 'background', suffix: str = '.png',
                num_workers: int = 0, out: Optional[str] = None) -> dict:
    """Score ``pred_dir`` against a config's split; print-ready table included.

    Returns:
        dict: :func:`scores_to_dict` summary plus ``table`` (plain text),
        ``num_images``, ``pred_dir``, ``split`` and ``special``.
    """
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'label folder not found: {pred_dir}')
    pairs, class_names = dataset_gt_pairs(config, pred_dir, split, split_file,
                                          data_root, suffix)
    counts = evaluate_label_files(pairs, len(class_names), special, num_workers)
    scores = scores_from_confusion(counts)
    summary = scores_to_dict(scores, class_names, num_images=len(pairs),
                             pred_dir=pred_dir, split=split, special=special)
    if out is not None:
        write_scores(out, summary)
    summary['table'] = format_table(scores, class_names)
    return summary
