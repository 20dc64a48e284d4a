"""Checkpoint files: completeness, the resume choice, weights of another model."""
import os
import os.path as osp
import shutil

import pytest
import torch

from mars_mm.utils.checkpoint import (
    check_checkpoint_file,
    checkpoint_problem,
    load_weights,
    newest_complete_checkpoint,
    resume_checkpoint,
)


def _save(path, iteration=0):
    torch.save(dict(meta=dict(iter=iteration),
                    state_dict=dict(weight=torch.ones(64, 64) * iteration)), path)
    return str(path)


def _truncate(path, fraction=0.5):
    with open(path, 'r+b') as handle:
        handle.truncate(int(os.path.getsize(path) * fraction))
    return str(path)


def test_checkpoint_problem(tmp_path):
    good = _save(tmp_path / 'good.pth')
    assert checkpoint_problem(good) is None
    # every truncation of a zip checkpoint is detected (its directory is at the end)
    for fraction in (0.1, 0.5, 0.9, 0.99):
        cut = str(tmp_path / f'cut{fraction}.pth')
        shutil.copy(good, cut)
        assert 'truncated' in checkpoint_problem(_truncate(cut, fraction))
    assert checkpoint_problem(str(tmp_path / 'none.pth')) == 'missing'
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert checkpoint_problem(str(tmp_path / 'empty.pth')) == 'empty'
    (tmp_path / 'text.pth').write_text('hello')
    assert checkpoint_problem(str(tmp_path / 'text.pth')) == 'not a torch checkpoint'
    with pytest.raises(ValueError, match=r'cut0\.5\.pth: checkpoint is truncated'):
        check_checkpoint_file(str(tmp_path / 'cut0.5.pth'))
    with pytest.raises(FileNotFoundError, match='none.pth'):
        check_checkpoint_file(str(tmp_path / 'none.pth'))


def _record(work, name):
    (work / 'last_checkpoint').write_text(str(work / name))


def test_newest_complete_checkpoint(tmp_path):
    work = tmp_path
    assert newest_complete_checkpoint(str(work)) == (None, [])
    _save(work / 'iter_2.pth', 2)
    _save(work / 'iter_4.pth', 4)
    _record(work, 'iter_4.pth')
    assert newest_complete_checkpoint(str(work)) == (str(work / 'iter_4.pth'), [])
    # killed while iter_6 was written in place: back to iter_4, with a note
    _truncate(_save(work / 'iter_6.pth', 6))
    _record(work, 'iter_6.pth')
    path, notes = newest_complete_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    assert 'iter_6.pth, which is truncated' in notes[0]
    # last_checkpoint names a deleted file
    _record(work, 'iter_3.pth')
    path, notes = newest_complete_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    assert 'iter_3.pth, which is missing' in notes[0]
    # killed between the rename and last_checkpoint: the newer complete file wins
    _record(work, 'iter_2.pth')
    path, notes = newest_complete_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    assert any('iter_2.pth, but ' in note and 'is newer' in note for note in notes)
    with pytest.warns(UserWarning, match='resuming from .*iter_4.pth'):
        assert resume_checkpoint(str(work)) == str(work / 'iter_4.pth')
    # nothing complete: train from scratch, said in a warning
    for name in ('iter_2.pth', 'iter_4.pth'):
        os.remove(work / name)
    with pytest.warns(UserWarning, match='no complete checkpoint .* from scratch'):
        assert resume_checkpoint(str(work)) is None


def test_load_weights_names_the_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = str(tmp_path / 'ok.pth')
    torch.save(dict(state_dict={f'module.{k}': v + 1
                                for k, v in model.state_dict().items()}), path)
    target = torch.nn.Linear(3, 2)
    load_weights(target, path)  # `module.` prefixes of wrapped models are removed
    torch.testing.assert_close(target.weight, model.weight + 1)
    other = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=torch.nn.Conv2d(3, 2, 1).state_dict()), other)
    with pytest.raises(ValueError, match=r'other\.pth: not a checkpoint of this '
                       r'model .*weights have other shapes: weight \(2, 3, 1, 1\)'):
        load_weights(target, other)
    foreign = str(tmp_path / 'foreign.pth')
    torch.save(dict(state_dict=dict(something=torch.zeros(1))), foreign)
    with pytest.raises(ValueError, match=r'foreign\.pth: .*2 of its 2 weights are '
                       'missing'):
        load_weights(target, foreign)
    assert osp.isfile(foreign)


