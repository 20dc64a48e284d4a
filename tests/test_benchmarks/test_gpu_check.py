"""benchmarks/gpu_check.py at tiny size: every stage's real config and tool runs."""
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'gpu_check.py')


@pytest.mark.slow
def test_gpu_check_tiny_runs_every_stage(tmp_path):
    out = tmp_path / 'results.json'
    process = subprocess.run(
        [sys.executable, SCRIPT, '--size', 'tiny', '--device', 'cpu',
         '--work-dir', str(tmp_path / 'work'), '--out', str(out)],
        capture_output=True, text=True, timeout=1800)
    results = json.loads(out.read_text())
    stages = {stage['stage']: stage for stage in results['stages']}
    # AMP is refused on CPU by mmengine; every other stage must run
    failed = {name for name, stage in stages.items() if not stage['ok']}
    assert failed == {'seg_plain_amp', 'seg_mars_amp'}, process.stdout[-3000:]
    assert process.returncode == 1  # a stage that could not run fails the check
    for name in ('cam_train', 'stego_train', 'seg_plain', 'seg_mars', 'seg_mars_crf'):
        assert stages[name]['unit'] == 's/iter'
        assert stages[name]['seconds'] > 0
        assert set(stages[name]['projected_h']) == {
            'voc_4gpu', 'voc_8gpu', 'coco_4gpu', 'coco_8gpu'}
    for name in ('cam_export', 'stego_export'):
        assert stages[name]['unit'] == 's/image' and stages[name]['seconds'] > 0
    # the table and the list of what could not run are printed
    assert '| stage | status | time |' in process.stdout
    assert 'could not run:' in process.stdout
    assert 'seg_mars_amp: AMP needs a GPU' in process.stdout
    assert (tmp_path / 'work' / 'cam_export_out').is_dir()


def test_projection_reads_the_recipes():
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    # DeepLabV3+ VOC: 40k iterations x batch 16 (4 GPUs x 4); 1 s per batch of 4
    hours = gpu_check.projections('seg_plain', seconds=1.0, batch=4)
    assert hours['voc_4gpu'] == pytest.approx(40_000 * 16 / 4 / 4 / 3600)
    assert hours['voc_8gpu'] == pytest.approx(hours['voc_4gpu'] / 2)
    # CAM VOC: 5 epochs of 10,582 images; export: one pass over the images
    hours = gpu_check.projections('cam_train', seconds=1.6, batch=16)
    assert hours['voc_4gpu'] == pytest.approx(5 * 10_582 * 0.1 / 4 / 3600)
    hours = gpu_check.projections('cam_export', seconds=0.5, batch=1)
    assert hours['coco_8gpu'] == pytest.approx(82_783 * 0.5 / 8 / 3600)
