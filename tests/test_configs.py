"""Every config under configs/ and projects/*/configs loads and is checked.

* **Experiments** are named by mmseg's scheme
  ``{algorithm}_{backbone}_{gpus}xb{batch}-{schedule}_{dataset}-{crop}.py``; the model
  builds on CPU and the name is checked against the content: backbone depth (or ViT
  size and patch), batch per GPU, iterations or epochs, training crop and dataset.
* **Offline jobs** (Stage 3, no network) are named ``debias[-variant]_{dataset}.py``;
  their ``debias`` dict must build :class:`~mars_mm.debias.DebiasSettings` for the
  dataset the name says.
* **Untrained embeddings** (Stage 2 without training: a ``DenseEmbedder``) are named
  ``{embedding}-d{stride}_{dataset}.py``: no batch, schedule or crop exists; the
  model builds, has no trainable parameter and its stride is the one named.
* **Bases** (``_base_/``) are exempt from naming (:data:`NAME_EXEMPT` says why); a base
  with a complete model builds it.

A config that is none of these fails :func:`test_every_config_is_named_or_exempt`.
"""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.debias.settings import settings_from_config
from mars_mm.registry import DATASETS, MODELS

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
OFFLINE_PATTERN = re.compile(
    r'^(?P<algo>debias(-[a-z0-9]+)*)_(?P<dataset>[a-z0-9]+)\.py$')
#: One token per dataset in every name, and what it means in the content.
DATASET_TOKENS = {
    'voc12aug': ('WSSSVOCDataset', 'train_aug'),
    'coco2014': ('WSSSCOCODataset', 'train2014'),
    'planted': ('PlantedBiasDataset', 'train'),
}
#: Configs that follow neither naming scheme, with the reason.
NAME_EXEMPT = {
    'configs/_base_/': 'bases are no experiments: like mmseg\'s _base_/ files they '
                       'are named by what they hold (a dataset, a model, a schedule) '
                       'and checked through the experiments that inherit them',
    'configs/pipelines/': 'pipeline configs name the stage configs of a whole run '
                          '(tools/mars/run_pipeline.py), not a model; they are '
                          'loaded and dry-run by tests/test_apis/test_pipeline_*.py',
}


def _exemption(path):
    return next((reason for prefix, reason in NAME_EXEMPT.items()
                 if path.startswith(prefix)), None)


EMBED_PATTERN = re.compile(
    r'^(?P<embedding>[a-z0-9-]+?)-d(?P<stride>\d+)_(?P<dataset>[a-z0-9]+)\.py$')
NAMED = [path for path in CONFIGS if NAME_PATTERN.match(osp.basename(path))]
EMBEDDINGS = [path for path in CONFIGS if EMBED_PATTERN.match(osp.basename(path))]
OFFLINE = [path for path in CONFIGS if OFFLINE_PATTERN.match(osp.basename(path))]
BASES = [path for path in CONFIGS if _exemption(path)]


def _load(path):
    return Config.fromfile(osp.join(REPO_ROOT, path))


def test_configs_were_found():
    assert NAMED and OFFLINE and BASES


def test_every_config_is_named_or_exempt():
    unchecked = sorted(set(CONFIGS) - set(NAMED) - set(OFFLINE) - set(BASES)
                       - set(EMBEDDINGS))
    assert not unchecked, ('name these by the scheme in this file\'s docstring or add '
                           f'them to NAME_EXEMPT with a reason: {unchecked}')
    overlap = (set(NAMED) | set(OFFLINE)) & set(BASES)
    assert not overlap, f'exempt configs named like experiments: {sorted(overlap)}'


def _strip_pretrained(node):
    """Random init for tests: no downloads, and BN instead of SyncBN on CPU."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        if isinstance(node.get('init_cfg'), dict) and \
                node['init_cfg'].get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_pretrained(value)


def _build_model(cfg):
    model_cfg = cfg.model.to_dict()
    _strip_pretrained(model_cfg)
    model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize('path', NAMED)
def test_experiment_model_builds(path):
    cfg = _load(path)
    assert 'model' in cfg, f'{path}: an experiment needs a model'
    _build_model(cfg)


@pytest.mark.parametrize('path', NAMED)
def test_training_configs_stop_at_a_non_finite_loss(path):
    """FiniteLossHook comes from the runtime base: mmseg's train script gets it too,
    and a config with hooks of its own (the MARS teacher) keeps it."""
    cfg = _load(path)
    if not cfg.get('train_cfg'):
        return
    types = [hook['type'] for hook in cfg.get('custom_hooks', [])]
    assert types.count('FiniteLossHook') == 1, (path, types)
    if cfg.model.get('type') == 'MARSEncoderDecoder' and \
            cfg.model.get('biased_pixels') == 'complement':
        assert 'EMATeacherHook' in types, (path, types)


#: What the bases without a model hold (they are checked through the experiments,
#: and the dataset bases also by tests/test_datasets/test_wsss_datasets.py).
BASE_CONTENT = {
    'configs/_base_/datasets/': 'pipelines and dataloaders',
    'configs/_base_/schedules/': 'an optimiser, a schedule and the loops',
    'configs/_base_/debias/': "Stage 3's defaults (test_debias/test_settings.py)",
    'configs/_base_/default_runtime.py': 'the runtime',
    'configs/pipelines/': 'the stage configs and options of a whole run',
}


@pytest.mark.parametrize('path', BASES)
def test_base_loads_and_its_model_builds(path):
    cfg = _load(path)
    if 'model' in cfg:
        _build_model(cfg)
        return
    holds = next((what for prefix, what in BASE_CONTENT.items()
                  if path.startswith(prefix)), None)
    assert holds is not None, f'{path}: a base without a model; say what it holds'
    pytest.skip(f'{path} holds {holds}, no model to build')


def _train_dataset(cfg, key='train_dataloader'):
    """The training split's dataset config, unwrapping USSPairDataset."""
    dataset = cfg[key]['dataset']
    while 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    return dataset


