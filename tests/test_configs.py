"""Every config under configs/ loads, and every model config builds on CPU.

Names that follow mmseg's scheme
``{algorithm}_{backbone}_{gpus}xb{batch}-{schedule}_{dataset}-{crop}.py`` are also
checked against the content: backbone depth, batch per GPU, iterations and crop.
"""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT)
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    + glob.glob(osp.join(REPO_ROOT, 'projects', '**', 'configs', '**', '*.py'),
                recursive=True))
NAME_PATTERN = re.compile(
    r'^(?P<algo>[\w.-]+?)_(?P<backbone>[a-z]+(?P<depth>\d+)?[\w-]*?)_'
    r'(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<schedule>[\w.-]+?)_(?P<dataset>[\w.-]+?)'
    r'-(?P<height>\d+)x(?P<width>\d+)\.py$')


def test_configs_were_found():
    assert len(CONFIGS) > 0


def _strip_pretrained(node):
    """Random init for tests: no downloads, and BN instead of SyncBN on CPU."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        if node.get('init_cfg', None) is not None and isinstance(
                node['init_cfg'], dict) and \
                node['init_cfg'].get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_pretrained(value)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads_and_model_builds(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    if 'model' not in cfg or cfg.model is None:
        return  # dataset/schedule/runtime bases and offline-job configs
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model
    if 'type' not in model_cfg:
        return  # a partial model dict in a _base_ file meant to be merged
    _strip_pretrained(model_cfg)
    model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def _crop_of(cfg):
    for key in ('crop_size', 'img_scale'):
        if key in cfg:
            return tuple(cfg[key])
    return None


NAMED = [path for path in CONFIGS if NAME_PATTERN.match(osp.basename(path))]


@pytest.mark.parametrize('path', NAMED)
def test_config_name_matches_content(path):
    match = NAME_PATTERN.match(osp.basename(path))
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    crop = _crop_of(cfg)
    if crop is not None:
        assert crop == (int(match['height']), int(match['width'])), \
            f'{path}: crop {crop} does not match the name'
    if 'train_dataloader' in cfg:
        assert cfg.train_dataloader.batch_size == int(match['batch']), \
            f'{path}: batch per GPU {cfg.train_dataloader.batch_size}'
    schedule = re.match(r'(\d+)(k?)', match['schedule'])
    if schedule and 'train_cfg' in cfg and 'max_iters' in cfg.train_cfg:
        iters = int(schedule[1]) * (1000 if schedule[2] else 1)
        assert cfg.train_cfg.max_iters == iters, \
            f'{path}: {cfg.train_cfg.max_iters} iterations, name says {iters}'
    depth = re.match(r'r(\d+)', match['backbone'])
    if depth and 'model' in cfg and 'backbone' in cfg.model and \
            'depth' in cfg.model.backbone:
        assert cfg.model.backbone.depth == int(depth[1]), \
            f'{path}: backbone depth {cfg.model.backbone.depth}'
