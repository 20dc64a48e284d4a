"""The fused CAM -> pseudo-label job writes the two-job path's labels, no CAMs."""
import os
import os.path as osp

import numpy as np
import pytest

from mars_mm.apis import cam as cam_api
from mars_mm.apis.cam_labels import generate_pseudo_labels
from mars_mm.utils.io import load_label_png
from tests.test_apis.test_cam_apis import setup, tiny_config  # noqa: F401


def labels_of(folder):
    return {name: load_label_png(osp.join(folder, name))
            for name in sorted(os.listdir(folder)) if name.endswith('.png')}


@pytest.mark.parametrize('crf', [False, True])
def test_fused_labels_equal_the_two_job_path(setup, tmp_path, crf):  # noqa: F811
    _, cfg, checkpoint = setup
    cam_dir, two_job, fused = (str(tmp_path / name) for name in
                               ('cams', 'two_job', 'fused'))
    cam_api.generate_cams(cfg, checkpoint, cam_dir, device='cpu')
    cam_api.make_pseudo_labels(cam_dir, cfg, two_job, crf=crf)
    assert generate_pseudo_labels(cfg, checkpoint, fused, crf=crf,
                                  device='cpu') == 6
    expected, written = labels_of(two_job), labels_of(fused)
    assert sorted(written) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(written[name], expected[name], err_msg=name)
    # nothing but the labels and the settings record is stored
    assert not [name for name in os.listdir(fused) if name.endswith('.npz')]
    # rerun: every label exists, nothing is recomputed; other settings are refused
    assert generate_pseudo_labels(cfg, checkpoint, fused, crf=crf,
                                  device='cpu') == 0
    with pytest.raises(Exception, match='setting|differ'):
        generate_pseudo_labels(cfg, checkpoint, fused, crf=crf, bg_power=3.0,
                               device='cpu')
