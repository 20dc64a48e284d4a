"""Config loading and runner/launcher set-up shared by all tools.

The tools in ``tools/`` only parse arguments; what they have in common (config
overrides, work dirs, distributed start-up on machines with or without CUDA) lives
here so that every tool behaves the same way.
"""
import argparse
import atexit
import copy
import difflib
import inspect
import os
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence, Set

from mmengine.config import Config, DictAction

from mars_mm.utils.checkpoint import (
    check_checkpoint_file,
    checkpoint_seed,
    resume_checkpoint,
)
from mars_mm.utils.compat import init_cpu_process_group, setup_cpu_distributed
from mars_mm.utils.io import stem_of

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: Top-level keys read after the config is parsed, by mmengine's Runner or by
#: mars_mm's tools; a config may lack them (``--cfg-options`` may add them). Keys
#: ending in ``_dataloader`` or ``_evaluator`` are read too.
RUNTIME_KEYS = frozenset({
    # mmengine.runner.Runner.from_cfg and Runner.__init__
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper',
    'param_scheduler', 'val_evaluator', 'test_evaluator', 'default_hooks',
    'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher',
    'env_cfg', 'log_processor', 'log_level', 'visualizer', 'default_scope',
    'randomness', 'experiment_name', 'model_wrapper_cfg', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type',
    'strategy', 'custom_imports',
    # mars_mm's tools
    'tta_model', 'tta_pipeline', 'train_infer_dataloader', 'test_server_dataloader',
    'cam_pipeline', 'uss_image_pipeline', 'knn_cfg', 'export', 'debias',
})


def _read_at_runtime(key: str) -> bool:
    return key in RUNTIME_KEYS or key.endswith(('_dataloader', '_evaluator'))


def resolve_config_path(path: str) -> str:
    """``path``, or the config its folder's ``metafile.yaml`` lists it as an alias of.

    Short names such as ``configs/mars/deeplab_r101_voc.py`` are ``Alias`` entries of
    a metafile model, not files: a command typed with one keeps working and warns
    with the real config's path.

    Raises:
        FileNotFoundError: naming ``path`` when it is neither a file nor an alias.
    """
    if osp.isfile(path):
        return path
    metafile = osp.join(osp.dirname(path), 'metafile.yaml')
    if osp.isfile(metafile):
        from mmengine.fileio import load
        alias = stem_of(path)
        for model in load(metafile).get('Models', []):
            if alias in (model.get('Alias') or []):
                target = osp.join(osp.dirname(path), osp.basename(model['Config']))
                warnings.warn(f'{path} is an alias (metafile.yaml) of {target}',
                              stacklevel=2)
                return target
    raise FileNotFoundError(f'config file not found: {path}')


def _set_dataset_roots(node: Any, data_root: str) -> int:
    """Set ``data_root`` on a dataset config and the datasets it wraps."""
    if isinstance(node, (list, tuple)):
        return sum(_set_dataset_roots(item, data_root) for item in node)
    if not isinstance(node, dict):
        return 0
    count = 0
    if 'data_root' in node or 'ann_file' in node or 'data_prefix' in node:
        node['data_root'] = data_root
        count += 1
    # wrappers: USSPairDataset(dataset=...), ConcatDataset(datasets=[...])
    for key in ('dataset', 'datasets'):
        if key in node:
            count += _set_dataset_roots(node[key], data_root)
    return count


def set_data_root(cfg: Config, data_root: str) -> int:
    """Point every dataloader's dataset (and ``cfg.data_root``) at ``data_root``.

    ``--cfg-options data_root=...`` only changes the top-level variable, which the
    dataloaders copied when the config was read; this changes the copies.

    Returns:
        int: the number of dataset configs changed.
    """
    cfg.data_root = data_root
    count = 0
    for key in list(cfg.keys()):
        if key.endswith('_dataloader') and isinstance(cfg[key], dict):
            count += _set_dataset_roots(cfg[key].get('dataset'), data_root)
    if isinstance(cfg.get('debias', None), dict) and cfg.debias.get('dataset'):
        count += _set_dataset_roots(cfg.debias.dataset, data_root)
    return count


