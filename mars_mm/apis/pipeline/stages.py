"""One definition per stage: inputs, outputs, settings, commands, completeness.

A *plan* is built for every stage before anything runs, from the pipeline config
alone: the output paths are fixed (``<work_dir>/<stage>/...``), so each stage's
inputs are known in advance, a dry run can print every command, and the settings
digest of a stage (its resolved config, tool arguments and its upstream stages'
digests) can be compared with the stamp of its last run.

The dataset, Stages 2-3 and the oracle are here; Stage 1 is in :mod:`.cam_stages`,
Stage 4, the test and the results in :mod:`.seg_stages`.
"""
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mars_mm.debias.quantised import QUANTISED_SUFFIX

from .config import PipelineConfigError
from .context import (
    PipelineContext,
    config_settings,
    final_checkpoint,
    flatten,
    option_args,
    schedule_options,
)


@dataclass
class Command:
    """One tool run of a stage.

    Attributes:
        script: the tool, relative to ``tools/``.
        args: its arguments (paths as the console shows them).
        distributed: launched on every GPU (``--launcher``) or as one process.
        done: on a resumed stage, a command whose outputs are complete is skipped.
        total, unit: training length (epochs or iterations) for the progress bar.
        gpus: processes of a distributed tool (default: the pipeline's).
    """
    script: str
    args: List[str]
    distributed: bool = False
    done: Optional[Callable[[], bool]] = None
    total: Optional[int] = None
    unit: str = 'img'
    gpus: Optional[int] = None


@dataclass
class Stage:
    """A planned stage.

    Attributes:
        name: one of :data:`~.config.STAGES`.
        dir: its folder (stamps, logs, outputs).
        settings: JSON-able values that determine its outputs (digested).
        outputs: paths the later stages and the results read.
        complete: whether every output exists.
        commands: tool runs, in order, after ``action``.
        action: in-process work (dataset generation, oracle inputs, results).
        upstream: stages whose outputs it reads (their digests join its own).
        training: a killed run resumes with ``--resume``.
        owns_dir: the folder may be removed when the settings change.
        notes: printed before the stage runs (e.g. a recipe on another GPU count).
    """
    name: str
    dir: str
    settings: Dict[str, Any]
    outputs: Dict[str, Any]
    complete: Callable[[], bool]
    commands: List[Command] = field(default_factory=list)
    action: Optional[Callable[[], None]] = None
    upstream: Tuple[str, ...] = ()
    training: bool = False
    owns_dir: bool = True
    notes: List[str] = field(default_factory=list)


def files_complete(folder: str, stems: Sequence[str], suffix: str) -> bool:
    """Whether ``folder/<stem><suffix>`` exists for every stem."""
    if not osp.isdir(folder):
        return False
    present = set(os.listdir(folder))
    return all(stem + suffix in present for stem in stems)


