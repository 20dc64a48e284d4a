"""RandomStateHook: resumed training is bit-identical to training never stopped.

Each test trains straight and trains with a resume in the middle, and compares the
final weights; each has a control (the same resume without the mechanism) that
differs, so the tests fail if the hook does nothing.
"""
import shutil
import uuid

import pytest
import torch
from mmengine.runner import Runner

from mars_mm.apis.launch import apply_resume, load_config
from tests.fixtures import make_tiny_voc

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'


@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_voc'))
    make_tiny_voc(root)
    return root


def _config(repo_root, data_root, work_dir, max_iters=4, total=None, **options):
    cfg = load_config(f'{repo_root}/{CONFIG}', work_dir=str(work_dir),
                      data_root=data_root)
    cfg.experiment_name = uuid.uuid4().hex  # no instance shared between runners
    cfg.param_scheduler[0]['end'] = total or max_iters
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    cfg.default_hooks.logger.interval = 100
    cfg.merge_from_dict(options)
    if cfg.train_cfg.type == 'IterBasedTrainLoop':
        cfg.train_cfg.max_iters = max_iters
    else:
        cfg.train_cfg.pop('max_iters', None)
    return cfg


def _train(cfg, resume=None):
    apply_resume(cfg, resume)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _differs(state, expected):
    return any(not torch.equal(state[key], value) for key, value in expected.items())


EPOCHS = {'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=4,
                            val_interval=1),
          'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=True),
          'default_hooks.checkpoint': dict(by_epoch=True, interval=1),
          'log_processor': dict(by_epoch=True)}


@pytest.mark.parametrize('loop, checkpoint', [
    ('iter', 'AtomicCheckpointHook'), ('epoch', 'AtomicCheckpointHook'),
    ('iter', 'CheckpointHook')])  # beside mmengine's own hook just as well
def test_resumed_training_is_bit_identical(repo_root, tiny_voc, tmp_path, loop,
                                           checkpoint):
    """Train 8 iterations straight, or 4 then resume: the same weights. The
    random states in the checkpoint make it so; without them (the control)
    the resumed run draws other augmentations."""
    if loop == 'iter':
        options = {'train_cfg.val_interval': 4,
                   'default_hooks.checkpoint.interval': 4}
        first, second = dict(max_iters=4), dict(max_iters=8)
    else:  # 4 images, batch 2: 2 iterations per epoch
        options = dict(EPOCHS)
        first, second = ({'train_cfg.max_epochs': 2}, {'train_cfg.max_epochs': 4})
    options['default_hooks.checkpoint.type'] = checkpoint

    def config(work, stage):
        cfg = _config(repo_root, tiny_voc, tmp_path / work, total=8, **options)
        cfg.merge_from_dict({key if '.' in key else f'train_cfg.{key}': value
                             for key, value in stage.items()})
        return cfg

    expected = _train(config('straight', second)).model.state_dict()
    _train(config('resumed', first))
    resumed = _train(config('resumed', second), resume='auto').model.state_dict()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key

    # control: the same resume without the saved random states differs
    _train(config('control', first))
    name = 'iter_4.pth' if loop == 'iter' else 'epoch_2.pth'
    path = tmp_path / 'control' / name
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    del checkpoint['rng_state']
    torch.save(checkpoint, path)
    control = _train(config('control', second), resume='auto').model.state_dict()
    assert _differs(control, expected)


def test_weights_loaded_with_load_from_start_a_new_stream(repo_root, tiny_voc,
                                                          tmp_path):
    """``load_from`` without resuming (fine-tuning) keeps the new run's own seed:
    the loaded checkpoint's random states are not applied."""
    options = {'train_cfg.val_interval': 4, 'default_hooks.checkpoint.interval': 4}
    _train(_config(repo_root, tiny_voc, tmp_path / 'first', **options))
    fresh = _config(repo_root, tiny_voc, tmp_path / 'fresh', **options)
    fresh.load_from = str(tmp_path / 'first' / 'iter_4.pth')
    fresh.default_hooks.pop('random_state')
    plain = _config(repo_root, tiny_voc, tmp_path / 'plain', **options)
    plain.load_from = fresh.load_from
    expected = _train(fresh).model.state_dict()
    got = _train(plain).model.state_dict()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_resume_continues_the_seed_of_an_unseeded_run(repo_root, tiny_voc, tmp_path,
                                                      monkeypatch):
    """No fixed seed, a shuffling sampler and worker processes: mmengine builds
    the sampler and the workers with a fresh random seed before it reads the
    checkpoint's, so the resumed run shuffled and augmented differently.
    ``--resume`` now builds it with the checkpoint's seed: resuming from the
    epoch-2 checkpoint of a run gives that run's final weights, bit for bit."""
    from mars_mm.apis import launch
    options = dict(EPOCHS, **{
        'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=4,
                          val_interval=4),
        'train_dataloader.num_workers': 2,
        'train_dataloader.persistent_workers': False,
        'randomness': dict(_delete_=True, seed=None),
        'default_hooks.checkpoint': dict(by_epoch=True, interval=1,
                                         max_keep_ckpts=-1)})

    def resume_from_epoch_2(work):
        (tmp_path / work).mkdir()
        shutil.copy(tmp_path / 'straight' / 'epoch_2.pth', tmp_path / work)
        return _train(_config(repo_root, tiny_voc, tmp_path / work, total=8,
                              **options), resume='auto').model.state_dict()

    expected = _train(_config(repo_root, tiny_voc, tmp_path / 'straight', total=8,
                              **options)).model.state_dict()
    resumed = resume_from_epoch_2('resumed')
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key

    # control: resumed with the fresh seed mmengine would use
    monkeypatch.setattr(launch, 'adopt_resumed_seed', lambda cfg, seed: None)
    assert _differs(resume_from_epoch_2('control'), expected)


def test_resume_with_persistent_workers_is_bit_identical(repo_root, tiny_voc,
                                                         tmp_path):
    """Persistent dataloader workers keep random streams no checkpoint holds; in
    an epoch-based loop the hook replays the finished epochs' data loading so
    they continue as if never stopped. The control (no replay) differs."""
    options = dict(EPOCHS, **{
        'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=4,
                          val_interval=4),
        'train_dataloader.num_workers': 2,
        'train_dataloader.persistent_workers': True,
        'default_hooks.checkpoint': dict(by_epoch=True, interval=1,
                                         max_keep_ckpts=-1)})

    def resume_from_epoch_2(work, **hook):
        (tmp_path / work).mkdir()
        shutil.copy(tmp_path / 'straight' / 'epoch_2.pth', tmp_path / work)
        cfg = _config(repo_root, tiny_voc, tmp_path / work, total=8, **options)
        cfg.default_hooks.random_state.update(hook)
        return _train(cfg, resume='auto').model.state_dict()

    expected = _train(_config(repo_root, tiny_voc, tmp_path / 'straight', total=8,
                              **options)).model.state_dict()
    resumed = resume_from_epoch_2('resumed')
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    control = resume_from_epoch_2('control', replay_persistent_workers=False)
    assert _differs(control, expected)
