"""Checkpoint files: is one complete, which one to resume from, does it fit a model.

A checkpoint written by torch since 1.6 is a zip archive whose central directory
sits at the end of the file, so a file cut short by a killed job has none: the
check below opens the directory (a few kB at the end), it does not load the
weights. Checkpoints of the legacy pickle format cannot be checked that way and
are trusted.

``tools/train.py --resume`` asks :func:`newest_complete_checkpoint` which file to
continue from; the tools that load weights use :func:`load_weights` or
:func:`check_weights_fit`, which name the file and the keys when a checkpoint
belongs to another model instead of loading what happens to match.
"""
import ast
import glob
import os
import os.path as osp
import re
import warnings
import zipfile
from typing import Any, Dict, List, Optional, Tuple

#: Checkpoint names that ``--resume`` considers, with their step.
_STEP = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """What is wrong with a checkpoint file, or ``None`` if it looks complete."""
    if osp.isdir(path):
        return 'a folder'
    if not osp.isfile(path):
        return 'missing'
    if osp.getsize(path) == 0:
        return 'empty'
    with open(path, 'rb') as handle:
        magic = handle.read(4)
    if magic != b'PK\x03\x04':
        if magic[:1] == b'\x80':  # legacy pickle format: not checkable cheaply
            return None
        return 'not a torch checkpoint'
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return 'truncated or incomplete (the zip archive has no central directory)'
    if not any(name.endswith('data.pkl') for name in names):
        return 'not a torch checkpoint (no data.pkl in the archive)'
    return None


def check_checkpoint_file(path: str, what: str = 'checkpoint') -> None:
    """Raise naming ``path`` if it is missing, truncated or not a checkpoint."""
    problem = checkpoint_problem(path)
    if problem == 'missing':
        raise FileNotFoundError(f'{what} not found: {path}')
    if problem == 'a folder':
        alone = (', or --resume alone to continue from the newest checkpoint of '
                 'the work dir') if '--resume' in what else ''
        raise ValueError(f'{path}: {what} is a folder, not a checkpoint file (give '
                         f'the .pth file inside it{alone})')
    if problem is not None:
        raise ValueError(f'{path}: {what} is {problem}; was the job that wrote it '
                         'killed, or the copy interrupted?')


def _step(path: str) -> int:
    match = _STEP.match(osp.basename(path))
    return int(match.group(1)) if match else -1


def _named_checkpoint(work_dir: str) -> Optional[str]:
    """The file ``<work_dir>/last_checkpoint`` names, or None."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as handle:
        named = handle.read().strip()
    if named and not osp.isabs(named) and not osp.exists(named):
        named = osp.join(work_dir, osp.basename(named))
    return named or record  # an empty record names itself (reported as broken)


def newest_complete_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The checkpoint ``--resume`` should continue from, and why not another.

    The newest complete ``epoch_N.pth`` / ``iter_N.pth`` of the work dir (largest
    N), or the file ``last_checkpoint`` names if that one is newer or has another
    name. ``last_checkpoint`` alone is not trusted: a job killed while saving
    leaves it naming a file that is missing or incomplete (mmengine's hook writes
    in place and deletes the previous checkpoint first), or naming the previous
    checkpoint while a newer one is complete (killed between the two writes).

    Returns:
        tuple: the path (None if no complete checkpoint exists) and notes on the
        checkpoints passed over, for a warning.
    """
    named = _named_checkpoint(work_dir)
    notes = []
    if named is not None:
        problem = checkpoint_problem(named)
        if problem is not None:
            notes.append(f'{osp.join(work_dir, "last_checkpoint")} names {named}, '
                         f'which is {problem}')
            named = None
    candidates = [path for path in glob.glob(osp.join(work_dir, '*.pth'))
                  if _STEP.match(osp.basename(path))]
    candidates.sort(key=lambda path: (_step(path), os.stat(path).st_mtime_ns),
                    reverse=True)
    for path in candidates:
        if named is not None and (_step(named) < 0 or _step(named) >= _step(path)):
            return named, notes  # named is at least as new (or custom-named)
        problem = checkpoint_problem(path)
        if problem is None:
            if named is not None:
                notes.append(f'{osp.join(work_dir, "last_checkpoint")} names '
                             f'{named}, but {path} is newer (a job killed between '
                             'the two writes)')
            return path, notes
        notes.append(f'{path} is {problem}')
    return named, notes


