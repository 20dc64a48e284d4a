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


def _data(sb, breaker, *extra):
    data = sb.copy(sb.world.data, 'data')
    breaker(data)
    return _export(sb, '--data-root', data, *extra)


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


# ------------------------------------------------------------------- issue 20
def _image_as(data, source, name):
    """A copy of image ``source`` (and its annotations) under another name."""
    import shutil
    for folder, ext in (('JPEGImages', '.jpg'), ('Annotations', '.xml'),
                        ('SegmentationClass', '.png'), ('PlantedContext', '.png')):
        shutil.copy(osp.join(data, folder, source + ext),
                    osp.join(data, folder, name + ext))


def _list_instead(data, old, new):
    path = osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')
    with open(path) as handle:
        lines = handle.read().splitlines()
    lines[lines.index(old)] = new
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')


def _named(name):
    """The user's image ``name`` listed in train.txt in place of 000003."""
    def breaker(data):
        _image_as(data, '000003', name)
        _list_instead(data, '000003', name)
    return lambda sb: _data(sb, breaker, '--scales', '1.0')


def _cams_of(name, not_written=None):
    def check(sb, result):
        cams = sorted(os.listdir(sb.path('cams')))
        assert f'{name}.npz' in cams, cams
        assert not_written is None or f'{not_written}.npz' not in cams, cams
    return check


def train_aug_form(sb):
    """Lines of the documented two-column train_aug form."""
    def breaker(data):
        path = osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')
        with open(path) as handle:
            stems = handle.read().split()
        with open(path, 'w') as handle:
            handle.write(''.join(f'/JPEGImages/{stem}.jpg /SegmentationClassAug/'
                                 f'{stem}.png\n' for stem in stems))
    return _data(sb, breaker, '--scales', '1.0')


def _all_cams(sb, result):
    assert len([name for name in os.listdir(sb.path('cams'))
                if name.endswith('.npz')]) == 16


def mask_wrong_size(sb):
    return _data(sb, lambda data: breakers.resize_label(
        osp.join(data, 'SegmentationClass', STEM + '.png')))


def exif_rotated(sb):
    """A non-square photo stored sideways with an EXIF orientation tag, its mask
    drawn on the photo as shown (as every loader turns it)."""
    import numpy as np
    from PIL import Image

    from mars_mm.utils.io import save_label_png

    def breaker(data):
        path = osp.join(data, 'JPEGImages', STEM + '.jpg')
        with Image.open(path) as image:
            stored = image.convert('RGB').resize((48, 32))  # 32 high, 48 wide
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned: 48 high, 32 wide
        stored.save(path, exif=exif.tobytes())
        save_label_png(osp.join(data, 'SegmentationClass', STEM + '.png'),
                       np.zeros((48, 32), np.uint8))
    return _data(sb, breaker, '--scales', '1.0')


def _turned_cams(sb, result):
    import numpy as np
    with np.load(sb.path('cams', STEM + '.npz')) as content:
        assert content['cams'].shape[-2:] == (48, 32), content['cams'].shape


def out_is_file(sb):
    with open(sb.path('cams'), 'w') as handle:
        handle.write('notes\n')
    return _export(sb, '--scales', '1.0')


def image_grey(sb):
    """A greyscale JPEG among colour ones."""
    from PIL import Image

    def breaker(data):
        path = osp.join(data, 'JPEGImages', STEM + '.jpg')
        with Image.open(path) as image:
            grey = image.convert('L')
        grey.save(path)
    return _data(sb, breaker, '--scales', '1.0')


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
    # issue 20
    Case('split-dotted-name', TOOL, 'silent 3',
         '`train.txt` lists the image `000017.v2` (`000017` is a val image)',
         _named('000017.v2'), 0, r"exit 0.*wrote 16 CAM files",
         _cams_of('000017.v2', not_written='000017'), issue=20),
    Case('split-dated-name', TOOL, 'unclear 13',
         '`train.txt` lists the image `2021.05.000003`', _named('2021.05.000003'), 0,
         r"exit 0", _cams_of('2021.05.000003'), issue=20),
    Case('split-name-with-space', TOOL, 'unclear 13',
         '`train.txt` lists the image `my photo`', _named('my photo'), 0, r"exit 0",
         _cams_of('my photo'), issue=20),
    Case('split-train-aug-form', TOOL, 'handled', '`train.txt` in the two-column '
         '`/JPEGImages/x.jpg /SegmentationClassAug/x.png` form', train_aug_form, 0,
         r"exit 0", _all_cams, issue=20),
    Case('mask-wrong-size', TOOL, 'unclear 9', 'a mask of 16x16 for a 32x32 image',
         mask_wrong_size, 1,
         rf"SegmentationClass/{STEM}\.png: mask of size \(16, 16\).*{STEM}\.jpg is "
         r"\(32, 32\)", issue=20),
    Case('exif-rotated-image', TOOL, 'unclear 10', 'a 48x32 photo stored as 32x48 '
         'with an EXIF rotation, its mask 48x32', exif_rotated, 0, r"exit 0",
         _turned_cams, issue=20),
    Case('out-is-file', TOOL, 'own', '`--out` names an existing file', out_is_file,
         1, r"cams: the output folder is a file", issue=20),
    Case('image-grey', TOOL, 'own', 'a greyscale JPEG among colour ones', image_grey,
         0, r"exit 0", _all_cams, issue=20),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
