"""Reading and checking a pipeline config (``configs/pipelines/*.py``).

A pipeline config is a classic OpenMMLab Python config (``_base_`` inheritance,
``--cfg-options``) that names each stage's config and options; the driver
(:func:`mars_mm.apis.pipeline.run_pipeline`) resolves everything else: every
stage's inputs are the outputs of the stage before it.

Top-level keys (all stage dicts are optional unless the stage runs):

``work_dir``
    where every stage writes (``<work_dir>/<stage>/``), ``results.md/json``.
``seed``
    ``randomness.seed`` of every training stage.
``gpus``, ``launcher``
    defaults of ``--gpus`` / ``--launcher``.
``dataset``
    ``config`` (a dataset config: splits and ground truth for scoring),
    ``data_root`` (default: ``<work_dir>/dataset`` for a generated dataset),
    ``generate`` (planted only: ``dict(preset=..., **generator overrides)``),
    ``num_classes`` (``'auto'``: set every stage model's class count from the
    dataset), ``biased_classes`` (names; ``'auto'``: ``meta.json`` bias pairs),
    ``overrides`` (fields set on every dataloader dataset of every stage config,
    e.g. ``type='TaggedImageDataset'`` for your own data), ``ann_files``
    (``dict(train=..., val=...)``: the split file of each dataloader),
    ``masks`` (``'auto'``/True/False: ground-truth masks exist for scoring).
``cam_train``, ``uss_train``, ``seg_baseline``, ``seg_mars``
    ``config``, ``cfg_options`` (nested dicts, passed as ``--cfg-options``),
    ``schedule`` (``dict(max_iters=N)`` or ``dict(max_epochs=N)``: shortens the
    training and its LR schedule consistently), ``enabled``, ``gpus`` (this
    stage's process count, e.g. 1 for a ``1xb16`` recipe in a 4-GPU pipeline;
    every stage with tools takes it).
``cams``
    ``scales``, ``flip``, ``max_batch``, ``cfg_options`` (the config is
    ``cam_train``'s), ``gpus``; with ``pseudo_labels.fused`` they are the fused
    job's.
``pseudo_labels``
    ``external`` (a folder of another method's labels: the CAM stages are
    skipped), ``bg_power`` / ``bg_threshold``, ``crf``, ``workers``, ``fused``
    (True: Stage 1 is one job, ``tools/cam/generate_pseudo_labels.py``, on the
    ``cams`` section's GPUs and settings; the same labels byte for byte, but no
    ``cams`` stage and no CAM files, so the results table has no CAM score;
    ``workers`` is then unused. Default False: ``generate_cams.py`` writes
    ``<stem>.npz`` CAMs, then ``make_pseudo_labels.py``).
``embeddings``
    ``config`` (a ``DenseEmbedder`` exports without training; any other model is
    trained first by ``uss_train``), ``cfg_options``, ``what``, ``scales``,
    ``flip``, ``gpus``, ``compact`` (``dict(bits=4|8, pool=1)``: write
    ``<stem>.q8.npz`` codes, ``extract_features.py --compact-bits B
    --compact-pool P``, instead of lossless float16 ``<stem>.npy``; Stage 3 then
    reads them with ``debias.embedding_suffix=.q8.npz``. Default None:
    lossless). ``docs/en/benchmarks.md`` ("Disk use") gives the bytes: COCO
    train 182 GB lossless, 7.7 GB fused + 4-bit.
``debias``
    ``config``, ``cfg_options``, ``report``.
``oracle``
    ``enabled`` (``'auto'``: when the dataset has ``PlantedContext/``),
    ``context_weight``.
``test``
    ``modes`` (any of ``'ss'``, ``'ms_flip'``, ``'ms_flip_crf'``), ``cfg_options``.
"""
import copy
import os.path as osp
from typing import Any, Dict, Optional, Union

from mmengine.config import Config

#: Every stage, in execution order.
STAGES = ('dataset', 'cam_train', 'cams', 'pseudo_labels', 'uss_train', 'embeddings',
          'debias', 'oracle', 'seg_baseline', 'seg_mars', 'test', 'results')
#: Test-time settings of the segmentation rows.
TEST_MODES = ('ss', 'ms_flip', 'ms_flip_crf')
TEST_MODE_NAMES = dict(ss='single scale', ms_flip='multi-scale + flip',
                       ms_flip_crf='multi-scale + flip + CRF')
LAUNCHERS = ('none', 'pytorch', 'slurm')

#: Keys each stage dict may hold (a typo is an error, not a silent default).
STAGE_KEYS = {
    'cam_train': {'config', 'cfg_options', 'schedule', 'enabled', 'gpus'},
    'cams': {'scales', 'flip', 'cfg_options', 'max_batch', 'gpus'},
    'pseudo_labels': {'external', 'bg_power', 'bg_threshold', 'crf', 'workers',
                      'fused'},
    'uss_train': {'cfg_options', 'schedule', 'enabled', 'knn', 'gpus'},
    'embeddings': {'config', 'cfg_options', 'what', 'scales', 'flip', 'gpus',
                   'compact'},
    'debias': {'config', 'cfg_options', 'report', 'gpus'},
    'oracle': {'enabled', 'context_weight', 'gpus'},
    'seg_baseline': {'config', 'cfg_options', 'schedule', 'enabled', 'gpus'},
    'seg_mars': {'config', 'cfg_options', 'schedule', 'enabled', 'gpus'},
    'test': {'modes', 'cfg_options', 'enabled', 'gpus'},
}
DATASET_KEYS = {'config', 'data_root', 'generate', 'num_classes', 'biased_classes',
                'overrides', 'ann_files', 'masks', 'name'}