def test_a_folder_is_no_checkpoint(tmp_path):
    assert checkpoint_problem(str(tmp_path)) == 'a folder'
    with pytest.raises(ValueError, match=r'is a folder, not a checkpoint file \(give '
                       r'the \.pth file inside it, or --resume alone'):
        check_checkpoint_file(str(tmp_path), 'checkpoint given to --resume')


CONFIG_TEXT = """
crop = (32, 32)
model = dict(
    auxiliary_head=[dict(num_classes=7, type='FCNHead'), dict(type='mmseg.FCNHead')],
    backbone=dict(depth=18, type='ResNetV1c'),
    decode_head=dict(num_classes=7, type='DepthwiseSeparableASPPHead'),
    type='mmseg.EncoderDecoder')
train_cfg = dict(max_iters=2)
"""


def test_recorded_model_types_are_parsed_not_run():
    from mars_mm.utils.checkpoint import recorded_model_types
    assert recorded_model_types(CONFIG_TEXT) == {
        'model': 'EncoderDecoder', 'model.backbone': 'ResNetV1c', 'model.neck': None,
        'model.decode_head': 'DepthwiseSeparableASPPHead',
        'model.auxiliary_head': '[FCNHead, FCNHead]', 'model.head': None}
    # a config text is a program: never executed, whatever it holds
    hostile = "import os\nos.system('touch HACKED')\nmodel = dict(type=os.getcwd())\n"
    assert recorded_model_types(hostile) == {}
    assert recorded_model_types('model = dict(') == {}


def _mmengine_checkpoint(path, text):
    torch.save(dict(meta=dict(cfg=text, seed=3, experiment_name='seg_2026'),
                    state_dict=dict(weight=torch.ones(2))), path)
    return str(path)


def test_resuming_another_models_checkpoint_names_both(tmp_path):
    from mars_mm.utils.checkpoint import check_resumed_model, checkpoint_seed
    path = _mmengine_checkpoint(tmp_path / 'iter_2.pth', CONFIG_TEXT)
    assert checkpoint_seed(path) == 3
    model = dict(type='EncoderDecoder', backbone=dict(type='ResNetV1c', depth=18),
                 decode_head=dict(type='DepthwiseSeparableASPPHead', num_classes=7),
                 auxiliary_head=[dict(type='FCNHead'), dict(type='FCNHead')])
    check_resumed_model(path, model, 'seg.py')  # the same model: fine
    check_resumed_model(path, dict(model, decode_head=dict(
        type='DepthwiseSeparableASPPHead', num_classes=21)), 'seg.py')  # settings
    with pytest.raises(ValueError, match=r'iter_2\.pth is a checkpoint of another '
                       r'model: EncoderDecoder \(backbone ResNetV1c.*\(run seg_2026\), '
                       r'but mars\.py builds MARSEncoderDecoder'):
        check_resumed_model(path, dict(model, type='MARSEncoderDecoder'), 'mars.py')
    with pytest.raises(ValueError, match=r'but cam\.py builds CAMClassifier '
                       r'\(backbone PlainConvNet, head CAMHead\)'):
        check_resumed_model(path, dict(type='CAMClassifier',
                                       backbone=dict(type='PlainConvNet'),
                                       head=dict(type='CAMHead')), 'cam.py')
    # a checkpoint without a config (not mmengine's) cannot be checked: allowed
    torch.save(dict(state_dict=dict(weight=torch.ones(2))), tmp_path / 'plain.pth')
    check_resumed_model(str(tmp_path / 'plain.pth'), dict(type='X'), 'x.py')
