"""The label-agreement report: Markdown, HTML, CSV and a gallery of differences.

Renders what :func:`mars_mm.apis.compare_labels.compare_labels` counted: per value
the IoU of A vs B, the largest confusions, where 254 / 255 sit, and one PNG strip
per most different image (``[image |] A | differing pixels | B``, labels in the VOC
colours with 254 magenta and 255 light grey, as the bias report's gallery).
"""
import csv
import html
import io
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mars_mm.debias.figures import colourise_label
from mars_mm.utils.io import load_label_png, read_rgb, save_with

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')
#: Colour of differing pixels in the gallery's difference panel.
DIFF_RGB = (220, 20, 60)


def _find_image(image_dir: Optional[str], stem: str) -> Optional[str]:
    if not image_dir:
        return None
    for suffix in IMAGE_SUFFIXES:
        path = osp.join(image_dir, stem + suffix)
        if osp.isfile(path):
            return path
    return None


def gallery_strip(label_a: np.ndarray, label_b: np.ndarray,
                  image: Optional[np.ndarray] = None, gap: int = 4) -> np.ndarray:
    """``[image |] A | difference | B`` side by side, ``(H, W', 3)`` uint8.

    Labels use the VOC colours (254 magenta, 255 light grey, as the bias report's
    gallery); the difference panel is the dimmed image (black without one) with the
    differing pixels in crimson.
    """
    differ = label_a != label_b
    base = image if image is not None else np.zeros(label_a.shape + (3,), np.uint8)
    diff = (base.astype(np.float32) * 0.35).astype(np.uint8)
    diff[differ] = DIFF_RGB
    panels = ([image] if image is not None else []) + [
        colourise_label(label_a), diff, colourise_label(label_b)]
    spacer = np.full((label_a.shape[0], gap, 3), 255, np.uint8)
    parts = []
    for panel in panels:
        parts += [panel, spacer]
    return np.concatenate(parts[:-1], axis=1)


def _save_png(path: str, array: np.ndarray) -> None:
    from PIL import Image
    save_with(path, lambda tmp: Image.fromarray(array).save(tmp, format='PNG'))


def write_gallery(out_dir: str, gallery: Sequence[Tuple[str, float]],
                  pairs: Dict[str, Tuple[str, str]],
                  image_dir: Optional[str] = None) -> List[Dict[str, Any]]:
    """One ``gallery/<rank>_<stem>.png`` strip per image; returns their entries."""
    entries = []
    for rank, (stem, fraction) in enumerate(gallery):
        path_a, path_b = pairs[stem]
        image_path = _find_image(image_dir, stem)
        image = read_rgb(image_path) if image_path else None
        label_a, label_b = load_label_png(path_a), load_label_png(path_b)
        if image is not None and image.shape[:2] != label_a.shape:
            image = None  # a photo of another size would mislead; labels only
        name = f'gallery/{rank:02d}_{stem}.png'
        _save_png(osp.join(out_dir, name), gallery_strip(label_a, label_b, image))
        entries.append(dict(stem=stem, differing=round(100 * fraction, 2),
                            png=name, with_image=image is not None))
    return entries


