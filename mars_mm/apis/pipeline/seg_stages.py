"""Stage 4 (segmentation on baseline / debiased labels), the test, the results.

``seg_baseline`` and ``seg_mars`` train their configs on the labels of Stage 1 and
of Stage 3 through ``train_dataloader.dataset.pseudo_label_dir``; ``test`` evaluates
both checkpoints single scale, with multi-scale + flip (``tools/test.py --tta``
with the CRF of ``CRFSegTTAModel`` switched off: ``tta_model.crf=None``) and with
the CRF, saving the predictions that the results stage scores.
"""
import os.path as osp
from typing import Dict, List, Optional

from .config import TEST_MODES
from .context import PipelineContext, config_settings, option_args
from .stages import Command, Stage, files_complete, training_stage

#: Stage 4 rows: stage name -> the stage whose labels it trains on.
SEG_STAGES = dict(seg_baseline='pseudo_labels', seg_mars='debias')

#: Increase when the results' content changes, so old results are recomputed.
RESULTS_VERSION = 1


def no_validation_options(ctx: PipelineContext) -> dict:
    """Without ground-truth masks Stage 4 trains without validation."""
    if ctx.has_masks():
        return {}
    return {'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None}


def plan_seg(ctx: PipelineContext, name: str, labels: Stage) -> Optional[Stage]:
    section = ctx.section(name)
    if not section.get('enabled', True):
        return None
    label_dir = labels.outputs['labels']
    return training_stage(
        ctx, name, section['config'],
        {'train_dataloader.dataset.pseudo_label_dir': label_dir},
        no_validation_options(ctx), section.get('cfg_options'),
        upstream=(labels.name, ), schedule=section.get('schedule'),
        gpus=section.get('gpus'))


def tta_mode_options(cfg, mode: str) -> Optional[dict]:
    """Options of a test mode, or ``None`` when the config cannot run it."""
    if mode == 'ss':
        return {}
    tta = cfg.get('tta_model', None)
    if tta is None or 'tta_pipeline' not in cfg:
        return None
    has_crf = tta.get('type') == 'CRFSegTTAModel'
    if mode == 'ms_flip':
        return {'tta_model.crf': None} if has_crf else {}
    return {} if has_crf and tta.get('crf') is not None else None


def plan_test(ctx: PipelineContext, segs: Dict[str, Stage]) -> Optional[Stage]:
    section = ctx.section('test')
    if not segs or not section.get('enabled', True) or not ctx.has_masks():
        return None
    folder = ctx.stage_dir('test')
    modes = list(section.get('modes', TEST_MODES))
    commands: List[Command] = []
    outputs: Dict[str, Dict[str, str]] = {}
    skipped: Dict[str, str] = {}
    settings = dict(modes=modes, args={})
    for name, seg in segs.items():
        config = seg.outputs['config']
        # the model and the test data as trained; not the schedule, seed or labels
        train_options = {key: value for key, value in seg.outputs['options'].items()
                         if not key.startswith(('train_cfg.', 'param_scheduler.',
                                                'default_hooks.checkpoint',
                                                'randomness.', 'train_dataloader.'))}
        for mode in modes:
            base, _ = ctx.resolve(config, train_options)
            extra = tta_mode_options(base, mode)
            if extra is None:
                skipped[f'{name}/{mode}'] = 'the config has no CRF test-time model'
                continue
            out = osp.join(folder, name, mode)
            preds = osp.join(out, 'pred')
            cfg, options = ctx.resolve(config, train_options,
                                       section.get('cfg_options'), extra)
            args = [config, seg.outputs['checkpoint'], '--work-dir', out, '--out',
                    preds, '--data-root', ctx.data_root] + (
                        ['--tta'] if mode != 'ss' else []) + option_args(options)
            settings['args'][f'{name}/{mode}'] = args
            settings[f'config/{name}/{mode}'] = config_settings(cfg)
            outputs.setdefault(name, {})[mode] = preds

            def done(preds: str = preds) -> bool:
                return files_complete(preds, ctx.stems('test'), '.png')
            commands.append(Command('test.py', args, True, done=done,
                                    gpus=section.get('gpus')))

    def complete() -> bool:
        return all(command.done() for command in commands)
    return Stage('test', folder, settings,
                 dict(predictions=outputs, skipped=skipped), complete, commands,
                 upstream=tuple(segs))


def plan_results(ctx: PipelineContext, plans: Dict[str, Stage]) -> Stage:
    """The results table (in-process evaluation of every stage's outputs; the
    runner sets its action over the stages that finished)."""
    folder = ctx.work_dir
    paths = [osp.join(folder, 'results.json'), osp.join(folder, 'results.md')]
    settings = dict(version=RESULTS_VERSION, biased=ctx.dataset.get(
        'biased_classes', 'auto'), masks=ctx.dataset.get('masks', 'auto'),
        seed=ctx.seed)
    return Stage('results', osp.join(folder, 'results'), settings,
                 dict(json=paths[0], markdown=paths[1]),
                 lambda: all(osp.isfile(path) for path in paths),
                 upstream=tuple(name for name in plans if name != 'results'),
                 owns_dir=False)


def plan_all(ctx: PipelineContext) -> Dict[str, Stage]:
    """Every stage of the pipeline that applies, in order (name -> plan)."""
    from .cam_stages import plan_cam_train, plan_cams, plan_pseudo_labels
    from .stages import (
        plan_dataset,
        plan_debias,
        plan_embeddings,
        plan_oracle,
        plan_uss_train,
    )
    plans: Dict[str, Stage] = {}

    def add(stage: Optional[Stage]) -> Optional[Stage]:
        if stage is not None:
            plans[stage.name] = stage
        return stage
    add(plan_dataset(ctx))
    cam_train = add(plan_cam_train(ctx))
    cams = add(plan_cams(ctx, cam_train)) if cam_train else None
    pseudo_labels = add(plan_pseudo_labels(ctx, cams, cam_train))
    uss_train = add(plan_uss_train(ctx))
    embeddings = add(plan_embeddings(ctx, uss_train))
    debias = add(plan_debias(ctx, pseudo_labels, embeddings))
    add(plan_oracle(ctx, pseudo_labels))
    segs = {}
    for name, source in SEG_STAGES.items():
        seg = add(plan_seg(ctx, name, pseudo_labels if source == 'pseudo_labels'
                           else debias))
        if seg is not None:
            segs[name] = seg
    add(plan_test(ctx, segs))
    add(plan_results(ctx, dict(plans)))
    return plans

