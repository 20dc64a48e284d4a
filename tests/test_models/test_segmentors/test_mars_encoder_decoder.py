"""MARSEncoderDecoder: complementing on a real (tiny) DeepLabV3+, EMA teacher, loss."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mars_mm.registry import MODELS

NUM_CLASSES = 4
SIZE = 32
NORM = dict(type='BN', requires_grad=True)
DEFAULT_ARGS = dict(
    type='MARSEncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size=(SIZE, SIZE)),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                  strides=(1, 2, 1, 1), norm_cfg=NORM, contract_dilation=True),
    decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=64, in_index=3,
                     channels=16, dilations=(1, 2, 3, 4), c1_in_channels=8,
                     c1_channels=8, dropout_ratio=0.0, num_classes=NUM_CLASSES,
                     norm_cfg=NORM, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=2, channels=8,
                        num_convs=1, concat_input=False, dropout_ratio=0.0,
                        num_classes=NUM_CLASSES, norm_cfg=NORM, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
    ema_momentum=0.3,
    train_cfg=dict(), test_cfg=dict(mode='whole'))


def build(**overrides):
    init_default_scope('mmseg')
    cfg = copy.deepcopy(DEFAULT_ARGS)
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(ConfigDict(cfg))


def make_batch(seed=0, with_biased=True):
    """Two preprocessed images with labels holding classes, 254 and 255."""
    rng = np.random.default_rng(seed)
    inputs = torch.from_numpy(rng.normal(size=(2, 3, SIZE, SIZE)).astype(np.float32))
    samples = []
    for index, tags in enumerate(([1, 2], [3])):
        label = rng.choice([0] + tags, size=(SIZE, SIZE))
        if with_biased:
            label[4:12, 4:12] = 254
        label[0, :] = 255
        sample = SegDataSample(metainfo=dict(
            img_tags=np.array(tags), img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
            ori_shape=(SIZE, SIZE), img_path=f'img_{index}.jpg'))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None].long())
        samples.append(sample)
    return inputs, samples


def brute_force_targets(label, probs, tags):
    """Per-pixel loop: 254 -> teacher argmax, weight = max over tag classes."""
    out, weight = label.copy(), np.ones(label.shape)
    for y in range(label.shape[0]):
        for x in range(label.shape[1]):
            if label[y, x] == 254:
                out[y, x] = int(np.argmax(probs[:, y, x]))
                weight[y, x] = max(probs[c, y, x] for c in tags)
    return out, weight


def brute_force_ce(logits, labels, weights):
    total, count = 0.0, 0
    for n in range(labels.shape[0]):
        for y in range(labels.shape[1]):
            for x in range(labels.shape[2]):
                label = labels[n, y, x]
                if label == 255:
                    continue
                scores = logits[n, :, y, x].astype(np.float64)
                log_norm = math.log(np.exp(scores - scores.max()).sum()) + scores.max()
                total += weights[n, y, x] * (log_norm - scores[label])
                count += 1
    return total / count


def test_registered_and_no_teacher_before_training():
    model = build()
    assert type(model).__name__ == 'MARSEncoderDecoder'
    assert model.teacher is None
    assert not any(key.startswith('teacher') or '_teacher' in key
                   for key in model.state_dict())


def test_loss_complements_only_biased_pixels_and_matches_independent_ce():
    model = build()
    model.train()
    inputs, samples = make_batch()
    # At the first step the teacher is a copy of the student, evaluated in eval mode.
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        teacher_probs = torch.nn.functional.interpolate(
            reference._forward(inputs), size=(SIZE, SIZE), mode='bilinear',
            align_corners=False).softmax(1).numpy()

    labels, weights, stats = model.targets(inputs, samples)
    expected = [brute_force_targets(s.gt_sem_seg.data[0].numpy(), teacher_probs[i],
                                    s.metainfo['img_tags'])
                for i, s in enumerate(samples)]
    expected_labels = np.stack([e[0] for e in expected])
    expected_weights = np.stack([e[1] for e in expected])
    original = np.stack([s.gt_sem_seg.data[0].numpy() for s in samples])
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    np.testing.assert_array_equal(labels.numpy()[original != 254],
                                  original[original != 254])
    np.testing.assert_allclose(weights.numpy(), expected_weights, atol=1e-6)
    assert (labels.numpy() == 255).sum() == (original == 255).sum()
    biased = original == 254
    assert stats['complement_ratio'].item() == pytest.approx(
        biased.sum() / (original != 255).sum())
    assert stats['complement_weight'].item() == pytest.approx(
        expected_weights[biased].mean(), abs=1e-6)

    # loss(): same step again would move the teacher, so rebuild and run loss().
    model = build()
    model.train()
    losses = model.loss(inputs, samples)
    with torch.no_grad():
        features = model.extract_feat(inputs)
        decode = torch.nn.functional.interpolate(
            model.decode_head.forward(features), size=(SIZE, SIZE), mode='bilinear',
            align_corners=False).numpy()
        aux = torch.nn.functional.interpolate(
            model.auxiliary_head.forward(features), size=(SIZE, SIZE),
            mode='bilinear', align_corners=False).numpy()
    assert losses['decode.loss_ce'].item() == pytest.approx(
        brute_force_ce(decode, expected_labels, expected_weights), rel=1e-4)
    assert losses['aux.loss_ce'].item() == pytest.approx(
        0.4 * brute_force_ce(aux, expected_labels, expected_weights), rel=1e-4)
    assert {'decode.acc_seg', 'complement_ratio', 'complement_weight'} <= set(losses)


def test_unweighted_and_ignore_modes():
    inputs, samples = make_batch()
    model = build(weight_by_confidence=False)
    labels, weights, _ = model.targets(inputs, samples)
    assert weights is None and not (labels == 254).any()
    model = build(biased_pixels='ignore')
    labels, weights, stats = model.targets(inputs, samples)
    original = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    assert weights is None and model.teacher is None
    assert torch.equal(labels, original.masked_fill(original == 254, 255))
    assert 'ignored_biased_ratio' in stats


def test_missing_tags_is_a_clear_error():
    model = build()
    inputs, samples = make_batch()
    samples[1] = SegDataSample(metainfo=dict(img_path='img_1.jpg'),
                               gt_sem_seg=samples[1].gt_sem_seg)
    with pytest.raises(KeyError, match="img_1.jpg.*img_tags"):
        model.loss(inputs, samples)


def test_ema_teacher_updates_every_step_and_gets_no_gradient():
    model = build()
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    momentum = DEFAULT_ARGS['ema_momentum']
    previous_teacher = previous_student = None
    for step in range(3):
        inputs, samples = make_batch(seed=step, with_biased=(step != 1))
        student_before = {k: v.detach().clone()
                          for k, v in model.named_parameters()}
        model.train_step(dict(inputs=list(inputs), data_samples=samples), optim)
        teacher = model.teacher
        assert int(teacher.steps) == step + 1  # also on the step without 254 pixels
        teacher_params = dict(teacher.module.named_parameters())
        for name, value in teacher_params.items():
            assert not value.requires_grad and value.grad is None
            if step == 0:
                expected = student_before[name]
            else:
                expected = (1 - momentum) * previous_teacher[name] \
                    + momentum * previous_student[name]
            torch.testing.assert_close(value, expected)
        previous_teacher = {k: v.detach().clone() for k, v in teacher_params.items()}
        previous_student = {k: v.detach().clone()
                            for k, v in model.named_parameters()}
        # the student did move: its own gradient step happened
        assert any(not torch.equal(student_before[k], v)
                   for k, v in model.named_parameters())
    optimised = {id(p) for group in optim.optimizer.param_groups
                 for p in group['params']}
    assert not optimised & {id(p) for p in model.teacher.parameters()}
    assert not any('teacher' in key for key in model.state_dict())
    state = model.teacher_state_dict()
    clone = build()
    clone.load_teacher_state_dict(state)
    assert int(clone.teacher.steps) == 3
    for key, value in clone.teacher.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_predict_uses_the_student():
    model = build()
    model.train()
    inputs, samples = make_batch()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    model.train_step(dict(inputs=list(inputs), data_samples=samples), optim)
    model.eval()
    with torch.no_grad():
        logits = model.predict(inputs, samples)[0].seg_logits.data
        student = model.encode_decode(inputs, [s.metainfo for s in samples])[0]
        teacher = torch.nn.functional.interpolate(
            model.teacher.module(inputs), size=(SIZE, SIZE), mode='bilinear')[0]
    torch.testing.assert_close(logits, student)
    assert not torch.allclose(logits, teacher)


def test_teacher_crf_refines_only_images_with_removed_pixels():
    pytest.importorskip('pydensecrf')
    model = build(teacher_crf=dict(num_iters=2))
    inputs, samples = make_batch()
    samples[1].gt_sem_seg.data[samples[1].gt_sem_seg.data == 254] = 0
    probs = model.teacher_probs(inputs, samples, (SIZE, SIZE))
    plain = build()
    plain.init_teacher()
    raw = plain.teacher_probs(inputs, samples, (SIZE, SIZE))
    torch.testing.assert_close(probs[1], raw[1])  # no 254 pixel: left alone
    # image 0 has tags {1, 2}: only background, 1 and 2 may carry probability
    assert probs[0, 3].abs().max() == 0
    torch.testing.assert_close(probs[0].sum(0), torch.ones(SIZE, SIZE))
    assert not torch.allclose(probs[0], raw[0])


def test_rejects_losses_it_cannot_weight():
    cfg = copy.deepcopy(DEFAULT_ARGS)
    cfg['decode_head']['loss_decode'] = dict(type='DiceLoss')
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='CrossEntropyLoss'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='biased_pixels'):
        build(biased_pixels='drop')
