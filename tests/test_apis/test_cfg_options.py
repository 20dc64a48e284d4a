"""--cfg-options that mmengine would accept and ignore are refused (issue 13)."""
import pytest
from mmengine.config import Config

from mars_mm.apis.config_checks import (
    check_cfg_options,
    check_class_counts,
    model_class_settings,
)
from mars_mm.apis.launch import load_config

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'


@pytest.fixture
def path(repo_root):
    return f'{repo_root}/{CONFIG}'


@pytest.mark.parametrize('option, message', [
    ('trian_cfg.max_iters', r"no key 'trian_cfg'; did you mean train_cfg"),
    ('train_dataloder.batch_size', r"did you mean train_dataloader"),
    ('train_cfg.max_iter', r"train_cfg has no key 'max_iter'; did you mean "
                           r"train_cfg\.max_iters"),
    ('model.decode_head.num_clases', r"did you mean model\.decode_head\.num_classes"),
    ('train_dataloader.datset.data_root', r"did you mean train_dataloader\.dataset"),
    ('foo_dataloader', r"no key 'foo_dataloader'"),  # nothing reads it
    ('crop_size', r"'crop_size' is a variable .* copied into "
                  r"data_preprocessor\.size"),
    ('norm_cfg', r"'norm_cfg' is a variable .*model\.backbone\.norm_cfg"),
])
def test_ignored_options_are_refused(path, option, message):
    cfg = Config.fromfile(path)
    with pytest.raises(ValueError, match=message):
        check_cfg_options(cfg, {option: 1}, path)
    with pytest.raises(ValueError, match=message):
        load_config(path, cfg_options={option: 1})


@pytest.mark.parametrize('option', [
    'train_cfg.max_iters',            # exists
    'train_cfg.val_begin',            # an argument of IterBasedTrainLoop
    'model.decode_head.dropout_ratio',  # an argument of FCNHead (via BaseDecodeHead)
    'train_dataloader.pin_memory',    # new and like no existing key
    'model.backbone._delete_',        # mmengine's own keys
    'auto_scale_lr',                  # read by the Runner, absent from the config
    'tta_model',                      # read by tools/test.py --tta
    'train_infer_dataloader',         # read by the offline stages
    'param_scheduler.0.end',          # list index
    'data_root',                      # applied to every dataloader
])
def test_legitimate_options_pass(path, option):
    check_cfg_options(Config.fromfile(path), {option: 1}, path)


def test_data_root_option_reaches_every_dataloader(path, tmp_path):
    cfg = load_config(path, cfg_options={'data_root': str(tmp_path)})
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path)
    # an option on one dataloader still wins over the root option
    cfg = load_config(path, cfg_options={
        'data_root': str(tmp_path), 'val_dataloader.dataset.data_root': 'elsewhere'})
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path)
    assert cfg.val_dataloader.dataset.data_root == 'elsewhere'


def test_class_counts(repo_root, tmp_path):
    from tests.fixtures import make_tiny_voc
    make_tiny_voc(str(tmp_path))
    cfg = load_config(f'{repo_root}/{CONFIG}', data_root=str(tmp_path))
    assert model_class_settings(cfg.model) == [
        ('model.decode_head.num_classes', 3, True)]
    check_class_counts(cfg, 'train_dataloader')  # 3 classes: fine
    cfg.model.decode_head.num_classes = 4
    with pytest.raises(ValueError, match=r'tiny_fcn_voc-32x32\.py: model\.decode_head'
                       r'\.num_classes = 4, but the train_dataloader dataset .* has 3 '
                       r'classes \(background, square, disc\); set '
                       r'model\.decode_head\.num_classes=3'):
        check_class_counts(cfg, 'train_dataloader')
    cam = dict(type='CAMClassifier', head=dict(type='CAMHead', num_classes=3))
    assert model_class_settings(cam) == [('model.head.num_classes', 3, False)]
    cfg.model = cam
    with pytest.raises(ValueError, match=r'model\.head\.num_classes = 3.* 2 '
                       r'foreground classes'):
        check_class_counts(cfg, 'train_dataloader')
