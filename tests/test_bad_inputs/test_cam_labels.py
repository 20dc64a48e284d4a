"""tools/cam/make_pseudo_labels.py and eval_cams.py: broken CAM files, resume."""
import os
import os.path as osp

import numpy as np
import pytest

from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

LABELS = 'cam/make_pseudo_labels.py'
SWEEP = 'cam/eval_cams.py'
STEM = '000005'


def _cams(sb, breaker):
    cams = sb.copy(sb.world.cams, 'cams')
    breaker(osp.join(cams, STEM + '.npz'))
    return cams


def _labels(sb, cams, *extra, out=None):
    return sb.tool(LABELS, cams, '--dataset', sb.world.config('cam'), '--out',
                   out or sb.path('labels'), '--no-crf', *extra)


def _sweep(sb, cams):
    return sb.tool(SWEEP, cams, '--dataset', sb.world.config('cam'),
                   '--thresholds', '0.3')


def _keys_99(path):
    with np.load(path) as data:
        count = len(data['keys'])
    breakers.rewrite_npz(path, keys=np.full(count, 99, np.int64))


def _no_keys(path):
    with np.load(path) as data:
        cams = data['cams']
    os.remove(path)
    np.savez_compressed(path, cams=cams)


def _wrong_size(path):
    with np.load(path) as data:
        cams = data['cams']
    breakers.rewrite_npz(path, cams=cams[:, :16, :16])


def labels_keys_99(sb):
    return _labels(sb, _cams(sb, _keys_99))


def labels_truncated(sb):
    return _labels(sb, _cams(sb, breakers.truncate))


def labels_missing(sb):
    return _labels(sb, _cams(sb, os.remove))


def labels_no_keys(sb):
    return _labels(sb, _cams(sb, _no_keys))


def labels_wrong_size(sb):
    cams = _cams(sb, _wrong_size)
    return sb.tool(LABELS, cams, '--dataset', sb.world.config('cam'), '--out',
                   sb.path('labels'))  # with the CRF, which needs the image


def labels_other_settings(sb):
    """Rerun into the world's label folder with another background rule."""
    out = sb.copy(sb.world.pseudo, 'labels')
    return _labels(sb, sb.world.cams, '--bg-threshold', '0.3', out=out)


def labels_other_cams(sb):
    """The CAMs were remade with other settings since the labels were written."""
    cams = sb.copy(sb.world.cams, 'cams')
    out = sb.copy(sb.world.pseudo, 'labels')
    result = sb.tool('cam/generate_cams.py', sb.world.config('cam'),
                     sb.world.cam_ckpt, '--out', sb.path('cams2'), '--device', 'cpu',
                     '--scales', '1.0', '0.5')
    assert result.rc == 0, result.message
    import shutil
    shutil.rmtree(cams)
    os.rename(sb.path('cams2'), cams)
    return _labels(sb, cams, out=out)


def sweep_keys_99(sb):
    return _sweep(sb, _cams(sb, _keys_99))


def sweep_truncated(sb):
    return _sweep(sb, _cams(sb, breakers.truncate))


CASES = [
    Case('cam-keys-99', LABELS, 'silent 5', 'a CAM file whose keys are [99, ...]',
         labels_keys_99, 1, rf"{STEM}\.npz.*99"),
    Case('cam-truncated', LABELS, 'unclear', 'a truncated CAM .npz', labels_truncated,
         1, rf"{STEM}\.npz.*(truncated|cannot read)"),
    Case('cam-missing', LABELS, 'handled', 'a CAM file missing', labels_missing, 1,
         rf"{STEM}\.npz"),
    Case('cam-no-keys', LABELS, 'handled', 'a CAM file without `keys`',
         labels_no_keys, 1, rf"{STEM}\.npz.*keys"),
    Case('cam-wrong-size', LABELS, 'handled', 'CAMs of 16x16 for a 32x32 image',
         labels_wrong_size, 1, rf"{STEM}\.npz.*{STEM}\.jpg"),
    Case('resume-other-settings', LABELS, 'silent 7',
         'rerun into the same `--out` with `--bg-threshold 0.3`',
         labels_other_settings, 1, r"labels/job_settings\.json.*bg_threshold"),
    Case('resume-other-cams', LABELS, 'silent 7',
         'rerun after the CAMs were remade with other scales', labels_other_cams, 1,
         r"labels/job_settings\.json.*cams"),
    Case('sweep-cam-keys-99', SWEEP, 'silent 5', 'a CAM file whose keys are [99, ...]',
         sweep_keys_99, 1, rf"{STEM}\.npz.*99"),
    Case('sweep-cam-truncated', SWEEP, 'unclear', 'a truncated CAM .npz',
         sweep_truncated, 1, rf"{STEM}\.npz.*(truncated|cannot read)"),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
