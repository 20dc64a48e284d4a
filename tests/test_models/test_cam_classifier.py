"""CAMClassifier and CAMHead built through the registry."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.structures import SegDataSample

from mars_mm.registry import MODELS

NUM_CLASSES = 4
DEFAULT_ARGS = dict(
    type='CAMClassifier',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                           size=(32, 32)),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), out_indices=(3, ),
                  norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None),
    head=dict(type='CAMHead', in_channels=64, num_classes=NUM_CLASSES))


@pytest.fixture(scope='module')
def model():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    net = MODELS.build(copy.deepcopy(DEFAULT_ARGS))
    net.init_weights()
    return net.eval()


def samples(tag_lists):
    return [SegDataSample(metainfo=dict(img_tags=np.array(tags, dtype=np.int64)))
            for tags in tag_lists]


def test_builds_from_registry(model):
    assert type(model).__name__ == 'CAMClassifier'
    assert type(model.head).__name__ == 'CAMHead'
    assert model.head.classifier.bias is None
    assert model.head.classifier.kernel_size == (1, 1)


def test_pretrained_becomes_backbone_init_cfg():
    init_default_scope('mmseg')
    args = copy.deepcopy(DEFAULT_ARGS)
    args['pretrained'] = 'some/local/resnet.pth'
    net = MODELS.build(args)
    assert net.backbone.init_cfg == dict(type='Pretrained',
                                         checkpoint='some/local/resnet.pth')


def test_loss_equals_multilabel_soft_margin(model):
    inputs = torch.randn(3, 3, 32, 32)
    tag_lists = [[1, 3], [4], [2, 3, 4]]
    targets = torch.zeros(3, NUM_CLASSES)
    for row, tags in enumerate(tag_lists):
        for tag in tags:
            targets[row, tag - 1] = 1
    losses = model(inputs, samples(tag_lists), mode='loss')
    assert set(losses) == {'loss_cls'}
    logits = model(inputs, mode='tensor')
    by_torch = F.multilabel_soft_margin_loss(logits, targets)
    by_hand = -(targets * F.logsigmoid(logits)
                + (1 - targets) * F.logsigmoid(-logits)).mean(dim=1).mean()
    assert torch.allclose(losses['loss_cls'], by_torch, atol=1e-6)
    assert torch.allclose(losses['loss_cls'], by_hand, atol=1e-6)


def test_head_builds_its_loss_from_the_registry():
    init_default_scope('mmseg')
    head = MODELS.build(dict(type='CAMHead', in_channels=8, num_classes=NUM_CLASSES))
    # the default: mmpretrain's sigmoid CE, the mean BCE over N x C logits
    assert type(head.loss_cls).__module__.startswith('mmpretrain.')
    assert head.loss_cls.use_sigmoid
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, NUM_CLASSES, generator=generator) * 4
    targets = (torch.rand(16, NUM_CLASSES, generator=generator) > 0.6).float()
    default = head.loss_by_logits(logits, targets)['loss_cls']
    # F.multilabel_soft_margin_loss, i.e. IRN's loss, up to float summation order
    torch.testing.assert_close(default, F.multilabel_soft_margin_loss(logits, targets),
                               rtol=1e-6, atol=1e-6)
    weighted = MODELS.build(dict(
        type='CAMHead', in_channels=8, num_classes=NUM_CLASSES,
        loss_cls=dict(type='mmpretrain.CrossEntropyLoss', use_sigmoid=True,
                      loss_weight=2.5)))
    torch.testing.assert_close(weighted.loss_by_logits(logits, targets)['loss_cls'],
                               2.5 * default)
    other = MODELS.build(dict(type='CAMHead', in_channels=8, num_classes=NUM_CLASSES,
                              loss_cls=dict(type='mmpretrain.AsymmetricLoss')))
    assert type(other.loss_cls).__name__ == 'AsymmetricLoss'
    assert not torch.allclose(other.loss_by_logits(logits, targets)['loss_cls'],
                              default)


def test_logits_are_the_mean_of_the_cams(model):
    inputs = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        cams = model.cam(inputs)
        logits = model(inputs, mode='tensor')
    assert cams.shape == (2, NUM_CLASSES, 3, 3)  # output stride 16
    assert torch.allclose(cams.mean(dim=(2, 3)), logits, atol=1e-5)


def test_predict_gives_sigmoid_scores(model):
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        results = model(inputs, samples([[1], [2]]), mode='predict')
        logits = model(inputs, mode='tensor')
    assert torch.allclose(results[1].pred_scores, torch.sigmoid(logits[1]))


def test_train_step_through_preprocessor(model):
    model.train()
    data = dict(inputs=[torch.randint(0, 255, (3, 28, 30), dtype=torch.uint8)] * 2,
                data_samples=samples([[1], [2, 4]]))
    processed = model.data_preprocessor(data, training=True)
    assert processed['inputs'].shape == (2, 3, 32, 32)
    losses = model(**processed, mode='loss')
    losses['loss_cls'].backward()
    assert model.head.classifier.weight.grad is not None
    model.eval()


def test_bad_tags_are_reported(model):
    inputs = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match='outside 1..4'):
        model(inputs, samples([[5]]), mode='loss')
    with pytest.raises(KeyError, match='img_tags'):
        model(inputs, [SegDataSample(metainfo=dict(img_path='x.jpg'))], mode='loss')
