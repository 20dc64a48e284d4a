"""Stage 1 plans: the CAM classifier, its CAMs and the pseudo labels.

Two ways to the labels: ``generate_cams.py`` then ``make_pseudo_labels.py`` (CAM
files kept, so the results table can score them), or the fused
``generate_pseudo_labels.py`` (``pseudo_labels.fused=True``: the same labels, no CAM
files); or an external label folder (``pseudo_labels.external``), which skips both.
"""
import os.path as osp
from typing import Any, Dict, List, Optional

from .config import PipelineConfigError
from .context import PipelineContext, config_settings, option_args
from .stages import Command, Stage, files_complete, listing_signature, training_stage


def plan_cam_train(ctx: PipelineContext) -> Optional[Stage]:
    section = ctx.section('cam_train')
    if ctx.section('pseudo_labels').get('external') or not section.get('enabled',
                                                                        True):
        return None
    return training_stage(ctx, 'cam_train', section['config'],
                          section.get('cfg_options'), upstream=('dataset', ),
                          schedule=section.get('schedule'), gpus=section.get('gpus'))


def fused_cam_job(ctx: PipelineContext) -> bool:
    """Stage 1 as one job (``pseudo_labels.fused``): CAMs -> labels without CAM
    files (``tools/cam/generate_pseudo_labels.py``); no ``cams`` stage."""
    section = ctx.section('pseudo_labels')
    return bool(section.get('fused', False)) and not section.get('external')


def cam_inference_args(ctx: PipelineContext, cam_train: Stage,
                       folder: str) -> tuple:
    """The arguments a CAM inference job (``generate_cams.py`` or the fused
    ``generate_pseudo_labels.py``) takes from ``cam_train`` and the ``cams``
    section, without ``--cfg-options``; the resolved config and its options."""
    section = ctx.section('cams')
    config = cam_train.outputs['config']
    cfg, options = ctx.resolve(config, section.get('cfg_options'))
    scales = section.get('scales')
    args = [config, cam_train.outputs['checkpoint'], '--out', folder, '--split',
            'train', '--data-root', ctx.data_root]
    if scales:
        args += ['--scales'] + [str(float(scale)) for scale in scales]
    if not section.get('flip', True):
        args.append('--no-flip')
    if section.get('max_batch'):
        args += ['--max-batch', str(section['max_batch'])]
    return args, cfg, options


def plan_cams(ctx: PipelineContext, cam_train: Stage) -> Optional[Stage]:
    if fused_cam_job(ctx):
        return None  # the pseudo_labels stage runs the CAMs itself
    section = ctx.section('cams')
    folder = ctx.stage_dir('cams')
    args, cfg, options = cam_inference_args(ctx, cam_train, folder)
    args += option_args(options)
    return Stage('cams', folder, dict(args=args, config=config_settings(cfg)),
                 dict(cams=folder, config=cam_train.outputs['config'],
                      options=options),
                 lambda: files_complete(folder, ctx.stems('train'), '.npz'),
                 [Command('cam/generate_cams.py', args, True,
                          gpus=section.get('gpus'))],
                 upstream=('cam_train', ))


def _label_args(section: Dict[str, Any], crf_flag: bool) -> List[str]:
    """Background score and CRF arguments of a pseudo-label job.

    ``crf_flag``: whether the tool spells the CRF's default out (``--crf``:
    ``make_pseudo_labels.py``; ``generate_pseudo_labels.py`` has only
    ``--no-crf``). The args are part of the stage's settings stamp, so each tool's
    spelling stays what it was.
    """
    if section.get('bg_threshold') is not None:
        args = ['--bg-threshold', str(float(section['bg_threshold']))]
    else:
        args = ['--bg-power', str(float(section.get('bg_power', 2.0)))]
    if section.get('crf', True):
        return args + (['--crf'] if crf_flag else [])
    return args + ['--no-crf']


def plan_fused_pseudo_labels(ctx: PipelineContext, cam_train: Stage) -> Stage:
    """``tools/cam/generate_pseudo_labels.py``: the CAM job's inputs and settings
    (``cams`` section) and the label settings, on the CAM job's GPUs."""
    section = ctx.section('pseudo_labels')
    folder = ctx.stage_dir('pseudo_labels')
    args, cfg, options = cam_inference_args(ctx, cam_train, folder)
    args += _label_args(section, crf_flag=False) + option_args(options)
    return Stage('pseudo_labels', folder, dict(args=args, config=config_settings(cfg)),
                 dict(labels=folder, external=False, fused=True),
                 lambda: files_complete(folder, ctx.stems('train'), '.png'),
                 [Command('cam/generate_pseudo_labels.py', args, True,
                          gpus=ctx.section('cams').get('gpus'))],
                 upstream=('cam_train', ))


def plan_pseudo_labels(ctx: PipelineContext, cams: Optional[Stage],
                       cam_train: Optional[Stage]) -> Stage:
    section = ctx.section('pseudo_labels')
    folder = ctx.stage_dir('pseudo_labels')
    external = section.get('external')
    if external:
        return Stage('pseudo_labels', folder,
                     dict(external=osp.abspath(external),
                          files=listing_signature(external)),
                     dict(labels=external, external=True),
                     lambda: files_complete(external, ctx.stems('train'), '.png'),
                     upstream=('dataset', ), owns_dir=False)
    if fused_cam_job(ctx):
        if cam_train is None:
            raise PipelineConfigError('pseudo_labels.fused=True runs the trained CAM '
                                      'classifier: cam_train must be enabled')
        return plan_fused_pseudo_labels(ctx, cam_train)
    args = [cams.outputs['cams'], '--dataset', cams.outputs['config'], '--out',
            folder, '--split', 'train', '--data-root', ctx.data_root]
    args += _label_args(section, crf_flag=True)
    dataset_options = {key: value for key, value in cams.outputs['options'].items()
                       if '_dataloader.' in key}
    args += option_args(dataset_options)
    workers = ['--workers', str(int(section.get('workers', 0)))]
    return Stage('pseudo_labels', folder, dict(args=args),
                 dict(labels=folder, external=False),
                 lambda: files_complete(folder, ctx.stems('train'), '.png'),
                 [Command('cam/make_pseudo_labels.py', args + workers)],
                 upstream=('cams', ))
