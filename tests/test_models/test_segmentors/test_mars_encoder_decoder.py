"""MARSEncoderDecoder on a real (tiny) DeepLabV3+: complementing and the heads' losses.

The teacher is lent by EMATeacherHook in a Runner (tests/test_engine); here it is an
ExponentialMovingAverage of the student set by hand, as the hook does.
"""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import ExponentialMovingAverage
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
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0,
                                      avg_non_ignore=True)),
    auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=2, channels=8,
                        num_convs=1, concat_input=False, dropout_ratio=0.0,
                        num_classes=NUM_CLASSES, norm_cfg=NORM, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4,
                                         avg_non_ignore=True)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))


def build(teacher=True, **overrides):
    """The tiny MARS model; ``teacher``: lend it an EMA copy of itself (see
    :func:`lend_teacher`)."""
    init_default_scope('mmseg')
    cfg = copy.deepcopy(DEFAULT_ARGS)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg))
    if teacher:
        lend_teacher(model)
    return model


TEACHERS = {}


def lend_teacher(model):
    """What EMATeacherHook does: an EMA copy of the student, its forward lent."""
    ema = ExponentialMovingAverage(model.inference_net(), momentum=0.3).eval()
    ema.update_parameters(model.inference_net())
    model.set_teacher(ema.forward)
    TEACHERS[id(model)] = ema
    return ema


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


def brute_force_ce(logits, labels, weights, divide_by='valid'):
    """``sum(W * CE)`` over non-255 pixels / their count (or all pixels)."""
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
    return total / (count if divide_by == 'valid' else labels.size)


def teacher_targets(model, inputs, samples):
    """Independent Y_co and W from the teacher's (= initial student's) softmax."""
    with torch.no_grad():
        probs = F.interpolate(TEACHERS[id(model)].module(inputs), size=(SIZE, SIZE),
                              mode='bilinear', align_corners=False).softmax(1).numpy()
    expected = [brute_force_targets(s.gt_sem_seg.data[0].numpy(), probs[i],
                                    s.metainfo['img_tags'])
                for i, s in enumerate(samples)]
    return np.stack([e[0] for e in expected]), np.stack([e[1] for e in expected])


def head_logits(model, inputs):
    with torch.no_grad():
        features = model.extract_feat(inputs)
        return [F.interpolate(head.forward(features), size=(SIZE, SIZE),
                              mode='bilinear', align_corners=False).numpy()
                for head in (model.decode_head, model.auxiliary_head)]


def test_state_dict_is_a_plain_encoder_decoder_and_holds_no_teacher():
    model = build()
    plain_cfg = copy.deepcopy(DEFAULT_ARGS)
    plain_cfg['type'] = 'EncoderDecoder'
    plain = MODELS.build(ConfigDict(plain_cfg))
    assert set(model.state_dict()) == set(plain.state_dict())
    assert {id(p) for p in model.parameters()} == {
        id(p) for p in model.inference_net().parameters()} | {
        id(p) for p in model.auxiliary_head.parameters()}
    assert not any(isinstance(m, ExponentialMovingAverage) for m in model.modules())
    # device/dtype moves act on the student only and keep the teacher lent
    model.to('cpu').float()
    assert model.teacher_fn is not None


def test_set_teacher_takes_functions_not_modules():
    model = build(teacher=False)
    assert model.teacher_fn is None
    ema = ExponentialMovingAverage(model.inference_net())
    with pytest.raises(TypeError, match='function'):
        model.set_teacher(ema)
    with pytest.raises(TypeError, match='callable'):
        model.set_teacher(3)
    inputs, samples = make_batch()
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        model.loss(inputs, samples)
    # a batch without removed pixels needs no teacher
    inputs, samples = make_batch(with_biased=False)
    assert 'decode.loss_ce' in model.loss(inputs, samples)


def test_targets_complement_only_biased_pixels():
    model = build()
    model.train()
    inputs, samples = make_batch()
    expected_labels, expected_weights = teacher_targets(model, inputs, samples)
    labels, weights, stats = model.targets(inputs, samples)
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