def listing_signature(folder: str) -> str:
    """Names, sizes and modification times of a folder's files, digested."""
    import hashlib
    if not osp.isdir(folder):
        return 'missing'
    digest = hashlib.sha256()
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        if entry.is_file():
            stat = entry.stat()
            digest.update(f'{entry.name}:{stat.st_size}:{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()[:16]


def _progress_unit(cfg) -> Tuple[int, str]:
    train_cfg = cfg.get('train_cfg', None) or {}
    if 'max_epochs' in train_cfg:
        return int(train_cfg['max_epochs']), 'epoch'
    return int(train_cfg.get('max_iters', 0)), 'iter'


def training_stage(ctx: PipelineContext, name: str, config: str,
                   *option_dicts: Optional[dict], upstream: Tuple[str, ...],
                   schedule: Optional[dict] = None, gpus: Optional[int] = None,
                   before: Sequence[Command] = ()) -> Stage:
    """``tools/train.py`` on ``config`` into ``<work_dir>/<name>``, seeded."""
    folder = ctx.stage_dir(name)
    seed = {'randomness.seed': ctx.seed}
    base, _ = ctx.resolve(config, seed, *option_dicts)
    cfg, options = ctx.resolve(config, seed, schedule_options(base, schedule),
                               *option_dicts)
    args = [config, '--work-dir', folder, '--data-root', ctx.data_root] + \
        option_args(options)
    checkpoint = final_checkpoint(cfg, folder)
    total, unit = _progress_unit(cfg)
    world_size = int(gpus or ctx.gpus)
    notes = []
    recipe = re.search(r'_(\d+)xb(\d+)-', osp.basename(config))
    if recipe and int(recipe.group(1)) != world_size:
        notes.append(f'the recipe {recipe.group(0)[1:-1]} of {osp.basename(config)} '
                     f'runs on {world_size} process(es): the total batch differs '
                     f'(set {name}.gpus to keep it)')
    for command in before:
        command.gpus = command.gpus or gpus
    return Stage(
        name, folder,
        settings=dict(config=config_settings(cfg), args=args, world_size=world_size),
        outputs=dict(checkpoint=checkpoint, config=config, options=options),
        complete=lambda: osp.isfile(checkpoint),
        commands=list(before) + [Command('train.py', args, True, total=total,
                                         unit=unit, gpus=world_size,
                                         done=lambda: osp.isfile(checkpoint))],
        upstream=upstream, training=True, notes=notes)


# ------------------------------------------------------------------- dataset
def plan_dataset(ctx: PipelineContext) -> Stage:
    """Generate the planted dataset when missing, or check the data root."""
    folder = ctx.stage_dir('dataset')
    generate = dict(ctx.generate or {})
    settings = dict(data_root=ctx.data_root, config=ctx.dataset['config'],
                    overrides=flatten(ctx.dataset.get('overrides') or {}),
                    ann_files=ctx.dataset.get('ann_files') or {}, generate=generate)
    meta_path = osp.join(ctx.data_root, 'meta.json')

    def generated_as_asked() -> bool:
        if not osp.isfile(meta_path):
            return False
        recorded = ctx.meta().get('settings', {})
        wanted = dict(generate)
        wanted['preset'] = wanted.get('preset', 'default')
        import json
        return all(json.loads(json.dumps(recorded.get(key))) ==
                   json.loads(json.dumps(value)) for key, value in wanted.items()
                   if key in recorded or key == 'preset')

    def action() -> None:
        if generate:
            if generated_as_asked():
                return
            from tqdm import tqdm

            from mars_mm.datasets.generators.planted_bias import generate_preset
            options = {k: v for k, v in generate.items() if k != 'preset'}
            if isinstance(options.get('image_size'), list):
                options['image_size'] = tuple(
                    tuple(side) if isinstance(side, list) else side
                    for side in options['image_size'])
            bar = tqdm(desc='generating', unit='img', dynamic_ncols=True,
                       disable=None)

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
            generate_preset(ctx.data_root, generate.get('preset', 'default'),
                            progress=progress, **options)
            bar.close()
        stems = ctx.stems('train')
        if not stems:
            raise PipelineConfigError(f'{ctx.data_root}: the train split is empty')

    def complete() -> bool:
        return generated_as_asked() if generate else osp.isdir(ctx.data_root)

    inside = osp.abspath(ctx.data_root).startswith(osp.abspath(folder) + os.sep) or \
        osp.abspath(ctx.data_root) == osp.abspath(folder)
    return Stage('dataset', folder, settings, dict(data_root=ctx.data_root),
                 complete, action=action, owns_dir=bool(generate) and inside)


# ------------------------------------------------------------------- Stage 2
def compact_settings(section: Dict[str, Any]) -> Optional[Dict[str, int]]:
    """``embeddings.compact`` as ``dict(bits, pool)``, or None (lossless ``.npy``)."""
    compact = section.get('compact')
    if not compact:
        return None
    return dict(bits=int(compact.get('bits', 4)), pool=int(compact.get('pool', 1)))


def embedding_is_trained(ctx: PipelineContext) -> bool:
    """Whether the embedding model must be trained first (``uss_train``)."""
    enabled = ctx.section('uss_train').get('enabled', 'auto')
    if enabled != 'auto':
        return bool(enabled)
    section = ctx.section('embeddings')
    cfg, _ = ctx.resolve(section['config'], section.get('cfg_options'))
    return cfg.model.get('type') != 'DenseEmbedder'


def plan_uss_train(ctx: PipelineContext) -> Optional[Stage]:
    if not embedding_is_trained(ctx):
        return None
    section, embeddings = ctx.section('uss_train'), ctx.section('embeddings')
    knn = osp.join(ctx.stage_dir('uss_train'), 'knn.npz')
    knn_options = {'train_dataloader.dataset.knn_file': knn}
    cfg, options = ctx.resolve(embeddings['config'], embeddings.get('cfg_options'),
                               knn_options)
    knn_args = [embeddings['config'], '--out', knn, '--data-root', ctx.data_root,
                '--k', str(int((section.get('knn') or {}).get('k', 7)))] + \
        option_args(options)
    precompute = Command('uss/precompute_knn.py', knn_args, True,
                         done=lambda: osp.isfile(knn))
    stage = training_stage(ctx, 'uss_train', embeddings['config'],
                           embeddings.get('cfg_options'), knn_options,
                           section.get('cfg_options'), upstream=('dataset', ),
                           schedule=section.get('schedule'), gpus=section.get('gpus'),
                           before=[precompute])
    stage.settings['knn'] = knn_args
    return stage


def plan_embeddings(ctx: PipelineContext, uss_train: Optional[Stage]) -> Stage:
    section = ctx.section('embeddings')
    folder = ctx.stage_dir('embeddings')
    config = section['config']
    extra = uss_train.outputs['options'] if uss_train else {}
    cfg, options = ctx.resolve(config, extra, section.get('cfg_options'))
    args = [config] + ([uss_train.outputs['checkpoint']] if uss_train else []) + [
        '--out', folder, '--split', 'train', '--data-root', ctx.data_root]
    if section.get('what'):
        args += ['--what', section['what']]
    if section.get('scales'):
        args += ['--scales'] + [str(float(scale)) for scale in section['scales']]
    if section.get('flip') is False:
        args.append('--no-flip')
    compact = compact_settings(section)
    if compact:
        args += ['--compact-bits', str(compact['bits']), '--compact-pool',
                 str(compact['pool'])]
    suffix = QUANTISED_SUFFIX if compact else '.npy'
    args += option_args({key: value for key, value in options.items()
                         if key != 'randomness.seed'})
    return Stage('embeddings', folder, dict(args=args, config=config_settings(cfg)),
                 dict(embeddings=folder, suffix=suffix),
                 lambda: files_complete(folder, ctx.stems('train'), suffix),
                 [Command('uss/extract_features.py', args, True,
                          gpus=section.get('gpus'))],
                 upstream=('uss_train', ) if uss_train else ('dataset', ))


# ------------------------------------------------------------------- Stage 3
def debias_command(ctx: PipelineContext, folder: str, labels: str, embeddings: str,
                   extra: Optional[dict] = None, report: bool = True,
                   suffix: str = '.npy') -> tuple:
    """The debias tool's arguments and its resolved config (``suffix``: the
    embedding files' ending, set only when not the default ``.npy``)."""
    section = ctx.section('debias')
    config = section['config']
    inputs = {'debias.pseudo_label_dir': labels, 'debias.embedding_dir': embeddings}
    if suffix != '.npy':
        inputs['debias.embedding_suffix'] = suffix
    cfg, options = ctx.resolve(config, inputs, section.get('cfg_options'), extra)
    args = [config, '--work-dir', folder, '--data-root', ctx.data_root] + (
        [] if report else ['--no-report']) + option_args(options)
    return args, cfg


def plan_debias(ctx: PipelineContext, pseudo_labels: Stage,
                embeddings: Stage) -> Stage:
    folder = ctx.stage_dir('debias')
    report = bool(ctx.section('debias').get('report', True))
    args, cfg = debias_command(ctx, folder, pseudo_labels.outputs['labels'],
                               embeddings.outputs['embeddings'], report=report,
                               suffix=embeddings.outputs.get('suffix', '.npy'))
    labels, report_dir = osp.join(folder, 'labels'), osp.join(folder, 'report')

    def complete() -> bool:
        return files_complete(labels, ctx.stems('train'), '.png') and (
            not report or osp.isfile(osp.join(report_dir, 'report.md')))
    return Stage('debias', folder, dict(args=args, config=config_settings(cfg)),
                 dict(labels=labels, report=report_dir if report else None),
                 complete, [Command('mars/debias.py', args, True,
                                    gpus=ctx.section('debias').get('gpus'))],
                 upstream=('pseudo_labels', 'embeddings'))


def oracle_enabled(ctx: PipelineContext) -> bool:
    enabled = ctx.section('oracle').get('enabled', 'auto')
    return ctx.has_context() if enabled == 'auto' else bool(enabled)


def plan_oracle(ctx: PipelineContext, pseudo_labels: Stage) -> Optional[Stage]:
    """MARS with an ideal embedding (planted datasets): the same debias config on
    oracle embeddings, without centring (an ideal embedding must not be centred)."""
    if not oracle_enabled(ctx):
        return None
    folder = ctx.stage_dir('oracle')
    embeddings = osp.join(folder, 'embeddings')
    weight = float(ctx.section('oracle').get('context_weight', 0.5))
    args, cfg = debias_command(ctx, osp.join(folder, 'debias'),
                               pseudo_labels.outputs['labels'], embeddings,
                               extra={'debias.centring': 'none'}, report=False)
    stride = int(cfg.debias.get('embedding_stride', 8))
    labels = osp.join(folder, 'debias', 'labels')

    def action() -> None:
        from tqdm import tqdm

        from mars_mm.debias.analysis import oracle_embedding
        from mars_mm.utils.io import load_label_png, save_array
        num_classes = len(ctx.classes())
        for stem, _, seg_map in tqdm(ctx.split_files('train'),
                                     desc='oracle embeddings', dynamic_ncols=True,
                                     disable=None):
            path = osp.join(embeddings, stem + '.npy')
            if osp.isfile(path):
                continue
            gt = load_label_png(seg_map)
            context = load_label_png(osp.join(ctx.data_root, 'PlantedContext',
                                              stem + '.png')) > 0
            save_array(path, np.ascontiguousarray(oracle_embedding(
                gt, context, num_classes, stride=stride, context_weight=weight)))

    return Stage('oracle', folder,
                 dict(args=args, config=config_settings(cfg), context_weight=weight),
                 dict(labels=labels, embeddings=embeddings),
                 lambda: files_complete(labels, ctx.stems('train'), '.png'),
                 [Command('mars/debias.py', args, True,
                          gpus=ctx.section('oracle').get('gpus'))], action=action,
                 upstream=('dataset', 'pseudo_labels'))
