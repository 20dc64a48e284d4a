"""The MARS bias report: what Stage 3 removed, per class, and why.

Written to one folder by :func:`write_report`:

* ``report.json``: per-class numbers (foreground removed, centroid counts, selection
  cut, distance quantiles, IoU before/after when GT exists) and the settings;
* ``report.md``: the same as tables, with the figures;
* ``removed.png``: share of each class's baseline foreground marked removed;
* ``distances.png``: per class, the histogram of its centroids' distances to the
  background mean, the selected (debiased) part highlighted, the selection cut, and the
  background centroids' own distances as a grey reference;
* ``gallery.png``: image | baseline label | debias map | debiased label for the most
  affected images (removed pixels in magenta).

Figures use matplotlib's Agg backend (no display needed).
"""
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX, atomic_write, voc_palette

#: Colour of removed (254) pixels in figures: a magenta absent from the VOC palette.
REMOVED_RGB = (255, 0, 255)
#: Colour of ignored (255) pixels in figures.
IGNORE_RGB = (224, 224, 192)
SELECTED_COLOUR = '#d62728'
OTHER_COLOUR = '#1f77b4'
BACKGROUND_COLOUR = '#9e9e9e'


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    plt.rcParams.update({'font.size': 8, 'axes.titlesize': 9, 'axes.labelsize': 8,
                         'legend.fontsize': 7, 'figure.dpi': 100})
    return plt


