"""The results of a pipeline run, evaluated in-process on the stages' outputs.

Every label set is scored by :func:`mars_mm.apis.eval_labels.eval_labels` (254 and
255 count as background), the CAMs by :func:`mars_mm.apis.cam.eval_cams` at their
best background threshold (the ground truth picks the threshold: an upper bound,
said so in the table), the removal against the planted context by
:func:`mars_mm.debias.analysis.evaluate_debiasing`. Without ground-truth masks the
results hold what can be measured: the classifier's tag scores and the share of
each class's pixels MARS removed. ``results.json`` holds all of it;
``results.md`` the table (:mod:`.table`).
"""
import glob
import json
import os.path as osp
from typing import Any, Dict, List, Optional

import numpy as np

from mars_mm.utils.io import BIASED_INDEX, load_label_png, save_text

from .config import TEST_MODE_NAMES
from .context import PipelineContext
from .stages import Stage, files_complete

ROW_TITLES = dict(
    cam='CAMs (best background threshold)',
    baseline='baseline pseudo labels (Stage 1)',
    debiased='debiased pseudo labels (MARS Stage 3)',
    oracle='debiased with an oracle embedding (upper bound)',
    seg_baseline='DeepLabV3+ on the baseline pseudo labels',
    seg_mars='DeepLabV3+ with MARS (debiased labels + EMA complementing)')


#: The CAM row of a pipeline whose Stage 1 is the fused job.
CAM_NOT_STORED = ('not stored (fused CAM job, tools/cam/generate_pseudo_labels.py; '
                  'set pseudo_labels.fused=False to keep and score the CAMs)')


