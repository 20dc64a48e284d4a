import os.path as osp

import pytest
from mmengine.config import Config

from mars_mm.apis.launch import enable_amp, load_config, prepare_launcher, to_tta

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'


def test_load_config_work_dir_priority(repo_root, tmp_path):
    path = f'{repo_root}/{CONFIG}'
    assert load_config(path).work_dir == './work_dirs/tiny_fcn_voc-32x32'
    assert load_config(path, work_dir=str(tmp_path)).work_dir == str(tmp_path)
    cfg = load_config(path, cfg_options={'train_cfg.max_iters': 7})
    assert cfg.train_cfg.max_iters == 7
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config(str(tmp_path / 'nope.py'))


def test_metafile_aliases_name_the_real_config(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    with pytest.warns(UserWarning, match='alias .* of configs/mars/mars-deeplabv3plus_'
                                         'r101-d8_4xb4-40k_voc12aug-512x512.py'):
        cfg = load_config('configs/mars/deeplab_r101_voc.py')
    assert cfg.model.type == 'MARSEncoderDecoder' and cfg.num_classes == 21
    # the work dir keeps the typed name, as the v0.1 alias file gave it
    assert cfg.work_dir == './work_dirs/deeplab_r101_voc'
    with pytest.raises(FileNotFoundError, match='deeplab_r50_voc.py'):
        load_config('configs/mars/deeplab_r50_voc.py')


def test_enable_amp_switches_wrapper_once():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer={})))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    enable_amp(cfg)  # already on: unchanged
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    with pytest.raises(ValueError, match='OptimWrapper'):
        enable_amp(Config(dict(optim_wrapper=dict(type='Custom'))))


def test_to_tta_wraps_the_model():
    cfg = Config(dict(model=dict(type='EncoderDecoder'),
                      tta_model=dict(type='SegTTAModel'),
                      tta_pipeline=['tta'],
                      test_dataloader=dict(dataset=dict(pipeline=['plain']))))
    to_tta(cfg)
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.type == 'EncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline == ['tta']
    assert 'module' not in cfg.tta_model  # the config's own entry is left alone
    with pytest.raises(ValueError, match='tta_model'):
        to_tta(Config(dict(model={})))


def test_unknown_launcher_is_rejected():
    with pytest.raises(ValueError, match='launcher'):
        prepare_launcher(Config(dict(model={})), 'k8s')


def test_shared_tool_options(monkeypatch):
    import argparse

    from mars_mm.apis.launch import add_job_args, parse_job_args
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    parser = add_job_args(argparse.ArgumentParser(), device=True, resume=True)
    args = parse_job_args(parser, ['--no-resume', '--device', 'cpu', '--launcher',
                                   'pytorch', '--local-rank', '3', '--cfg-options',
                                   'a.b=1'])
    assert args.no_resume and args.device == 'cpu' and args.launcher == 'pytorch'
    assert args.cfg_options == {'a.b': 1}
    import os
    assert os.environ['LOCAL_RANK'] == '3'
    bare = add_job_args(argparse.ArgumentParser(), cfg_options=False)
    with pytest.raises(SystemExit):
        bare.parse_args(['--no-resume'])


def _data_roots(node):
    if isinstance(node, dict):
        own = [node['data_root']] if 'data_root' in node else []
        return own + [r for value in node.values() for r in _data_roots(value)]
    if isinstance(node, (list, tuple)):
        return [r for value in node for r in _data_roots(value)]
    return []


def test_data_root_reaches_every_dataloader(repo_root):
    """``--data-root`` changes the copies of data_root inside every dataloader
    (including wrapped datasets), and so does ``--cfg-options data_root=``."""
    from mars_mm.apis.launch import load_config
    for config in ('configs/cam/cam_plain7-d8_1xb16-30e_planted-128x128.py',
                   'configs/uss/stego_vit-t8-rand_1xb8-1k_planted-128x128.py',
                   'configs/mars/debias_planted.py'):
        cfg = load_config(osp.join(repo_root, config), data_root='/elsewhere')
        roots = [root for key in cfg if key.endswith('_dataloader')
                 for root in _data_roots(cfg[key])]
        assert roots and set(roots) == {'/elsewhere'}, (config, roots)
        assert cfg.data_root == '/elsewhere'
    # the plain option used to change only the variable the dataloaders had
    # copied; it now does what --data-root does (issue 13)
    plain = load_config(osp.join(
        repo_root, 'configs/cam/cam_plain7-d8_1xb16-30e_planted-128x128.py'),
        cfg_options=dict(data_root='/elsewhere'))
    assert plain.train_dataloader.dataset.data_root == '/elsewhere'


def test_config_folder_and_work_dir_file_are_named(repo_root, tmp_path):
    with pytest.raises(ValueError, match=r'configs/cam: is a folder, not a config '
                       r'file; give one of its configs \(cam_'):
        load_config(osp.join(repo_root, 'configs', 'cam'))
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(ValueError, match=r'afile: the work dir is a file'):
        load_config(f'{repo_root}/{CONFIG}', work_dir=str(tmp_path / 'afile'))


@pytest.mark.parametrize('option, kind', [
    ({'train_cfg.max_iters': 'two'}, 'a number'),
    ({'optim_wrapper.optimizer.lr': '1e-x'}, 'a number'),
    ({'param_scheduler.0.by_epoch': 'no'}, 'a flag'),
])
def test_option_of_text_where_the_config_holds_a_number(repo_root, option, kind):
    """mmengine keeps 'two' as text; the loop failed later with "invalid literal
    for int()", naming no option."""
    key = next(iter(option))
    with pytest.raises(ValueError, match=rf'--cfg-options {key}=.*sets {key} to .*'
                       rf'{kind}.*is text'):
        load_config(f'{repo_root}/{CONFIG}', cfg_options=option)
    # numbers, None and new text keys pass
    load_config(f'{repo_root}/{CONFIG}', cfg_options={'train_cfg.max_iters': 3,
                                                      'randomness.seed': None})


def test_train_and_val_splits_must_not_share_images(tmp_path):
    """A train split naming a val image (000017.jpg while val.txt lists 000017)
    validated the model on what it trained on."""
    from mars_mm.apis.splits import check_disjoint_splits
    from mars_mm.datasets.generators.planted_bias import generate_planted_bias
    root = str(tmp_path / 'data')
    generate_planted_bias(root, num_train=3, num_val=2, image_size=(16, 16))
    dataset = dict(type='PlantedBiasDataset', data_root=root)
    cfg = Config(dict(
        default_scope='mmseg', val_cfg=dict(type='ValLoop'),
        train_dataloader=dict(dataset=dict(
            dataset, ann_file='ImageSets/Segmentation/train.txt')),
        val_dataloader=dict(dataset=dict(
            dataset, ann_file='ImageSets/Segmentation/val.txt'))))
    check_disjoint_splits(cfg)
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt'), 'a') as f:
        f.write('000004.jpg\n')
    with pytest.raises(ValueError, match=r'train\.txt \(train_dataloader\) and .*'
                       r'val\.txt \(val_dataloader\) share 1 images \(e\.g\. '
                       r'000004\.jpg\)'):
        check_disjoint_splits(cfg)
    cfg.val_cfg = None  # no validation: nothing to compare
    check_disjoint_splits(cfg)
    cfg.val_cfg = dict(type='ValLoop')  # validating on the training split itself
    cfg.val_dataloader.dataset.ann_file = 'ImageSets/Segmentation/train.txt'
    check_disjoint_splits(cfg)
