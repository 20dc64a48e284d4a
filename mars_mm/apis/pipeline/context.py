"""What every stage needs to know: paths, the dataset, stage configs, commands.

:class:`PipelineContext` resolves a pipeline config once: the work dir, the data
root, the dataset's classes, splits and annotations, each stage config as its tool
will read it (same :func:`mars_mm.apis.launch.load_config`, same ``--data-root``
and ``--cfg-options``), and the command line of each tool under the chosen
launcher (single process, torchrun, or Slurm's ``srun`` as ``tools/_launch.sh``).
"""
import copy
import functools
import json
import os
import os.path as osp
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config

from mars_mm.apis.launch import load_config
from mars_mm.apis.splits import build_split_dataset, dataset_files

from .config import PipelineConfigError, stage_section

#: Config keys that never change a stage's result (set per run by the tools).
VOLATILE_KEYS = ('work_dir', 'launcher', 'load_from', 'resume')
#: Which split each dataloader reads, for ``dataset.ann_files``.
LOADER_SPLITS = dict(train_dataloader='train', train_infer_dataloader='train',
                     val_dataloader='val', test_dataloader='test')


def repository_root() -> str:
    """The checkout whose ``tools/`` the stages run (``MARS_MM_ROOT`` overrides).

    Raises:
        FileNotFoundError: when ``tools/`` is missing (a non-editable install).
    """
    root = os.environ.get('MARS_MM_ROOT') or osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    if not osp.isfile(osp.join(root, 'tools', 'train.py')):
        raise FileNotFoundError(
            f'the pipeline runs the tools of a mars_mm checkout, but {root}/tools/ '
            'has no train.py: install mars_mm from a clone (pip install -e .) or '
            'set MARS_MM_ROOT to the clone')
    return root


def format_value(value: Any, key: str = '') -> str:
    """``value`` as mmengine's ``DictAction`` parses it back (``--cfg-options``).

    Raises:
        PipelineConfigError: for values a command line cannot carry (strings with
        spaces, commas, brackets or quotes; dicts inside lists; empty dicts).
    """
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if not value or any(char in value for char in ' ,()[]\'"='):
            raise PipelineConfigError(
                f'{key}={value!r}: --cfg-options cannot carry this string (empty, or '
                'with spaces, commas, brackets, quotes or "="); set it in the stage '
                'config instead')
        return value
    if isinstance(value, (list, tuple)):
        items = ','.join(format_value(item, key) for item in value)
        if isinstance(value, tuple):
            return f'({items},)' if len(value) == 1 else f'({items})'
        return f'[{items}]'
    raise PipelineConfigError(f'{key}: --cfg-options cannot carry a '
                              f'{type(value).__name__} ({value!r})')