def _number(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else round(value, 2)


def label_scores(ctx: PipelineContext, folder: str, split: str,
                 biased: List[str]) -> Dict[str, Any]:
    """mIoU, mean FP / FN, per-class and biased-class IoU of a label folder."""
    from mars_mm.apis.eval_labels import eval_labels
    summary = eval_labels(folder, ctx.dataset_config(), split=split)
    per_class = summary['per_class']
    return dict(
        split=split, num_images=summary['num_images'], path=folder,
        miou=_number(summary['miou']), mfp=_number(summary['mfp']),
        mfn=_number(summary['mfn']),
        iou={name: _number(row['iou']) for name, row in per_class.items()},
        fp={name: _number(row['fp']) for name, row in per_class.items()},
        fn={name: _number(row['fn']) for name, row in per_class.items()},
        biased_iou={name: _number(per_class[name]['iou']) for name in biased})


def cam_scores(ctx: PipelineContext, folder: str, biased: List[str]) -> Dict[str, Any]:
    from mars_mm.apis.cam import eval_cams
    from mars_mm.apis.eval_labels import scores_to_dict
    result = eval_cams(folder, ctx.dataset_config(), split='train')
    summary = scores_to_dict(result['scores'], result['classes'])
    per_class = summary['per_class']
    return dict(
        split='train', num_images=result['num_images'], path=folder,
        threshold=result['thresholds'][result['best']],
        miou=_number(summary['miou']), mfp=_number(summary['mfp']),
        mfn=_number(summary['mfn']),
        iou={name: _number(row['iou']) for name, row in per_class.items()},
        biased_iou={name: _number(per_class[name]['iou']) for name in biased},
        note='background threshold picked with the ground truth (scoring only)')


def removal_scores(ctx: PipelineContext, baseline: str, debiased: str,
                   biased: List[str]) -> Dict[str, Any]:
    """Removal precision / recall / object pixels removed against PlantedContext."""
    from mars_mm.debias.analysis import evaluate_debiasing
    files = ctx.split_files('train')
    gt_dir = osp.dirname(files[0][2])
    classes = list(ctx.classes())
    result = evaluate_debiasing(
        [stem for stem, _, _ in files], gt_dir, baseline, debiased, len(classes),
        osp.join(ctx.data_root, 'PlantedContext'),
        [classes.index(name) for name in biased])

    def pick(removal: Dict[str, Any]) -> Dict[str, Any]:
        return dict(precision=_number(removal['precision']),
                    recall=_number(removal['recall']),
                    object_removed=_number(removal['object_removed']),
                    removed_px=removal['removed'],
                    context_called_fg_px=removal['context_fg'])
    return dict(all=pick(result['removal']),
                per_class={classes[key]: pick(value) for key, value in
                           result['removal_per_class'].items()})


def removed_share(ctx: PipelineContext, baseline: str, debiased: str) -> Dict[str, Any]:
    """Per class: share of all labelled pixels, and share of them MARS removed."""
    classes = list(ctx.classes())
    labelled = np.zeros(len(classes), np.int64)
    removed = np.zeros(len(classes), np.int64)
    total = 0
    for stem in ctx.stems('train'):
        base = load_label_png(osp.join(baseline, stem + '.png'))
        after = load_label_png(osp.join(debiased, stem + '.png'))
        valid = base < len(classes)
        total += int(valid.sum())
        labelled += np.bincount(base[valid], minlength=len(classes))
        cut = valid & (after == BIASED_INDEX)
        removed += np.bincount(base[cut], minlength=len(classes))
    return {name: dict(pixels=_number(100.0 * labelled[i] / max(total, 1)),
                       removed=_number(100.0 * removed[i] / labelled[i])
                       if labelled[i] else None)
            for i, name in enumerate(classes) if i > 0}


def tag_scores(cam_train_dir: str) -> Optional[Dict[str, float]]:
    """The CAM classifier's last validation tag scores (mmengine's scalars)."""
    best = None
    for path in sorted(glob.glob(osp.join(cam_train_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                if any(key.startswith('tags/') for key in record):
                    best = {key.split('/', 1)[1]: _number(value)
                            for key, value in record.items()
                            if key.startswith('tags/')}
    return best


def collect(ctx: PipelineContext, plans: Dict[str, Stage]) -> Dict[str, Any]:
    """Everything the table shows, for the finished stages in ``plans``."""
    classes = list(ctx.classes())
    biased = ctx.biased_classes()
    masks = ctx.has_masks()
    rows: Dict[str, Any] = {}
    if masks and 'cams' in plans:
        rows['cam'] = cam_scores(ctx, plans['cams'].outputs['cams'], biased)
    elif masks and (plans.get('pseudo_labels') and
                    plans['pseudo_labels'].outputs.get('fused')):
        # the fused job keeps no CAM files: nothing to score, said in the table
        rows['cam'] = dict(split='train', num_images=len(ctx.stems('train')),
                           path=None, miou=None, stored=False,
                           note=CAM_NOT_STORED)
    baseline = plans['pseudo_labels'].outputs['labels'] \
        if 'pseudo_labels' in plans else None
    if baseline and masks:
        rows['baseline'] = label_scores(ctx, baseline, 'train', biased)
        if plans['pseudo_labels'].outputs.get('external'):
            rows['baseline']['note'] = 'external pseudo labels'
    for key, stage in (('debiased', 'debias'), ('oracle', 'oracle')):
        if stage not in plans or not baseline:
            continue
        labels = plans[stage].outputs['labels']
        row = label_scores(ctx, labels, 'train', biased) if masks else dict(
            split='train', path=labels)
        row['removed_share'] = removed_share(ctx, baseline, labels)
        if masks and ctx.has_context():
            row['removal'] = removal_scores(ctx, baseline, labels, biased)
        rows[key] = row
    predictions = plans['test'].outputs['predictions'] if 'test' in plans else {}
    for name in ('seg_baseline', 'seg_mars'):
        if name not in plans:
            continue
        row = dict(checkpoint=plans[name].outputs['checkpoint'], modes={})
        for mode, folder in predictions.get(name, {}).items():
            if files_complete(folder, ctx.stems('test'), '.png'):
                row['modes'][mode] = label_scores(ctx, folder, 'test', biased)
        rows[name] = row
    results = dict(
        pipeline=ctx.filename, work_dir=ctx.work_dir, data_root=ctx.data_root,
        seed=ctx.seed, gpus=ctx.gpus, launcher=ctx.launcher,
        dataset=dict(classes=classes, biased_classes=biased, masks=masks,
                     planted_context=ctx.has_context(),
                     preset=(ctx.meta().get('settings') or {}).get('preset'),
                     splits=_split_names(ctx, masks)),
        rows=rows, titles={key: ROW_TITLES[key] for key in rows},
        test_modes={mode: TEST_MODE_NAMES[mode] for mode in TEST_MODE_NAMES},
        paths=dict(
            bias_report=plans['debias'].outputs.get('report')
            if 'debias' in plans else None,
            checkpoints={name: plans[name].outputs['checkpoint'] for name in
                         ('cam_train', 'uss_train', 'seg_baseline', 'seg_mars')
                         if name in plans}),
        skipped_modes=plans['test'].outputs.get('skipped', {}) if 'test' in plans
        else {})
    if 'cam_train' in plans:
        results['tags'] = tag_scores(plans['cam_train'].dir)
    results['effect'] = effect(rows, biased)
    return results


def _split_names(ctx: PipelineContext, masks: bool) -> Dict[str, Any]:
    def describe(split: str) -> Dict[str, Any]:
        from mars_mm.apis.splits import split_dataloader_key
        cfg = ctx.dataset_config()
        dataset = cfg[split_dataloader_key(cfg, split)]['dataset']
        name = osp.splitext(osp.basename(str(dataset.get('ann_file') or split)))[0]
        return dict(name=name or split, images=len(ctx.stems(split)))
    splits = dict(train=describe('train'))
    if masks:
        try:
            splits['test'] = describe('test')
        except (KeyError, FileNotFoundError, ValueError):
            pass
    return splits


def effect(rows: Dict[str, Any], biased: List[str]) -> Dict[str, Any]:
    """MARS minus baseline: pseudo labels and every segmentation mode."""
    def delta(after: Optional[dict], before: Optional[dict]) -> Optional[dict]:
        if not after or not before or after.get('miou') is None:
            return None
        return dict(miou=_number(after['miou'] - before['miou']),
                    biased_iou={name: _number(after['biased_iou'][name]
                                              - before['biased_iou'][name])
                                if after['biased_iou'].get(name) is not None
                                and before['biased_iou'].get(name) is not None
                                else None for name in biased})
    out = dict(pseudo_labels=delta(rows.get('debiased'), rows.get('baseline')),
               oracle=delta(rows.get('oracle'), rows.get('baseline')),
               segmentation={})
    base, mars = rows.get('seg_baseline', {}), rows.get('seg_mars', {})
    for mode in base.get('modes', {}):
        change = delta(mars.get('modes', {}).get(mode), base['modes'][mode])
        if change:
            out['segmentation'][mode] = change
    return out


def write_results(ctx: PipelineContext, plans: Dict[str, Stage]) -> Dict[str, Any]:
    """Evaluate, then write ``results.json`` and ``results.md`` in the work dir."""
    from .table import results_markdown
    results = collect(ctx, plans)
    save_text(osp.join(ctx.work_dir, 'results.json'),
              json.dumps(results, indent=1, default=str) + '\n')
    save_text(osp.join(ctx.work_dir, 'results.md'), results_markdown(results))
    return results
