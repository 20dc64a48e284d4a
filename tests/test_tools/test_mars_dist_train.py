"""2-process gloo training of the MARS CPU config on a tiny planted-bias fixture."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from mars_mm.datasets.generators.planted_bias import generate_planted_bias
from mars_mm.utils.io import load_label_png, save_label_png
from tests.fixtures import free_port

CONFIG = 'configs/mars/mars-deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py'


@pytest.mark.slow
def test_mars_config_two_cpu_ranks_train_validate_checkpoint(tmp_path, repo_root):
    root = str(tmp_path / 'planted')
    generate_planted_bias(root, num_train=8, num_val=4, image_size=(48, 48))
    label_dir = tmp_path / 'debiased'
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'train.txt')) as f:
        stems = f.read().split()
    for stem in stems:  # every other foreground pixel removed
        label = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        checker = np.indices(label.shape).sum(0) % 2 == 0
        removed = (label > 0) & (label < 255) & checker
        label[removed] = 254
        save_label_png(str(label_dir / f'{stem}.png'), label)
    work_dir = tmp_path / 'work'
    options = [f'{split}_dataloader.dataset.data_root={root}'
               for split in ('train', 'val', 'test')] + [
        f'train_dataloader.dataset.pseudo_label_dir={label_dir}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
        'param_scheduler.0.end=4']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(free_port()))
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work_dir),
         '--cfg-options'] + options,
        cwd=repo_root, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    log = result.stdout + result.stderr
    assert 'complement_ratio' in log and 'mIoU' in log
    checkpoint = torch.load(str(work_dir / 'iter_4.pth'), map_location='cpu')
    assert checkpoint['meta']['iter'] == 4
    assert not any('teacher' in key for key in checkpoint['state_dict'])
    # the initial copy + one EMA step after each of the 4 optimizer steps
    assert int(checkpoint['mars_teacher']['steps']) == 5
    # the teacher averages the student's weights on both ranks but is none of them
    for name in ('decode_head.conv_seg.weight', 'backbone.stem.0.weight'):
        teacher = checkpoint['mars_teacher'][f'module.{name}']
        assert teacher.shape == checkpoint['state_dict'][name].shape
        assert not torch.equal(teacher, checkpoint['state_dict'][name])
