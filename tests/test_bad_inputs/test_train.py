"""tools/train.py: options, class counts, resume from broken checkpoints, labels."""
import os
import os.path as osp
import resource
import shutil

import numpy as np
import pytest
import torch

from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

TOOL = 'train.py'


def _train(sb, name, *extra):
    return sb.tool(TOOL, sb.world.config(name), '--work-dir', sb.path('work'), *extra)


def cfg_typo_top(sb):
    return _train(sb, 'cam', '--cfg-options', 'trian_cfg.max_epochs=2')


def cfg_typo_nested(sb):
    return _train(sb, 'cam', '--cfg-options', 'train_cfg.max_epocs=2')


def cfg_data_root(sb):
    return _train(sb, 'cam', '--cfg-options', f'data_root={sb.path("nowhere")}')


def data_root_missing(sb):
    return _train(sb, 'cam', '--data-root', sb.path('nowhere'))


def config_missing(sb):
    return sb.tool(TOOL, sb.path('configs', 'nope.py'))


def seg_too_many_classes(sb):
    return _train(sb, 'seg', '--cfg-options', 'model.decode_head.num_classes=10',
                  'model.auxiliary_head.num_classes=10')


def seg_too_few_classes(sb):
    return _train(sb, 'seg', '--cfg-options', 'model.decode_head.num_classes=5',
                  'model.auxiliary_head.num_classes=5')


def cam_too_few_classes(sb):
    return _train(sb, 'cam', '--cfg-options', 'model.head.num_classes=5')


def _seg_work(sb):
    """A copy of the world's segmentation work dir (iter_2.pth, last_checkpoint)."""
    work = sb.copy(osp.dirname(sb.world.seg_ckpt), 'work')
    with open(osp.join(work, 'last_checkpoint'), 'w') as handle:
        handle.write(osp.join(work, 'iter_2.pth'))
    return work


def resume_truncated_explicit(sb):
    work = _seg_work(sb)
    breakers.truncate(osp.join(work, 'iter_2.pth'))
    return _train(sb, 'seg', '--resume', osp.join(work, 'iter_2.pth'),
                  '--cfg-options', 'train_cfg.max_iters=4')


def resume_last_truncated(sb):
    """A kill while iter_4.pth was written: last_checkpoint names a half file."""
    work = _seg_work(sb)
    shutil.copy(osp.join(work, 'iter_2.pth'), osp.join(work, 'iter_4.pth'))
    breakers.truncate(osp.join(work, 'iter_4.pth'), 0.4)
    with open(osp.join(work, 'last_checkpoint'), 'w') as handle:
        handle.write(osp.join(work, 'iter_4.pth'))
    return _train(sb, 'seg', '--resume', '--cfg-options', 'train_cfg.max_iters=4')


def resume_last_missing(sb):
    """last_checkpoint names a checkpoint that is gone (mmengine's old order)."""
    work = _seg_work(sb)
    with open(osp.join(work, 'last_checkpoint'), 'w') as handle:
        handle.write(osp.join(work, 'iter_3.pth'))
    return _train(sb, 'seg', '--resume', '--cfg-options', 'train_cfg.max_iters=4')


def resume_nothing_complete(sb):
    """Only a half-written checkpoint: nothing to resume, training starts over."""
    work = _seg_work(sb)
    breakers.truncate(osp.join(work, 'iter_2.pth'), 0.4)
    return _train(sb, 'seg', '--resume', '--cfg-options', 'train_cfg.max_iters=2')


def _code_in_checkpoint(sb, explicit):
    """A checkpoint whose meta runs `touch MARKER` when it is unpickled."""
    work = _seg_work(sb)
    breakers.plant_code(osp.join(work, 'iter_2.pth'), sb.path('MARKER'))
    resume = ['--resume'] + ([osp.join(work, 'iter_2.pth')] if explicit else [])
    return _train(sb, 'seg', *resume, '--cfg-options', 'train_cfg.max_iters=4')


def resume_code_explicit(sb):
    return _code_in_checkpoint(sb, explicit=True)


def resume_code_in_work_dir(sb):
    """Plain --resume: what the pipeline driver does after a kill."""
    return _code_in_checkpoint(sb, explicit=False)


def _no_code_ran(sb, result):
    assert not osp.exists(sb.path('MARKER')), 'code hidden in the checkpoint ran'


def _finished_at(iteration):
    def check(sb, result):
        path = sb.path('work', f'iter_{iteration}.pth')
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
        assert checkpoint['meta']['iter'] == iteration
        with open(sb.path('work', 'last_checkpoint')) as handle:
            assert handle.read().strip() == path
    return check


