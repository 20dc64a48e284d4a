"""The Stage 1 tools end to end: two ranks export CAMs, labels and the sweep."""
import copy
import fnmatch
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from mars_mm.registry import MODELS
from mars_mm.utils.io import load_label_png
from tests.fixtures import make_tiny_voc
from tests.test_apis.test_cam_apis import tiny_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(script, *args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               **(env_extra or {}))
    return subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'cam', script), *args], cwd=REPO,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow  # four tool processes: ~25 s idle, ~45 s on a loaded machine
def test_cam_tools_two_ranks_then_labels_and_sweep(tmp_path):
    root = str(tmp_path / 'voc')
    make_tiny_voc(root, num_train=5, num_val=2, size=32)
    cfg = tiny_config(root)
    config_path = str(tmp_path / 'tiny_cam.py')
    cfg.dump(config_path)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)

    cam_dir = str(tmp_path / 'cams')
    ranks = [run_tool('generate_cams.py', config_path, checkpoint, '--out', cam_dir,
                      '--device', 'cpu',
                      env_extra=dict(RANK=str(rank), WORLD_SIZE='2'))
             for rank in range(2)]
    outputs = [finish(process) for process in ranks]
    assert 'wrote 3 CAM files' in outputs[0] and 'wrote 2 CAM files' in outputs[1]
    assert sorted(os.listdir(cam_dir)) == [f'img_{i:03d}.npz' for i in range(5)] + [
        'job_settings.json']

    # the same CAMs as one in-process run
    from mars_mm.apis.cam import generate_cams, load_cams
    single_dir = str(tmp_path / 'single')
    generate_cams(cfg, checkpoint, single_dir, device='cpu')
    for name in fnmatch.filter(os.listdir(single_dir), '*.npz'):
        expected, got = load_cams(osp.join(single_dir, name)), \
            load_cams(osp.join(cam_dir, name))
        assert np.array_equal(expected[0], got[0])
        assert np.array_equal(expected[1], got[1])

    label_dir = str(tmp_path / 'labels')
    sweep_json = str(tmp_path / 'sweep.json')
    labels = run_tool('make_pseudo_labels.py', cam_dir, '--dataset', config_path,
                      '--out', label_dir, '--bg-threshold', '0.3', '--no-crf',
                      '--workers', '2')
    sweep = run_tool('eval_cams.py', cam_dir, '--dataset', config_path,
                     '--thresholds', '0.3', '0.6', '--out', sweep_json)
    assert 'wrote 5 pseudo labels' in finish(labels)
    assert 'best threshold' in finish(sweep)
    for name in fnmatch.filter(os.listdir(cam_dir), '*.npz'):
        cams, keys = load_cams(osp.join(cam_dir, name))
        label = load_label_png(osp.join(label_dir, name.replace('.npz', '.png')))
        expected = np.where(cams.max(0) > 0.3, keys[cams.argmax(0)], 0)
        assert np.array_equal(label, expected)
    with open(sweep_json) as handle:
        result = json.load(handle)
    assert result['thresholds'] == [0.3, 0.6] and len(result['miou']) == 2
