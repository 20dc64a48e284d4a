"""The MARS bias report: what Stage 3 removed, per class, and why (rank 0).

:func:`bias_report` streams once over the baseline and debiased labels of a finished
run (per-class counts; with GT masks also baseline vs debiased IoU) and recomputes the
debias map of the gallery images only; :func:`write_report` writes into one folder:

* ``report.json``: per-class numbers (foreground removed, centroid counts, selection
  cut, distance quantiles, IoU before/after when GT exists) and the settings;
* ``report.md``: the same as tables, with the figures;
* ``removed.png``, ``distances.png``, ``gallery.png``: the figures of
  :mod:`mars_mm.debias.figures`.
"""
import heapq
import json
import math
import os
import os.path as osp
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mars_mm.core.metrics import ConfusionMatrix, map_special_labels
from mars_mm.debias import passes
from mars_mm.debias.figures import plot_distances, plot_gallery, plot_removed
from mars_mm.debias.formats import (
    load_centroid_file,
    load_centroid_summary,
    load_pseudo_label,
    load_rgb,
)
from mars_mm.debias.settings import REPORT_DEFAULTS, DebiasSettings, Sample
from mars_mm.utils.io import BIASED_INDEX, load_label_png, save_text


# --------------------------------------------------------------------- statistics
def removal_stats(baseline: np.ndarray, debiased: np.ndarray,
                  num_classes: int) -> Dict[str, np.ndarray]:
    """Per-class foreground and removed pixel counts of one image.

    Args:
        baseline: ``(H, W)`` baseline pseudo label.
        debiased: ``(H, W)`` debiased label (254 = removed).
        num_classes: C + 1.

    Returns:
        dict: ``foreground`` and ``removed``, each ``(C + 1,)`` int64 (index = class
        of the baseline label; row 0 stays zero).
    """
    baseline = np.asarray(baseline, dtype=np.int64)
    foreground = (baseline > 0) & (baseline < num_classes)
    removed = foreground & (np.asarray(debiased) == BIASED_INDEX)
    return dict(
        foreground=np.bincount(baseline[foreground], minlength=num_classes),
        removed=np.bincount(baseline[removed], minlength=num_classes))


def bias_report(samples: Sequence[Sample], settings: DebiasSettings,
                out_dir: Optional[str] = None) -> Dict[str, Any]:
    """Statistics of what was removed, and the figures (rank 0).

    Streams over the baseline and debiased labels once (per-class counts, per class
    a heap of the most-affected images; with GT masks also baseline vs debiased
    IoU), then recomputes the debias map of the gallery images only. The gallery
    takes the classes in turn, so every class MARS touched appears.

    Args:
        samples: the split, as debiased.
        settings: the run's settings (``settings.report``: ``gallery`` images at
            most, figure ``dpi``).
        out_dir: destination; default ``<work_dir>/report``.

    Returns:
        dict: the JSON content of the report.
    """
    out_dir = out_dir or osp.join(settings.work_dir, 'report')
    options = {**REPORT_DEFAULTS, **(settings.report or {})}
    num_classes = settings.num_classes
    foreground = np.zeros(num_classes, np.int64)
    removed = np.zeros(num_classes, np.int64)
    images_with = np.zeros(num_classes, np.int64)
    images_touched = np.zeros(num_classes, np.int64)
    baseline_cm, debiased_cm = ConfusionMatrix(num_classes), \
        ConfusionMatrix(num_classes)
    has_gt = True
    # per class (the class an image lost most pixels of): its most affected images,
    # so that the gallery shows every class MARS touched, not only the worst one
    heaps: Dict[int, List[tuple]] = {}
    for order, sample in enumerate(samples):
        baseline = load_pseudo_label(settings.label_path(sample.stem), num_classes)
        debiased = load_label_png(settings.output_label_path(sample.stem))
        if debiased.shape != baseline.shape:
            raise ValueError(f'{settings.output_label_path(sample.stem)}: size '
                             f'{debiased.shape}, baseline {baseline.shape}')
        stats = removal_stats(baseline, debiased, num_classes)
        foreground += stats['foreground']
        removed += stats['removed']
        images_with += stats['foreground'] > 0
        images_touched += stats['removed'] > 0
        fg_total = int(stats['foreground'].sum())
        if options['gallery'] and fg_total and stats['removed'].any():
            key = (int(stats['removed'].sum()) / fg_total, -order)
            heap = heaps.setdefault(int(stats['removed'].argmax()), [])
            if len(heap) < options['gallery']:
                heapq.heappush(heap, (key, sample))
            elif key > heap[0][0]:
                heapq.heapreplace(heap, (key, sample))
        if has_gt and sample.gt_path is not None:
            gt = load_label_png(sample.gt_path)
            baseline_cm.update(gt, map_special_labels(baseline))
            debiased_cm.update(gt, map_special_labels(debiased))
        else:
            has_gt = False
    centroid_data = load_centroid_summary(settings.centroid_file)
    gallery = []
    if options['gallery'] and osp.isfile(settings.centroid_file):
        centroids = load_centroid_file(settings.centroid_file)
        for (fraction, _), sample in _gallery_order(heaps, options['gallery']):
            result = passes.debias_sample(sample, settings, centroids, always_map=True)
            gallery.append(dict(
                stem=sample.stem, removed_fraction=fraction,
                image=load_rgb(sample.img_path) if sample.img_path else None,
                baseline=load_pseudo_label(settings.label_path(sample.stem),
                                           num_classes),
                debias_map=result.debias_map, debiased=result.label))
    summary = dict(
        settings=_jsonable(asdict(settings)), num_images=len(samples),
        class_names=settings.class_names, foreground_pixels=foreground,
        removed_pixels=removed, images_with_class=images_with,
        images_with_removal=images_touched, centroids=centroid_data,
        gt=dict(baseline=baseline_cm.summary(), debiased=debiased_cm.summary())
        if has_gt and len(samples) else None)
    return write_report(out_dir, summary, gallery, dpi=options['dpi'])


