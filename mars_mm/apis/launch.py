"""Config loading and runner/launcher set-up shared by all tools.

The tools in ``tools/`` only parse arguments; what they have in common (config
overrides, work dirs, distributed start-up on machines with or without CUDA) lives
here so that every tool behaves the same way.
"""
import argparse
import atexit
import copy
import os
import os.path as osp
import warnings
from typing import Any, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

from mars_mm.apis.config_checks import check_cfg_options
from mars_mm.core.multiscale import DEFAULT_SCALES
from mars_mm.utils.checkpoint import (
    check_checkpoint_file,
    check_resumed_model,
    checkpoint_seed,
    resume_checkpoint,
)
from mars_mm.utils.compat import init_cpu_process_group, setup_cpu_distributed
from mars_mm.utils.io import stem_of

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def resolve_config_path(path: str) -> str:
    """``path``, or the config its folder's ``metafile.yaml`` lists it as an alias of.

    Short names such as ``configs/mars/deeplab_r101_voc.py`` are ``Alias`` entries of
    a metafile model, not files: a command typed with one keeps working and warns
    with the real config's path.

    Raises:
        FileNotFoundError: naming ``path`` when it is neither a file nor an alias.
        ValueError: naming ``path`` when it is a folder.
    """
    if osp.isfile(path):
        return path
    if osp.isdir(path):
        configs = sorted(name for name in os.listdir(path) if name.endswith('.py'))
        raise ValueError(f'{path}: is a folder, not a config file; give one of its '
                         f'configs ({", ".join(configs[:3]) or "it holds none"}'
                         f'{", ..." if len(configs) > 3 else ""})')
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


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` (``'auto'``: the work dir's newest complete checkpoint) or
    ``--resume CKPT``, checked before the Runner starts.

    ``'auto'`` trusts ``last_checkpoint`` only if the file it names is complete,
    and otherwise takes the newest complete ``epoch_N.pth``/``iter_N.pth``
    (warning about the others); without any, training starts from scratch.
    A checkpoint of another model is refused (:func:`check_resumed_model`).
    The run's random seed becomes the checkpoint's (:func:`adopt_resumed_seed`).

    Raises:
        FileNotFoundError / ValueError: ``CKPT`` missing or incomplete, or made
        by another model.
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
        check_resumed_model(cfg.load_from, cfg.get('model'),
                            cfg.filename or 'the config')
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


def _option_target(cfg: Config, key: str) -> Tuple[bool, Any]:
    """Whether the dotted ``key`` (list indices included) exists in ``cfg``, and
    its value."""
    node: Any = cfg
    for part in key.split('.'):
        if isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def check_option_types(cfg: Config, cfg_options: dict, path: str) -> None:
    """Refuse a ``--cfg-options`` value of text where the config holds a number or
    a flag (``train_cfg.max_epochs=two``).

    mmengine keeps what does not parse as a number as a string and merges it;
    the error came much later from deep inside the loop ("invalid literal for
    int()"), naming no option.

    Raises:
        ValueError: naming the option, its value and the config's value.
    """
    for key, value in cfg_options.items():
        exists, current = _option_target(cfg, key)
        if not exists or not isinstance(value, str) or current is None:
            continue
        if isinstance(current, bool):
            kind = 'a flag (True/False)'
        elif isinstance(current, (int, float)):
            kind = 'a number'
        else:
            continue
        raise ValueError(f'--cfg-options {key}={value}: {path} sets {key} to '
                         f'{current!r}, {kind}, and {value!r} is text; give '
                         f'{kind.split(" (")[0]}')


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
        check_option_types(cfg, cfg_options, path)
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
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        raise ValueError(f'{cfg.work_dir}: the work dir is a file, not a folder; '
                         'give a folder (it is created if missing)')
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


def positive_int(text: str) -> int:
    """argparse type of a count that must be >= 1 (``--compact-pool``)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from err
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {text}')
    return value


def add_cam_inference_args(parser: argparse.ArgumentParser, outputs: str) -> None:
    """The arguments of a job that runs the CAM classifier over a split.

    ``config``, ``checkpoint``, ``--out`` (a folder of ``outputs``), ``--split``,
    ``--scales``, ``--no-flip``, ``--max-batch`` and ``--no-fast``: shared by
    ``tools/cam/generate_cams.py`` and ``tools/cam/generate_pseudo_labels.py``.
    """
    parser.add_argument('config', help='CAM classifier config')
    parser.add_argument('checkpoint', help='trained classifier checkpoint')
    parser.add_argument('--out', required=True, help=f'output folder of {outputs}')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'test'),
                        help='which <split>_dataloader dataset to run on')
    parser.add_argument('--scales', type=positive_float, nargs='+',
                        default=DEFAULT_SCALES, help='resize factors (> 0)')
    parser.add_argument('--no-flip', action='store_true',
                        help='skip the mirrored images')
    parser.add_argument('--max-batch', type=int, default=None,
                        help='at most this many images per forward (memory bound)')
    parser.add_argument('--no-fast', action='store_true',
                        help='keep BatchNorm unfolded and contiguous tensors')


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
