"""Figures of the MARS bias report (matplotlib, Agg backend: no display needed).

* :func:`plot_removed`: share of each class's baseline foreground marked removed;
* :func:`plot_distances`: per class, the histogram of its centroids' distances to the
  background mean, the selected (debiased) part highlighted, the selection cut, and
  the background centroids' own distances as a grey reference;
* :func:`plot_gallery`: one row per image, image | baseline label | debias map |
  debiased label (removed pixels in magenta).

The rows they draw are :func:`mars_mm.debias.report.class_table`'s.
"""
import math
from typing import Any, Dict, Sequence

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
    """``(H, W)`` label -> ``(H, W, 3)`` uint8 with VOC colours, 254 magenta.

    255 (ignore) gets :data:`IGNORE_RGB`, not the palette's white, so that it stays
    visible on the white figure.
    """
    palette = voc_palette().copy()
    palette[BIASED_INDEX] = REMOVED_RGB
    palette[IGNORE_INDEX] = IGNORE_RGB
    return palette[np.asarray(label, dtype=np.uint8)]


def plot_removed(rows: Sequence[Dict[str, Any]], path: str, dpi: int = 150) -> None:
    """Horizontal bars: share of baseline foreground removed, per class.

    Args:
        rows: per-class rows of :func:`mars_mm.debias.report.class_table`.
        path: the PNG to write (atomically).
        dpi: resolution.
    """
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
    """Small multiples: centroid distance to the background mean, per class.

    Args:
        summary: the report's statistics; uses its ``centroids`` arrays
            (``class_ids``, ``distance``, ``selected``, each ``(T,)``).
        rows: per-class rows of :func:`mars_mm.debias.report.class_table`.
        path: the PNG to write (atomically).
        dpi: resolution.
        bins: histogram bins, shared by all classes.
    """
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
    """Rows image | baseline | debias map | debiased label, most affected first.

    Args:
        gallery: one dict per row: ``stem``, ``removed_fraction``, ``image``
            (``(H, W, 3)`` uint8 RGB or ``None``), ``baseline`` and ``debiased``
            (``(H, W)`` labels), ``debias_map`` (``(H, W)`` float in [0, 1] or
            ``None``: drawn as 1, nothing to remove).
        class_names: C + 1 names, for the legend.
        path: the PNG to write (atomically).
        dpi: resolution.
    """
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
