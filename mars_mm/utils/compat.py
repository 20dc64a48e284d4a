"""Every fix mars_mm needs to run the OpenMMLab 1.x stack on current torch/numpy.

This module is the only place where mars_mm works around its dependencies; nothing
here edits files in site-packages, and each fix is a no-op where the real thing works.
:func:`apply_all` runs when ``mars_mm`` is imported (fixes 1, 2 and 5); fix 3 is called
by the tools right before they build a Runner.

1. **mmcv.ops without compiled ops** (mmcv-lite). mmseg 1.2.2 imports ``mmcv.ops`` at
   module top level in four modules, so ``import mmseg.utils`` fails without the
   compiled extension. Where ``mmcv._ext`` is missing we register a small
   ``mmcv.ops`` module: ``point_sample`` (the only op mmseg uses in code we import)
   is implemented with ``grid_sample``; every other name resolves to a stand-in that
   raises a clear error when used. Full mmcv is left alone.
2. **torch >= 2.6 ``weights_only`` loading.** mmengine 0.10 calls ``torch.load``
   without ``weights_only``; its checkpoints hold a ``HistoryBuffer`` and numpy
   scalars/dtypes, which the safe unpickler refuses. We allow-list exactly those
   globals (``torch.serialization.add_safe_globals``), keeping loading safe for
   everything else. A ``HistoryBuffer`` also pickles its statistics methods as
   ``getattr(HistoryBuffer, 'mean')``; allowing the builtin ``getattr`` would let a
   checkpoint reach arbitrary objects, so a stand-in registered under that name
   resolves only ``HistoryBuffer``'s registered statistics methods.
   Two more holes are closed here. mmengine's loaders call ``torch.load`` without
   ``weights_only``, which is unsafe on torch < 2.6 (its default was
   ``weights_only=False``): :func:`route_mmengine_loads_through_safe_loader`
   registers :func:`mars_mm.utils.checkpoint.safe_torch_load` for local paths and
   http(s) URLs through mmengine's public ``CheckpointLoader.register_scheme``, so
   ``--resume``, ``load_from``, ``init_model`` and test checkpoints never run code
   from a file. torch < 2.4 has no ``add_safe_globals`` to extend its weights-only
   allow-list with mmengine's globals: :func:`restricted_pickle_module` gives
   ``torch.load`` an unpickler that resolves only torch's own weights-only
   allow-list plus the globals above.
3. **Distributed start-up without CUDA.** mmengine's ``pytorch`` launcher calls
   ``torch.cuda.set_device`` unconditionally, DDP is given a CUDA ``device_ids`` and
   SyncBN has no CPU kernel. :func:`setup_cpu_distributed` creates the gloo process
   group itself (the Runner then skips its own start-up), asks DDP for
   ``device_ids=None`` and turns SyncBN into BN in the config.
4. **``CheckpointHook(save_best=...)`` in a test-only run** raises ``'CheckpointHook'
   object has no attribute 'file_backend'`` (the attribute is created in
   ``before_train``). :func:`drop_save_best_for_testing` removes ``save_best`` from
   configs that are only tested.
5. **mmpretrain 1.2 next to transformers >= 5.** Where transformers and pycocotools
   are installed, ``import mmpretrain.models`` imports its multimodal models, written
   against transformers 4: with transformers 5 (which no longer exports
   ``apply_chunking_to_forward`` and friends from ``modeling_utils``) the import dies
   with ``TypeError: NoneType takes no arguments`` (found on the GPU image, which ships
   transformers 5.17). :func:`skip_incompatible_mmpretrain_multimodal` then sets
   mmpretrain's own ``WITH_MULTIMODAL`` switch to False before ``mmpretrain.models``
   is imported, so mmpretrain registers its placeholders (which explain what to
   install) instead of the multimodal models; mars_mm uses none of them.
"""
import importlib.util
import os
import pickle
import sys
import types
import warnings
from typing import Any, List

_APPLIED: List[str] = []


# --------------------------------------------------------------------------- fix 1
def _point_sample(input, points, align_corners: bool = False, **kwargs):
    """``mmcv.ops.point_sample`` in plain torch.

    Args:
        input: ``(N, C, H, W)`` feature map.
        points: ``(N, P, 2)`` or ``(N, Hgrid, Wgrid, 2)`` points in ``[0, 1]``
            (x, y) image coordinates.

    Returns:
        Tensor: ``(N, C, P)`` or ``(N, C, Hgrid, Wgrid)`` sampled features.
    """
    import torch.nn.functional as F
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, 2.0 * points - 1.0,
                           align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _missing_op(name: str):
    message = (f'mmcv.ops.{name} needs mmcv built with its compiled ops; this '
               'environment has mmcv-lite. Install full mmcv (see README, "Install '
               'on a GPU machine") to use it.')

    class _MissingOp:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(message)

        def __call__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
            raise RuntimeError(message)

    _MissingOp.__name__ = _MissingOp.__qualname__ = name
    return _MissingOp