@pytest.mark.parametrize('avg_non_ignore', [True, False])
def test_loss_is_the_heads_weighted_ce(avg_non_ignore):
    """avg_non_ignore=True: / #non-ignored pixels (the spec); False: / all pixels
    (mmseg's definition: ignored pixels count in the mean with loss 0)."""
    loss = dict(avg_non_ignore=avg_non_ignore)
    model = build(decode_head=dict(loss_decode=dict(DEFAULT_ARGS['decode_head'][
        'loss_decode'], **loss)), auxiliary_head=dict(loss_decode=dict(
            DEFAULT_ARGS['auxiliary_head']['loss_decode'], **loss)))
    model.train()
    inputs, samples = make_batch()
    labels, weights = teacher_targets(model, inputs, samples)
    losses = model.loss(inputs, samples)
    decode, aux = head_logits(model, inputs)
    divide_by = 'valid' if avg_non_ignore else 'all'
    assert losses['decode.loss_ce'].item() == pytest.approx(
        brute_force_ce(decode, labels, weights, divide_by), rel=1e-5)
    assert losses['aux.loss_ce'].item() == pytest.approx(
        0.4 * brute_force_ce(aux, labels, weights, divide_by), rel=1e-5)
    accuracy = (decode.argmax(1) == labels)[labels != 255].mean() * 100
    assert losses['decode.acc_seg'].item() == pytest.approx(accuracy, abs=1e-3)
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce',
                           'aux.acc_seg', 'complement_ratio', 'complement_weight'}


def test_weights_combine_with_the_heads_own_pixel_sampler():
    """A head with mmseg's OHEM sampler: the complementing weight multiplies the
    sampler's (the sampler's own weights from mmseg, the CE by brute force)."""
    model = build(decode_head=dict(sampler=dict(type='OHEMPixelSampler',
                                                min_kept=100)))
    model.train()
    inputs, samples = make_batch()
    labels, weights = teacher_targets(model, inputs, samples)
    losses = model.loss(inputs, samples)
    decode, aux = head_logits(model, inputs)
    ohem = model.decode_head.sampler.sample(
        torch.from_numpy(decode), torch.from_numpy(labels)[:, None]).numpy()
    assert 0 < ohem.mean() < 1  # the sampler drops pixels
    assert losses['decode.loss_ce'].item() == pytest.approx(
        brute_force_ce(decode, labels, weights * ohem), rel=1e-5)
    assert losses['aux.loss_ce'].item() == pytest.approx(
        0.4 * brute_force_ce(aux, labels, weights), rel=1e-5)
    assert type(model.decode_head.sampler).__name__ == 'OHEMPixelSampler'
    assert model.auxiliary_head.sampler is None  # both restored


def test_loss_leaves_the_batch_unchanged():
    model = build()
    model.train()
    inputs, samples = make_batch()
    before = [sample.gt_sem_seg.data.clone() for sample in samples]
    model.loss(inputs, samples)
    for sample, label in zip(samples, before):
        assert torch.equal(sample.gt_sem_seg.data, label)
        assert 'gt_pixel_weight' not in sample


def test_mmseg_weighted_ce_equals_the_spec_formula():
    """The loss Stage 4 uses, built from the registry: sum(W * CE) / #non-ignored."""
    init_default_scope('mmseg')
    criterion = MODELS.build(dict(type='CrossEntropyLoss', avg_non_ignore=True))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 4, 2, 3, generator=generator, dtype=torch.float64)
    labels = torch.tensor([[[0, 255, 1], [2, 3, 1]]])
    weights = torch.tensor([[[1.0, 0.3, 0.2], [1.0, 0.25, 1.0]]])
    expected = brute_force_ce(logits.numpy(), labels.numpy(), weights.numpy())
    value = criterion(logits, labels, weight=weights, ignore_index=255)
    # mmseg divides by count + float32 eps and casts W to float32: ~1e-8 relative
    assert value.item() == pytest.approx(expected, rel=1e-7)
    assert value.item() != pytest.approx(expected * 5 / 6, rel=1e-3)  # not / all


def test_several_losses_appear_and_add_up_like_mmseg():
    both = [dict(type='CrossEntropyLoss', loss_name='loss_ce', avg_non_ignore=True),
            dict(type='CrossEntropyLoss', loss_name='loss_all', loss_weight=0.5)]
    model = build(decode_head=dict(loss_decode=both))
    model.train()
    inputs, samples = make_batch()
    labels, weights = teacher_targets(model, inputs, samples)
    losses = model.loss(inputs, samples)
    decode, aux = head_logits(model, inputs)
    assert losses['decode.loss_ce'].item() == pytest.approx(
        brute_force_ce(decode, labels, weights), rel=1e-5)
    assert losses['decode.loss_all'].item() == pytest.approx(
        0.5 * brute_force_ce(decode, labels, weights, 'all'), rel=1e-5)
    total, log_vars = model.parse_losses(losses)
    expected = sum(losses[key] for key in
                   ('decode.loss_ce', 'decode.loss_all', 'aux.loss_ce'))
    torch.testing.assert_close(total, expected)
    assert log_vars['loss'].item() == pytest.approx(expected.item())
    # two losses with one loss_name are summed into it (not overwritten)
    same = [dict(type='CrossEntropyLoss', avg_non_ignore=True),
            dict(type='CrossEntropyLoss', avg_non_ignore=True, loss_weight=0.5)]
    doubled = build(decode_head=dict(loss_decode=same)).loss(inputs, samples)
    assert doubled['decode.loss_ce'].item() == pytest.approx(
        1.5 * losses['decode.loss_ce'].item(), rel=1e-6)