def resume_checkpoint(work_dir: str) -> Optional[str]:
    """:func:`newest_complete_checkpoint`, warning about each one passed over.

    Returns None (train from scratch) when the work dir holds no complete
    checkpoint; that is warned about too when some checkpoint was there.
    """
    path, notes = newest_complete_checkpoint(work_dir)
    if notes and path is not None:
        warnings.warn(f'--resume: {"; ".join(notes)}; resuming from {path}, the '
                      'newest complete checkpoint', stacklevel=2)
    elif notes:
        warnings.warn(f'--resume: {"; ".join(notes)}; no complete checkpoint in '
                      f'{work_dir}: training starts from scratch', stacklevel=2)
    return path


def safe_torch_load(path: str, map_location: Any = 'cpu',
                    mmap: bool = False) -> Any:
    """Load a torch file without running code from it: mars_mm's only unpickler.

    Every checkpoint, weight file and ``.pth`` a user can hand to mars_mm (and,
    through :mod:`mars_mm.utils.compat`, to mmengine's loaders) is read here with
    torch's weights-only loader, extended by exactly mmengine's checkpoint globals.
    torch < 2.4 cannot extend that loader, so it gets an unpickler with the same
    allow-list (``compat.restricted_pickle_module``). A file holding any other
    global is refused with the global's name; ``tests/test_utils/
    test_safe_loading.py`` fails if a ``torch.load`` elsewhere bypasses this.

    Args:
        path: the file.
        map_location: as for ``torch.load``.
        mmap: memory-map the tensors (zip checkpoints only), so reading the
            metadata does not read the weights.
    """
    import torch

    from mars_mm.utils import compat
    if hasattr(torch.serialization, 'add_safe_globals'):
        compat.allow_mmengine_checkpoints()  # idempotent; import-time already
        return torch.load(path, map_location=map_location, mmap=mmap,
                          weights_only=True)
    return torch.load(path, map_location=map_location, mmap=mmap, weights_only=False,
                      pickle_module=compat.restricted_pickle_module())


def _load_named(path: str, mmap: bool = False) -> Any:
    """:func:`safe_torch_load` with errors that name the file."""
    try:
        return safe_torch_load(path, map_location='cpu', mmap=mmap)
    except Exception as err:  # torch raises many types for broken files
        text = str(err)
        if 'Weights only load failed' in text or 'Unsupported global' in text:
            raise ValueError(
                f'{path}: refusing to load this checkpoint: it holds objects other '
                'than tensors, numbers and mmengine\'s logs, and loading them '
                'could run code hidden in the file (' + _first_line(text) +
                '). Re-save its weights with torch.save(state_dict) from a trusted '
                'session') from err
        raise ValueError(f'{path}: cannot load checkpoint ({err})') from err


def _first_line(text: str) -> str:
    """The line of torch's message that names the refused global."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if re.search(
        r'unsupported global|refusing global|unsupported class', line, re.I)]
    return (named or lines or [''])[0][:300]


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` of an mmengine checkpoint (``{}`` if it has none).

    Read with :func:`safe_torch_load`; a zip checkpoint is memory-mapped, so the
    weights are not read.
    """
    with open(path, 'rb') as handle:
        zipped = handle.read(4) == b'PK\x03\x04'  # the legacy format cannot be mapped
    checkpoint = _load_named(path, mmap=zipped)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def checkpoint_seed(path: str) -> Optional[int]:
    """The random seed an mmengine checkpoint was trained with (``meta.seed``),
    or None. The weights are not read."""
    seed = checkpoint_meta(path).get('seed')
    return None if seed is None else int(seed)


#: The parts of a model config whose type tells two models apart.
MODEL_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'head')


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """The value of a config expression built only of constants, ``dict(...)``,
    dict/list/tuple displays; anything else raises :class:`_NotLiteral`."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _NotLiteral
        return {_literal(key): _literal(value)
                for key, value in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise _NotLiteral
        return {keyword.arg: _literal(keyword.value) for keyword in node.keywords}
    raise _NotLiteral


def _type_name(part: Any) -> Optional[str]:
    """A registered type's name without its scope (``mmseg.EncoderDecoder``)."""
    if isinstance(part, list):
        names = [_type_name(item) for item in part]
        return '[' + ', '.join(str(name) for name in names) + ']'
    if not isinstance(part, dict) or part.get('type') is None:
        return None
    kind = part['type']
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    return name.rsplit('.', 1)[-1]


def model_types(model_cfg: Any) -> Dict[str, Optional[str]]:
    """``{'model': type, 'model.backbone': type, ...}`` of a model config dict."""
    if not isinstance(model_cfg, dict):
        return {}
    types = {'model': _type_name(model_cfg)}
    for part in MODEL_PARTS:
        types[f'model.{part}'] = _type_name(model_cfg.get(part))
    return types


