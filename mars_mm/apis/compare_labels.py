"""Agreement of two folders of label PNGs, per class, with a gallery of differences.

Used by ``tools/analysis/compare_labels.py``; the first use is mars_mm's debiased
VOC labels against the official MARS masks (RS+EPM debiased by the paper's authors).
Neither folder is ground truth: the joint counts are symmetric in meaning, rows are
folder A and columns folder B.

Every value a label may hold is counted on its own: the classes ``0..C-1``, 254
(removed by MARS) and 255 (unlabelled / ignored), so the report can say where one
folder's removed pixels sit in the other. The ``(C + 2) x (C + 2)`` joint matrix is
accumulated image by image (workers send each image's few non-zero cells), so the
memory does not grow with the number of images (80k COCO masks included); the
gallery keeps only the most different images in a bounded heap.

Per value ``v``, the IoU of A vs B is ``|A = v and B = v| / |A = v or B = v|``
(:func:`mars_mm.core.metrics.scores_from_confusion` on the joint matrix, A as rows).
The files of the report are rendered by :mod:`mars_mm.apis.compare_report`.
"""
import functools
import heapq
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mars_mm.apis.compare_report import (
    comparison_html,
    comparison_markdown,
    confusion_csv,
    write_gallery,
)
from mars_mm.core.metrics import scores_from_confusion
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX, load_label_png, save_text
from mars_mm.utils.offline import run_offline_job

#: Values counted besides the classes, in the order they follow class C-1.
SPECIAL_VALUES = (BIASED_INDEX, IGNORE_INDEX)
SPECIAL_NAMES = {BIASED_INDEX: 'removed (254)', IGNORE_INDEX: 'ignore (255)'}
MISSING_MODES = ('error', 'skip')


def value_lookup(num_classes: int) -> np.ndarray:
    """``(256,)`` int64 table: label value -> row of the joint matrix, -1 if invalid.

    Classes ``0..C-1`` keep their index; 254 and 255 become ``C`` and ``C + 1``.
    """
    if not 0 < num_classes <= min(SPECIAL_VALUES):
        raise ValueError(f'num_classes must be in 1..{min(SPECIAL_VALUES)}, got '
                         f'{num_classes}')
    table = np.full(256, -1, dtype=np.int64)
    table[:num_classes] = np.arange(num_classes)
    for offset, value in enumerate(SPECIAL_VALUES):
        table[value] = num_classes + offset
    return table


def joint_counts(label_a: np.ndarray, label_b: np.ndarray, num_classes: int,
                 path_a: str = '<A>', path_b: str = '<B>') -> np.ndarray:
    """``(C + 2, C + 2)`` int64 counts of (value in A, value in B) over all pixels.

    Args:
        label_a, label_b: ``(H, W)`` uint8 labels, values ``0..C-1``, 254 or 255.
        num_classes: C, background included.
        path_a, path_b: the files, for error messages.

    Raises:
        ValueError: naming the files when the sizes differ, or naming a file and
            its values when one falls outside ``0..C-1`` (254 and 255 excepted).
    """
    label_a, label_b = np.asarray(label_a), np.asarray(label_b)
    if label_a.shape != label_b.shape:
        raise ValueError(f'size mismatch: {path_a} is {label_a.shape[1]}x'
                         f'{label_a.shape[0]} (WxH), {path_b} is '
                         f'{label_b.shape[1]}x{label_b.shape[0]}')
    table = value_lookup(num_classes)
    rows = table[label_a]
    cols = table[label_b]
    for path, label, index in ((path_a, label_a, rows), (path_b, label_b, cols)):
        if (index < 0).any():
            bad = np.unique(label[index < 0]).tolist()
            raise ValueError(f'{path}: values {bad} outside 0..{num_classes - 1} '
                             f'(254 and 255 excepted)')
    size = num_classes + len(SPECIAL_VALUES)
    return np.bincount((rows * size + cols).ravel(),
                       minlength=size * size).reshape(size, size)


def compare_pair(item: Tuple[str, str, str], num_classes: int) -> tuple:
    """One image: ``(stem, flat cell indices, their counts, differing, pixels)``.

    Only the non-zero cells travel back from a worker (a few dozen numbers, not the
    ``(C + 2)^2`` matrix).
    """
    stem, path_a, path_b = item
    counts = joint_counts(load_label_png(path_a), load_label_png(path_b),
                          num_classes, path_a, path_b)
    flat = counts.ravel()
    cells = np.flatnonzero(flat)
    pixels = int(flat.sum())
    return stem, cells, flat[cells], pixels - int(np.trace(counts)), pixels


