"""No file a user supplies is unpickled outside torch's weights-only loader.

The hostile file used throughout is a checkpoint whose ``meta`` runs
``touch MARKER`` when unpickled: a test passes only if MARKER never appears.
"""
import ast
import functools
import http.server
import os
import os.path as osp
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import mars_mm  # noqa: F401  (registers the safe loaders in mmengine)
from mars_mm.utils.checkpoint import (
    checkpoint_seed,
    load_checkpoint_file,
    safe_torch_load,
)
from mars_mm.utils.compat import restricted_pickle_module

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def hostile(tmp_path):
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'hostile.pth'
    torch.save(dict(meta=dict(seed=_RunsCommand(f'touch {marker}'), iter=2),
                    state_dict=dict(w=torch.ones(2))), path)
    yield str(path)
    assert not marker.exists(), 'code hidden in the checkpoint ran'


def _mmengine_style(path):
    """What an mmengine checkpoint holds besides tensors (its message hub and
    numpy scalars), built by hand."""
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(0.5)
    buffer.update(0.25)
    torch.save(dict(state_dict=dict(w=torch.arange(3.)),
                    message_hub=dict(log_scalars={'train/loss': buffer}),
                    meta=dict(seed=np.int64(7), epoch=3, dtype=np.dtype('float32'))),
               path)
    return str(path)


@pytest.mark.parametrize('load', [checkpoint_seed, load_checkpoint_file,
                                  safe_torch_load], ids=lambda f: f.__name__)
def test_our_loaders_refuse_code(hostile, load):
    with pytest.raises(Exception, match=r'posix\.system|refusing|Weights only'):
        load(hostile)


def test_refusal_names_the_file_and_the_global(hostile):
    with pytest.raises(ValueError, match=r'hostile\.pth: refusing to load.*'
                                         r'posix\.system'):
        checkpoint_seed(hostile)


def test_mmengine_loaders_go_through_the_safe_loader(hostile):
    """--resume, load_from, init_model and mmseg's tools load through here."""
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    assert CheckpointLoader._get_checkpoint_loader(hostile).__module__ == \
        'mars_mm.utils.compat'
    with pytest.raises(Exception, match=r'posix\.system|Weights only'):
        _load_checkpoint(hostile, map_location='cpu')


def test_mmengine_checkpoints_still_load(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = _mmengine_style(tmp_path / 'ok.pth')
    for checkpoint in (safe_torch_load(path), _load_checkpoint(path, 'cpu')):
        assert checkpoint['message_hub']['log_scalars']['train/loss'].mean() == 0.375
        assert torch.equal(checkpoint['state_dict']['w'], torch.arange(3.))
    assert checkpoint_seed(path) == 7


def test_restricted_pickle_module_has_the_same_allow_list(tmp_path, hostile):
    """The unpickler used on torch < 2.4 (no add_safe_globals) runs here too."""
    path = _mmengine_style(tmp_path / 'ok.pth')
    loaded = torch.load(path, map_location='cpu', weights_only=False,
                        pickle_module=restricted_pickle_module())
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 0.375
    assert loaded['meta']['seed'] == 7
    with pytest.raises(Exception, match=r'refusing global posix\.system'):
        torch.load(hostile, map_location='cpu', weights_only=False,
                   pickle_module=restricted_pickle_module())


def test_a_url_is_downloaded_then_loaded_safely(tmp_path, monkeypatch, hostile):
    from mmengine.runner.checkpoint import _load_checkpoint
    served = tmp_path / 'served'
    served.mkdir()
    os.replace(hostile, served / 'hostile.pth')
    _mmengine_style(served / 'ok.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    url = f'http://127.0.0.1:{server.server_address[1]}'
    try:
        assert _load_checkpoint(f'{url}/ok.pth', 'cpu')['meta']['epoch'] == 3
        with pytest.raises(Exception, match=r'posix\.system|Weights only'):
            _load_checkpoint(f'{url}/hostile.pth', 'cpu')
    finally:
        server.shutdown()


def test_tools_refuse_a_hostile_checkpoint(hostile, tmp_path):
    """The converter of DINO weights loads a user's file too."""
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/model_converters/dino_to_mmpretrain.py'),
         hostile, str(tmp_path / 'out.pth')],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'hostile.pth' in result.stderr and 'posix.system' in result.stderr


# ------------------------------------------------------------------ the guard
_UNSAFE_CALLS = {'pickle.load', 'pickle.loads', 'pickle.Unpickler', 'dill.load',
                 'joblib.load', 'pandas.read_pickle', 'pd.read_pickle',
                 'torch.hub.load_state_dict_from_url', 'model_zoo.load_url',
                 'load_url', 'torch.jit.load', 'mmengine.load', 'fileio.load'}
#: The one function allowed to call torch.load (with weights_only=True or the
#: restricted pickle module).
_SAFE_LOADER = ('mars_mm/utils/checkpoint.py', 'safe_torch_load')


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return '.'.join(reversed(parts))


def _python_files():
    for top in ('mars_mm', 'tools', 'benchmarks'):
        for root, _, files in os.walk(osp.join(REPO, top)):
            for name in files:
                if name.endswith('.py'):
                    yield osp.join(root, name)


def _unsafe_loads(path):
    """``(line, call)`` of every call in ``path`` that could unpickle a file
    outside :func:`safe_torch_load`."""
    tree = ast.parse(open(path).read(), path)
    rel = osp.relpath(path, REPO).replace(os.sep, '/')
    safe_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and (rel, node.name) == _SAFE_LOADER:
            safe_lines |= set(range(node.lineno, node.end_lineno + 1))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in _UNSAFE_CALLS or name.endswith('.read_pickle'):
            found.append((node.lineno, name))
        elif name == 'torch.load' and node.lineno not in safe_lines:
            found.append((node.lineno, name))
        elif name.endswith('np.load') or name == 'numpy.load':
            flag = {kw.arg: kw.value for kw in node.keywords}.get('allow_pickle')
            if flag is not None and not (isinstance(flag, ast.Constant)
                                         and flag.value is False):
                found.append((node.lineno, f'{name}(allow_pickle=...)'))
    return sorted(set(found))


def test_no_unpickling_outside_the_safe_loader():
    offenders = {osp.relpath(path, REPO): calls for path in _python_files()
                 if (calls := _unsafe_loads(path))}
    assert not offenders, ('load through mars_mm.utils.checkpoint.safe_torch_load '
                           f'instead: {offenders}')


def test_the_guard_finds_what_it_looks_for(tmp_path):
    """The scan above must see each kind of unsafe call (a control)."""
    sample = tmp_path / 'sample.py'
    sample.write_text(
        'import pickle, torch, numpy as np\n'
        'def f(p):\n'
        '    torch.load(p, weights_only=False)\n'
        '    pickle.load(open(p, "rb"))\n'
        '    np.load(p, allow_pickle=True)\n'
        '    np.load(p, allow_pickle=False)\n')
    assert [call for _, call in _unsafe_loads(str(sample))] == [
        'torch.load', 'pickle.load', 'np.load(allow_pickle=...)']