def _gallery_order(heaps: Dict[int, List[tuple]], size: int) -> List[tuple]:
    """Round robin over classes (most affected class first), worst image first."""
    queues = sorted((sorted(heap, reverse=True) for heap in heaps.values()),
                    key=lambda queue: queue[0][0], reverse=True)
    chosen = []
    for rank in range(size):
        for queue in queues:
            if rank < len(queue) and len(chosen) < size:
                chosen.append(queue[rank])
    return chosen


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


# ------------------------------------------------------------------------ writing
def class_table(summary: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per foreground class with the report's per-class numbers."""
    names = summary['class_names']
    centroids = summary['centroids']
    class_ids = np.asarray(centroids['class_ids'])
    distance = np.asarray(centroids['distance'], dtype=np.float64)
    gt = summary.get('gt')
    rows = []
    for class_id in range(1, len(names)):
        fg = int(summary['foreground_pixels'][class_id])
        rm = int(summary['removed_pixels'][class_id])
        own = distance[class_ids == class_id]
        row = dict(
            class_id=class_id, name=names[class_id],
            images=int(summary['images_with_class'][class_id]),
            images_with_removal=int(summary['images_with_removal'][class_id]),
            foreground_pixels=fg, removed_pixels=rm,
            removed_fraction=rm / fg if fg else None,
            num_centroids=int(len(own)),
            num_selected=int(centroids['num_selected'][class_id]),
            cut=_finite(centroids['cut'][class_id]),
            distance_quantiles=(np.quantile(own, [0.1, 0.5, 0.9]).tolist()
                                if len(own) else None),
            has_debiased_centroid=bool(centroids['debiased_valid'][class_id]))
        if gt is not None:
            row['iou_baseline'] = _finite(gt['baseline']['iou'][class_id])
            row['iou_debiased'] = _finite(gt['debiased']['iou'][class_id])
        rows.append(row)
    return rows


def _finite(value: Any) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def _markdown(report: Dict[str, Any], figures: Dict[str, str]) -> str:
    rows = report['classes']
    settings = report['settings']
    refinement = settings.get('refinement', {})
    lines = [
        '# MARS bias report', '',
        f'{report["num_images"]} images; {report["removed_pixels"]:,} of '
        f'{report["foreground_pixels"]:,} baseline foreground pixels '
        f'({100 * report["removed_fraction"]:.2f}%) marked removed (254).', '',
        '| setting | value |', '| --- | --- |']
    for key in ('k_fg', 'k_bg', 'alpha', 'centring', 'tag_source', 'seed',
                'pseudo_label_dir', 'embedding_dir'):
        lines.append(f'| {key} | `{settings.get(key)}` |')
    lines.append(f'| refinement | `{refinement}` |')
    lines += ['', '## Per class', '']
    has_gt = report.get('gt') is not None
    header = ('| class | images | fg pixels | removed | images touched | centroids '
              '| selected | cut |')
    rule = '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
    if has_gt:
        header += ' IoU baseline | IoU debiased |'
        rule += ' ---: | ---: |'
    lines += [header, rule]
    for row in rows:
        fraction = row['removed_fraction']
        cut = row['cut']
        line = (f'| {row["name"]} | {row["images"]} | {row["foreground_pixels"]:,} | '
                f'{"-" if fraction is None else f"{100 * fraction:.1f}%"} | '
                f'{row["images_with_removal"]} | {row["num_centroids"]} | '
                f'{row["num_selected"]} | {"-" if cut is None else f"{cut:.3f}"} |')
        if has_gt:
            line += ''.join(' - |' if row[key] is None else f' {row[key]:.1f} |'
                            for key in ('iou_baseline', 'iou_debiased'))
        lines.append(line)
    if has_gt:
        gt = report['gt']
        lines += ['', f'Pseudo-label mIoU against GT (254 and 255 as background): '
                  f'baseline {gt["baseline"]["miou"]:.2f}, debiased '
                  f'{gt["debiased"]["miou"]:.2f}.']
    captions = dict(
        removed='Share of each class\'s baseline foreground that MARS removed.',
        distances='Distance of each foreground centroid to the mean background '
                  'centroid; the red part (right of the dashed cut) forms the '
                  'debiased centroid V_c, grey is the background centroids\' own '
                  'distance.',
        gallery='Most affected images: image, baseline label, debias map, debiased '
                'label (removed pixels in magenta).')
    for key, name in figures.items():
        lines += ['', f'## {key.capitalize()}', '', captions[key], '',
                  f'![{key}]({name})']
    return '\n'.join(lines) + '\n'


def write_report(out_dir: str, summary: Dict[str, Any],
                 gallery: Sequence[Dict[str, Any]], dpi: int = 150) -> Dict[str, Any]:
    """Write ``report.json``, ``report.md`` and the figures into ``out_dir``.

    Args:
        out_dir: destination folder.
        summary: statistics from :func:`bias_report`.
        gallery: dicts with ``stem``, ``removed_fraction``, ``image`` (RGB),
            ``baseline``, ``debias_map``, ``debiased``.
        dpi: figure resolution.

    Returns:
        dict: the JSON content.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = class_table(summary)
    foreground = int(np.sum(summary['foreground_pixels']))
    removed = int(np.sum(summary['removed_pixels']))
    report = dict(
        num_images=summary['num_images'], foreground_pixels=foreground,
        removed_pixels=removed, removed_fraction=removed / foreground if foreground
        else 0.0, settings=summary['settings'], classes=rows,
        gallery=[dict(stem=e['stem'], removed_fraction=e['removed_fraction'])
                 for e in gallery])
    if summary.get('gt') is not None:
        report['gt'] = {name: dict(miou=_finite(scores['miou']),
                                   iou=[_finite(v) for v in scores['iou']])
                        for name, scores in summary['gt'].items()}
    figures = {}
    plot_removed(rows, osp.join(out_dir, 'removed.png'), dpi)
    figures['removed'] = 'removed.png'
    plot_distances(summary, rows, osp.join(out_dir, 'distances.png'), dpi)
    figures['distances'] = 'distances.png'
    if gallery:
        plot_gallery(gallery, summary['class_names'],
                     osp.join(out_dir, 'gallery.png'), dpi)
        figures['gallery'] = 'gallery.png'
    save_text(osp.join(out_dir, 'report.json'), json.dumps(report, indent=1))
    save_text(osp.join(out_dir, 'report.md'), _markdown(report, figures))
    return report