class AgreementAccumulator:
    """Sums per-image results; keeps the ``gallery_size`` most different images.

    Args:
        num_classes: C.
        gallery_size: how many images the gallery shows (0: none).
    """

    def __init__(self, num_classes: int, gallery_size: int = 12) -> None:
        size = num_classes + len(SPECIAL_VALUES)
        self.num_classes = num_classes
        self.counts = np.zeros((size, size), dtype=np.int64)
        self.num_images = 0
        self.differing_images = 0
        self.gallery_size = gallery_size
        # min-heap of (differing fraction, negated stem order key, stem): the root
        # is the least different kept image; ties keep the alphabetically first
        self._heap: List[tuple] = []

    def add(self, result: tuple) -> None:
        stem, cells, values, differing, pixels = result
        self.counts.ravel()[cells] += values
        self.num_images += 1
        self.differing_images += int(differing > 0)
        if not self.gallery_size or differing == 0:
            return
        entry = (differing / pixels, _reverse_order_key(stem), stem)
        if len(self._heap) < self.gallery_size:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    def gallery(self) -> List[Tuple[str, float]]:
        """``(stem, differing fraction)``, most different first (ties: by stem)."""
        return [(stem, fraction) for fraction, _, stem in
                sorted(self._heap, reverse=True)]


def _reverse_order_key(stem: str) -> tuple:
    """A key that sorts stems in reverse, so a heap on it prefers the first stem."""
    return tuple(-ord(char) for char in stem) + (1,)


def label_pairs(dir_a: str, dir_b: str, suffix: str = '.png',
                missing: str = 'error') -> Tuple[List[Tuple[str, str, str]], dict]:
    """``(stem, path in A, path in B)`` for the stems of both folders.

    Args:
        dir_a, dir_b: folders of ``<stem><suffix>`` labels.
        suffix: file ending of the labels.
        missing: ``'error'``: a stem found in one folder only is an error naming
            its file; ``'skip'``: compare the stems both folders have.

    Returns:
        tuple: the pairs (sorted by stem) and ``dict(only_a=[...], only_b=[...])``.

    Raises:
        FileNotFoundError: a folder does not exist, or (``missing='error'``) a
            label has no counterpart.
        ValueError: the folders share no stem.
    """
    if missing not in MISSING_MODES:
        raise ValueError(f'missing must be one of {MISSING_MODES}, got {missing!r}')
    stems = []
    for folder in (dir_a, dir_b):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'label folder not found: {folder}')
        stems.append({name[:-len(suffix)] for name in os.listdir(folder)
                      if name.endswith(suffix) and not name.startswith('.')})
    only_a, only_b = sorted(stems[0] - stems[1]), sorted(stems[1] - stems[0])
    if missing == 'error' and (only_a or only_b):
        lines = []
        for only, have, lack in ((only_a, dir_a, dir_b), (only_b, dir_b, dir_a)):
            if only:
                lines.append(f'{len(only)} label(s) of {have} have no counterpart in '
                             f'{lack}, e.g. {osp.join(have, only[0] + suffix)} (no '
                             f'{osp.join(lack, only[0] + suffix)})')
        raise FileNotFoundError('; '.join(lines) + '. Compare the common stems '
                                'with --missing skip.')
    common = sorted(stems[0] & stems[1])
    if not common:
        raise ValueError(f'{dir_a} and {dir_b} share no <stem>{suffix} file')
    pairs = [(stem, osp.join(dir_a, stem + suffix), osp.join(dir_b, stem + suffix))
             for stem in common]
    return pairs, dict(only_a=only_a, only_b=only_b)


def _number(value: Any, digits: int = 4) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def agreement_summary(counts: np.ndarray, class_names: Sequence[str],
                      top: int = 15) -> Dict[str, Any]:
    """The report's numbers from the ``(C + 2, C + 2)`` joint counts.

    Returns:
        dict: ``pixels``, ``agreement`` (% of pixels with the same value),
        ``miou`` (mean IoU over the classes either folder uses), ``values`` (one
        row per value: ``name``, ``value``, ``pixels_a``, ``pixels_b``, ``both``,
        ``iou``, ``only_a``, ``only_b``; percentages of the union),
        ``confusions`` (the ``top`` largest off-diagonal cells) and ``special``
        (for 254 and 255 in each folder: what the other folder holds there).
    """
    num_classes = len(class_names)
    names = list(class_names) + [SPECIAL_NAMES[v] for v in SPECIAL_VALUES]
    values = list(range(num_classes)) + list(SPECIAL_VALUES)
    scores = scores_from_confusion(counts)
    total = int(counts.sum())
    rows_a, cols_b = counts.sum(axis=1), counts.sum(axis=0)
    table = []
    for index, (name, value) in enumerate(zip(names, values)):
        table.append(dict(
            name=name, value=value, pixels_a=int(rows_a[index]),
            pixels_b=int(cols_b[index]), both=int(counts[index, index]),
            iou=_number(scores['iou'][index]), only_a=_number(scores['fn'][index]),
            only_b=_number(scores['fp'][index])))
    class_iou = scores['iou'][:num_classes]
    cells = [(int(counts[i, j]), i, j) for i in range(len(values))
             for j in range(len(values)) if i != j and counts[i, j]]
    confusions = [dict(a=names[i], b=names[j], value_a=values[i], value_b=values[j],
                       pixels=n, share=_number(100 * n / total))
                  for n, i, j in sorted(cells, key=lambda c: (-c[0], c[1], c[2]))
                  [:top]]
    special = {}
    for offset, value in enumerate(SPECIAL_VALUES):
        index = num_classes + offset
        for side, line, other in (('a', counts[index, :], 'b'),
                                  ('b', counts[:, index], 'a')):
            amount = int(line.sum())
            where = [dict(name=names[j], value=values[j], pixels=int(line[j]),
                          share=_number(100 * line[j] / amount))
                     for j in np.argsort(-line, kind='stable') if line[j]]
            special[f'{value}_in_{side}'] = dict(pixels=amount, other=other,
                                                 where=where)
    return dict(
        names=names, pixels=total,
        agreement=_number(100 * np.trace(counts) / total) if total else None,
        miou=_number(np.nanmean(class_iou)) if np.isfinite(class_iou).any()
        else None,
        values=table, confusions=confusions, special=special)