def _pct(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _headline(report: Dict[str, Any], bold: str, unbold: str) -> str:
    summary = report['summary']
    return (f'{report["num_images"]} images ({report["differing_images"]} with any '
            f'difference), {summary["pixels"]:,} pixels: {bold}'
            f'{_pct(summary["agreement"])}% of pixels agree{unbold}, mean IoU of A vs '
            f'B over the classes {_pct(summary["miou"])}.')


def comparison_markdown(report: Dict[str, Any]) -> str:
    """``report.md``: settings, per-value table, confusions, 254/255, gallery."""
    summary = report['summary']
    lines = ['# Label agreement', '',
             f'A: `{report["dir_a"]}`  ', f'B: `{report["dir_b"]}`', '',
             _headline(report, '**', '**')]
    skipped = report['skipped']
    if skipped['only_a'] or skipped['only_b']:
        lines += ['', f'Skipped (no counterpart): {len(skipped["only_a"])} only in A, '
                  f'{len(skipped["only_b"])} only in B.']
    lines += ['', '## Per value', '',
              'IoU = pixels both label v / pixels either labels v; "only A" / "only '
              'B": pixels one folder labels v and the other does not, in % of that '
              'union.', '',
              '| value | name | pixels A | pixels B | both | IoU | only A | only B |',
              '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for row in summary['values']:
        if row['pixels_a'] or row['pixels_b']:
            lines.append(f'| {row["value"]} | {row["name"]} | {row["pixels_a"]:,} | '
                         f'{row["pixels_b"]:,} | {row["both"]:,} | {_pct(row["iou"])} '
                         f'| {_pct(row["only_a"])} | {_pct(row["only_b"])} |')
    lines += ['', '## Largest confusions', '',
              '| A says | B says | pixels | % of all |', '| --- | --- | ---: | ---: |']
    for cell in summary['confusions']:
        lines.append(f'| {cell["a"]} | {cell["b"]} | {cell["pixels"]:,} | '
                     f'{_pct(cell["share"])} |')
    lines += ['', 'The whole matrix: `confusion.csv` (rows A, columns B).', '',
              '## Where 254 and 255 sit', '']
    for key, entry in summary['special'].items():
        value, _, side = key.partition('_in_')
        if not entry['pixels']:
            lines.append(f'- {value} in {side.upper()}: none.')
            continue
        where = ', '.join(f'{item["name"]} {_pct(item["share"])}%'
                          for item in entry['where'][:6])
        lines.append(f'- {value} in {side.upper()} ({entry["pixels"]:,} pixels): '
                     f'{entry["other"].upper()} has {where}.')
    if report['gallery']:
        lines += ['', '## Most different images', '',
                  '[image |] A | differing pixels (crimson) | B; 254 magenta, 255 '
                  'light grey.', '']
        for entry in report['gallery']:
            lines += [f'**{entry["stem"]}**: {entry["differing"]:.2f}% of pixels '
                      'differ', '', f'![{entry["stem"]}]({entry["png"]})', '']
    return '\n'.join(lines).rstrip() + '\n'


def comparison_html(report: Dict[str, Any]) -> str:
    """``report.html``: the Markdown report's tables and gallery as one page."""
    summary = report['summary']
    esc = html.escape
    out = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>Label agreement'
           '</title><style>body{font-family:sans-serif;margin:2em}table{border-'
           'collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:'
           'right}td:nth-child(2),th:nth-child(2){text-align:left}img{max-width:100%}'
           '</style></head><body>', '<h1>Label agreement</h1>',
           f'<p>A: <code>{esc(report["dir_a"])}</code><br>B: <code>'
           f'{esc(report["dir_b"])}</code></p>',
           f'<p>{_headline(report, "<b>", "</b>")}</p>',
           '<h2>Per value</h2><table><tr><th>value</th><th>name</th><th>pixels A'
           '</th><th>pixels B</th><th>both</th><th>IoU</th><th>only A</th><th>only B'
           '</th></tr>']
    for row in summary['values']:
        if row['pixels_a'] or row['pixels_b']:
            out.append(f'<tr><td>{row["value"]}</td><td>{esc(row["name"])}</td><td>'
                       f'{row["pixels_a"]:,}</td><td>{row["pixels_b"]:,}</td><td>'
                       f'{row["both"]:,}</td><td>{_pct(row["iou"])}</td><td>'
                       f'{_pct(row["only_a"])}</td><td>{_pct(row["only_b"])}</td></tr>')
    out.append('</table><h2>Largest confusions</h2><table><tr><th>A says</th><th>'
               'B says</th><th>pixels</th><th>% of all</th></tr>')
    for cell in summary['confusions']:
        out.append(f'<tr><td>{esc(cell["a"])}</td><td>{esc(cell["b"])}</td><td>'
                   f'{cell["pixels"]:,}</td><td>{_pct(cell["share"])}</td></tr>')
    out.append('</table>')
    if report['gallery']:
        out.append('<h2>Most different images</h2><p>[image |] A | differing pixels '
                   '(crimson) | B; 254 magenta, 255 light grey.</p>')
        for entry in report['gallery']:
            out.append(f'<p><b>{esc(entry["stem"])}</b>: {entry["differing"]:.2f}% '
                       f'of pixels differ<br><img src="{esc(entry["png"])}" '
                       f'alt="{esc(entry["stem"])}"></p>')
    out.append('</body></html>')
    return '\n'.join(out) + '\n'


def confusion_csv(counts: np.ndarray, names: Sequence[str]) -> str:
    """The joint matrix as CSV: a header row of B's values, one row per A value.

    Args:
        counts: ``(V, V)`` joint counts, rows A.
        names: the V value names (the classes, then 254 and 255).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(['A \\ B'] + names)
    for name, row in zip(names, counts):
        writer.writerow([name] + [int(v) for v in row])
    return buffer.getvalue()



def summary_text(report: Dict[str, Any]) -> str:
    """A short console summary: totals and the per-class IoU of A vs B."""
    summary = report['summary']
    lines = [f'{report["num_images"]} images, {summary["pixels"]:,} pixels: '
             f'{_pct(summary["agreement"])}% agree, mean IoU of A vs B '
             f'{_pct(summary["miou"])}',
             f'{"value":>5}  {"name":<16}{"IoU":>8}{"only A":>8}{"only B":>8}']
    for row in summary['values']:
        if row['pixels_a'] or row['pixels_b']:
            lines.append(f'{row["value"]:>5}  {row["name"]:<16}{_pct(row["iou"]):>8}'
                         f'{_pct(row["only_a"]):>8}{_pct(row["only_b"]):>8}')
    return '\n'.join(lines)
