"""Stage stamps: what settings a stage's outputs were made with.

A stage writes ``<stage dir>/.stage.json`` (its settings digest, the settings
themselves, its upstream stages' digests, elapsed time) only after it succeeded.
Before running it writes ``.stage.running.json`` with the digest it is about to
use: if the run is killed and the settings then change, the driver finds the
stale partial outputs and removes them instead of letting the tools (which skip
existing files) resume them.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import Any, Dict, List, Optional

from mars_mm.utils.io import save_text

from .context import flatten

DONE = '.stage.json'
RUNNING = '.stage.running.json'


def settings_digest(settings: Dict[str, Any], upstream: Dict[str, Any]) -> str:
    """Short SHA-256 of a stage's settings and its upstream stages' digests."""
    text = json.dumps(dict(settings=settings, upstream=upstream), sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_stamp(folder: str, name: str = DONE) -> Optional[dict]:
    path = osp.join(folder, name)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None  # a damaged stamp is no stamp


def write_stamp(folder: str, content: dict, name: str = DONE) -> None:
    os.makedirs(folder, exist_ok=True)
    save_text(osp.join(folder, name),
              json.dumps(content, indent=1, sort_keys=True, default=str) + '\n')


def remove_stamp(folder: str, name: str) -> None:
    path = osp.join(folder, name)
    if osp.isfile(path):
        os.remove(path)


def has_outputs(folder: str) -> bool:
    """Whether the folder holds anything besides stamps and logs."""
    if not osp.isdir(folder):
        return False
    return any(entry not in (DONE, RUNNING, 'stage.log')
               for entry in os.listdir(folder))


def clean(folder: str) -> None:
    """Remove a stage folder's outputs (stale files the tools would resume)."""
    if osp.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)


def _args_as_dict(args: List[str]) -> Dict[str, Any]:
    """A command line as ``{'positional.0': x, '--flag': v, 'cfg key': v}``."""
    out: Dict[str, Any] = {}
    positional, index, in_options = 0, 0, False
    while index < len(args):
        arg = args[index]
        if arg == '--cfg-options':
            in_options = True
        elif in_options and '=' in arg and not arg.startswith('--'):
            key, value = arg.split('=', 1)
            out[f'--cfg-options {key}'] = value
        elif arg.startswith('--'):
            in_options = False
            values = []
            while index + 1 < len(args) and not args[index + 1].startswith('--'):
                index += 1
                values.append(args[index])
            out[arg] = ' '.join(values) if values else True
        else:
            out[f'argument {positional}'] = arg
            positional += 1
        index += 1
    return out


def readable(content: Dict[str, Any]) -> Dict[str, Any]:
    """Flat ``{key: value}`` of stamp content, command lines split into options."""
    flat: Dict[str, Any] = {}
    settings = content.get('settings') or {}
    # with the resolved config at hand, its keys show what --cfg-options changed
    has_config = any(key.startswith('config') for key in settings)
    for key, value in settings.items():
        if isinstance(value, list) and value and all(isinstance(arg, str)
                                                     for arg in value):
            for sub, item in _args_as_dict(value).items():
                if not (has_config and sub.startswith('--cfg-options ')):
                    flat[f'{key}: {sub}'] = item
        elif isinstance(value, dict) and key.startswith('args'):
            for name, args in value.items():
                for sub, item in _args_as_dict(args).items():
                    if not (has_config and sub.startswith('--cfg-options ')):
                        flat[f'{key}[{name}]: {sub}'] = item
        else:
            for sub, item in flatten({key: value}).items():
                flat[sub] = item
    for key, value in (content.get('upstream') or {}).items():
        flat[f'upstream stage {key}'] = value
    return flat


def describe_changes(old: Dict[str, Any], new: Dict[str, Any],
                     limit: int = 12) -> List[str]:
    """Lines ``key: old -> new`` for every setting that differs."""
    before, after = readable(old), readable(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key, '<unset>') == after.get(key, '<unset>'):
            continue
        if key.startswith('upstream stage '):
            lines.append(f'{key[len("upstream stage "):]} (upstream) was rerun or '
                         'changed')
            continue
        lines.append(f'{key}: {_short(before.get(key, "<unset>"))} -> '
                     f'{_short(after.get(key, "<unset>"))}')
    if len(lines) > limit:
        lines = lines[:limit] + [f'... and {len(lines) - limit} more']
    return lines


def _short(value: Any, width: int = 70) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[:width - 3] + '...'
