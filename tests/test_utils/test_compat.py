"""Each compatibility fix has a test here that fails without it."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import mars_mm  # noqa: F401  (applies the fixes)
from mars_mm.utils import compat

LITE = not compat.has_compiled_mmcv_ops()


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=240)


# ------------------------------------------------------------------ fix 1: mmcv.ops
@pytest.mark.skipif(not LITE, reason='full mmcv installed: fix 1 is a no-op')
def test_mmseg_imports_only_with_the_ops_fix():
    without = _run_python('import mmseg.utils')
    assert without.returncode != 0 and 'mmcv' in without.stderr
    with_fix = _run_python('import mars_mm, mmseg.utils, mmseg.models')
    assert with_fix.returncode == 0, with_fix.stderr[-2000:]


@pytest.mark.skipif(not LITE, reason='full mmcv installed: fix 1 is a no-op')
def test_point_sample_matches_bilinear_by_hand():
    from mmcv.ops import point_sample
    feature = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    # Point (x, y) = (0.5, 0.5) in [0, 1] coordinates with align_corners=False
    # lands on pixel centre (1.5, 1.0) -> mean of pixels (1,1) and (1,2) = 5.5.
    points = torch.tensor([[[0.5, 0.5], [0.125, 1 / 6]]])
    out = point_sample(feature, points, align_corners=False)
    assert out.shape == (1, 1, 2)
    assert out[0, 0, 0].item() == pytest.approx(5.5)
    assert out[0, 0, 1].item() == pytest.approx(0.0, abs=1e-5)  # pixel (0, 0) centre


@pytest.mark.skipif(not LITE, reason='full mmcv installed: fix 1 is a no-op')
def test_missing_ops_raise_a_clear_error_when_used():
    from mmcv.ops import CrissCrossAttention
    with pytest.raises(RuntimeError, match='compiled ops'):
        CrissCrossAttention(8)


def test_fix_is_a_no_op_when_compiled_ops_exist(monkeypatch):
    monkeypatch.setattr(compat, 'has_compiled_mmcv_ops', lambda: True)
    saved = sys.modules.pop('mmcv.ops', None)
    try:
        assert compat.provide_mmcv_ops() is False
        assert 'mmcv.ops' not in sys.modules
    finally:
        if saved is not None:
            sys.modules['mmcv.ops'] = saved


# ------------------------------------------------------------ fix 2: weights_only
_SAVE_MMENGINE_STYLE_CHECKPOINT = '''
import sys, numpy as np, torch
from mmengine.logging import HistoryBuffer, MessageHub
hub = MessageHub.get_instance('ckpt')
hub.update_scalar('train/loss', np.float64(0.5))
hub.update_scalar('train/loss', 0.25)
torch.save(dict(state_dict=dict(w=torch.ones(2)), message_hub=hub.state_dict(),
                meta=dict(epoch=np.int64(3), seed=np.array([1, 2]))), sys.argv[1])
'''


@pytest.fixture
def mmengine_checkpoint(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    subprocess.run([sys.executable, '-c', _SAVE_MMENGINE_STYLE_CHECKPOINT, path],
                   check=True, timeout=240)
    return path


@pytest.mark.skipif(not hasattr(torch.serialization, 'add_safe_globals'),
                    reason='torch < 2.4 does not load weights-only by default')
def test_mmengine_checkpoint_loads_only_with_the_fix(mmengine_checkpoint):
    load = f'import torch; c = torch.load({mmengine_checkpoint!r}, map_location="cpu")'
    without = _run_python(load)
    assert without.returncode != 0 and 'Weights only load failed' in without.stderr
    with_fix = _run_python(
        'import mars_mm\n' + load + '\n'
        'buf = c["message_hub"]["log_scalars"]["train/loss"]\n'
        'assert abs(buf.mean() - 0.375) < 1e-9, buf.mean()\n'
        'assert int(c["meta"]["epoch"]) == 3\n')
    assert with_fix.returncode == 0, with_fix.stderr[-2000:]


def test_weights_only_still_refuses_arbitrary_getattr(tmp_path):
    """The getattr stand-in must not open the door to os.system & co."""

    from mmengine.logging import HistoryBuffer

    class Evil:
        # The first step of a classic escape: a function object whose
        # __globals__ leads to the builtins.
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    # torch >= 2.4 reaches our stand-in; torch 2.1-2.3 (no add_safe_globals) refuse
    # getattr in their own unpickler
    with pytest.raises(Exception,
                       match='refusing getattr|Unsupported class __builtin__.getattr'):
        torch.load(path, weights_only=True)


# ----------------------------------------------------- fix 3: distributed on CPU
_CPU_DIST_SETUP = '''
import os, sys
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
                  MASTER_PORT=sys.argv[1])
import mars_mm, torch.distributed as dist
from mmengine.config import Config
from mars_mm.utils.compat import setup_cpu_distributed
cfg = Config(dict(model=dict(type='X', backbone=dict(norm_cfg=dict(type='SyncBN')),
                             head=[dict(norm_cfg=dict(type='SyncBN'))]),
                  env_cfg=dict(dist_cfg=dict(backend='nccl'))))
assert setup_cpu_distributed(cfg, 'pytorch')
assert dist.is_initialized() and dist.get_backend() == 'gloo'
assert cfg.env_cfg.dist_cfg.backend == 'gloo'
assert cfg.model_wrapper_cfg.device_ids is None
assert cfg.model.backbone.norm_cfg.type == 'BN'
assert cfg.model.head[0].norm_cfg.type == 'BN'
print('OK')
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason='fix 3 acts only without CUDA')
def test_cpu_distributed_setup_adapts_config_and_group():
    port = str(29600 + os.getpid() % 300)
    result = subprocess.run([sys.executable, '-c', _CPU_DIST_SETUP, port],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and 'OK' in result.stdout, result.stderr[-2000:]


def test_cpu_distributed_setup_is_a_no_op_without_launcher():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(norm_cfg=dict(type='SyncBN'))))
    assert compat.setup_cpu_distributed(cfg, 'none') is False
    assert cfg.model.norm_cfg.type == 'SyncBN'


# ------------------------------------------------- fix 4: save_best in test runs
def test_save_best_is_dropped_for_testing():
    from mmengine.config import Config
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook', save_best='mIoU', rule='greater'))))
    assert compat.drop_save_best_for_testing(cfg)
    assert 'save_best' not in cfg.default_hooks.checkpoint
    assert not compat.drop_save_best_for_testing(cfg)


def test_numpy_below_2_4_for_mmpretrain():
    # numpy 2.4 removed np.in1d, used by mmpretrain's retrieval metrics; the pin in
    # requirements keeps it available (a version problem solved by pins, not code).
    assert hasattr(np, 'in1d')


# ------------------------------------------- fix 5: mmpretrain next to transformers 5
def _fake_transformers(root) -> str:
    """An installed-looking transformers 5.0.0 lacking what mmpretrain 1.2 imports."""
    package = root / 'transformers'
    package.mkdir()
    # torch 2.1's dynamo patches PretrainedConfig.__eq__ wherever transformers exists
    (package / '__init__.py').write_text('from . import configuration_utils\n')
    (package / 'configuration_utils.py').write_text('class PretrainedConfig:\n'
                                                    '    pass\n')
    (package / 'modeling_utils.py').write_text('')
    info = root / 'transformers-5.0.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    return str(root)


@pytest.mark.skipif(importlib.util.find_spec('pycocotools') is None,
                    reason='mmpretrain imports its multimodal models only with '
                    'pycocotools')
def test_mmpretrain_models_import_next_to_transformers_5(tmp_path):
    env = dict(os.environ, PYTHONPATH=_fake_transformers(tmp_path))

    def run(code):
        return subprocess.run([sys.executable, '-c', code], capture_output=True,
                              text=True, timeout=240, env=env)
    # the problem, shown independently of the fix: mmpretrain alone fails
    without = run('import mmpretrain.models')
    assert without.returncode != 0 and 'transformers' in without.stderr
    with_fix = run('import mars_mm, mmpretrain.models\n'
                   'from mmpretrain.utils import dependency\n'
                   'from mmpretrain.registry import MODELS\n'
                   'assert not dependency.WITH_MULTIMODAL\n'
                   'MODELS.build(dict(type="BlipCaption"))')
    # mmpretrain's own placeholder answers, naming what to install
    assert 'requires extra multi-modal dependencies' in with_fix.stderr, \
        with_fix.stderr[-2000:]
    assert 'NoneType takes no arguments' not in with_fix.stderr


def test_multimodal_fix_leaves_transformers_4_alone(monkeypatch):
    from importlib import metadata
    monkeypatch.setattr(metadata, 'version', lambda name: '4.40.0')
    monkeypatch.delitem(sys.modules, 'mmpretrain.models', raising=False)
    assert not compat.skip_incompatible_mmpretrain_multimodal()