# ------------------------------------------------------------- --cfg-options check
def _registered_params(type_name: Any) -> Set[str]:
    """Constructor arguments of a registered type (all classes of its MRO, since
    ``**kwargs`` are passed on), or an empty set when the type is unknown."""
    from mars_mm import registry
    classes = []
    if isinstance(type_name, type):
        classes.append(type_name)
    elif isinstance(type_name, str):
        for name in registry.__all__:
            try:
                found = getattr(registry, name).get(type_name)
            except Exception:  # noqa: BLE001 - a lookup must not fail the check
                found = None
            if isinstance(found, type):
                classes.append(found)
    params = set()
    for cls in classes:
        for klass in cls.__mro__:
            init = klass.__dict__.get('__init__')
            if init is None:
                continue
            try:
                signature = inspect.signature(init)
            except (TypeError, ValueError):
                continue
            params |= {name for name, param in signature.parameters.items()
                       if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
                       and name != 'self'}
    return params


def _copies_of(cfg: Config, key: str, limit: int = 4) -> List[str]:
    """Dotted keys (other than ``key``) whose value equals ``cfg[key]``: where a
    config variable was copied when the file was read."""
    value = cfg[key]
    if value is None or isinstance(value, bool) or value in ('', [], {}) or (
            isinstance(value, (int, float)) and value in (0, 1, -1)):
        return []  # too common to tell a copy from a coincidence
    found = []

    def walk(node: Any, prefix: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(node, dict):
            for name, child in node.items():
                walk(child, f'{prefix}.{name}' if prefix else str(name))
        elif isinstance(node, (list, tuple)) and node != value:
            for index, child in enumerate(node):
                walk(child, f'{prefix}.{index}')
        if prefix and prefix != key and type(node) is type(value) and node == value:
            found.append(prefix)

    for name, child in cfg.items():
        if name != key:
            walk(child, name)
    return found[:limit]


def _check_nested(node: Any, parts: List[str], option: str) -> None:
    """Refuse a new key that looks like a typo of an existing or accepted one."""
    for depth in range(1, len(parts)):
        name = parts[depth]
        if isinstance(node, (list, tuple)):
            if not name.isdigit() or int(name) >= len(node):
                return  # mmengine reports list indices itself
            node = node[int(name)]
            continue
        if not isinstance(node, dict) or name.startswith('_'):
            return
        if name in node:
            node = node[name]
            continue
        accepted = _registered_params(node.get('type'))
        if name in accepted:
            return
        close = difflib.get_close_matches(name, sorted(set(node) | accepted), n=3,
                                          cutoff=0.75)
        if close:
            parent = '.'.join(parts[:depth])
            raise ValueError(
                f'--cfg-options {option}: {parent} has no key {name!r}; did you '
                f'mean {" or ".join(f"{parent}.{match}" for match in close)}? '
                '(mmengine would add the misspelt key and nothing would read it)')
        return


def check_cfg_options(cfg: Config, options: Dict[str, Any], path: str) -> None:
    """Refuse ``--cfg-options`` that mmengine would accept and then ignore.

    mmengine merges any key into the config: a misspelt one is added and never
    read, a top-level variable such as ``num_classes`` is changed after its
    value was copied into the settings that use it. The checks, by depth:

    * **top level**: a key the config lacks must be one the Runner or a mars_mm
      tool reads (:data:`RUNTIME_KEYS`, ``*_dataloader``, ``*_evaluator``),
      otherwise it is an error listing the close matches; a key the config has
      but nothing reads after parsing (a variable like ``crop_size``, found
      copied into other settings) is an error naming those settings.
      ``data_root`` is the exception: :func:`load_config` applies it to every
      dataloader, like ``--data-root``.
    * **nested levels**: a key new to an existing dict is an error when it is
      within a small edit of a key of that dict, or of an argument of the dict's
      registered ``type``, and is not itself such an argument (``max_epocs``
      next to ``max_epochs``). Other new keys pass, as in mmengine: a registered
      type may accept arguments the config does not set.

    Raises:
        ValueError: naming the option and the keys it may have meant.
    """
    for option in options:
        parts = str(option).split('.')
        top = parts[0]
        if option == 'data_root':
            continue
        if top not in cfg:
            if _read_at_runtime(top):
                continue
            close = difflib.get_close_matches(
                top, sorted(set(cfg.keys()) | RUNTIME_KEYS), n=3, cutoff=0.6)
            hint = f'; did you mean {" or ".join(close)}?' if close else ''
            raise ValueError(
                f'--cfg-options {option}: {path} has no key {top!r}{hint} (mmengine '
                'would add it and nothing would read it)')
        if len(parts) == 1:
            if not _read_at_runtime(top):
                copies = _copies_of(cfg, top)
                if copies:
                    raise ValueError(
                        f'--cfg-options {option}: {top!r} is a variable of {path}, '
                        f'copied into {", ".join(copies)} when the file was read; '
                        'setting it changes nothing: set those keys instead')
            continue
        _check_nested(cfg[top], parts, option)


def use_atomic_checkpoints(cfg: Config) -> bool:
    """Replace a plain mmengine ``CheckpointHook`` by ``AtomicCheckpointHook``
    (same options; kill-safe writes and random states, see
    :mod:`mars_mm.engine.hooks.atomic_checkpoint_hook`).

    Returns:
        bool: True if the config's hook was replaced.
    """
    from mmengine.hooks import CheckpointHook
    hook = (cfg.get('default_hooks', None) or {}).get('checkpoint')
    if not isinstance(hook, dict):
        return False
    if hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook',
                            CheckpointHook):
        hook['type'] = 'AtomicCheckpointHook'
        return True
    return False


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` (``'auto'``: the work dir's newest complete checkpoint) or
    ``--resume CKPT``, checked before the Runner starts.

    ``'auto'`` trusts ``last_checkpoint`` only if the file it names is complete,
    and otherwise takes the newest complete ``epoch_N.pth``/``iter_N.pth``
    (warning about the others); without any, training starts from scratch.
    The run's random seed becomes the checkpoint's (:func:`adopt_resumed_seed`).

    Raises:
        FileNotFoundError / ValueError: ``CKPT`` missing or incomplete.
    """
    if resume is None:
        return
    if resume == 'auto':
        cfg.load_from = resume_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
        cfg.resume = cfg.load_from is not None
    else:
        if '://' not in resume:  # URLs are mmengine's to fetch
            check_checkpoint_file(resume, 'checkpoint given to --resume')
        cfg.resume = True
        cfg.load_from = resume
    if cfg.resume and '://' not in cfg.load_from:
        adopt_resumed_seed(cfg, checkpoint_seed(cfg.load_from))


def adopt_resumed_seed(cfg: Config, seed: Optional[int]) -> None:
    """Build the resumed run with the seed of the run it continues.

    mmengine builds the train dataloader (the sampler's shuffle seed, the seeds
    of the worker processes) with the config's seed, or a fresh random one when
    the config sets none, and only then reads the checkpoint's seed: a resumed
    run without a fixed seed then shuffled and augmented differently. Setting the
    seed before the Runner exists makes every consumer use the resumed one.
    """
    if seed is None:
        return
    randomness = dict(cfg.get('randomness', None) or {})
    current = randomness.get('seed')
    if current is not None and current != seed:
        warnings.warn(f'--resume: the checkpoint {cfg.load_from} was trained with '
                      f'randomness.seed={seed}, the config sets {current}; the '
                      'checkpoint\'s seed is used (as mmengine does after loading '
                      'it) so that the run continues its own random stream',
                      stacklevel=2)
    randomness['seed'] = seed
    cfg.randomness = randomness


# ------------------------------------------------------------------ class counts
def _dataset_config(cfg: Config, loader: str) -> Optional[dict]:
    dataset = (cfg.get(loader, None) or {}).get('dataset')
    while isinstance(dataset, dict) and 'dataset' in dataset \
            and 'ann_file' not in dataset:
        dataset = dataset['dataset']  # wrappers: USSPairDataset, RepeatDataset
    return dataset


def dataset_class_names(cfg: Config, loader: str) -> Optional[List[str]]:
    """The classes (background first) of a dataloader's dataset, built without
    reading its file list; None when the config has no such dataloader."""
    from mmengine.registry import init_default_scope

    from mars_mm.registry import DATASETS
    dataset = _dataset_config(cfg, loader)
    if not isinstance(dataset, dict) or 'type' not in dataset:
        return None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = dict(copy.deepcopy(dataset), lazy_init=True, pipeline=[])
    classes = DATASETS.build(dataset).metainfo.get('classes')
    return None if classes is None else list(classes)


def model_class_settings(model: Any) -> List[tuple]:
    """``(config key, value, background counted)`` of every class count of a
    model config: decode and auxiliary heads, a CAM head, a USS linear probe."""
    found = []
    if not isinstance(model, dict):
        return found
    head = model.get('head')
    if isinstance(head, dict) and 'num_classes' in head and (
            model.get('type') == 'CAMClassifier' or head.get('type') == 'CAMHead'):
        found.append(('model.head.num_classes', head['num_classes'], False))
    for name in ('decode_head', 'auxiliary_head'):
        heads = model.get(name)
        if isinstance(heads, dict):
            heads = [heads]
            keys = [f'model.{name}.num_classes']
        elif isinstance(heads, (list, tuple)):
            keys = [f'model.{name}.{index}.num_classes' for index in range(len(heads))]
        else:
            continue
        for key, head_cfg in zip(keys, heads):
            if isinstance(head_cfg, dict) and 'num_classes' in head_cfg:
                found.append((key, head_cfg['num_classes'], True))
    probe = model.get('linear_probe')
    if isinstance(probe, dict) and 'num_classes' in probe:
        found.append(('model.linear_probe.num_classes', probe['num_classes'], True))
    return found


def check_class_counts(cfg: Config, loader: str = 'train_dataloader') -> None:
    """Refuse a model whose class count differs from its data's.

    A segmentation head with more classes than the data trains silently (the
    extra outputs are never targets); one with fewer fails deep in the loss. A
    CAM head has one output per foreground class.

    Raises:
        ValueError: naming the config key, its value and the dataset's classes.
    """
    settings = model_class_settings(cfg.get('model', None))
    if not settings:
        return
    classes = dataset_class_names(cfg, loader)
    if not classes:
        return
    source = _dataset_config(cfg, loader)
    where = source.get('data_root') or source.get('type')
    for key, value, with_background in settings:
        expected = len(classes) if with_background else len(classes) - 1
        if value == expected:
            continue
        if with_background:
            have = f'{len(classes)} classes ({", ".join(classes)})'
        else:
            have = (f'{len(classes) - 1} foreground classes '
                    f'({", ".join(classes[1:])}; one CAM output each)')
        raise ValueError(
            f'{cfg.filename}: {key} = {value}, but the {loader} dataset ({where}) '
            f'has {have}; set {key}={expected}')


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none',
                data_root: Optional[str] = None) -> Config:
    """Read a config (or a metafile alias), apply ``--cfg-options``, set the work dir.

    The work dir is, by priority: ``work_dir``, the config's own ``work_dir``,
    ``./work_dirs/<config name>`` (mmseg's convention; the name as typed, so an
    alias keeps its work dir). ``data_root`` (``--data-root``) is applied before
    the options, so an option can still change one dataloader; an option
    ``data_root=DIR`` does the same as ``--data-root DIR`` (the config variable
    alone would change nothing). Options are checked first
    (:func:`check_cfg_options`).
    """
    cfg = Config.fromfile(resolve_config_path(path))
    cfg.launcher = launcher
    cfg_options = dict(cfg_options or {})
    if cfg_options:
        check_cfg_options(cfg, cfg_options, path)
    option_root = cfg_options.pop('data_root', None)
    for root, origin in ((data_root, '--data-root'),
                         (option_root, '--cfg-options data_root')):
        if root is not None and not set_data_root(cfg, root):
            raise ValueError(f'{path}: {origin} given, but the config has no '
                             'dataloader dataset to apply it to')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', stem_of(path))
    return cfg


def _destroy_process_group() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


_TEARDOWN_REGISTERED = []


def finalize_distributed() -> None:
    """Wait for every rank, then destroy the process group (end of a tool's run).

    mmengine never destroys the group it (or we) created. When one rank leaves
    while another still talks to the group, gloo's threads are torn down during
    static destruction and the process aborts ("terminate called without an active
    exception", SIGABRT) after all the work is done; torchrun then reports a failed
    rank. Measured here with 2 CPU ranks: 1 run in 5 without this, 0 in 12 with it.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def destroy_group_at_exit() -> None:
    """Destroy the group (no barrier) at exit if the tool did not finish normally.

    A barrier here could hang a rank that raised while the others still train, so
    the error path only releases the group. Registered once per process.
    """
    if not _TEARDOWN_REGISTERED:
        atexit.register(_destroy_process_group)
        _TEARDOWN_REGISTERED.append(True)


def prepare_launcher(cfg: Config, launcher: str) -> None:
    """Distributed start-up that also works without CUDA (gloo on CPU)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
    if launcher != 'none':
        destroy_group_at_exit()
    setup_cpu_distributed(cfg, launcher)


def init_offline_distributed(launcher: str) -> None:
    """Start a process group for an offline tool (feature/CAM export) if launched.

    Offline jobs shard by rank without communicating, so all they need is a group
    (or just RANK/WORLD_SIZE); gloo on CPU, nccl on CUDA.
    """
    if launcher == 'none':
        return
    import torch
    import torch.distributed as dist
    from mmengine.dist import init_dist
    destroy_group_at_exit()
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        init_dist(launcher, backend='nccl')
    else:
        init_cpu_process_group(launcher)


def positive_float(text: str) -> float:
    """argparse type of a factor that must be > 0 (``--scales``)."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from err
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be positive, got {text}')
    return value


def add_job_args(parser: argparse.ArgumentParser, device: bool = False,
                 resume: bool = False,
                 cfg_options: bool = True) -> argparse.ArgumentParser:
    """Add the options every mars_mm tool shares, with one spelling and meaning.

    ``--launcher``/``--local-rank`` always; ``--cfg-options``, ``--device`` and
    ``--no-resume`` on request. Parse with :func:`parse_job_args`.
    """
    if device:
        parser.add_argument('--device', default=None,
                            help='torch device (default: cuda if available)')
    if resume:
        parser.add_argument('--no-resume', action='store_true',
                            help='recompute outputs whose file already exists')
    if cfg_options:
        parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                            help='override config settings, e.g. key=value')
        parser.add_argument('--data-root', default=None,
                            help='dataset folder for every dataloader of the config')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher (torchrun: pytorch)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_job_args(parser: argparse.ArgumentParser,
                   argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the arguments and export ``LOCAL_RANK`` for the launcher."""
    args = parser.parse_args(argv)
    set_local_rank_env(args.local_rank)
    return args


def set_local_rank_env(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank``; torchrun sets the env."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def enable_amp(cfg: Config) -> None:
    """Switch the optimiser wrapper to mixed precision (``--amp``)."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def tta_model_cfg(cfg: Config, module: Any) -> dict:
    """A copy of the config's ``tta_model`` wrapping ``module`` (``--tta``).

    Args:
        cfg: a config with ``tta_model`` and ``tta_pipeline``.
        module: the segmentor, as a config or as a built model.

    Raises:
        ValueError: the config has no ``tta_model`` or no ``tta_pipeline``.
    """
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise ValueError('--tta needs `tta_model` and `tta_pipeline` in the config')
    tta_cfg = copy.deepcopy(cfg.tta_model)
    tta_cfg['module'] = module
    return tta_cfg


def to_tta(cfg: Config) -> None:
    """Swap the test pipeline and model for their test-time-augmentation versions."""
    cfg.model = tta_model_cfg(cfg, cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
