"""tools/analysis/planted_sweep.py's logic on two tiny presets, end to end."""
import json
import os
import os.path as osp

import pytest

from mars_mm.apis.sweep import run_sweep

pytestmark = pytest.mark.slow
PIPELINE = 'configs/pipelines/planted_demo.py'


def test_sweep_over_two_presets(tmp_path, repo_root):
    options = {'dataset.generate.image_size': (48, 48),
               'cam_train.schedule.max_epochs': 1}
    old = os.getcwd()
    os.chdir(repo_root)
    try:
        sweep = run_sweep(['default', 'many-classes'], work_dir=str(tmp_path),
                          pipeline=PIPELINE, num_train=12, num_val=4,
                          cfg_options=options)
    finally:
        os.chdir(old)
    rows = {row['preset']: row for row in sweep['rows']}
    assert list(rows) == ['default', 'many-classes']
    assert list(rows['many-classes']['biased']) == ['boat', 'train', 'aeroplane',
                                                   'horse', 'car']
    for preset, row in rows.items():
        with open(osp.join(tmp_path, preset, 'results.json')) as handle:
            results = json.load(handle)
        assert 'seg_baseline' not in results['rows']  # stopped after the oracle
        assert row['gain'] == round(results['rows']['debiased']['miou']
                                    - results['rows']['baseline']['miou'], 2)
        assert row['oracle_miou'] == results['rows']['oracle']['miou']
        assert row['removal']['precision'] == \
            results['rows']['debiased']['removal']['all']['precision']
    with open(osp.join(tmp_path, 'sweep.md')) as handle:
        table = handle.read()
    assert '| many-classes |' in table and 'gain % of oracle' in table
    assert osp.isfile(osp.join(tmp_path, 'sweep.json'))