def save_fails_file_too_large(sb):
    """``ulimit -f`` below a checkpoint's size (what a full disk does to a save):
    resumed from iter_2.pth, the save of iter_4.pth fails."""
    work = _seg_work(sb)
    size = osp.getsize(osp.join(work, 'iter_2.pth'))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, hard))
    try:  # Python ignores SIGXFSZ: the write fails with EFBIG
        return _train(sb, 'seg', '--resume', '--cfg-options', 'train_cfg.max_iters=4')
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _previous_checkpoint_intact(sb, result):
    work = sb.path('work')
    assert not [name for name in os.listdir(work) if name.startswith('.tmp-')]
    assert not osp.exists(osp.join(work, 'iter_4.pth'))
    checkpoint = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu',
                            weights_only=False)
    assert checkpoint['meta']['iter'] == 2
    with open(osp.join(work, 'last_checkpoint')) as handle:
        assert handle.read().strip() == osp.join(work, 'iter_2.pth')


def _pseudo_copy(sb, breaker):
    pseudo = sb.copy(sb.world.pseudo, 'pseudo')
    stem = sb.world.train_stems()[3]
    breaker(osp.join(pseudo, stem + '.png'))
    config = sb.config('seg', pseudo=pseudo)
    # 8 iterations of 2: one pass over the 16 training images
    return sb.tool(TOOL, config, '--work-dir', sb.path('work'), '--cfg-options',
                   'train_cfg.max_iters=8')


def pseudo_missing(sb):
    return _pseudo_copy(sb, os.remove)


def pseudo_bad_value(sb):
    return _pseudo_copy(sb, lambda path: breakers.relabel(path, 9))


def pseudo_wrong_size(sb):
    return _pseudo_copy(sb, breakers.resize_label)


def pseudo_truncated(sb):
    return _pseudo_copy(sb, breakers.truncate)


# ------------------------------------------------------------------- issue 20
def lr_huge(sb):
    """lr 1e6 on the segmentor: the loss is NaN from iteration 3 (the schedule
    stretched over the 6 iterations, a checkpoint every 2)."""
    return _train(sb, 'seg', '--cfg-options', 'optim_wrapper.optimizer.lr=1e6',
                  'train_cfg.max_iters=6', 'param_scheduler.0.end=6',
                  'default_hooks.checkpoint.interval=2')


