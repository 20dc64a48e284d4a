"""``results.md``: the pipeline's results as Markdown tables, every number with the
split it was measured on and its setting."""
from typing import Any, Dict, List, Optional

from .config import TEST_MODES

MODE_SHORT = dict(ss='ss', ms_flip='ms+flip', ms_flip_crf='ms+flip+CRF')


def _f(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return '-'
    return f'{value:+.2f}' if signed else f'{value:.2f}'


def _pct(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}%'


def _with_delta(value: Optional[float], base: Optional[float]) -> str:
    if value is None:
        return '-'
    if base is None:
        return _f(value)
    return f'{value:.2f} ({value - base:+.2f})'


def _split(row: Dict[str, Any], results: Dict[str, Any]) -> str:
    split = results['dataset']['splits'].get(row.get('split'), {})
    name = split.get('name', row.get('split', '?'))
    return f'{name} ({row.get("num_images", split.get("images", "?"))})'


def label_table(results: Dict[str, Any]) -> List[str]:
    rows, biased = results['rows'], results['dataset']['biased_classes']
    keys = [key for key in ('cam', 'baseline', 'debiased', 'oracle') if key in rows
            and rows[key].get('miou') is not None]
    if not keys:
        return []
    unscored = 'cam' in rows and rows['cam'].get('stored') is False
    if unscored:
        keys.insert(0, 'cam')
    planted = any('removal' in rows[key] for key in keys)
    header = ['labels', 'split (images)', 'mIoU'] + [f'IoU {name}' for name in biased]
    header += ['mean FP', 'mean FN']
    if planted:
        header += ['removal precision / recall', 'object px removed']
    lines = ['### Pseudo labels (scored against the ground truth; 254 and 255 count '
             'as background)', '', '| ' + ' | '.join(header) + ' |',
             '| --- | --- |' + ' ---: |' * (len(header) - 2)]
    base = rows.get('baseline', {})
    for key in keys:
        row = rows[key]
        title = results['titles'][key]
        if key == 'cam' and row.get('stored') is False:
            cells = [f'CAMs: {row["note"]}', _split(row, results)]
            lines.append('| ' + ' | '.join(cells + ['-'] * (len(header) - 2)) + ' |')
            continue
        if key == 'cam':
            title += f' {row["threshold"]:.2f}, picked with the GT'
        compare = base if key in ('debiased', 'oracle') else {}
        cells = [title, _split(row, results),
                 _with_delta(row['miou'], compare.get('miou'))]
        cells += [_with_delta(row['biased_iou'].get(name),
                              (compare.get('biased_iou') or {}).get(name))
                  for name in biased]
        cells += [_f(row.get('mfp')), _f(row.get('mfn'))]
        if planted:
            removal = (row.get('removal') or {}).get('all')
            cells += [f'{_pct(removal["precision"])} / {_pct(removal["recall"])}'
                      if removal else '-',
                      _pct(removal['object_removed']) if removal else '-']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines + ['']


def seg_table(results: Dict[str, Any]) -> List[str]:
    rows, biased = results['rows'], results['dataset']['biased_classes']
    models = [name for name in ('seg_baseline', 'seg_mars')
              if rows.get(name, {}).get('modes')]
    if not models:
        return []
    modes = [mode for mode in TEST_MODES
             if any(mode in rows[name]['modes'] for name in models)]
    split = next(iter(rows[models[0]]['modes'].values()))
    label = dict(seg_baseline='baseline labels', seg_mars='MARS')
    header = [f'metric ({_split(split, results)})']
    header += [f'{label[name]}: {MODE_SHORT[mode]}' for name in models
               for mode in modes]
    if len(models) == 2:
        header += [f'MARS - baseline: {MODE_SHORT[mode]}' for mode in modes]
    metrics = [('mIoU', lambda r: r['miou'])]
    metrics += [(f'IoU {name} (biased)', lambda r, n=name: r['biased_iou'].get(n))
                for name in biased]
    metrics += [('mean FP', lambda r: r['mfp']), ('mean FN', lambda r: r['mfn'])]
    lines = ['### Segmentation (DeepLabV3+ trained on each label set, tested on the '
             'held-out split)', '', '| ' + ' | '.join(header) + ' |',
             '| --- |' + ' ---: |' * (len(header) - 1)]
    for title, get in metrics:
        cells = [title]
        values = {}
        for name in models:
            for mode in modes:
                row = rows[name]['modes'].get(mode)
                values[name, mode] = get(row) if row else None
                cells.append(_f(values[name, mode]))
        if len(models) == 2:
            for mode in modes:
                after, before = values['seg_mars', mode], values['seg_baseline', mode]
                cells.append(_f(after - before, signed=True)
                             if after is not None and before is not None else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines + ['', 'ss: single scale; ms+flip: scales 0.5, 1.0, 1.5, 2.0 '
                    '(the config\'s tta_pipeline) + flip, softmax averaged; '
                    '+CRF: then the dense CRF (`tools/test.py --tta`).', '']


def unmeasured_table(results: Dict[str, Any]) -> List[str]:
    """Without masks: tag scores and the share of pixels removed per class."""
    rows = results['rows']
    lines = ['### What can be measured without ground-truth masks', '']
    tags = results.get('tags')
    if tags:
        lines.append('CAM classifier on the held-out split\'s tags: ' + ', '.join(
            f'{key} {_f(value)}' for key, value in tags.items()) + '.')
        lines.append('')
    debiased = rows.get('debiased', {}).get('removed_share')
    if debiased:
        lines += ['| class | share of labelled pixels (baseline) | share of them '
                  'removed by MARS |', '| --- | ---: | ---: |']
        for name, row in debiased.items():
            lines.append(f'| {name} | {_pct(row["pixels"])} | {_pct(row["removed"])} |')
        lines.append('')
    lines += ['Not measurable without masks: the mIoU, per-class IoU and FP/FN of the '
              'CAMs, pseudo labels and segmentation, and whether removed pixels were '
              'context or object. Add masks (`dataset.masks`) to get them.', '']
    return lines


def summary_lines(results: Dict[str, Any]) -> List[str]:
    effect, lines = results['effect'], []
    labels = effect.get('pseudo_labels')
    if labels:
        biased = ', '.join(f'{name} {_f(value, True)}'
                           for name, value in labels['biased_iou'].items())
        oracle = effect.get('oracle')
        lines.append(f'**Did MARS help?** Pseudo labels: {_f(labels["miou"], True)} '
                     f'mIoU ({biased}).' + (
                         f' With an oracle embedding: {_f(oracle["miou"], True)}.'
                         if oracle else ''))
    seg = effect.get('segmentation') or {}
    if seg:
        parts = ', '.join(f'{_f(change["miou"], True)} ({MODE_SHORT[mode]})'
                          for mode, change in seg.items())
        lines.append(f'Segmentation, MARS minus baseline: {parts} mIoU.')
    return lines + [''] if lines else []


def results_markdown(results: Dict[str, Any]) -> str:
    dataset = results['dataset']
    preset = f', planted preset `{dataset["preset"]}`' if dataset.get(
        'preset') else ''
    biased = ', '.join(dataset['biased_classes']) or 'none named'
    lines = [f'## MARS pipeline results: `{results["pipeline"]}`', '',
             f'Data `{results["data_root"]}`{preset}: '
             f'{len(dataset["classes"])} classes (background included), biased '
             f'classes: {biased}. Training seed '
             f'{results["seed"]}; {results["gpus"]} GPU(s), launcher '
             f'{results["launcher"]}. Ground truth is used only for scoring.', '']
    lines += summary_lines(results)
    if dataset['masks']:
        lines += label_table(results) + seg_table(results)
    else:
        lines += unmeasured_table(results)
    for name, reason in (results.get('skipped_modes') or {}).items():
        lines.append(f'Test mode {name} not run: {reason}.')
    paths = results['paths']
    lines.append('Files:')
    if paths.get('bias_report'):
        lines.append(f'- bias report: `{paths["bias_report"]}/report.md`')
    for name, path in paths.get('checkpoints', {}).items():
        lines.append(f'- {name} checkpoint: `{path}`')
    for key, row in results['rows'].items():
        if row.get('path'):
            lines.append(f'- {key} labels: `{row["path"]}`')
    return '\n'.join(lines) + '\n'
