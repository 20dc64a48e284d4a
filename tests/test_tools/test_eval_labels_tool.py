"""tools/analysis/eval_labels.py end to end on a generated planted-bias dataset."""
import csv
import os.path as osp
import subprocess
import sys

import numpy as np

from mars_mm.datasets.generators.planted_bias import generate_planted_bias
from mars_mm.utils.io import load_label_png, save_label_png


def test_eval_labels_cli(tmp_path, repo_root):
    root = str(tmp_path / 'pb')
    generate_planted_bias(root, num_train=4, num_val=0, image_size=(24, 24))
    pred_dir = tmp_path / 'pred'
    for stem in ('000000', '000001', '000002', '000003'):
        label = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        label[label > 0] = 254            # every object removed
        save_label_png(str(pred_dir / f'{stem}.png'), label)
    out = tmp_path / 'scores.csv'
    result = subprocess.run(
        [sys.executable, osp.join(repo_root, 'tools/analysis/eval_labels.py'),
         str(pred_dir), '--dataset',
         osp.join(repo_root, 'configs/_base_/datasets/planted_bias.py'),
         '--data-root', root, '--out', str(out)],
        capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '4 images' in result.stdout
    with open(out) as handle:
        rows = {row['class']: row for row in csv.DictReader(handle)}
    # removed objects count as background: every foreground class scores 0 IoU
    present = [name for name, row in rows.items()
               if name not in ('background', 'mean') and row['iou'] != '']
    assert present and all(float(rows[name]['iou']) == 0.0 for name in present)
    assert 0 < float(rows['background']['iou']) < 100
    assert np.isclose(float(rows['background']['fn']), 0.0)
