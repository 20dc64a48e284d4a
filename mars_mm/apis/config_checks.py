"""Checks of a config and its ``--cfg-options`` before a tool runs it.

mmengine merges any ``--cfg-options`` key into a config, and builds a model of
any class count for any data: a misspelt key is added and never read, a
top-level variable is changed after its value was copied into the settings
that use it, and a segmentation head with more classes than the data trains
silently. :func:`check_cfg_options` (called by
:func:`mars_mm.apis.launch.load_config`) and :func:`check_class_counts` (called
by ``tools/train.py``, ``tools/test.py``) turn those into errors naming the
option or config key.

Which keys are read is derived, not listed:

* **top level**: what the registered runner classes read (mmengine's ``Runner``
  and ``FlexibleRunner``, found in the ``RUNNERS`` registry): the arguments of
  their ``__init__`` and the keys their code looks up in the config
  (``cfg.get('model_wrapper_cfg')``), both read with :mod:`inspect`; plus the
  sections mars_mm's tools read (:data:`TOOL_SECTIONS`);
* **below**: the keys a dict has, and the arguments of the class that reads it:
  its registered ``type`` (every class of its MRO, since ``**kwargs`` are passed
  on), else, for a top-level dict, the class the runner argument's annotation
  names (a ``*_dataloader`` without ``type`` is a ``DataLoader``'s arguments)
  or the reader of the tool section.
"""
import copy
import difflib
import functools
import importlib
import inspect
import re
import typing
from typing import Any, Dict, List, Optional, Set

from mmengine.config import Config

#: Top-level sections that mars_mm's tools read, with what reads their keys:
#: ``'module:attribute'`` (a class whose ``__init__`` arguments, a dataclass
#: whose fields, or a dict whose keys are accepted), ``'runner:<argument>'``
#: (read as that runner argument is, e.g. by ``Runner.build_dataloader``) or
#: None (no fixed keys: a list, or a dict with its own ``type``).
TOOL_SECTIONS = {
    'debias': 'mars_mm.debias.settings:DebiasSettings',  # tools/mars/debias.py
    'knn_cfg': 'mars_mm.apis.uss:KNN_DEFAULTS',  # tools/uss/precompute_knn.py
    'export': 'mars_mm.apis.uss:EXPORT_DEFAULTS',  # tools/uss/extract_features.py
    'train_infer_dataloader': 'runner:train_dataloader',  # offline stages
    'test_server_dataloader': 'runner:test_dataloader',  # tools/test.py --out
    'tta_model': None,  # tools/test.py --tta
    'tta_pipeline': None,
    'cam_pipeline': None,  # tools/cam/generate_cams.py
    'uss_image_pipeline': None,  # tools/uss/*
    'runner_type': None,  # tools/train.py builds the runner it names, as mmseg's
}

#: A config lookup in a runner's code: ``cfg.get('key'`` or ``cfg['key']``
#: (``self.cfg`` too, not ``env_cfg.get(...)``).
_CFG_LOOKUP = re.compile(
    r"(?:(?<![\w.])|(?<=self\.))cfg(?:\.get\(\s*|\[\s*)'(\w+)'")


def _runner_classes() -> List[type]:
    """Every class in mmengine's ``RUNNERS`` registry and the registries below
    it (mmseg's, mmpretrain's)."""
    from mmengine.registry import RUNNERS

    import mars_mm.registry  # noqa: F401  (the child registries exist)
    classes, registries = [], [RUNNERS]
    while registries:
        registry = registries.pop()
        classes += [cls for cls in registry.module_dict.values()
                    if isinstance(cls, type)]
        registries += list(registry.children.values())
    return classes


def _annotated_class(annotation: Any) -> Optional[type]:
    """The class other than dict/list/str/bool/None that an annotation names
    (``Union[DataLoader, Dict, None]`` -> ``DataLoader``), if any."""
    if isinstance(annotation, type):
        plain = (dict, list, tuple, str, bool, int, float, type(None))
        return None if issubclass(annotation, plain) else annotation
    for argument in typing.get_args(annotation):
        found = _annotated_class(argument)
        if found is not None:
            return found
    return None


@functools.cache
def runner_keys() -> Dict[str, Optional[type]]:
    """Top-level config keys the registered runners read.

    Returns:
        dict: key -> the class the ``__init__`` annotation names for it (what a
        dict without ``type`` becomes), or None. The ``cfg`` argument (the
        config itself) is no key.
    """
    keys: Dict[str, Optional[type]] = {}
    for cls in _runner_classes():
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name in ('self', 'cfg') or param.kind in (
                    param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if keys.get(name) is None:
                keys[name] = _annotated_class(param.annotation)
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # no source (compiled): arguments only
            continue
        for name in _CFG_LOOKUP.findall(source):
            keys.setdefault(name, None)
    return keys


def _read_at_runtime(key: str) -> bool:
    return key in runner_keys() or key in TOOL_SECTIONS


def _init_params(cls: type) -> Set[str]:
    """Arguments of ``cls`` (all classes of its MRO, since ``**kwargs`` are
    passed on; a dataclass's fields through its generated ``__init__``)."""
    params = set()
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


def _registered_params(type_name: Any) -> Set[str]:
    """Constructor arguments of a registered type, or an empty set when the
    type is unknown."""
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
        params |= _init_params(cls)
    return params


def section_params(key: str) -> Set[str]:
    """Keys a top-level dict without ``type`` accepts, from what reads it (the
    runner argument's annotated class, or the :data:`TOOL_SECTIONS` reader)."""
    reader = TOOL_SECTIONS.get(key)
    if isinstance(reader, str) and reader.startswith('runner:'):
        key, reader = reader.split(':', 1)[1], None
    if reader is None:
        cls = runner_keys().get(key)
        return _init_params(cls) if cls is not None else set()
    module, attribute = reader.split(':')
    target = getattr(importlib.import_module(module), attribute)
    return set(target) if isinstance(target, dict) else _init_params(target)


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
        if depth == 1 and 'type' not in node:
            accepted |= section_params(parts[0])
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

    * **top level**: a key the config lacks must be one a registered runner or
      a mars_mm tool reads (:func:`runner_keys`, :data:`TOOL_SECTIONS`),
      otherwise it is an error listing the close matches; a key the config has
      but nothing reads after parsing (a variable like ``crop_size``, found
      copied into other settings) is an error naming those settings.
      ``data_root`` is the exception: :func:`load_config` applies it to every
      dataloader, like ``--data-root``.
    * **nested levels**: a key new to an existing dict is an error when it is
      within a small edit of a key of that dict, or of an argument of the class
      that reads the dict (its registered ``type``; for a top-level dict
      without one, :func:`section_params`), and is not itself such an argument
      (``max_epocs`` next to ``max_epochs``). Other new keys pass, as in
      mmengine: a class may accept arguments the config does not set.

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
            known = set(cfg.keys()) | set(runner_keys()) | set(TOOL_SECTIONS)
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
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