def has_compiled_mmcv_ops() -> bool:
    """Whether the installed mmcv ships its compiled extension."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def provide_mmcv_ops() -> bool:
    """Register a pure-torch ``mmcv.ops`` where compiled ops are absent (fix 1).

    Returns:
        bool: True if the stand-in module was installed.
    """
    if 'mmcv.ops' in sys.modules or has_compiled_mmcv_ops():
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    import mmcv
    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = 'mars_mm stand-in for mmcv.ops (mmcv-lite has no compiled ops).'
    ops.point_sample = _point_sample
    ops.__getattr__ = lambda name: (_ for _ in ()).throw(AttributeError(name)) \
        if name.startswith('__') else _missing_op(name)
    ops.__mars_mm_stub__ = True
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True


# --------------------------------------------------------------------------- fix 2
def _checkpoint_safe_globals() -> list:
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [HistoryBuffer, np.dtype, np.ndarray]
    # numpy pickles arrays and scalars through these reconstructors; their module
    # moved from numpy.core to numpy._core in numpy 2.
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        safe += [module.scalar, module._reconstruct]
        break
    safe += [type(np.dtype(name)) for name in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
        'uint8', 'bool')]
    return safe


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """``getattr`` restricted to what mmengine checkpoints need (see fix 2)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    # The built-in four are registered lazily (in __init__), custom ones eagerly.
    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise RuntimeError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint with '
        'weights_only=True: only HistoryBuffer statistics methods are allowed')


def allow_mmengine_checkpoints() -> bool:
    """Allow-list mmengine's checkpoint globals for ``weights_only`` loading (fix 2).

    Returns:
        bool: True if globals were registered (torch has ``add_safe_globals``).
    """
    import torch.serialization as serialization
    if not hasattr(serialization, 'add_safe_globals'):
        return False  # torch < 2.4 loads everything anyway
    if importlib.util.find_spec('mmengine') is None:
        return False
    serialization.add_safe_globals(
        _checkpoint_safe_globals()
        + [(_history_buffer_getattr, 'builtins.getattr'),
           (_history_buffer_getattr, '__builtin__.getattr')])
    return True


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals (torch < 2.4, fix 2)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _restricted_globals()
        key = f'{module}.{name}'
        if key in allowed:
            return allowed[key]
        raise pickle.UnpicklingError(
            f'Weights only load failed: refusing global {key} (mars_mm loads '
            'checkpoints with torch\'s weights-only allow-list and mmengine\'s '
            'HistoryBuffer only)')


def _restricted_globals() -> dict:
    """``module.name`` -> object that :class:`_RestrictedUnpickler` resolves."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for item in _checkpoint_safe_globals():
        allowed[f'{item.__module__}.{item.__qualname__}'] = item
    allowed['builtins.getattr'] = allowed['__builtin__.getattr'] = \
        _history_buffer_getattr
    # numpy 1.x pickles the bytes of arrays and scalars through _codecs.encode
    # (str -> bytes, nothing else); torch >= 2.4 allow-lists it too
    import _codecs
    allowed['_codecs.encode'] = _codecs.encode
    return allowed


def restricted_pickle_module() -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` that refuses unknown globals (fix 2).

    For torch < 2.4 only, whose weights-only loader cannot be told about
    mmengine's ``HistoryBuffer``: ``torch.load(path, weights_only=False,
    pickle_module=restricted_pickle_module())`` then resolves the same globals as
    a weights-only load on torch >= 2.4 with :func:`allow_mmengine_checkpoints`.
    """
    module = types.ModuleType('mars_mm_restricted_pickle')
    module.Unpickler = _RestrictedUnpickler
    module.load = lambda file, **kwargs: _RestrictedUnpickler(file, **kwargs).load()
    module.__name__ = 'pickle'  # torch checks nothing else of the module
    return module