def _no_non_finite_checkpoint(sb, result):
    """Only iter_2.pth (saved before the NaN), and its weights are finite."""
    saved = sorted(name for name in os.listdir(sb.path('work'))
                   if name.endswith('.pth'))
    assert saved == ['iter_2.pth'], saved
    state = torch.load(sb.path('work', 'iter_2.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    bad = [key for key, value in state.items()
           if value.is_floating_point() and not torch.isfinite(value).all()]
    assert not bad, f'{len(bad)} of {len(state)} weights non-finite'


MARS = """
model = dict(type='MARSEncoderDecoder', biased_pixels='complement',
             weight_by_confidence=True, teacher_crf=None)
custom_hooks = [dict(type='EMATeacherHook', momentum=0.02)]
"""


def resume_mars_in_baseline(sb):
    """The MARS config resumed in the baseline's work dir (finished at iter 2)."""
    _seg_work(sb)
    return sb.tool(TOOL, sb.config('seg', MARS), '--work-dir', sb.path('work'),
                   '--resume')


def _baseline_untouched(sb, result):
    with open(sb.world.seg_ckpt, 'rb') as theirs, \
            open(sb.path('work', 'iter_2.pth'), 'rb') as ours:
        assert theirs.read() == ours.read()
    assert not [name for name in os.listdir(sb.path('work'))
                if name.endswith('.pth') and name != 'iter_2.pth']


def resume_seg_in_cam_dir(sb):
    """The segmentor config with --resume in the CAM classifier's work dir."""
    work = sb.copy(osp.dirname(sb.world.cam_ckpt), 'work')
    with open(osp.join(work, 'last_checkpoint'), 'w') as handle:
        handle.write(osp.join(work, 'epoch_1.pth'))
    return _train(sb, 'seg', '--resume', '--cfg-options', 'train_cfg.max_iters=4')


def _split_data(sb, edit):
    data = sb.copy(sb.world.data, 'data')
    split = osp.join(data, 'ImageSets', 'Segmentation', 'train.txt')
    with open(split) as handle:
        lines = handle.read().splitlines()
    with open(split, 'w') as handle:
        handle.write('\n'.join(edit(lines)) + '\n')
    return _train(sb, 'cam', '--data-root', data)


VAL17 = '000017'


def train_names_val_image(sb):
    """train.txt lists 000017.jpg, which val.txt lists as 000017."""
    return _split_data(sb, lambda lines: lines + [f'{VAL17}.jpg'])


def train_shares_val_image(sb):
    return _split_data(sb, lambda lines: lines + [VAL17])


def work_dir_is_file(sb):
    with open(sb.path('work'), 'w') as handle:
        handle.write('notes\n')
    return _train(sb, 'cam')


def config_is_folder(sb):
    return sb.tool(TOOL, osp.dirname(sb.world.config('cam')), '--work-dir',
                   sb.path('work'))


def cfg_bad_value_type(sb):
    return _train(sb, 'cam', '--cfg-options', 'train_cfg.max_epochs=two')


def resume_ckpt_folder(sb):
    work = _seg_work(sb)
    return _train(sb, 'seg', '--resume', work, '--cfg-options',
                  'train_cfg.max_iters=4')


def pseudo_rgb(sb):
    """Pseudo labels rendered as RGB pictures (a colour visualisation)."""
    from PIL import Image
    pseudo = sb.copy(sb.world.pseudo, 'pseudo')
    for name in [name for name in os.listdir(pseudo) if name.endswith('.png')]:
        with Image.open(osp.join(pseudo, name)) as image:
            rgb = image.convert('RGB')
        rgb.save(osp.join(pseudo, name))
    return sb.tool(TOOL, sb.config('seg', pseudo=pseudo), '--work-dir',
                   sb.path('work'), '--cfg-options', 'train_cfg.max_iters=2')


STEM3 = '000003'

CASES = [
    Case('cfg-typo-top', TOOL, 'silent 4', '`--cfg-options trian_cfg.max_epochs=2`',
         cfg_typo_top, 1, r"trian_cfg.*train_cfg"),
    Case('cfg-typo-nested', TOOL, 'silent 4', '`--cfg-options train_cfg.max_epocs=2`',
         cfg_typo_nested, 1, r"train_cfg\.max_epocs.*max_epochs"),
    Case('cfg-data-root', TOOL, 'silent 4',
         '`--cfg-options data_root=DIR` (DIR without a dataset)', cfg_data_root, 1,
         r"nowhere/ImageSets/Segmentation/train\.txt"),
    Case('data-root-missing', TOOL, 'handled', '`--data-root DIR` without a dataset',
         data_root_missing, 1, r"nowhere/ImageSets/Segmentation/train\.txt"),
    Case('config-missing', TOOL, 'handled', 'config file that does not exist',
         config_missing, 1, r"nope\.py"),
    Case('seg-too-many-classes', TOOL, 'silent 6',
         'segmentor with 10 classes, data with 7', seg_too_many_classes, 1,
         r"model\.decode_head\.num_classes = 10.*7 classes"),
    Case('seg-too-few-classes', TOOL, 'unclear',
         'segmentor with 5 classes, data with 7', seg_too_few_classes, 1,
         r"model\.decode_head\.num_classes = 5.*7 classes"),
    Case('cam-too-few-classes', TOOL, 'unclear',
         'CAM classifier with 5 classes, data with 6 foreground classes',
         cam_too_few_classes, 1, r"model\.head\.num_classes = 5.*6 foreground"),
    Case('resume-truncated-explicit', TOOL, 'unclear',
         '`--resume CKPT` with a truncated CKPT', resume_truncated_explicit, 1,
         r"iter_2\.pth.*(truncated|incomplete)"),
    Case('resume-last-truncated', TOOL, 'silent 1',
         '`--resume` after a kill during a save: `last_checkpoint` names a half-'
         'written iter_4.pth', resume_last_truncated, 0,
         r"iter_4\.pth.*incomplete.*iter_2\.pth", _finished_at(4)),
    Case('resume-last-missing', TOOL, 'silent 1',
         '`--resume`: `last_checkpoint` names a deleted checkpoint',
         resume_last_missing, 0, r"iter_3\.pth.*missing.*iter_2\.pth",
         _finished_at(4)),
    Case('resume-nothing-complete', TOOL, 'silent 1',
         '`--resume` with only a half-written checkpoint', resume_nothing_complete, 0,
         r"no complete checkpoint.*from scratch", _finished_at(2)),
    Case('resume-code-explicit', TOOL, 'unsafe 1',
         '`--resume CKPT`, CKPT hiding `os.system` in its meta',
         resume_code_explicit, 1,
         r"iter_2\.pth: refusing to load.*posix\.system", _no_code_ran, issue=20),
    Case('resume-code-in-work-dir', TOOL, 'unsafe 1',
         '`--resume` in a work dir whose newest checkpoint hides `os.system`',
         resume_code_in_work_dir, 1,
         r"iter_2\.pth: refusing to load.*posix\.system", _no_code_ran, issue=20),
    Case('pseudo-missing', TOOL, 'handled', 'a pseudo label missing',
         pseudo_missing, 1, rf"pseudo label not found.*{STEM3}\.png"),
    Case('pseudo-bad-value', TOOL, 'handled', 'a pseudo label holding 9 (7 classes)',
         pseudo_bad_value, 1, rf"{STEM3}\.png.*9"),
    Case('pseudo-wrong-size', TOOL, 'handled', 'a pseudo label of 16x16 for 32x32',
         pseudo_wrong_size, 1, rf"{STEM3}\.png.*size"),
    Case('pseudo-truncated', TOOL, 'handled', 'a truncated pseudo label',
         pseudo_truncated, 1, rf"{STEM3}\.png"),
    # issue 20
    Case('lr-1e6', TOOL, 'silent 4', 'segmentor at `optimizer.lr=1e6` (NaN loss '
         'from iteration 3)', lr_huge, 1,
         r"FloatingPointError: non-finite loss at iteration 3 .*decode\.loss_ce=nan"
         r".*last checkpoint saved is .*iter_2\.pth", _no_non_finite_checkpoint,
         issue=20),
    Case('resume-mars-in-baseline-dir', TOOL, 'silent 5',
         '`--resume` with a MARS config in the baseline\'s finished work dir',
         resume_mars_in_baseline, 1,
         r"iter_2\.pth is a checkpoint of another model: EncoderDecoder .*but "
         r".*configs/seg\.py builds MARSEncoderDecoder", _baseline_untouched,
         issue=20),
    Case('resume-seg-in-cam-dir', TOOL, 'unclear 11',
         '`--resume` with the segmentor config in the CAM work dir',
         resume_seg_in_cam_dir, 1,
         r"epoch_1\.pth is a checkpoint of another model: CAMClassifier .*"
         r"seg\.py builds EncoderDecoder", issue=20),
    Case('train-names-val-image', TOOL, 'silent 3',
         '`train.txt` lists `000017.jpg`, an image of `val.txt` (`000017`)',
         train_names_val_image, 1,
         r"train\.txt \(train_dataloader\) and .*val\.txt \(val_dataloader\) share "
         r"1 images \(e\.g\. 000017\.jpg\)", issue=20),
    Case('train-shares-val-image', TOOL, 'own', 'the same image in `train.txt` and '
         '`val.txt`', train_shares_val_image, 1,
         r"train\.txt .*val\.txt .*share 1 images", issue=20),
    Case('work-dir-is-file', TOOL, 'own', '`--work-dir` names an existing file',
         work_dir_is_file, 1, r"work: the work dir is a file", issue=20),
    Case('config-is-folder', TOOL, 'own', 'the config path is a folder',
         config_is_folder, 1, r"configs: is a folder, not a config file.*cam\.py",
         issue=20),
    Case('cfg-bad-value-type', TOOL, 'own', '`--cfg-options train_cfg.max_epochs=two`',
         cfg_bad_value_type, 1,
         r"--cfg-options train_cfg\.max_epochs=two: .*cam\.py sets "
         r"train_cfg\.max_epochs to 1, a number", issue=20),
    Case('resume-ckpt-folder', TOOL, 'own', '`--resume DIR`: a work dir, not a file',
         resume_ckpt_folder, 1, r"work: checkpoint given to --resume is a folder",
         issue=20),
    Case('pseudo-rgb', TOOL, 'own', 'a pseudo-label folder of RGB PNGs', pseudo_rgb,
         1, r"pseudo/\d+\.png: expected a palette or grey label PNG, got mode 'RGB'",
         issue=20),
    Case('save-fails-file-too-large', TOOL, 'unclear 12',
         'a checkpoint save that fails (`ulimit -f` below its size, as a full disk)',
         save_fails_file_too_large, 1,
         r"iter_4\.pth \(File too large.*previous checkpoint .*iter_2\.pth is intact",
         _previous_checkpoint_intact, issue=20),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))


def test_stem_is_in_train_split(world):
    assert world.train_stems()[3] == STEM3
    assert np.all([osp.isfile(osp.join(world.pseudo, s + '.png'))
                   for s in world.train_stems()])
