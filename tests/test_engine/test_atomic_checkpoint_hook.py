"""AtomicCheckpointHook: a SIGKILL at each step of a save loses nothing, mmseg's own
train script saves the same way, a failed write names the file; 20 SIGKILLs (slow).

The checks are independent of the hook: files are loaded with ``torch.load`` and
the final weights compared with those of a run that was never interrupted.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import mmseg
import pytest
import torch
from mmengine.config import Config

from tests import kill_harness as harness
from tests.conftest import REPO_ROOT
from tests.fixtures import make_tiny_voc

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'
MMSEG_TRAIN = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')


@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_voc'))
    make_tiny_voc(root)
    return root


def _resumed_from(work):
    """The iteration the newest run in ``work`` resumed from (mmengine's own log
    in the work dir: a forked child's logger still writes to pytest's capture)."""
    logs = sorted(glob.glob(osp.join(str(work), '*', '*.log')))
    return harness._resumed_from(logs[-1]) if logs else None


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def _same_weights(path_a, path_b):
    expected, got = _weights(path_a), _weights(path_b)
    return expected.keys() == got.keys() and all(
        torch.equal(got[key], value) for key, value in expected.items())


def _kill_config(folder, repo_root, checkpoint='AtomicCheckpointHook'):
    """The tiny config: 4 iterations, a checkpoint every 2, keep 1, no best."""
    path = osp.join(folder, f'kill_{checkpoint}.py')
    with open(path, 'w') as handle:
        handle.write(
            f"_base_ = [{osp.join(repo_root, CONFIG)!r}]\n"
            "train_cfg = dict(max_iters=4, val_interval=100)\n"
            "default_hooks = dict(\n"
            f"    checkpoint=dict(_delete_=True, type={checkpoint!r}, by_epoch=False,\n"
            "                    interval=2, max_keep_ckpts=1),\n"
            "    logger=dict(interval=100))\n")
    return path


def _run(script, argv, log, self_kill=None):
    """``script`` with ``argv`` in a forked child (``self_kill``: ``(phase, nth)``
    of :func:`tests.kill_harness.install_self_kill`); how it ended."""
    def child():
        if self_kill is not None:
            harness.install_self_kill(*self_kill)
        sys.argv = [script, *argv]
        import runpy
        runpy.run_path(script, run_name='__main__')
    return harness.wait(harness.fork(child, log), timeout=600)


@pytest.fixture(scope='module')
def reference(tiny_voc, tmp_path_factory):
    """An uninterrupted run of the kill config: its iter_4.pth."""
    folder = str(tmp_path_factory.mktemp('reference'))
    config = _kill_config(folder, REPO_ROOT)
    work = osp.join(folder, 'work')
    ended = _run(harness.TRAIN, [config, '--work-dir', work, '--data-root', tiny_voc],
                 osp.join(folder, 'log'))
    assert ended == 'exit 0', open(osp.join(folder, 'log')).read()[-3000:]
    return osp.join(work, 'iter_4.pth')


# what a kill at each step of the second save (iter_4) leaves, by phase:
# (complete checkpoints, what last_checkpoint names, a temporary left)
AFTER_KILL = {
    'write': ({2}, 'iter_2.pth', True),
    'rename': ({2}, 'iter_2.pth', True),
    'record': ({2, 4}, 'iter_2.pth', False),
    'empty-record': ({2, 4}, '', False),
    'remove': ({2, 4}, 'iter_4.pth', False),
}


@pytest.mark.parametrize('phase', [
    # the two ends of a save run in the fast suite; the steps between them
    # (about 30 s each) with the slow tests, as in the 20-kill test
    pytest.param(phase, marks=() if phase in ('write', 'remove') else
                 pytest.mark.slow) for phase in harness.PHASES])
def test_sigkill_at_each_step_of_a_save(phase, repo_root, tiny_voc, tmp_path,
                                        reference):
    config = _kill_config(str(tmp_path), repo_root)
    work = tmp_path / 'work'
    argv = [config, '--work-dir', str(work), '--data-root', tiny_voc]
    nth = 1 if phase == 'remove' else 2  # the first removal comes with iter_4
    ended = _run(harness.TRAIN, argv, str(tmp_path / 'killed.log'), (phase, nth))
    assert ended == 'signal 9', (tmp_path / 'killed.log').read_text()[-3000:]

    complete, named, temporary = AFTER_KILL[phase]
    found = harness.complete_checkpoints(str(work))
    assert set(found.values()) == complete, sorted(os.listdir(work))
    record = (work / 'last_checkpoint').read_text()
    assert osp.basename(record) == named
    assert any(name.startswith('.tmp-') for name in os.listdir(work)) == temporary

    # resuming continues from the newest complete checkpoint and ends where the
    # uninterrupted run ended, with nothing left over
    ended = _run(harness.TRAIN, [*argv, '--resume'], str(tmp_path / 'resumed.log'))
    log = (tmp_path / 'resumed.log').read_text()
    assert ended == 'exit 0', log[-3000:]
    assert _resumed_from(work) == max(complete)
    names = sorted(os.listdir(work))
    assert [name for name in names if name.endswith('.pth')] == ['iter_4.pth'], names
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_4.pth')
    assert _same_weights(reference, work / 'iter_4.pth')


def test_mmengine_hook_loses_the_run_when_killed_while_saving(repo_root, tiny_voc,
                                                              tmp_path):
    """The control: mmengine's own CheckpointHook deletes iter_2.pth before it
    writes iter_4.pth, so the same kill leaves no complete checkpoint at all and
    a last_checkpoint naming the deleted file."""
    config = _kill_config(str(tmp_path), repo_root, checkpoint='CheckpointHook')
    work = tmp_path / 'work'
    ended = _run(harness.TRAIN, [config, '--work-dir', str(work), '--data-root',
                                 tiny_voc], str(tmp_path / 'log'), ('write', 2))
    assert ended == 'signal 9'
    assert harness.complete_checkpoints(str(work)) == {}
    assert sorted(os.listdir(work)).count('iter_2.pth') == 0
    assert osp.basename((work / 'last_checkpoint').read_text()) == 'iter_2.pth'


def _mmseg_options(data_root):
    return ['--cfg-options'] + [f'{loader}.dataset.data_root={data_root}' for loader in
                                ('train_dataloader', 'val_dataloader',
                                 'test_dataloader')]


def test_mmseg_train_script_saves_atomically(repo_root, tiny_voc, tmp_path,
                                             reference):
    """mmseg's own tools/train.py builds the hooks the config names: the same
    kill-safe saving, and --resume (mmengine's, through last_checkpoint) ends
    with the weights of the uninterrupted run of mars_mm's tools/train.py."""
    config = _kill_config(str(tmp_path), repo_root)
    cfg = Config.fromfile(config)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
    work = tmp_path / 'work'
    argv = [config, '--work-dir', str(work), *_mmseg_options(tiny_voc)]
    ended = _run(MMSEG_TRAIN, argv, str(tmp_path / 'killed.log'), ('write', 2))
    assert ended == 'signal 9', (tmp_path / 'killed.log').read_text()[-3000:]
    assert set(harness.complete_checkpoints(str(work)).values()) == {2}
    assert any(name.startswith('.tmp-') for name in os.listdir(work))

    argv = [config, '--work-dir', str(work), '--resume', *_mmseg_options(tiny_voc)]
    ended = _run(MMSEG_TRAIN, argv, str(tmp_path / 'resumed.log'))
    assert ended == 'exit 0', (tmp_path / 'resumed.log').read_text()[-3000:]
    assert _resumed_from(work) == 2
    assert not [name for name in os.listdir(work) if name.startswith('.tmp-')]
    assert _same_weights(reference, work / 'iter_4.pth')


def test_a_failed_write_names_the_file_and_keeps_the_previous_checkpoint(
        repo_root, tiny_voc, tmp_path, reference):
    """A file size limit (``ulimit -f``) below a checkpoint's size: the save of
    iter_4 fails with an error naming iter_4.pth and the intact iter_2.pth."""
    import resource
    config = _kill_config(str(tmp_path), repo_root)
    work = tmp_path / 'work'
    size = osp.getsize(reference)

    def child():
        # iter_2 is saved unlimited; from the second save on, half its size
        from mars_mm.engine import atomic_backend
        original = atomic_backend.AtomicLocalBackend.put
        calls = []

        def put(self, obj, filepath):
            calls.append(filepath)
            if len(calls) == 2:
                resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))
            return original(self, obj, filepath)
        atomic_backend.AtomicLocalBackend.put = put
        sys.argv = [harness.TRAIN, config, '--work-dir', str(work), '--data-root',
                    tiny_voc]
        import runpy
        try:
            runpy.run_path(harness.TRAIN, run_name='__main__')
        except Exception as err:  # what a user reads last
            (tmp_path / 'error').write_text(f'{type(err).__name__}: {err}')
            raise
    log = str(tmp_path / 'log')
    assert harness.wait(harness.fork(child, log), timeout=600) == 'exit 1'
    text = (tmp_path / 'error').read_text()
    assert (f'CheckpointWriteError: could not write the checkpoint {work}/iter_4.pth '
            '(File too large') in text, text[-3000:]
    assert f'the previous checkpoint {work}/iter_2.pth is intact' in text
    assert set(harness.complete_checkpoints(str(work)).values()) == {2}
    assert not [name for name in os.listdir(work) if name.startswith('.tmp-')]
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')


@pytest.mark.slow  # 20 SIGKILLs and 21 resumed runs: ~100 s on a busy 2-core machine
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
    assert {a['phase'] for a in attempts if a['kind'] == 'self'} == set(
        harness.PHASES)
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
