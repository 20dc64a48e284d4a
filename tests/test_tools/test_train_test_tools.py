"""End-to-end checks of tools/train.py, test.py and the torchrun launchers on CPU."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.fixtures import make_tiny_voc

CONFIG = 'tests/data/configs/tiny_fcn_voc-32x32.py'


def _data_options(root):
    return ['--cfg-options'] + [f'{split}_dataloader.dataset.data_root={root}'
                                for split in ('train', 'val', 'test')]


def _run(cmd, cwd, env_extra=None, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.update(env_extra or {})
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
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
         env_extra=dict(PORT='29731'))
    assert osp.isfile(tmp_path / 'w' / 'iter_2.pth')


def test_dist_train_two_cpu_ranks_then_init_model(tiny_voc, tmp_path, repo_root):
    work_dir = str(tmp_path / 'dist')
    result = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
                   work_dir] + _data_options(tiny_voc), repo_root,
                  env_extra=dict(PORT='29733'))
    log = result.stdout + result.stderr
    # torchrun exits 0 only if every rank did; with 2 ranks each validates one of
    # the 2 val images, so rank 0 logs "[1/1]" where a single process logs "[2/2]".
    assert 'Distributed training: True' in log
    assert 'Iter(val) [1/1]' in log and 'Iter(val) [2/2]' not in log
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
    # Evaluation with 2 ranks as well.
    result = _run(['bash', 'tools/dist_test.sh', CONFIG, checkpoint, '2',
                   '--work-dir', str(tmp_path / 'dist_test')]
                  + _data_options(tiny_voc), repo_root,
                  env_extra=dict(PORT='29735'))
    assert 'mIoU' in result.stdout + result.stderr


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
