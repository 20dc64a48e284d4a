"""Stage 3 settings: checked on construction, built from a config."""
import dataclasses
import os.path as osp

import pytest
from mmengine.config import Config

from mars_mm.core.refine import Refinement
from mars_mm.debias.settings import (
    REPORT_DEFAULTS,
    DebiasSettings,
    settings_from_config,
)


def _settings(**overrides):
    options = dict(pseudo_label_dir='pl', embedding_dir='emb', work_dir='work',
                   num_classes=3)
    options.update(overrides)
    return DebiasSettings(**options)


def test_defaults_and_paths():
    settings = _settings()
    assert settings.class_names == ['background', 'class1', 'class2']
    assert settings.tag_source == 'img_tags'
    assert settings.label_path('a') == osp.join('pl', 'a.png')
    assert settings.embedding_path('a') == osp.join('emb', 'a.npy')
    assert settings.image_centroid_path('a') == osp.join('work', 'centroids', 'a.npz')
    assert settings.output_label_path('a') == osp.join('work', 'labels', 'a.png')
    assert settings.centroid_file == osp.join('work', 'centroids.npz')
    assert settings.pass1_params()['pseudo_label_dir'] == osp.abspath('pl')


@pytest.mark.parametrize('overrides, message', [
    (dict(centring='yes'), 'centring'), (dict(tag_source='tags'), 'tag_source'),
    (dict(k_fg=0), 'k_fg'), (dict(alpha=0), 'alpha'),
    (dict(refinement=dict(type='otsu')), 'refinement method'),
    (dict(class_names=['background']), '1 class names for 3 classes')])
def test_bad_settings_fail_early(overrides, message):
    with pytest.raises(ValueError, match=message):
        _settings(**overrides)


def test_v01_tag_source_name_is_still_accepted():
    with pytest.warns(DeprecationWarning, match="use 'img_tags'"):
        assert _settings(tag_source='dataset').tag_source == 'img_tags'


def test_settings_from_config_fills_dataset_defaults():
    cfg = Config(dict(work_dir='runs/x', debias=dict(
        pseudo_label_dir='pl', embedding_dir='emb', dataset=dict(type='Nothing'),
        refinement=dict(type='threshold', crf=dict(num_iters=3)),
        report=dict(gallery=1))))
    settings = settings_from_config(cfg, ['background', 'boat'])
    assert settings.work_dir == 'runs/x' and settings.num_classes == 2
    assert settings.class_names == ['background', 'boat']
    assert type(settings.refinement['crf']) is dict  # plain dicts: JSON report
    # options the config leaves out keep their defaults
    assert settings.report == dict(REPORT_DEFAULTS, gallery=1)


def test_base_config_restates_the_dataclass_defaults(repo_root):
    """configs/_base_/debias/mars.py names exactly DebiasSettings' defaults."""
    base = Config.fromfile(osp.join(repo_root, 'configs', '_base_', 'debias',
                                    'mars.py')).debias.to_dict()
    fields = {item.name: item for item in dataclasses.fields(DebiasSettings)}
    assert set(base) <= set(fields), f'unknown keys {set(base) - set(fields)}'
    for name, value in base.items():
        item = fields[name]
        if item.default is dataclasses.MISSING and \
                item.default_factory is dataclasses.MISSING:
            assert value is None, f'{name}: required, the base must leave it None'
            continue
        default = item.default if item.default is not dataclasses.MISSING \
            else item.default_factory()
        if name == 'refinement':  # compared as parsed: dict(type='crf') is complete
            assert Refinement.from_config(value) == Refinement.from_config(default)
        else:
            assert value == default, f'{name}: base {value!r}, dataclass {default!r}'
    # the fields the base leaves out come from elsewhere, not from a default
    assert set(fields) - set(base) == {
        'work_dir', 'num_classes', 'class_names',  # the config and its dataset
        'label_suffix', 'embedding_suffix', 'device'}  # the file formats, pass 1
