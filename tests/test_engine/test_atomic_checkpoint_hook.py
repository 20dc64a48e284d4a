"""AtomicCheckpointHook: kill-safe saves, resume from the newest complete
checkpoint, bit-identical resumed training; and 20 SIGKILLs (slow)."""
import json
import os
import os.path as osp
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.runner import Runner

from mars_mm.apis.launch import apply_resume, load_config, use_atomic_checkpoints
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
    use_atomic_checkpoints(cfg)
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


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def _kill_at_second_save(monkeypatch):
    import mmengine.runner.runner as runner_module
    original = runner_module.save_checkpoint
    calls = dict(n=0)

    def save_checkpoint(checkpoint, filename, *args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 2:  # half the bytes are on disk when the job dies
            original(checkpoint, filename, *args, **kwargs)
            with open(filename, 'r+b') as handle:
                handle.truncate(os.path.getsize(filename) // 2)
            raise KeyboardInterrupt('killed while saving')
        return original(checkpoint, filename, *args, **kwargs)
    monkeypatch.setattr(runner_module, 'save_checkpoint', save_checkpoint)


def test_kill_while_saving_keeps_the_previous_checkpoint(repo_root, tiny_voc, tmp_path,
                                                         monkeypatch):
    from mars_mm.utils.checkpoint import checkpoint_problem
    # mmengine's own hook: the previous checkpoint is deleted first, the new one
    # is left half written, last_checkpoint names the deleted one (issue 13)
    def config(work):  # without save_best: the second save is iter_4.pth
        cfg = _config(repo_root, tiny_voc, work)
        cfg.default_hooks.checkpoint.pop('save_best')
        return cfg

    plain = config(tmp_path / 'plain')
    plain.default_hooks.checkpoint.type = 'CheckpointHook'
    _kill_at_second_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _train(plain)
    assert not osp.exists(tmp_path / 'plain' / 'iter_2.pth')
    assert 'truncated' in checkpoint_problem(str(tmp_path / 'plain' / 'iter_4.pth'))

    work = tmp_path / 'atomic'
    _kill_at_second_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _train(config(work))
    names = sorted(os.listdir(work))
    assert 'iter_2.pth' in names and 'iter_4.pth' not in names
    assert '.tmp-iter_4.pth' in names  # what a SIGKILL leaves behind
    assert checkpoint_problem(str(work / 'iter_2.pth')) is None
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')

    monkeypatch.undo()
    runner = _train(config(work), resume='auto')
    assert runner.iter == 4
    names = sorted(name for name in os.listdir(work) if name.endswith('.pth'))
    assert names == ['iter_4.pth']  # the leftover temporary is gone
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_4.pth')


@pytest.mark.parametrize('loop', ['iter', 'epoch'])
def test_resumed_training_is_bit_identical(repo_root, tiny_voc, tmp_path, loop):
    """Train 8 iterations straight, or 4 then resume: the same weights. The
    random states in the checkpoint make it so; without them (the control)
    the resumed run draws other augmentations."""
    if loop == 'iter':
        options = dict(**{'train_cfg.val_interval': 4,
                          'default_hooks.checkpoint.interval': 4})
        first, second = dict(max_iters=4), dict(max_iters=8)
    else:  # 4 images, batch 2: 2 iterations per epoch
        options = {'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop',
                                     max_epochs=4, val_interval=1),
                   'train_dataloader.sampler': dict(type='DefaultSampler',
                                                    shuffle=True),
                   'default_hooks.checkpoint': dict(by_epoch=True, interval=1),
                   'log_processor': dict(by_epoch=True)}
        first, second = (dict(**{'train_cfg.max_epochs': 2}),
                         dict(**{'train_cfg.max_epochs': 4}))

    def config(work, stage):
        cfg = _config(repo_root, tiny_voc, tmp_path / work, total=8, **options)
        cfg.merge_from_dict({key if '.' in key else f'train_cfg.{key}': value
                             for key, value in stage.items()})
        return cfg

    reference = _train(config('straight', second))
    expected = reference.model.state_dict()
    _train(config('resumed', first))
    resumed = _train(config('resumed', second), resume='auto')
    for key, value in expected.items():
        assert torch.equal(resumed.model.state_dict()[key], value), key

    # control: the same resume without the saved random states differs
    _train(config('control', first))
    name = 'iter_4.pth' if loop == 'iter' else 'epoch_2.pth'
    path = tmp_path / 'control' / name
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    del checkpoint['rng_state']
    torch.save(checkpoint, path)
    control = _train(config('control', second), resume='auto')
    assert any(not torch.equal(control.model.state_dict()[key], value)
               for key, value in expected.items())


def test_resume_continues_the_seed_of_an_unseeded_run(repo_root, tiny_voc, tmp_path,
                                                      monkeypatch):
    """No fixed seed, a shuffling sampler and worker processes: mmengine builds
    the sampler and the workers with a fresh random seed before it reads the
    checkpoint's, so the resumed run shuffled and augmented differently.
    ``--resume`` now builds it with the checkpoint's seed: resuming from the
    epoch-2 checkpoint of a run gives that run's final weights, bit for bit."""
    import shutil

    from mars_mm.apis import launch
    options = {'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop',
                                 max_epochs=4, val_interval=4),
               'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=True),
               'train_dataloader.num_workers': 2,
               'train_dataloader.persistent_workers': False,
               'randomness': dict(_delete_=True, seed=None),
               'default_hooks.checkpoint': dict(by_epoch=True, interval=1,
                                                max_keep_ckpts=-1),
               'log_processor': dict(by_epoch=True)}

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
    control = resume_from_epoch_2('control')
    assert any(not torch.equal(control[key], value)
               for key, value in expected.items())