def _check_dataset_token(path, token, dataset):
    assert token in DATASET_TOKENS, \
        f'{path}: dataset token {token!r}; use one of {sorted(DATASET_TOKENS)}'
    dataset_type, split = DATASET_TOKENS[token]
    assert dataset['type'] == dataset_type, \
        f'{path}: the name says {token}, the dataset is {dataset["type"]}'
    assert split in dataset['ann_file'], f'{path}: trains on {dataset["ann_file"]}'


def _train_crop(dataset):
    crops = [step['crop_size'] for step in dataset['pipeline']
             if step.get('type') == 'RandomCrop']
    return tuple(crops[0]) if crops else None


@pytest.mark.parametrize('path', NAMED)
def test_config_name_matches_content(path):
    match = NAME_PATTERN.match(osp.basename(path))
    cfg = _load(path)
    dataset = _train_dataset(cfg)
    _check_dataset_token(path, match['dataset'], dataset)
    crop = (int(match['height']), int(match['width']))
    assert _train_crop(dataset) == crop, \
        f'{path}: training crop {_train_crop(dataset)}, the name says {crop}'
    if 'crop_size' in cfg:
        assert tuple(cfg.crop_size) == crop, f'{path}: crop_size {cfg.crop_size}'
    assert cfg.train_dataloader.batch_size == int(match['batch']), \
        f'{path}: batch per GPU {cfg.train_dataloader.batch_size}'
    number, unit = re.fullmatch(r'(\d+)(k|it|e)', match['schedule']).groups()
    if unit == 'e':
        assert cfg.train_cfg.max_epochs == int(number), \
            f'{path}: {cfg.train_cfg.max_epochs} epochs, the name says {number}'
    else:
        iters = int(number) * (1000 if unit == 'k' else 1)
        assert cfg.train_cfg.max_iters == iters, \
            f'{path}: {cfg.train_cfg.max_iters} iterations, the name says {iters}'
    backbone = cfg.model.backbone
    backbone = backbone.get('backbone', backbone)  # a frozen wrapper's network
    depth = re.match(r'r(\d+)', match['backbone'])
    vit = re.match(r'(?:vit|dinov2)-([a-z])(\d+)', match['backbone'])
    plain = re.match(r'plain(\d+)', match['backbone'])
    if depth:
        assert backbone.depth == int(depth[1]), f'{path}: depth {backbone.depth}'
    elif plain:
        assert backbone.type == 'PlainConvNet' and len(backbone.widths) == int(
            plain[1]), f'{path}: {backbone.type} with {len(backbone.widths)} layers'
    elif vit:
        assert backbone.patch_size == int(vit[2]), \
            f'{path}: patch {backbone.patch_size}'
        if isinstance(backbone.arch, str):
            assert backbone.arch[0] == vit[1], f'{path}: ViT arch {backbone.arch}'
    else:
        pytest.fail(f'{path}: backbone token {match["backbone"]!r} is not checked')


@pytest.mark.parametrize('path', OFFLINE)
def test_offline_job_name_and_debias_settings(path):
    match = OFFLINE_PATTERN.match(osp.basename(path))
    cfg = _load(path)
    assert 'model' not in cfg, f'{path}: an offline job trains nothing'
    dataset = cfg.train_infer_dataloader.dataset
    _check_dataset_token(path, match['dataset'], dataset)
    classes = DATASETS.get(dataset['type']).METAINFO['classes']
    settings = settings_from_config(cfg, classes)
    assert settings.num_classes == len(classes)
    assert settings.pseudo_label_dir and settings.embedding_dir
    assert settings.work_dir == cfg.work_dir


@pytest.mark.parametrize('path', EMBEDDINGS)
def test_untrained_embedding_name_and_model(path):
    match = EMBED_PATTERN.match(osp.basename(path))
    cfg = _load(path)
    assert cfg.model.type == 'DenseEmbedder', f'{path}: {cfg.model.type}'
    _check_dataset_token(path, match['dataset'], _train_dataset(cfg))
    model = MODELS.build(cfg.model.to_dict())
    assert model.feature_stride == int(match['stride'])
    assert not [p for p in model.parameters() if p.requires_grad], \
        f'{path}: an untrained embedding has trainable parameters'


@pytest.mark.parametrize('path', NAMED)
def test_training_configs_name_the_checkpoint_hooks(path):
    """Every config that trains names kill-safe saving and the random states in
    its own ``default_hooks``: no tool swaps a hook in, so mmseg's own
    ``tools/train.py`` saves and resumes exactly as mars_mm's does."""
    from mars_mm.engine.hooks import AtomicCheckpointHook, RandomStateHook
    from mars_mm.registry import HOOKS
    cfg = _load(path)
    if 'train_cfg' not in cfg or 'train_dataloader' not in cfg:
        return  # nothing to train
    hooks = cfg.default_hooks
    assert HOOKS.get(hooks.checkpoint.type) is AtomicCheckpointHook, path
    assert any(isinstance(hook, dict) and HOOKS.get(hook.get('type'))
               is RandomStateHook for hook in hooks.values()), path
