"""tools/test.py: broken or foreign checkpoints, broken ground truth."""
import os
import os.path as osp

import numpy as np
import pytest
import torch

from mars_mm.utils.io import load_label_png, save_label_png
from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

TOOL = 'test.py'
STEM = '000017'  # a val image


def _test(sb, checkpoint, *extra, config=None):
    return sb.tool(TOOL, config or sb.world.config('seg'), checkpoint,
                   '--work-dir', sb.path('work'), *extra)


def ckpt_truncated(sb):
    return _test(sb, breakers.truncate(sb.copy(sb.world.seg_ckpt)))


def ckpt_other_model(sb):
    return _test(sb, sb.world.cam_ckpt)


def ckpt_missing(sb):
    return _test(sb, sb.path('nope.pth'))


def ckpt_not_a_checkpoint(sb):
    path = sb.path('weights.pth')
    torch.save(dict(something=torch.zeros(3)), path)
    return _test(sb, path)


def _broken_gt(sb, breaker):
    data = sb.copy(sb.world.data, 'data')
    breaker(osp.join(data, 'SegmentationClass', STEM + '.png'))
    return _test(sb, sb.world.seg_ckpt, '--data-root', data)


def _png16(path):
    label = load_label_png(path).astype(np.uint16)
    label[:3, :3] = 257  # wraps to 1 when cast to uint8
    os.remove(path)
    breakers.write_png16(path, label)


def _rgb(path):
    breakers.write_rgb_png(path, load_label_png(path))


def gt_16bit(sb):
    return _broken_gt(sb, _png16)


def gt_rgb(sb):
    return _broken_gt(sb, _rgb)


def gt_missing(sb):
    return _broken_gt(sb, os.remove)


def gt_bad_value(sb):
    return _broken_gt(sb, lambda path: breakers.relabel(path, 9))


def gt_wrong_size(sb):
    return _broken_gt(sb, breakers.resize_label)


def gt_truncated(sb):
    return _broken_gt(sb, breakers.truncate)


def gt_all_ignore(sb):
    """A mask of 255 only is valid: nothing of the image is scored."""
    return _broken_gt(sb, lambda path: save_label_png(
        path, np.full_like(load_label_png(path), 255)))


def _scored(sb, result):
    assert 'mIoU' in result.stdout + result.stderr


CASES = [
    Case('ckpt-truncated', TOOL, 'unclear', 'truncated checkpoint', ckpt_truncated, 1,
         r"iter_2\.pth.*truncated"),
    Case('ckpt-other-model', TOOL, 'silent 3',
         "the CAM classifier's checkpoint for the segmentation config",
         ckpt_other_model, 1, r"epoch_1\.pth.*not a checkpoint of this model"),
    Case('ckpt-missing', TOOL, 'handled', 'checkpoint path that does not exist',
         ckpt_missing, 1, r"nope\.pth"),
    Case('ckpt-no-state-dict', TOOL, 'new silent',
         'a .pth without the model weights', ckpt_not_a_checkpoint, 1,
         r"weights\.pth"),
    Case('gt-16bit', TOOL, 'silent 2', 'a 16-bit ground truth holding 257', gt_16bit,
         1, rf"{STEM}\.png.*257"),
    Case('gt-rgb', TOOL, 'unclear', 'an RGB ground-truth PNG', gt_rgb, 1,
         rf"{STEM}\.png.*(single-channel|3 channels)"),
    Case('gt-missing', TOOL, 'handled', 'a ground-truth mask missing', gt_missing, 1,
         rf"{STEM}\.png"),
    Case('gt-bad-value', TOOL, 'handled', 'a ground truth holding 9 (7 classes)',
         gt_bad_value, 1, rf"{STEM}\.png.*9"),
    Case('gt-wrong-size', TOOL, 'handled', 'a ground truth of 16x16 for 32x32',
         gt_wrong_size, 1, rf"{STEM}\.png.*size"),
    Case('gt-truncated', TOOL, 'handled', 'a truncated ground truth', gt_truncated, 1,
         rf"{STEM}\.png"),
    Case('gt-all-ignore', TOOL, 'handled', 'a ground truth of 255 only (valid)',
         gt_all_ignore, 0, r"mIoU|exit 0", _scored),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
