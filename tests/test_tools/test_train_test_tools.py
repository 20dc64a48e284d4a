"""End-to-end checks of tools/train.py, test.py and the torchrun launchers on CPU."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.fixtures import free_port, make_tiny_voc

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'


def _data_options(root):
    return ['--cfg-options'] + [f'{split}_dataloader.dataset.data_root={root}'
                                for split in ('train', 'val', 'test')]


def _run(cmd, cwd, env_extra=None, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(env_extra or {})
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    # stderr first and as plain text: a failed launcher's reason (a rendezvous or
    # gloo timeout, a traceback) is at its end, and a tuple repr would be cut short
    assert result.returncode == 0, (
        f'exit {result.returncode}: {" ".join(cmd[:3])}\n--- stderr (end) ---\n'
        f'{result.stderr[-4000:]}\n--- stdout (end) ---\n{result.stdout[-1500:]}')
    return result


@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny_voc'))
    make_tiny_voc(root)
    return root


def _iteration_of(checkpoint):
    return torch.load(checkpoint, map_location='cpu')['meta']['iter']


def test_train_resume_and_test(tiny_voc, tmp_path, repo_root):
    work_dir = str(tmp_path / 'work')
    train = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir]
    _run(train + _data_options(tiny_voc), repo_root)
    assert _iteration_of(osp.join(work_dir, 'iter_4.pth')) == 4
    # --resume without a value continues from the latest checkpoint...
    result = _run(train + ['--resume'] + _data_options(tiny_voc)
                  + ['train_cfg.max_iters=6'], repo_root)
    assert 'resumed epoch: 0, iter: 4' in result.stdout + result.stderr
    assert _iteration_of(osp.join(work_dir, 'iter_6.pth')) == 6
    # ...and with a path from that checkpoint (iteration 2 -> 4 again).
    result = _run(train + ['--resume', osp.join(work_dir, 'iter_2.pth'),
                           '--work-dir', str(tmp_path / 'from2')]
                  + _data_options(tiny_voc), repo_root)
    assert 'resumed epoch: 0, iter: 2' in result.stdout + result.stderr
    # test.py on a config whose checkpoint hook has save_best (compat fix 4).
    out_dir = str(tmp_path / 'preds')
    result = _run([sys.executable, 'tools/test.py', CONFIG,
                   osp.join(work_dir, 'iter_6.pth'), '--work-dir',
                   str(tmp_path / 'test'), '--out', out_dir]
                  + _data_options(tiny_voc), repo_root)
    assert 'mIoU' in result.stdout + result.stderr
    assert sorted(os.listdir(out_dir)) == ['img_004.png', 'img_005.png']


def test_tools_run_from_another_directory(tiny_voc, tmp_path, repo_root):
    """The launch scripts resolve their own paths: no cd into the repo needed."""
    config = osp.join(repo_root, CONFIG)
    _run(['bash', osp.join(repo_root, 'tools/dist_train.sh'), config, '1',
          '--work-dir', str(tmp_path / 'w'), '--cfg-options',
          'train_cfg.max_iters=2', 'train_cfg.val_interval=2']
         + _data_options(tiny_voc)[1:], cwd=str(tmp_path),
         env_extra=dict(PORT=str(free_port())))
    assert osp.isfile(tmp_path / 'w' / 'iter_2.pth')


def _recording_config(tmp_path, repo_root):
    """The tiny config plus a hook writing each rank's predicted images to files."""
    path = tmp_path / 'tiny_recorded.py'
    path.write_text(
        f"_base_ = [{osp.join(repo_root, CONFIG)!r}]\n"
        "custom_imports = dict(imports=['mars_mm', 'tests.sample_record_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='SampleRecordHook')]\n")
    return str(path)


def _samples_per_rank(work_dir, mode, world_size=2):
    """Image names each rank predicted (from SampleRecordHook's files)."""
    per_rank = []
    for rank in range(world_size):
        with open(osp.join(work_dir, f'{mode}_samples_rank{rank}.json')) as handle:
            per_rank.append([osp.basename(path) for path in json.load(handle)])
    assert not osp.exists(osp.join(work_dir, f'{mode}_samples_rank{world_size}.json'))
    return per_rank


def test_dist_train_two_cpu_ranks_then_init_model(tiny_voc, tmp_path, repo_root):
    work_dir = str(tmp_path / 'dist')
    config = _recording_config(tmp_path, repo_root)
    env = dict(PORT=str(free_port()), PYTHONPATH=repo_root)
    _run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir]
         + _data_options(tiny_voc), repo_root, env_extra=env)
    # torchrun exits 0 only if every rank did (checked by _run); each of the 2 ranks
    # validated its own one of the 2 val images (a single process would see both)
    assert sorted(_samples_per_rank(work_dir, 'val')) == [['img_004.jpg'],
                                                          ['img_005.jpg']]
    checkpoint = osp.join(work_dir, 'iter_4.pth')
    assert _iteration_of(checkpoint) == 4
    from mmseg.apis import inference_model, init_model
    model = init_model(osp.join(repo_root, CONFIG), checkpoint, device='cpu')
    state = torch.load(checkpoint, map_location='cpu')['state_dict']
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name])
    prediction = inference_model(model, osp.join(tiny_voc, 'JPEGImages',
                                                 'img_004.jpg'))
    assert prediction.pred_sem_seg.data.shape == (1, 32, 32)
    # Evaluation with 2 ranks as well: each rank predicts one image, and the
    # predictions written with --out are those of the checkpoint
    test_dir, out_dir = str(tmp_path / 'dist_test'), str(tmp_path / 'preds')
    env['PORT'] = str(free_port())
    _run(['bash', 'tools/dist_test.sh', config, checkpoint, '2', '--work-dir',
          test_dir, '--out', out_dir] + _data_options(tiny_voc), repo_root,
         env_extra=env)
    assert sorted(_samples_per_rank(test_dir, 'test')) == [['img_004.jpg'],
                                                           ['img_005.jpg']]
    from mars_mm.utils.io import load_label_png
    written = load_label_png(osp.join(out_dir, 'img_004.png'))
    np.testing.assert_array_equal(written,
                                  prediction.pred_sem_seg.data[0].numpy())


def test_launch_scripts_print_usage(repo_root):
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        result = subprocess.run(['bash', osp.join('tools', script)], cwd=repo_root,
                                capture_output=True, text=True)
        assert result.returncode == 2 and 'usage' in result.stderr


def test_slurm_scripts_call_srun_with_one_task_per_gpu(tmp_path, repo_root):
    fake_srun = tmp_path / 'srun'
    fake_srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake_srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='8',
               GPUS_PER_NODE='4', SRUN_ARGS='--qos=high --time=1:00:00',
               PYTHON='python-x')
    result = subprocess.run(
        ['bash', osp.join(repo_root, 'tools/slurm_test.sh'), 'gpu', 'job', 'cfg.py',
         'ckpt.pth', '--tta'], cwd=str(tmp_path), capture_output=True, text=True,
        env=env)
    assert result.returncode == 0, result.stderr
    args = result.stdout.split('\n')
    assert args[:5] == ['-p', 'gpu', '--job-name=job', '--gres=gpu:4', '--ntasks=8']
    assert '--qos=high' in args and '--time=1:00:00' in args
    tail = args[args.index('python-x'):-1]
    assert tail == ['python-x', '-u', osp.join(repo_root, 'tools/test.py'), 'cfg.py',
                    'ckpt.pth', '--tta', '--launcher=slurm']