def test_resume_with_persistent_workers_is_bit_identical(repo_root, tiny_voc,
                                                         tmp_path):
    """Persistent dataloader workers keep random streams no checkpoint holds; in
    an epoch-based loop the hook replays the finished epochs' data loading so
    they continue as if never stopped. The control (no replay) differs."""
    import shutil
    options = {'train_cfg': dict(_delete_=True, type='EpochBasedTrainLoop',
                                 max_epochs=4, val_interval=4),
               'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=True),
               'train_dataloader.num_workers': 2,
               'train_dataloader.persistent_workers': True,
               'default_hooks.checkpoint': dict(by_epoch=True, interval=1,
                                                max_keep_ckpts=-1),
               'log_processor': dict(by_epoch=True)}

    def resume_from_epoch_2(work, **hook):
        (tmp_path / work).mkdir()
        shutil.copy(tmp_path / 'straight' / 'epoch_2.pth', tmp_path / work)
        cfg = _config(repo_root, tiny_voc, tmp_path / work, total=8, **options)
        cfg.default_hooks.checkpoint.update(hook)
        return _train(cfg, resume='auto').model.state_dict()

    expected = _train(_config(repo_root, tiny_voc, tmp_path / 'straight', total=8,
                              **options)).model.state_dict()
    resumed = resume_from_epoch_2('resumed')
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    control = resume_from_epoch_2('control', replay_persistent_workers=False)
    assert any(not torch.equal(control[key], value)
               for key, value in expected.items())


@pytest.mark.slow  # 20 SIGKILLs and 21 resumed runs: ~80 s on a busy 2-core machine
def test_twenty_sigkills_resume_from_the_newest_complete_checkpoint(
        repo_root, tiny_voc, tmp_path):
    config = tmp_path / 'kill.py'
    config.write_text(
        f"_base_ = [{osp.join(repo_root, CONFIG)!r}]\n"
        "train_cfg = dict(max_iters=100, val_interval=25)\n"
        "param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,\n"
        "                        end=100, by_epoch=False)]\n"
        "default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1),\n"
        "                     logger=dict(interval=10))\n")
    out = tmp_path / 'kills.json'
    work, reference = tmp_path / 'work', tmp_path / 'reference'
    subprocess.run(
        [sys.executable, '-m', 'tests.kill_harness', 'train', str(config), str(work),
         str(out), '--kills', '20', '--seed', '0', '--reference', str(reference),
         '--', '--data-root', tiny_voc],
        cwd=repo_root, check=True, timeout=900,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    record = json.loads(out.read_text())
    assert record['reference'] == 'exit 0'
    attempts = record['attempts']
    assert sum(attempt['ended'] == 'signal 9' for attempt in attempts) == 20
    assert {a['phase'] for a in attempts if a['kind'] == 'self'} == {
        'write', 'rename', 'record', 'remove'}
    previous = None
    for attempt in attempts + [record['final']]:
        # a run that got as far as resuming resumed from the newest complete one
        if attempt['resumed_from'] is not None:
            assert attempt['resumed_from'] == attempt['newest_before'], attempt
        # nothing complete is ever lost
        if previous is not None:
            assert attempt['newest_before'] >= previous, attempt
        previous = attempt.get('newest_after', attempt['newest_before'])
    final = record['final']
    assert final['ended'] == 'exit 0'
    assert not [name for name in final['files'] if name.startswith('.tmp-')]
    assert [name for name in final['files'] if name.startswith('iter_')] == [
        'iter_100.pth']
    # 20 kills later, the same weights as the run that was never interrupted
    expected = _weights(reference / 'iter_100.pth')
    got = _weights(work / 'iter_100.pth')
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
