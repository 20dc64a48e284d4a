"""MARS across the planted-bias family: ``tools/analysis/planted_sweep.py``.

For every preset of :data:`~mars_mm.datasets.generators.planted_presets.PRESETS`
the planted pipeline runs through Stage 3 and the oracle (``to_stage='oracle'``)
with ONE set of settings for all presets (only the preset, and the split sizes
given for all, differ), and one table compares them: CAM, baseline and debiased
pseudo labels, the oracle embedding's debiasing, the biased classes, the worst
per-class change, and the removal against the planted context.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mars_mm.datasets.generators.planted_presets import PRESETS
from mars_mm.utils.io import save_text

from .pipeline import run_pipeline

DEFAULT_PIPELINE = 'configs/pipelines/planted.py'


def _delta(after: Optional[float], before: Optional[float]) -> Optional[float]:
    if after is None or before is None:
        return None
    return round(after - before, 2)


def sweep_row(preset: str, results: Dict[str, Any]) -> Dict[str, Any]:
    """One preset's line of the sweep table, from its pipeline results."""
    rows = results['rows']
    cam, base = rows.get('cam', {}), rows.get('baseline', {})
    real, oracle = rows.get('debiased', {}), rows.get('oracle', {})
    gain, oracle_gain = _delta(real.get('miou'), base.get('miou')), \
        _delta(oracle.get('miou'), base.get('miou'))
    share = round(100.0 * gain / oracle_gain, 1) if gain is not None and \
        oracle_gain not in (None, 0) and oracle_gain > 0 else None
    changes = {name: _delta(value, base.get('iou', {}).get(name))
               for name, value in (real.get('iou') or {}).items()
               if name != 'background'}
    changes = {name: value for name, value in changes.items() if value is not None}
    worst = min(changes.items(), key=lambda item: item[1]) if changes else None
    biased = {name: dict(baseline=base.get('biased_iou', {}).get(name),
                         debiased=real.get('biased_iou', {}).get(name),
                         oracle=oracle.get('biased_iou', {}).get(name))
              for name in results['dataset']['biased_classes']}

    def removal(row: Dict[str, Any]) -> Dict[str, Any]:
        return (row.get('removal') or {}).get('all') or {}
    return dict(preset=preset, work_dir=results['work_dir'],
                cam_miou=cam.get('miou'), cam_threshold=cam.get('threshold'),
                baseline_miou=base.get('miou'), debiased_miou=real.get('miou'),
                gain=gain, oracle_miou=oracle.get('miou'), oracle_gain=oracle_gain,
                gain_of_oracle=share, biased=biased,
                worst_change=dict(cls=worst[0], change=worst[1]) if worst else None,
                removal=removal(real), oracle_removal=removal(oracle))


def _f(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return '-'
    return f'{value:+.2f}' if signed else f'{value:.2f}'


def _p(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.1f}'


def sweep_markdown(rows: Sequence[Dict[str, Any]], settings: Dict[str, Any]) -> str:
    """The sweep table (Markdown)."""
    header = ['preset', 'CAM mIoU (best thr)', 'baseline mIoU', 'debiased (gain)',
              'oracle debiased (gain)', 'gain % of oracle',
              'biased IoU: baseline -> debiased (oracle)', 'worst class change',
              'removal prec / recall %', 'oracle removal prec / recall %',
              'object px removed % (oracle)']
    lines = ['## MARS across the planted-bias family', '',
             f'Pipeline `{settings["pipeline"]}` through Stage 3 and the oracle, the '
             f'same settings for every preset (train / val images: '
             f'{settings.get("num_train") or "preset default"} / '
             f'{settings.get("num_val") or "preset default"}; options '
             f'{settings.get("cfg_options") or "none"}). Train split; 254 and 255 '
             'count as background; the CAM threshold is picked with the GT.', '',
             '| ' + ' | '.join(header) + ' |',
             '| --- |' + ' ---: |' * (len(header) - 1)]
    for row in rows:
        biased = '; '.join(
            f'{name} {_f(value["baseline"])} -> {_f(value["debiased"])} '
            f'({_f(value["oracle"])})' for name, value in row['biased'].items())
        worst = row['worst_change']
        real, oracle = row['removal'], row['oracle_removal']
        cells = [
            row['preset'],
            f'{_f(row["cam_miou"])} ({_f(row["cam_threshold"])})',
            _f(row['baseline_miou']),
            f'{_f(row["debiased_miou"])} ({_f(row["gain"], True)})',
            f'{_f(row["oracle_miou"])} ({_f(row["oracle_gain"], True)})',
            _p(row['gain_of_oracle']), biased or '-',
            f'{worst["cls"]} {_f(worst["change"], True)}' if worst else '-',
            f'{_p(real.get("precision"))} / {_p(real.get("recall"))}',
            f'{_p(oracle.get("precision"))} / {_p(oracle.get("recall"))}',
            f'{_p(real.get("object_removed"))} ({_p(oracle.get("object_removed"))})']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def run_sweep(presets: Optional[Sequence[str]] = None,
              work_dir: str = 'work_dirs/sweep', pipeline: str = DEFAULT_PIPELINE,
              num_train: Optional[int] = None, num_val: Optional[int] = None,
              cfg_options: Optional[dict] = None, gpus: Optional[int] = None,
              launcher: Optional[str] = None) -> Dict[str, Any]:
    """Run the planted pipeline on every preset, write ``sweep.md`` / ``sweep.json``.

    Args:
        presets: names of ``PRESETS`` (default: all).
        work_dir: one sub-folder per preset.
        pipeline: a planted pipeline config (one with ``dataset.generate``).
        num_train, num_val: split sizes for every preset (default: each
            preset's own).
        cfg_options: pipeline overrides, the same for every preset.

    Returns:
        dict: ``rows`` (one per preset), ``settings``, ``markdown``.
    """
    presets = list(presets or PRESETS)
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        raise KeyError(f'unknown presets {unknown}; known: {", ".join(PRESETS)}')
    rows: List[Dict[str, Any]] = []
    settings = dict(pipeline=pipeline, num_train=num_train, num_val=num_val,
                    cfg_options=dict(cfg_options or {}), presets=presets)
    for preset in presets:
        print(f'\n=== preset {preset} ===', flush=True)
        options = {'dataset.generate.preset': preset, 'dataset.data_root': None}
        if num_train is not None:
            options['dataset.generate.num_train'] = num_train
        if num_val is not None:
            options['dataset.generate.num_val'] = num_val
        options.update(cfg_options or {})
        results = run_pipeline(pipeline, work_dir=osp.join(work_dir, preset),
                               to_stage='oracle', cfg_options=options, gpus=gpus,
                               launcher=launcher)
        rows.append(sweep_row(preset, results))
    markdown = sweep_markdown(rows, settings)
    save_text(osp.join(work_dir, 'sweep.json'),
              json.dumps(dict(settings=settings, rows=rows), indent=1) + '\n')
    save_text(osp.join(work_dir, 'sweep.md'), markdown)
    print('\n' + markdown, flush=True)
    return dict(rows=rows, settings=settings, markdown=markdown)