def colourise_label(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` label -> ``(H, W, 3)`` uint8 with VOC colours, 254 magenta."""
    palette = voc_palette().copy()
    palette[BIASED_INDEX] = REMOVED_RGB
    palette[IGNORE_INDEX] = IGNORE_RGB
    return palette[np.asarray(label, dtype=np.uint8)]


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


def plot_removed(rows: Sequence[Dict[str, Any]], path: str, dpi: int = 150) -> None:
    """Horizontal bars: share of baseline foreground removed, per class."""
    plt = _pyplot()
    shown = [row for row in rows if row['foreground_pixels']]
    height = max(2.0, 0.22 * len(shown) + 0.9)
    fig, ax = plt.subplots(figsize=(5.2, height))
    names = [row['name'] for row in shown]
    values = [100 * row['removed_fraction'] for row in shown]
    positions = np.arange(len(shown))
    ax.barh(positions, values, color=SELECTED_COLOUR, alpha=0.8, height=0.7)
    for position, value, row in zip(positions, values, shown):
        ax.text(value + 0.5, position, f'{value:.1f}%  ({row["images"]} img)',
                va='center', fontsize=7)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values + [1.0]) * 1.3 + 5)
    ax.set_xlabel('baseline foreground marked removed (%)')
    ax.set_title('Share of each class\'s pseudo-label pixels removed by MARS')
    ax.spines[['top', 'right']].set_visible(False)
    fig.tight_layout()
    _save_figure(fig, path, dpi)


def plot_distances(summary: Dict[str, Any], rows: Sequence[Dict[str, Any]],
                   path: str, dpi: int = 150, bins: int = 30) -> None:
    """Small multiples: centroid distance to the background mean, per class."""
    plt = _pyplot()
    centroids = summary['centroids']
    class_ids = np.asarray(centroids['class_ids'])
    distance = np.asarray(centroids['distance'], dtype=np.float64)
    selected = np.asarray(centroids['selected'], dtype=bool)
    background = distance[class_ids == 0]
    shown = [row for row in rows if row['num_centroids']]
    if not shown:
        shown = rows[:1]
    columns = min(5, max(1, len(shown)))
    lines = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(2.4 * columns, 1.9 * lines + 0.6),
                             squeeze=False, sharex=True, layout='constrained')
    finite = distance[np.isfinite(distance)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size \
        else (0.0, 1.0)
    pad = 0.02 * max(high - low, 1e-3)
    edges = np.linspace(low - pad, high + pad, bins + 1)
    for axis, row in zip(axes.flat, shown):
        own = class_ids == row['class_id']
        if background.size:
            weights = np.full(background.size, 1.0 / background.size)
            axis.hist(background, bins=edges, weights=weights, color=BACKGROUND_COLOUR,
                      alpha=0.45, label='background centroids')
        if own.any():
            scale = 1.0 / own.sum()
            for mask, colour, name in ((own & ~selected, OTHER_COLOUR, 'not selected'),
                                       (own & selected, SELECTED_COLOUR,
                                        'selected (debiased)')):
                if mask.any():
                    axis.hist(distance[mask], bins=edges,
                              weights=np.full(mask.sum(), scale), color=colour,
                              alpha=0.8, label=name)
        if row['cut'] is not None:
            axis.axvline(row['cut'], color='black', linestyle='--', linewidth=0.9,
                         label='selection cut')
        fraction = row['removed_fraction']
        removed = '' if fraction is None else f', {100 * fraction:.1f}% removed'
        axis.set_title(f'{row["name"]} (n={row["num_centroids"]}{removed})')
        axis.spines[['top', 'right']].set_visible(False)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(shown):]:
        axis.axis('off')
    for axis in axes[-1]:
        axis.set_xlabel('distance to background mean')
    for axis in axes[:, 0]:
        axis.set_ylabel('share of centroids')
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='outside lower center', ncol=4, frameon=False)
    fig.suptitle('Foreground centroids by distance to the background mean: far = '
                 'target object, near = biased context', fontsize=9)
    _save_figure(fig, path, dpi)


def plot_gallery(gallery: Sequence[Dict[str, Any]], class_names: Sequence[str],
                 path: str, dpi: int = 150) -> None:
    """Rows image | baseline | debias map | debiased label, most affected first."""
    plt = _pyplot()
    from matplotlib.patches import Patch
    rows = len(gallery)
    fig, axes = plt.subplots(rows, 4, figsize=(9.0, 2.05 * rows + 0.5),
                             squeeze=False, layout='constrained')
    titles = ('image', 'baseline pseudo label', 'debias map M', 'debiased label')
    mappable = None
    present = set()
    for line, entry in enumerate(gallery):
        baseline, debiased = entry['baseline'], entry['debiased']
        present.update(int(v) for v in np.unique(baseline) if 0 < v < len(class_names))
        image = entry['image'] if entry['image'] is not None \
            else np.zeros(baseline.shape + (3,), np.uint8)
        debias = entry['debias_map'] if entry['debias_map'] is not None \
            else np.ones(baseline.shape, np.float32)
        panels = (image, colourise_label(baseline), debias, colourise_label(debiased))
        for column, panel in enumerate(panels):
            axis = axes[line, column]
            if column == 2:
                mappable = axis.imshow(panel, cmap='magma', vmin=0, vmax=1,
                                       interpolation='nearest')
            else:
                axis.imshow(panel, interpolation='nearest')
            axis.set_xticks([])
            axis.set_yticks([])
            if line == 0:
                axis.set_title(titles[column])
        axes[line, 0].set_ylabel(f'{entry["stem"]}\n'
                                 f'{100 * entry["removed_fraction"]:.0f}% fg removed',
                                 fontsize=7)
    palette = voc_palette()
    handles = [Patch(color=palette[c] / 255.0, label=class_names[c])
               for c in sorted(present)]
    handles.append(Patch(color=np.asarray(REMOVED_RGB) / 255.0,
                         label='removed (254)'))
    handles.append(Patch(color=np.asarray(IGNORE_RGB) / 255.0, label='ignore (255)'))
    fig.legend(handles=handles, loc='outside lower center',
               ncol=min(6, len(handles)), frameon=False)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, label='debias map M',
                     shrink=min(0.8, 1.6 / rows), location='right', pad=0.01)
    _save_figure(fig, path, dpi)


def _save_figure(fig: Any, path: str, dpi: int) -> None:
    import matplotlib.pyplot as plt
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches='tight', format='png')
    plt.close(fig)


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
        summary: statistics from :func:`mars_mm.apis.debias.bias_report`.
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
    with atomic_write(osp.join(out_dir, 'report.json')) as tmp, open(tmp, 'w') as f:
        json.dump(report, f, indent=1)
    with atomic_write(osp.join(out_dir, 'report.md')) as tmp, open(tmp, 'w') as f:
        f.write(_markdown(report, figures))
    return report