def flatten(value: Any, prefix: str = '', lists: bool = True) -> Dict[str, Any]:
    """Nested dicts (and, with ``lists``, lists) as ``{'a.b.0.c': leaf}``."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict) and not value and not prefix:
        return {}
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f'{prefix}{key}.', lists))
        return out
    if lists and isinstance(value, (list, tuple)) and value and any(
            isinstance(item, (dict, list, tuple)) for item in value):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f'{prefix}{index}.', lists))
        return out
    if lists and isinstance(value, tuple):
        value = list(value)  # JSON has no tuples
    return {prefix[:-1]: value}


def option_args(options: Dict[str, Any]) -> List[str]:
    """``['--cfg-options', 'k=v', ...]`` for nested or dotted ``options``."""
    flat = flatten(options, lists=False)
    if not flat:
        return []
    return ['--cfg-options'] + [f'{key}={format_value(value, key)}'
                                for key, value in flat.items()]


def config_settings(cfg: Config) -> Dict[str, Any]:
    """A resolved config as flat JSON-able settings (what a stamp compares)."""
    flat = flatten(cfg.to_dict())
    settings = {}
    for key, value in flat.items():
        if key.split('.')[0] in VOLATILE_KEYS:
            continue
        settings[key] = json.loads(json.dumps(value, default=repr))
    return settings


def final_checkpoint(cfg: Config, work_dir: str) -> str:
    """The checkpoint a training of ``cfg`` ends with (mmengine's names)."""
    train_cfg = cfg.get('train_cfg', None) or {}
    if 'max_epochs' in train_cfg:
        return osp.join(work_dir, f'epoch_{train_cfg["max_epochs"]}.pth')
    if 'max_iters' in train_cfg:
        return osp.join(work_dir, f'iter_{train_cfg["max_iters"]}.pth')
    raise PipelineConfigError(f'{cfg.filename}: train_cfg has neither max_epochs nor '
                              'max_iters')


def schedule_options(cfg: Config, schedule: Optional[dict]) -> Dict[str, Any]:
    """Options that shorten a training to ``max_iters``/``max_epochs`` consistently.

    The LR schedulers that ended with the old schedule end with the new one, and
    checkpoint / validation intervals longer than the new schedule shrink to it.
    """
    if not schedule:
        return {}
    unit = 'max_epochs' if 'max_epochs' in schedule else 'max_iters'
    length = int(schedule[unit])
    old = (cfg.get('train_cfg', None) or {}).get(unit)
    if old is None:
        raise PipelineConfigError(f'{cfg.filename}: schedule sets {unit}, but its '
                                  f'train_cfg has no {unit}')
    options = {f'train_cfg.{unit}': length}
    if (cfg.train_cfg.get('val_interval') or 0) > length:
        options['train_cfg.val_interval'] = length
    checkpoint = (cfg.get('default_hooks', None) or {}).get('checkpoint') or {}
    if (checkpoint.get('interval') or 0) > length:
        options['default_hooks.checkpoint.interval'] = length
    schedulers = cfg.get('param_scheduler', None) or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for index, scheduler in enumerate(schedulers):
        if scheduler.get('end') == old:
            options[f'param_scheduler.{index}.end'] = length
    return options


def _default_argument(dataset_type: Any, name: str, fallback: Any) -> Any:
    """The default of argument ``name`` of a registered dataset class."""
    import inspect

    from mars_mm.registry import DATASETS
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else \
        dataset_type
    try:
        default = inspect.signature(cls.__init__).parameters[name].default
    except (AttributeError, KeyError, TypeError, ValueError):
        return fallback
    return fallback if default is inspect.Parameter.empty else default


def _memoised(method):
    """Cache a method's result per context and arguments (files are read once)."""
    @functools.wraps(method)
    def wrapper(self, *args):
        cache = self.__dict__.setdefault('_memo', {})
        key = (method.__name__, ) + args
        if key not in cache:
            cache[key] = method(self, *args)
        return cache[key]
    return wrapper


class PipelineContext:
    """The resolved pipeline: paths, dataset facts, stage configs and commands."""

    def __init__(self, cfg: Config, work_dir: Optional[str] = None,
                 data_root: Optional[str] = None, gpus: Optional[int] = None,
                 launcher: Optional[str] = None) -> None:
        self.cfg = cfg
        self.filename = getattr(cfg, 'filename', None)
        self.work_dir = work_dir or cfg.work_dir
        self.seed = int(cfg.get('seed', 0))
        self.gpus = int(gpus or cfg.get('gpus', 1))
        launcher = launcher or cfg.get('launcher', 'none')
        if launcher == 'none' and self.gpus > 1:
            launcher = 'pytorch'  # N GPUs on one node: torchrun
        self.launcher = launcher
        self.dataset = stage_section(cfg, 'dataset')
        self.generate = self.dataset.get('generate') or None
        self.data_root = (data_root or self.dataset.get('data_root')
                          or osp.join(self.work_dir, 'dataset'))
        self.root = repository_root()

    # ------------------------------------------------------------------ paths
    def stage_dir(self, stage: str) -> str:
        return osp.join(self.work_dir, stage)

    def section(self, stage: str) -> Dict[str, Any]:
        return stage_section(self.cfg, stage)

    # ---------------------------------------------------------------- dataset
    def dataset_options(self, cfg: Config) -> Dict[str, Any]:
        """``dataset.overrides`` / ``ann_files`` for every dataloader of ``cfg``."""
        overrides = self.dataset.get('overrides') or {}
        ann_files = self.dataset.get('ann_files') or {}
        if not overrides and not ann_files:
            return {}
        options = {}

        def apply(prefix: str, node: Any, split: str) -> None:
            if not isinstance(node, dict):
                return
            if 'dataset' in node and isinstance(node['dataset'], dict):
                apply(f'{prefix}.dataset', node['dataset'], split)  # wrappers
                if 'type' in node and 'data_root' not in node:
                    return
            for key, value in flatten(overrides, lists=False).items():
                options[f'{prefix}.{key}'] = value
            ann_file = ann_files.get(split, ann_files.get('val') if split == 'test'
                                     else None)
            if ann_file is not None:
                options[f'{prefix}.ann_file'] = ann_file

        for loader, split in LOADER_SPLITS.items():
            if isinstance(cfg.get(loader, None), dict) and cfg[loader].get('dataset'):
                apply(f'{loader}.dataset', cfg[loader]['dataset'].to_dict(), split)
        if isinstance(cfg.get('debias', None), dict) and cfg.debias.get('dataset'):
            apply('debias.dataset', cfg.debias.dataset.to_dict(), 'train')
        return options

    @_memoised
    def dataset_config(self) -> Config:
        """The dataset config at the pipeline's data root (splits, GT, scoring)."""
        cfg = load_config(self.dataset['config'], work_dir='.',
                          data_root=self.data_root)
        options = self.dataset_options(cfg)
        if options:
            cfg.merge_from_dict(options)
        return cfg

    @_memoised
    def split_files(self, split: str) -> tuple:
        """``(stem, img_path, seg_map_path)`` of every image of a split."""
        dataset = build_split_dataset(self.dataset_config(), split, pipeline=[])
        return tuple((item['stem'], item['img_path'], item['seg_map_path'])
                     for item in dataset_files(dataset))

    def stems(self, split: str = 'train') -> List[str]:
        return [stem for stem, _, _ in self.split_files(split)]

    def meta(self) -> dict:
        path = osp.join(self.data_root, 'meta.json')
        if not osp.isfile(path):
            return {}
        with open(path) as handle:
            return json.load(handle)

    @_memoised
    def classes(self) -> tuple:
        """Class names, background first (planned from the generator if needed)."""
        if self.generate and not osp.isfile(osp.join(self.data_root, 'meta.json')):
            from mars_mm.datasets.class_names import VOC_CLASSES
            from mars_mm.datasets.generators.planted_bias import DEFAULT_CLASSES
            from mars_mm.datasets.generators.planted_presets import preset_kwargs
            settings = preset_kwargs(self.generate.get('preset', 'default'))
            settings.update({k: v for k, v in self.generate.items() if k != 'preset'})
            if settings.get('voc_ids'):
                return tuple(VOC_CLASSES)
            return ('background',) + tuple(settings.get('classes', DEFAULT_CLASSES))
        meta = self.meta()
        if meta.get('classes'):
            return tuple(meta['classes'])
        from mmengine.registry import init_default_scope

        from mars_mm.apis.splits import split_dataloader_key
        from mars_mm.registry import DATASETS
        cfg = self.dataset_config()
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        dataset_cfg = copy.deepcopy(cfg[split_dataloader_key(cfg, 'train')]['dataset'])
        dataset_cfg.update(pipeline=[], lazy_init=True)  # metainfo only, no files
        try:
            return tuple(DATASETS.build(dataset_cfg).metainfo['classes'])
        except (FileNotFoundError, OSError):
            return tuple(DATASETS.get(dataset_cfg['type']).METAINFO['classes'])

    def biased_classes(self) -> List[str]:
        """Names of the biased classes: the config's list, or ``meta.json``'s."""
        names = self.dataset.get('biased_classes', 'auto')
        if names == 'auto':
            if self.generate and not self.meta():
                from mars_mm.datasets.generators.planted_bias import (
                    DEFAULT_BIAS_PAIRS,
                )
                from mars_mm.datasets.generators.planted_presets import preset_kwargs
                settings = preset_kwargs(self.generate.get('preset', 'default'))
                settings.update(self.generate)
                pairs = settings.get('bias_pairs', DEFAULT_BIAS_PAIRS)
                return [pair['cls'] for pair in pairs]
            return [pair['cls'] for pair in self.meta().get('bias_pairs', [])]
        unknown = [name for name in names or [] if name not in self.classes()]
        if unknown:
            raise PipelineConfigError(f'dataset.biased_classes {unknown} are not '
                                      f'classes of the dataset')
        return list(names or [])

    def has_context(self) -> bool:
        """A planted dataset: ``PlantedContext/`` marks the true context pixels."""
        return bool(self.generate) or osp.isdir(osp.join(self.data_root,
                                                         'PlantedContext'))

    def has_masks(self) -> bool:
        """Ground-truth masks exist for scoring (``dataset.masks``, else the
        dataset config's ``with_seg_map``; ``'auto'`` there: the mask folder)."""
        masks = self.dataset.get('masks', 'auto')
        if masks != 'auto':
            return bool(masks)
        cfg = self.dataset_config()
        dataset = (cfg.get('val_dataloader', None) or {}).get('dataset') or \
            cfg['train_dataloader']['dataset']
        with_seg_map = dataset.get('with_seg_map', _default_argument(
            dataset.get('type'), 'with_seg_map', True))
        if with_seg_map == 'auto':
            mask_dir = dataset.get('mask_dir', 'masks')
            return bool(mask_dir) and osp.isdir(osp.join(self.data_root, mask_dir))
        return bool(with_seg_map)

    # ---------------------------------------------------------- stage configs
    def class_options(self, cfg: Config) -> Dict[str, Any]:
        """A stage model's class counts from the dataset (``num_classes='auto'``)."""
        if self.dataset.get('num_classes') != 'auto' or 'model' not in cfg:
            return {}
        count = len(self.classes())
        model, options = cfg.model, {}
        if model.get('type') == 'CAMClassifier' and 'num_classes' in model.get(
                'head', {}):
            options['model.head.num_classes'] = count - 1  # tags: no background
        if isinstance(model.get('decode_head'), dict):
            options['model.decode_head.num_classes'] = count
        auxiliary = model.get('auxiliary_head')
        if isinstance(auxiliary, dict):
            options['model.auxiliary_head.num_classes'] = count
        elif isinstance(auxiliary, list):
            for index in range(len(auxiliary)):
                options[f'model.auxiliary_head.{index}.num_classes'] = count
        return options

    @_memoised
    def _loaded(self, path: str) -> Config:
        return load_config(path, work_dir='.', data_root=self.data_root)

    def resolve(self, path: str, *option_dicts: Optional[dict]) -> tuple:
        """A stage config as its tool reads it, and the options that made it.

        The dataset overrides and class counts are derived from the config first;
        the stage's own options come last and win. Same result as the tool's
        :func:`~mars_mm.apis.launch.load_config` (read, ``--data-root``, then
        ``--cfg-options``), with each file read once.

        Returns:
            tuple: ``(Config, options)`` with ``options`` the flat dotted dict.
        """
        base = self._loaded(path)
        options = {}
        options.update(self.dataset_options(base))
        options.update(self.class_options(base))
        for extra in option_dicts:
            options.update(flatten(extra or {}, lists=False))
        cfg = copy.deepcopy(base)
        if options:
            cfg.merge_from_dict(dict(options))
        return cfg, options

    # --------------------------------------------------------------- commands
    def tool_path(self, script: str) -> str:
        path = osp.join(self.root, 'tools', script)
        if not osp.isfile(path):
            raise FileNotFoundError(f'tool not found: {path}')
        return path

    def argv(self, script: str, args: Sequence[str], distributed: bool,
             gpus: Optional[int] = None) -> List[str]:
        """The command line of a tool under the launcher.

        A distributed tool runs on ``gpus`` (default: the pipeline's) processes
        with ``--launcher``; one process runs plainly, except under Slurm, where
        every tool runs through ``srun`` (one task unless distributed).
        """
        tool = self.tool_path(script)
        args = [str(arg) for arg in args]
        count = int(gpus or self.gpus) if distributed else 1
        env = os.environ
        if self.launcher == 'slurm':  # tools/_launch.sh's srun line
            per_node = int(env.get('GPUS_PER_NODE', min(count, 8)))
            partition = env.get('PARTITION')
            command = ['srun'] + (['-p', partition] if partition else []) + [
                f'--job-name={env.get("JOB_NAME", "mars_mm")}',
                f'--gres=gpu:{per_node}', f'--ntasks={count}',
                f'--ntasks-per-node={per_node}',
                f'--cpus-per-task={env.get("CPUS_PER_TASK", 5)}',
                '--kill-on-bad-exit=1'] + shlex.split(env.get('SRUN_ARGS', ''))
            return command + [sys.executable, '-u', tool] + args + (
                ['--launcher=slurm'] if distributed else [])
        if count == 1:
            return [sys.executable, tool] + args
        return [sys.executable, '-m', 'torch.distributed.run',
                f'--nnodes={env.get("NNODES", 1)}',
                f'--node_rank={env.get("NODE_RANK", 0)}',
                f'--master_addr={env.get("MASTER_ADDR", "127.0.0.1")}',
                f'--master_port={env.get("PORT", 29500)}',
                f'--nproc_per_node={count}', tool] + args + ['--launcher', 'pytorch']

    def display(self, argv: Sequence[str]) -> str:
        """A command line for the console, paths relative to the working dir."""
        cwd = os.getcwd()

        def short(arg: str) -> str:
            if arg == sys.executable:
                return 'python'
            if osp.isabs(arg) and arg.startswith(cwd + os.sep):
                return osp.relpath(arg, cwd)
            return arg
        return shlex.join(short(arg) for arg in argv)