def compare_labels(dir_a: str, dir_b: str, class_names: Sequence[str],
                   out_dir: Optional[str] = None, image_dir: Optional[str] = None,
                   suffix: str = '.png', missing: str = 'error',
                   gallery_size: int = 12, num_workers: int = 0) -> Dict[str, Any]:
    """Compare two label folders; write the report when ``out_dir`` is given.

    Args:
        dir_a, dir_b: folders of ``<stem><suffix>`` label PNGs (palette or grey).
        class_names: the C class names, background first.
        out_dir: where ``report.md``, ``report.html``, ``report.json``,
            ``confusion.csv`` and ``gallery/*.png`` go (nothing is written
            elsewhere).
        image_dir: folder of ``<stem>.jpg`` photos shown in the gallery.
        suffix: file ending of the labels.
        missing: ``'error'`` or ``'skip'`` (see :func:`label_pairs`).
        gallery_size: how many of the most different images to show.
        num_workers: worker processes (0: this process).

    Returns:
        dict: ``report.json``'s content (``summary`` from
        :func:`agreement_summary`, ``num_images``, ``differing_images``,
        ``gallery``, ``skipped``) plus ``counts``, the joint matrix.
    """
    pairs, skipped = label_pairs(dir_a, dir_b, suffix, missing)
    accumulator = AgreementAccumulator(len(class_names), gallery_size)
    run_offline_job(pairs, functools.partial(compare_pair,
                                             num_classes=len(class_names)),
                    num_workers=num_workers, desc='comparing labels', resume=False,
                    shard_over_ranks=False, chunksize=32, reduce=accumulator.add)
    report = dict(dir_a=dir_a, dir_b=dir_b, classes=list(class_names),
                  num_images=accumulator.num_images,
                  differing_images=accumulator.differing_images,
                  summary=agreement_summary(accumulator.counts, class_names),
                  skipped=skipped, gallery=[])
    if out_dir is not None:
        os.makedirs(osp.join(out_dir, 'gallery'), exist_ok=True)
        by_stem = {stem: (path_a, path_b) for stem, path_a, path_b in pairs}
        report['gallery'] = write_gallery(out_dir, accumulator.gallery(), by_stem,
                                          image_dir)
        save_text(osp.join(out_dir, 'confusion.csv'),
                  confusion_csv(accumulator.counts, report['summary']['names']))
        save_text(osp.join(out_dir, 'report.json'), json.dumps(report, indent=1))
        save_text(osp.join(out_dir, 'report.md'), comparison_markdown(report))
        save_text(osp.join(out_dir, 'report.html'), comparison_html(report))
    else:
        report['gallery'] = [dict(stem=stem, differing=_number(100 * fraction, 2))
                             for stem, fraction in accumulator.gallery()]
    report['counts'] = accumulator.counts
    return report


def class_names_from(spec: str) -> List[str]:
    """Class names from ``voc``, ``coco``, a number of classes, or a file.

    A file lists the foreground classes one per line, as ``classes.txt`` of your
    own data (``TaggedImageDataset``): background is added as class 0.

    Raises:
        FileNotFoundError: naming ``spec`` when it is neither a preset nor a file.
    """
    from mars_mm.datasets.class_names import VOC_CLASSES
    from mars_mm.datasets.wsss_coco import COCO_CLASSES
    presets = dict(voc=VOC_CLASSES, coco=COCO_CLASSES)
    if spec.lower() in presets:
        return list(presets[spec.lower()])
    if spec.isdigit():
        return ['background'] + [str(index) for index in range(1, int(spec))]
    if not osp.isfile(spec):
        raise FileNotFoundError(f'--classes {spec}: not voc, coco, a number of '
                                'classes or a classes.txt file')
    with open(spec) as handle:
        names = [line.strip() for line in handle if line.strip()]
    return ['background'] + names
