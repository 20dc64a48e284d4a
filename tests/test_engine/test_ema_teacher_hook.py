"""EMATeacherHook in a tiny mmengine Runner: when the teacher moves, what is saved,
what a resume restores."""
import copy

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch.utils.data import Dataset

from mars_mm.registry import HOOKS, MODELS
from tests.test_models.test_segmentors.test_mars_encoder_decoder import (
    DEFAULT_ARGS,
    SIZE,
)

MOMENTUM = 0.3


class TinyWSSS(Dataset):
    """Four images whose labels hold classes, removed (254) and ignored pixels."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.items = []
        for index in range(4):
            tags = [1 + index % 3]
            label = rng.choice([0] + tags, size=(SIZE, SIZE))
            label[4:14, 6:16] = 254
            label[0] = 255
            sample = SegDataSample(metainfo=dict(
                img_tags=np.array(tags), img_path=f'{index}.jpg',
                ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE)))
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None].long())
            image = torch.from_numpy(rng.integers(0, 255, (3, SIZE, SIZE),
                                                  dtype=np.uint8))
            self.items.append(dict(inputs=image, data_samples=sample))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        # the preprocessor edits samples in place: hand out copies
        return copy.deepcopy(self.items[index])


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


class Recorder(Hook):
    """Student and teacher weights at the start of training and of each iteration
    (what the loss sees) and after each iteration (after the teacher hook)."""

    priority = 'LOWEST'

    def __init__(self):
        self.start = None
        self.used, self.after, self.student, self.steps = [], [], [], []

    def _teacher(self, runner):
        return next(h for h in runner.hooks if type(h).__name__ == 'EMATeacherHook')

    def before_train(self, runner):
        self.start = params(unwrap(runner.model).inference_net())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.used.append(params(self._teacher(runner).teacher.module))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        teacher = self._teacher(runner).teacher
        self.after.append(params(teacher.module))
        self.steps.append(int(teacher.steps))
        self.student.append(params(unwrap(runner.model).inference_net()))


def make_runner(work_dir, max_iters, accumulate=1, record=True, **kwargs):
    recorder = Recorder()
    runner = Runner(
        model=copy.deepcopy(DEFAULT_ARGS),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=TinyWSSS(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                           accumulative_counts=accumulate),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=2),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='EMATeacherHook', momentum=MOMENTUM)]
        + ([recorder] if record else []),
        default_scope='mmseg',
        randomness=dict(seed=0),
        experiment_name=f'{work_dir.name}_{max_iters}',
        **kwargs)
    return runner, recorder


def ema(previous, student):
    """The hand-computed EMA step, mmengine's momentum convention."""
    return {k: (1 - MOMENTUM) * previous[k] + MOMENTUM * student[k] for k in previous}


def assert_same(actual, expected, **tolerance):
    assert set(actual) == set(expected)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], **tolerance)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ema_teacher')
    runner, recorder = make_runner(work_dir, max_iters=3)
    runner.train()
    return dict(runner=runner, recorder=recorder, work_dir=work_dir)


def test_hook_is_registered():
    hook = HOOKS.build(dict(type='EMATeacherHook', momentum=0.02))
    assert hook.ema_cfg['momentum'] == 0.02 and hook.teacher is None
    with pytest.raises(ValueError, match='momentum'):
        HOOKS.build(dict(type='EMATeacherHook', momentum=0.999 + 1))


def test_teacher_is_updated_after_each_optimizer_step(trained):
    recorder = trained['recorder']
    # iteration 0 uses the student as it started; each later iteration uses the EMA
    # of the students *after* the earlier steps, never the current one's
    expected = recorder.start
    for iteration in range(3):
        assert_same(recorder.used[iteration], expected)
        expected = ema(expected, recorder.student[iteration])
        assert_same(recorder.after[iteration], expected)
    assert recorder.steps == [2, 3, 4]  # the initial copy counts as one
    # the teacher really lags behind the student
    key = 'decode_head.conv_seg.weight'
    assert not torch.allclose(recorder.after[-1][key], recorder.student[-1][key])