TOP_KEYS = {'work_dir', 'seed', 'gpus', 'launcher', 'dataset', 'results'} | set(
    STAGE_KEYS)


class PipelineConfigError(ValueError):
    """A pipeline config that cannot run, with the key and the reason."""


def load_pipeline_config(config: Union[str, Config, dict],
                         cfg_options: Optional[dict] = None) -> Config:
    """Read a pipeline config (path, ``Config`` or dict), apply options, check it.

    Raises:
        FileNotFoundError: the file does not exist.
        PipelineConfigError: unknown keys, missing stage configs, bad values.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, dict):
        cfg = Config(copy.deepcopy(config))
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'pipeline config not found: {config}')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    validate(cfg)
    return cfg


def _section(cfg: Config, key: str) -> Dict[str, Any]:
    value = cfg.get(key, None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipelineConfigError(f'`{key}` must be a dict, got {type(value).__name__}')
    return value


def validate(cfg: Config) -> None:
    """Check keys and values; raise :class:`PipelineConfigError` naming the key."""
    unknown = {key for key in cfg.keys()
               if key not in TOP_KEYS and not key.startswith('_')}
    if unknown:
        raise PipelineConfigError(
            f'unknown pipeline keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}')
    if not cfg.get('work_dir', None):
        raise PipelineConfigError('`work_dir` is required')
    dataset = _section(cfg, 'dataset')
    bad = set(dataset) - DATASET_KEYS
    if bad:
        raise PipelineConfigError(f'unknown dataset keys {sorted(bad)}; known: '
                                  f'{sorted(DATASET_KEYS)}')
    if not dataset.get('config'):
        raise PipelineConfigError('`dataset.config` (a dataset config with the '
                                  'dataloaders, for splits and scoring) is required')
    if not dataset.get('data_root') and not dataset.get('generate'):
        raise PipelineConfigError('`dataset.data_root` is required unless the '
                                  'dataset is generated (`dataset.generate`)')
    for stage, keys in STAGE_KEYS.items():
        section = _section(cfg, stage)
        bad = set(section) - keys
        if bad:
            raise PipelineConfigError(f'unknown keys {sorted(bad)} in `{stage}`; '
                                      f'known: {sorted(keys)}')
        schedule = section.get('schedule') or {}
        if set(schedule) - {'max_iters', 'max_epochs'}:
            raise PipelineConfigError(f'`{stage}.schedule` takes max_iters or '
                                      f'max_epochs, got {sorted(schedule)}')
    fused = _section(cfg, 'pseudo_labels').get('fused', False)
    if not isinstance(fused, bool):
        raise PipelineConfigError(f'`pseudo_labels.fused` must be True or False, '
                                  f'got {fused!r}')
    _check_compact(_section(cfg, 'embeddings').get('compact'))
    if cfg.get('launcher', 'none') not in LAUNCHERS:
        raise PipelineConfigError(f'launcher must be one of {LAUNCHERS}')
    external = _section(cfg, 'pseudo_labels').get('external')
    required = ['embeddings', 'debias']
    if not external:
        required.insert(0, 'cam_train')
    required += [name for name in ('seg_baseline', 'seg_mars')
                 if _section(cfg, name).get('enabled', True)]
    for stage in required:
        if stage == 'cam_train' and not _section(cfg, stage).get('enabled', True):
            raise PipelineConfigError('cam_train is disabled but no '
                                      '`pseudo_labels.external` folder is given')
        if not _section(cfg, stage).get('config'):
            raise PipelineConfigError(f'`{stage}.config` is required')
    modes = _section(cfg, 'test').get('modes', TEST_MODES)
    bad = [mode for mode in modes if mode not in TEST_MODES]
    if bad:
        raise PipelineConfigError(f'unknown test modes {bad}; known: {TEST_MODES}')


def _check_compact(compact: Any) -> None:
    """``embeddings.compact``: None/False, or ``dict(bits=4|8, pool=N >= 1)``."""
    if compact is None or compact is False:
        return
    if not isinstance(compact, dict):
        raise PipelineConfigError('`embeddings.compact` must be dict(bits=4|8, '
                                  f'pool=1) or None, got {compact!r}')
    bad = set(compact) - {'bits', 'pool'}
    if bad:
        raise PipelineConfigError(f'unknown keys {sorted(bad)} in '
                                  '`embeddings.compact`; known: bits, pool')
    if compact.get('bits', 4) not in (4, 8):
        raise PipelineConfigError('`embeddings.compact.bits` must be 4 or 8, got '
                                  f'{compact.get("bits")!r}')
    pool = compact.get('pool', 1)
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise PipelineConfigError('`embeddings.compact.pool` must be an integer '
                                  f'>= 1, got {pool!r}')


def stage_section(cfg: Config, stage: str) -> Dict[str, Any]:
    """The stage's dict as plain Python (``{}`` when absent)."""
    section = cfg.get(stage, None)
    if section is None:
        return {}
    return section.to_dict() if hasattr(section, 'to_dict') else dict(section)


def check_stage_name(name: Optional[str], option: str) -> Optional[str]:
    """``name`` if it is a stage, else a :class:`PipelineConfigError`."""
    if name is not None and name not in STAGES:
        raise PipelineConfigError(f'{option} {name!r}: choose one of '
                                  f'{", ".join(STAGES)}')
    return name
