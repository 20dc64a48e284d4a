"""The model zoo: model-index.yml lists every metafile; every entry is real.

mim and mmsegmentation read ``model-index.yml`` (``Import:`` of the metafiles).
Each metafile model's config must exist and build (its model, or for a Stage-3
offline job its debias settings), and every number a metafile reports must be the
one in a table of its collection's README.
"""
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.debias.settings import settings_from_config
from mars_mm.registry import DATASETS, MODELS
from tests.test_configs import _build_model

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _read(path):
    with open(osp.join(ROOT, path)) as handle:
        return yaml.safe_load(handle)


def _metafiles():
    return _read('model-index.yml')['Import']


def _models():
    return [(metafile, model) for metafile in _metafiles()
            for model in _read(metafile).get('Models', [])]


def test_model_index_imports_every_metafile():
    found = sorted(osp.relpath(path, ROOT) for path in
                   glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yaml')))
    assert sorted(_metafiles()) == found


@pytest.mark.parametrize('metafile,model', _models(),
                         ids=[model['Name'] for _, model in _models()])
def test_metafile_entry_config_exists_and_builds(metafile, model):
    path = osp.join(ROOT, model['Config'])
    assert osp.isfile(path), f'{metafile}: {model["Name"]} names {model["Config"]}'
    assert osp.dirname(model['Config']) == osp.dirname(metafile)
    assert model['Name'] == osp.splitext(osp.basename(path))[0]
    cfg = Config.fromfile(path)
    if cfg.get('model', {}).get('type') == 'DenseEmbedder':
        # a training-free Stage 2 embedding: builds, and has nothing to train
        model = MODELS.build(cfg.model.to_dict())
        assert not [p for p in model.parameters() if p.requires_grad]
    elif 'model' in cfg:
        _build_model(cfg)
    else:  # a Stage 3 offline job
        dataset = cfg.train_infer_dataloader.dataset
        classes = DATASETS.get(dataset['type']).METAINFO['classes']
        assert settings_from_config(cfg, classes).num_classes == len(classes)


def _table_numbers(readme):
    with open(osp.join(ROOT, readme)) as handle:
        rows = [line for line in handle if line.lstrip().startswith('|')]
    return '\n'.join(rows)


def test_every_metafile_number_is_in_its_readme_table():
    missing = []
    for metafile in _metafiles():
        content = _read(metafile)
        readmes = {item['Name']: item['README'] for item in content['Collections']}
        for model in content.get('Models', []):
            tables = _table_numbers(readmes[model['In Collection']])
            for result in model.get('Results') or []:
                for metric, value in result['Metrics'].items():
                    text = f'{float(value):.2f}'
                    if not re.search(rf'(?<![\d.]){re.escape(text)}(?!\d)', tables):
                        missing.append(f'{model["Name"]}: {metric} = {text} is in no '
                                       f'table of {readmes[model["In Collection"]]}')
    assert not missing, '\n'.join(missing)