def recorded_model_types(config_text: str) -> Dict[str, Optional[str]]:
    """:func:`model_types` of the ``model`` in the config text an mmengine
    checkpoint keeps (``meta['cfg']``), or ``{}`` when it cannot be read.

    The text is Python; it is parsed, never run (it comes from a file).
    """
    try:
        tree = ast.parse(config_text)
    except (SyntaxError, ValueError, TypeError):
        return {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == 'model'
                for target in statement.targets):
            try:
                return model_types(_literal(statement.value))
            except _NotLiteral:
                return {}
    return {}


def describe_model(types: Dict[str, Optional[str]]) -> str:
    """``EncoderDecoder (backbone ResNetV1c, decode_head FCNHead)``: a summary."""
    parts = [f'{key.split(".", 1)[1]} {value}' for key, value in types.items()
             if key != 'model' and value is not None]
    return f'{types.get("model")}' + (f' ({", ".join(parts)})' if parts else '')


def check_resumed_model(path: str, model_cfg: Any, config: str) -> None:
    """Refuse to resume ``path`` into a model of another kind.

    mmengine resumes whatever the checkpoint holds: the weights load non-strictly,
    so another model's checkpoint either fails deep inside the optimizer ("a
    parameter group that doesn't match") or, when the networks share their
    weights (a MARS config in its baseline's work dir), "resumes" a finished run
    and trains nothing. The checkpoint keeps its config (``meta['cfg']``); the
    model type and the types of its parts must equal the config's.

    Raises:
        ValueError: naming the checkpoint, the config and both models.
    """
    meta = checkpoint_meta(path)
    recorded = recorded_model_types(meta.get('cfg') or '') \
        if isinstance(meta.get('cfg'), str) else {}
    current = model_types(model_cfg)
    if not recorded or not current:
        return
    if any(recorded.get(key) != value for key, value in current.items()):
        run = meta.get('experiment_name')
        raise ValueError(
            f'--resume: {path} is a checkpoint of another model: '
            f'{describe_model(recorded)}{" (run " + str(run) + ")" if run else ""}, '
            f'but {config} builds {describe_model(current)}; resume with the '
            'config that made the checkpoint, or train into another --work-dir')


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """Load a checkpoint on the CPU, naming the file if it cannot be read."""
    check_checkpoint_file(path)
    return _load_named(path)


def state_dict_of(checkpoint: Any) -> Dict[str, Any]:
    """The weights of a loaded checkpoint (mmengine keeps them in ``state_dict``),
    with the ``module.`` prefix of wrapped models removed (as mmengine does)."""
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else {}
    if not isinstance(state, dict):
        return {}
    return {re.sub(r'^module\.', '', key): value for key, value in state.items()}


def weight_mismatch(model: Any, state: Dict[str, Any]) -> Optional[str]:
    """Why ``state`` does not fit ``model``, or None when every weight fits.

    Missing weights and weights of other shapes are reported; extra weights in
    the checkpoint (an auxiliary head dropped for testing) are not.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        return (f'{len(missing)} of its {len(own)} weights are missing (e.g. '
                f'{", ".join(missing[:3])}); the checkpoint holds '
                f'{len(state)} others (e.g. {", ".join(list(state)[:3])})')
    shapes = [f'{key} {tuple(state[key].shape)} instead of {tuple(value.shape)}'
              for key, value in own.items()
              if hasattr(state[key], 'shape') and hasattr(value, 'shape')
              and tuple(state[key].shape) != tuple(value.shape)]
    if shapes:
        return (f'{len(shapes)} weights have other shapes: {"; ".join(shapes[:3])}'
                ' (another number of classes or channels?)')
    return None


def unwrap_model(model: Any) -> Any:
    """The model inside DDP / test-time-augmentation wrappers."""
    while hasattr(model, 'module') and hasattr(model.module, 'state_dict'):
        model = model.module
    return model


def check_weights_fit(model: Any, path: str, config: str = 'the config') -> None:
    """Raise naming ``path`` unless its weights fit ``model`` key by key.

    mmengine loads a checkpoint into a model non-strictly for testing: another
    model's checkpoint then only logs missing keys and the test runs on random
    weights. This makes that an error.
    """
    problem = weight_mismatch(unwrap_model(model), state_dict_of(
        load_checkpoint_file(path)))
    if problem is not None:
        raise ValueError(f'{path}: not a checkpoint of this model ({config}): '
                         f'{problem}')


def load_weights(model: Any, path: str, config: str = 'the config') -> Any:
    """Load ``path`` into ``model`` strictly, naming the file on any mismatch."""
    state = state_dict_of(load_checkpoint_file(path))
    problem = weight_mismatch(model, state)
    if problem is not None:
        raise ValueError(f'{path}: not a checkpoint of this model ({config}): '
                         f'{problem}')
    own = set(model.state_dict())
    model.load_state_dict({key: value for key, value in state.items() if key in own},
                          strict=True)
    return model