@pytest.mark.parametrize('decode_changes', [
    dict(loss_decode=[dict(type='CrossEntropyLoss', loss_weight=1.0),
                      dict(type='DiceLoss', loss_weight=0.5)]),
    # top-100 loss pixels per image: most pixels get sampler weight 0
    dict(sampler=dict(type='OHEMPixelSampler', min_kept=100)),
])
def test_without_weights_equals_mmseg_encoder_decoder(decode_changes):
    """No 254 pixel and no weighting: the same numbers as mmseg's own loss path."""
    overrides = dict(weight_by_confidence=False, decode_head=decode_changes)
    model = build(teacher=False, **overrides)
    plain_cfg = copy.deepcopy(DEFAULT_ARGS)
    plain_cfg['type'] = 'EncoderDecoder'
    plain_cfg['decode_head'].update(decode_changes)
    plain = MODELS.build(ConfigDict(plain_cfg))
    plain.load_state_dict(model.state_dict())
    model.train()
    plain.train()
    inputs, samples = make_batch(with_biased=False)
    ours = model.loss(inputs, samples)
    theirs = plain.loss(inputs, samples)
    assert set(ours) == set(theirs) | {'complement_ratio', 'complement_weight'}
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value)


def test_unweighted_and_ignore_modes():
    inputs, samples = make_batch()
    model = build(weight_by_confidence=False)
    labels, weights, _ = model.targets(inputs, samples)
    assert weights is None and not (labels == 254).any()
    model = build(teacher=False, biased_pixels='ignore')
    assert not model.uses_teacher
    labels, weights, stats = model.targets(inputs, samples)
    original = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    assert weights is None
    assert torch.equal(labels, original.masked_fill(original == 254, 255))
    assert stats['ignored_biased_ratio'].item() == pytest.approx(
        (original == 254).sum().item() / (original != 255).sum().item())


def test_missing_tags_is_a_clear_error():
    model = build()
    inputs, samples = make_batch()
    samples[1] = SegDataSample(metainfo=dict(img_path='img_1.jpg'),
                               gt_sem_seg=samples[1].gt_sem_seg)
    with pytest.raises(KeyError, match="img_1.jpg.*img_tags"):
        model.loss(inputs, samples)


def test_loss_leaves_the_teacher_alone_and_gives_it_no_gradient():
    model = build()
    model.train()
    ema = TEACHERS[id(model)]
    before = copy.deepcopy(ema.state_dict())
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    inputs, samples = make_batch()
    model.train_step(dict(inputs=list(inputs), data_samples=samples), optim)
    for key, value in ema.state_dict().items():  # updating is the hook's job
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert all(p.grad is None and not p.requires_grad for p in ema.parameters())
    assert not ema.training


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
        teacher = F.interpolate(model.teacher_fn(inputs), size=(SIZE, SIZE),
                                mode='bilinear')[0]
    torch.testing.assert_close(logits, student)
    assert not torch.allclose(logits, teacher)


def test_teacher_crf_refines_only_images_with_removed_pixels():
    pytest.importorskip('pydensecrf')
    model = build(teacher_crf=dict(num_iters=2))
    inputs, samples = make_batch()
    samples[1].gt_sem_seg.data[samples[1].gt_sem_seg.data == 254] = 0
    probs = model.teacher_probs(inputs, samples, (SIZE, SIZE))
    raw = build().teacher_probs(inputs, samples, (SIZE, SIZE))
    torch.testing.assert_close(probs[1], raw[1])  # no 254 pixel: left alone
    # image 0 has tags {1, 2}: only background, 1 and 2 may carry probability
    assert probs[0, 3].abs().max() == 0
    torch.testing.assert_close(probs[0].sum(0), torch.ones(SIZE, SIZE))
    assert not torch.allclose(probs[0], raw[0])


def test_rejects_losses_it_cannot_weight_per_pixel():
    dice = dict(loss_decode=dict(type='DiceLoss'))
    with pytest.raises(ValueError, match='per-pixel weight'):
        build(teacher=False, decode_head=dice)
    build(teacher=False, decode_head=dice, weight_by_confidence=False)
    with pytest.raises(ValueError, match='biased_pixels'):
        build(teacher=False, biased_pixels='drop')
