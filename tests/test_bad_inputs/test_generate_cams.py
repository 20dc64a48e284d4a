"""tools/cam/generate_cams.py: scales, checkpoints, resume with other settings."""
import os
import os.path as osp

import pytest
import torch

from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

TOOL = 'cam/generate_cams.py'
STEM = '000005'


def _export(sb, *extra, checkpoint=None, out=None, config=None):
    return sb.tool(TOOL, config or sb.world.config('cam'),
                   checkpoint or sb.world.cam_ckpt, '--out', out or sb.path('cams'),
                   '--device', 'cpu', *extra)


def scales_zero(sb):
    return _export(sb, '--scales', '0')


def scales_negative(sb):
    return _export(sb, '--scales', '1.0', '-0.5')


def other_checkpoint(sb):
    """Rerun into the same --out with another checkpoint (same model)."""
    checkpoint = torch.load(sb.world.cam_ckpt, map_location='cpu', weights_only=False)
    for key, value in checkpoint['state_dict'].items():
        if value.is_floating_point():
            checkpoint['state_dict'][key] = value + 0.01
    other = sb.path('other.pth')
    torch.save(checkpoint, other)
    cams = sb.copy(sb.world.cams, 'cams')
    return _export(sb, '--scales', '1.0', checkpoint=other, out=cams)


def other_scales(sb):
    cams = sb.copy(sb.world.cams, 'cams')
    return _export(sb, '--scales', '1.0', '0.5', out=cams)


def same_settings(sb):
    """Rerun with the settings of the folder: everything is skipped."""
    cams = sb.copy(sb.world.cams, 'cams')
    os.remove(osp.join(cams, STEM + '.npz'))
    return _export(sb, '--scales', '1.0', out=cams)


def _rewrote_one(sb, result):
    assert 'wrote 1 CAM files' in result.stdout, result.stdout


def ckpt_truncated(sb):
    return _export(sb, checkpoint=breakers.truncate(sb.copy(sb.world.cam_ckpt)))


def ckpt_other_model(sb):
    return _export(sb, checkpoint=sb.world.seg_ckpt)


def ckpt_missing(sb):
    return _export(sb, checkpoint=sb.path('nope.pth'))


def cfg_typo_loader(sb):
    return _export(sb, '--cfg-options',
                   f'train_infer_dataloder.dataset.data_root={sb.path("x")}')


def _data(sb, breaker):
    data = sb.copy(sb.world.data, 'data')
    breaker(data)
    return _export(sb, '--data-root', data)


def image_truncated(sb):
    return _data(sb, lambda data: breakers.truncate(
        osp.join(data, 'JPEGImages', STEM + '.jpg'), 0.3))


def split_missing(sb):
    return _data(sb, lambda data: os.remove(
        osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')))


def xml_unknown_class(sb):
    def breaker(data):
        path = osp.join(data, 'Annotations', STEM + '.xml')
        with open(path) as handle:
            text = handle.read()
        import re
        with open(path, 'w') as handle:
            handle.write(re.sub(r'<name>[a-z]+</name>', '<name>unicorn</name>', text,
                                count=1))
    return _data(sb, breaker)


CASES = [
    Case('scales-zero', TOOL, 'silent 5', '`--scales 0`', scales_zero, 2,
         r"--scales.*positive"),
    Case('scales-negative', TOOL, 'new silent', '`--scales 1.0 -0.5`', scales_negative,
         2, r"--scales.*positive"),
    Case('resume-other-checkpoint', TOOL, 'silent 7',
         'rerun into the same `--out` with another checkpoint', other_checkpoint, 1,
         r"cams/job_settings\.json.*checkpoint"),
    Case('resume-other-scales', TOOL, 'silent 7',
         'rerun into the same `--out` with other `--scales`', other_scales, 1,
         r"cams/job_settings\.json.*scales"),
    Case('resume-same-settings', TOOL, 'handled',
         'rerun with the same settings after one file was lost', same_settings, 0,
         r"exit 0", _rewrote_one),
    Case('ckpt-truncated', TOOL, 'unclear', 'truncated checkpoint', ckpt_truncated, 1,
         r"epoch_1\.pth.*truncated"),
    Case('ckpt-other-model', TOOL, 'unclear',
         "the segmentor's checkpoint for the CAM config", ckpt_other_model, 1,
         r"iter_2\.pth.*not a checkpoint of this model"),
    Case('ckpt-missing', TOOL, 'handled', 'checkpoint path that does not exist',
         ckpt_missing, 1, r"nope\.pth"),
    Case('cfg-typo-loader', TOOL, 'silent 4',
         '`--cfg-options train_infer_dataloder.dataset.data_root=...`',
         cfg_typo_loader, 1, r"train_infer_dataloder.*train_infer_dataloader"),
    Case('image-truncated', TOOL, 'handled', 'a truncated JPEG', image_truncated, 1,
         rf"{STEM}\.jpg"),
    Case('split-missing', TOOL, 'handled', 'the split file missing', split_missing, 1,
         r"train\.txt"),
    Case('xml-unknown-class', TOOL, 'handled', 'an XML naming an unknown class',
         xml_unknown_class, 1, rf"{STEM}\.xml.*unicorn"),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