def _safe_load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-path checkpoint loader, through the safe loader (fix 2)."""
    from mars_mm.utils.checkpoint import safe_torch_load
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def _safe_load_from_http(filename: str, map_location: Any = None,
                         model_dir: Any = None, progress: bool = False) -> Any:
    """mmengine's URL loader, through the safe loader: downloaded on local rank 0
    into torch's hub cache (as mmengine does), then loaded weights-only."""
    from urllib.parse import urlparse

    import torch
    from mmengine.dist import get_dist_info
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    cached = os.path.join(model_dir, os.path.basename(urlparse(filename).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not os.path.exists(cached):
        os.makedirs(model_dir, exist_ok=True)
        torch.hub.download_url_to_file(filename, cached, progress=progress)
    if world_size > 1:
        torch.distributed.barrier()
    return _safe_load_from_local(cached, map_location)


def route_mmengine_loads_through_safe_loader() -> bool:
    """Register the safe loader for local paths and URLs in mmengine (fix 2).

    Returns:
        bool: True if mmengine is installed and the loaders were registered.
    """
    if importlib.util.find_spec('mmengine') is None:
        return False
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme('', _safe_load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), _safe_load_from_http,
                                     force=True)
    return True


# --------------------------------------------------------------------------- fix 3
def _replace_sync_bn(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'type' and value in ('SyncBN', 'MMSyncBN'):
                node[key] = 'BN'
            else:
                _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_sync_bn(value)
    return node


def setup_cpu_distributed(cfg: Any, launcher: str) -> bool:
    """Make a distributed ``launcher`` work on a machine without CUDA (fix 3).

    Call it after loading the config and before ``Runner.from_cfg``. With CUDA, or
    with ``launcher='none'``, it does nothing.

    Args:
        cfg: the mmengine ``Config``; modified in place.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True if this process created a gloo group and adapted ``cfg``.
    """
    import torch
    if launcher == 'none' or torch.cuda.is_available():
        return False
    init_cpu_process_group(launcher)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    _replace_sync_bn(cfg.model)
    return True


def init_cpu_process_group(launcher: str) -> None:
    """Create a gloo group from torchrun's or Slurm's environment, without CUDA.

    mmengine's own start-up calls ``torch.cuda.set_device`` first, which fails on a
    machine without CUDA; this skips it. No-op if a group already exists.
    """
    import torch.distributed as dist
    if dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env_to_torch_env()
    dist.init_process_group(backend='gloo')


def _slurm_env_to_torch_env() -> None:
    """Fill torch's env:// variables from Slurm's (as mmengine's slurm launcher)."""
    import subprocess
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


# --------------------------------------------------------------------------- fix 4
def drop_save_best_for_testing(cfg: Any) -> bool:
    """Remove ``save_best`` from the checkpoint hook of a test-only run (fix 4).

    Returns:
        bool: True if the config had ``save_best`` and it was removed.
    """
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is None or hook.get('save_best') is None:
        return False
    hook.pop('save_best')
    hook.pop('rule', None)
    return True


# --------------------------------------------------------------------------- fix 5
#: The first transformers major version that mmpretrain 1.2's multimodal code breaks on.
TRANSFORMERS_BREAKING_MAJOR = 5


def skip_incompatible_mmpretrain_multimodal() -> bool:
    """Keep ``import mmpretrain.models`` working next to transformers >= 5 (fix 5).

    Returns:
        bool: True if mmpretrain's multimodal models were switched off.
    """
    if 'mmpretrain.models' in sys.modules:
        return False  # imported already (it worked, or it is too late)
    try:
        from importlib.metadata import PackageNotFoundError, version
        major = int(version('transformers').split('.')[0])
    except (ImportError, PackageNotFoundError, ValueError):
        return False   # no transformers, or a version we cannot read: leave it
    if major < TRANSFORMERS_BREAKING_MAJOR or \
            importlib.util.find_spec('mmpretrain') is None:
        return False
    from mmpretrain.utils import dependency
    if not dependency.WITH_MULTIMODAL:
        return False
    dependency.WITH_MULTIMODAL = False
    return True


# ------------------------------------------------------------------------ entry
def apply_all() -> List[str]:
    """Apply the import-time fixes once; returns the names of those that acted."""
    if _APPLIED:
        return list(_APPLIED)
    fixes = (('mmcv_ops', provide_mmcv_ops),
             ('weights_only', allow_mmengine_checkpoints),
             ('safe_mmengine_loads', route_mmengine_loads_through_safe_loader),
             ('mmpretrain_multimodal', skip_incompatible_mmpretrain_multimodal))
    for name, fix in fixes:
        try:
            if fix():
                _APPLIED.append(name)
        except Exception as err:  # pragma: no cover - never block the import
            warnings.warn(f'mars_mm compat fix {name!r} failed: {err}', stacklevel=2)
    _APPLIED.append('applied')
    return list(_APPLIED)