def test_teacher_stays_out_of_the_model_and_the_optimizer(trained):
    runner = trained['runner']
    model = unwrap(runner.model)
    teacher = next(h for h in runner.hooks
                   if type(h).__name__ == 'EMATeacherHook').teacher
    assert not teacher.training
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    optimised = {id(p) for group in runner.optim_wrapper.optimizer.param_groups
                 for p in group['params']}
    assert not optimised & {id(p) for p in teacher.parameters()}
    assert {id(p) for p in model.parameters()}.isdisjoint(
        id(p) for p in teacher.parameters())
    plain_cfg = dict(copy.deepcopy(DEFAULT_ARGS), type='EncoderDecoder')
    assert set(model.state_dict()) == set(MODELS.build(plain_cfg).state_dict())
    # BN statistics are the student's (update_buffers=False)
    for (name, buffer), (_, source) in zip(teacher.module.named_buffers(),
                                           model.inference_net().named_buffers()):
        torch.testing.assert_close(buffer, source, msg=name)


def test_checkpoint_state_dict_is_the_student_and_loads_strictly(trained):
    checkpoint = torch.load(str(trained['work_dir'] / 'iter_2.pth'),
                            map_location='cpu')
    plain = MODELS.build(dict(copy.deepcopy(DEFAULT_ARGS), type='EncoderDecoder'))
    plain.load_state_dict(checkpoint['state_dict'], strict=True)
    teacher = checkpoint['mars_teacher']
    assert int(teacher['steps']) == 3
    assert set(teacher) == {'steps'} | {f'module.{key}' for key in
                                        trained['recorder'].after[1]} | {
        f'module.{key}' for key, _ in
        unwrap(trained['runner'].model).inference_net().named_buffers()}
    for key, value in trained['recorder'].after[1].items():
        torch.testing.assert_close(teacher[f'module.{key}'], value, rtol=0, atol=0)


def test_resume_restores_the_teacher_exactly(trained, tmp_path):
    checkpoint = torch.load(str(trained['work_dir'] / 'iter_2.pth'),
                            map_location='cpu')
    runner, recorder = make_runner(
        tmp_path, max_iters=3, resume=True,
        load_from=str(trained['work_dir'] / 'iter_2.pth'))
    runner.train()
    saved = {key[len('module.'):]: value for key, value in
             checkpoint['mars_teacher'].items() if key != 'steps'}
    resumed = recorder.used[0]  # the teacher that iteration 2 used
    assert_same(resumed, {k: saved[k] for k in resumed}, rtol=0, atol=0)
    assert recorder.steps == [4]
    # ...and the run goes on exactly as the uninterrupted one
    assert_same(recorder.after[-1], trained['recorder'].after[-1], rtol=0, atol=0)
    assert_same(recorder.student[-1], trained['recorder'].student[-1], rtol=0, atol=0)


def test_load_from_without_resume_starts_from_the_loaded_student(trained, tmp_path):
    runner, recorder = make_runner(
        tmp_path, max_iters=1, load_from=str(trained['work_dir'] / 'iter_2.pth'))
    runner.train()
    assert_same(recorder.used[0], trained['recorder'].student[1], rtol=0, atol=0)


def test_no_update_on_accumulation_iterations(tmp_path):
    runner, recorder = make_runner(tmp_path, max_iters=2, accumulate=2)
    runner.train()
    assert recorder.steps == [1, 2]  # no optimizer step after iteration 0
    assert_same(recorder.student[0], recorder.start, rtol=0, atol=0)
    assert_same(recorder.after[0], recorder.start, rtol=0, atol=0)
    assert_same(recorder.after[1], ema(recorder.start, recorder.student[1]))


def test_models_without_teacher_are_left_alone(tmp_path):
    runner, _ = make_runner(tmp_path, max_iters=1, record=False)
    unwrap(runner.model).biased_pixels = 'ignore'
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'EMATeacherHook')
    assert hook.teacher is None and unwrap(runner.model).teacher_fn is None
