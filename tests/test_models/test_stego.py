"""STEGO modules built through the registry, checked against direct computations."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mars_mm.registry import MODELS

init_default_scope('mmseg')

VIT = dict(type='mmpretrain.VisionTransformer',
           arch=dict(embed_dims=24, num_layers=1, num_heads=2, feedforward_channels=48),
           img_size=32, patch_size=8, out_type='featmap', drop_rate=0.5)
DEFAULT_ARGS = dict(
    backbone=dict(type='FrozenBackbone', backbone=VIT, out_channels=24,
                  feature_stride=8, random_init_seed=3),
    head=dict(type='STEGOHead', in_channels=24, channels=6, dropout_ratio=0.1),
    cluster_probe=dict(type='ClusterProbe', in_channels=6, num_clusters=3),
    linear_probe=dict(type='LinearProbe', in_channels=6, num_classes=3),
    loss=dict(type='ContrastiveCorrelationLoss', grid_size=3, num_negatives=2),
    preprocessor=dict(type='USSDataPreProcessor', mean=[0., 0., 0.],
                      std=[255., 255., 255.], size_divisor=8),
)
STEGO_ARGS = dict(type='STEGO', data_preprocessor=DEFAULT_ARGS['preprocessor'],
                  backbone=DEFAULT_ARGS['backbone'], head=DEFAULT_ARGS['head'],
                  loss_corr=DEFAULT_ARGS['loss'],
                  cluster_probe=DEFAULT_ARGS['cluster_probe'],
                  linear_probe=DEFAULT_ARGS['linear_probe'])


def build(name, **overrides):
    cfg = copy.deepcopy(STEGO_ARGS if name == 'stego' else DEFAULT_ARGS[name])
    cfg.update(overrides)
    return MODELS.build(cfg)


def pair_batch(batch=2, size=32, seed=0):
    """Grouped inputs as collated from USSPairDataset items."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for role in ('anchor', 'positive', 'negative'):
        group_inputs, group_samples = [], []
        for _ in range(batch):
            group_inputs.append(torch.randint(0, 256, (3, size, size), generator=gen,
                                              dtype=torch.uint8))
            sample = SegDataSample(metainfo=dict(uss_role=role, img_shape=(size, size),
                                                 ori_shape=(size, size)))
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, 3, (1, size, size), generator=gen))
            group_samples.append(sample)
        inputs.append(group_inputs)
        samples.append(group_samples)
    return dict(inputs=inputs, data_samples=samples)


#: module config -> (class the registry must build, input shape, output shape)
BUILT = {
    'backbone': ('FrozenBackbone', (2, 3, 32, 32), (2, 24, 4, 4)),
    'head': ('STEGOHead', (2, 24, 4, 4), (2, 6, 4, 4)),
    'cluster_probe': ('ClusterProbe', (2, 6, 4, 4), (2, 3, 4, 4)),
    'linear_probe': ('LinearProbe', (2, 6, 4, 4), (2, 3, 4, 4)),
}


@pytest.mark.parametrize('name', sorted(BUILT))
def test_registry_builds_the_configured_module(name):
    cls_name, in_shape, out_shape = BUILT[name]
    module = build(name)
    assert type(module).__name__ == cls_name
    module.eval()
    with torch.no_grad():
        out = module(torch.randn(in_shape))
    assert tuple(out.shape) == out_shape  # the configured channels and stride


def test_registry_builds_stego_from_its_parts():
    model = build('stego')
    assert type(model).__name__ == 'STEGO'
    parts = dict(backbone='FrozenBackbone', head='STEGOHead',
                 loss_corr='ContrastiveCorrelationLoss', cluster_probe='ClusterProbe',
                 linear_probe='LinearProbe', data_preprocessor='USSDataPreProcessor')
    assert {name: type(getattr(model, name)).__name__ for name in parts} == parts
    assert (model.loss_corr.grid_size, model.loss_corr.num_negatives) == (3, 2)
    assert model.data_preprocessor.size_divisor == 8
    assert build('stego', linear_probe=None).linear_probe is None


def test_frozen_backbone_no_grad_eval_and_seeded():
    torch.manual_seed(0)
    first = build('backbone')
    first.init_weights()
    torch.manual_seed(123)  # another global state must not change the network
    second = build('backbone')
    second.init_weights()
    for (name, a), (_, b) in zip(first.state_dict().items(),
                                 second.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    first.train()
    assert not first.backbone.training  # dropout (drop_rate=0.5) stays off
    assert all(not p.requires_grad for p in first.parameters())
    images = torch.randn(2, 3, 32, 32)
    out = first(images)
    assert out.shape == (2, 24, 4, 4) and not out.requires_grad
    torch.testing.assert_close(out, first(images))


def test_feature_centring_uses_running_dataset_mean():
    backbone = build('backbone', centre_features=True)
    backbone.init_weights()
    batches = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    backbone.eval()
    raw = torch.cat([backbone.backbone(b)[-1] for b in batches])
    backbone.train()
    for batch in batches:
        backbone(batch)
    expected_mean = raw.permute(1, 0, 2, 3).reshape(24, -1).mean(dim=1)
    torch.testing.assert_close(backbone.feature_mean, expected_mean, atol=1e-5,
                               rtol=1e-5)
    backbone.eval()
    torch.testing.assert_close(backbone(batches[0]),
                               raw[:2] - expected_mean[None, :, None, None],
                               atol=1e-5, rtol=1e-5)


def test_frozen_backbone_checks_channels():
    backbone = build('backbone', out_channels=7)
    with pytest.raises(ValueError, match='out_channels=7'):
        backbone(torch.randn(1, 3, 32, 32))


def test_stego_head_is_linear_plus_mlp():
    head = build('head').eval()
    feats = torch.randn(2, 24, 3, 5)
    linear = F.conv2d(feats, head.linear.weight, head.linear.bias)
    hidden = F.relu(F.conv2d(feats, head.mlp[0].weight, head.mlp[0].bias))
    expected = linear + F.conv2d(hidden, head.mlp[2].weight, head.mlp[2].bias)
    torch.testing.assert_close(head(feats), expected)
    assert head(feats).shape == (2, 6, 3, 5)


def test_cluster_probe_loss_by_loop():
    probe = build('cluster_probe')
    codes = torch.randn(1, 6, 2, 3)
    total = 0.0
    for y in range(2):
        for x in range(3):
            vector = codes[0, :, y, x]
            total += max(float(F.cosine_similarity(vector, centre, dim=0))
                         for centre in probe.centres.detach())
    loss = probe.loss(codes)['loss_cluster']
    assert float(loss.detach()) == pytest.approx(-total / 6, abs=1e-6)


def test_linear_probe_ignores_255_and_254():
    probe = build('linear_probe')
    codes = torch.randn(1, 6, 2, 2)
    gt = torch.tensor([[[0, 1, 255, 254], [2, 2, 255, 1]]])
    with torch.no_grad():
        logits = F.interpolate(probe(codes), size=(2, 4), mode='bilinear',
                               align_corners=False)
    valid = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 3)]
    expected = sum(float(F.cross_entropy(logits[0, :, y, x][None],
                                         gt[0, y, x][None])) for y, x in valid) / 5
    loss = probe.loss(codes, gt)['loss_linear']
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-5)
    all_ignored = probe.loss(codes, torch.full((1, 2, 4), 255))['loss_linear']
    assert float(all_ignored.detach()) == 0.0


def test_preprocessor_flattens_role_groups():
    preprocessor = build('preprocessor')
    data = preprocessor(pair_batch(batch=2), training=True)
    roles = [s.metainfo['uss_role'] for s in data['data_samples']]
    assert roles == ['anchor'] * 2 + ['positive'] * 2 + ['negative'] * 2
    assert data['inputs'].shape == (6, 3, 32, 32)


def test_loss_gradient_reaches_head_only():
    model = build('stego')
    model.init_weights()
    model.train()
    data = model.data_preprocessor(pair_batch(), training=True)
    losses = model(**data, mode='loss')
    assert {'loss_self', 'loss_knn', 'loss_rand', 'loss_cluster',
            'loss_linear'} <= set(losses)
    (losses['loss_self'] + losses['loss_knn'] + losses['loss_rand']).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith('backbone.'))
    assert all(g is None for n, g in grads.items() if 'probe' in n)
    assert all(g is not None and g.abs().sum() > 0
               for n, g in grads.items() if n.startswith('head.'))
    model.zero_grad(set_to_none=True)
    losses = model(**data, mode='loss')
    (losses['loss_cluster'] + losses['loss_linear']).backward()
    # probes train on detached codes: the head gets nothing from them
    assert all(p.grad is None for n, p in model.named_parameters()
               if n.startswith('head.') or n.startswith('backbone.'))
    assert model.cluster_probe.centres.grad is not None


def test_loss_rejects_plain_batches():
    model = build('stego')
    batch = pair_batch()
    data = model.data_preprocessor(dict(inputs=batch['inputs'][0],
                                        data_samples=batch['data_samples'][0]),
                                   training=True)
    for sample in data['data_samples']:
        sample.set_metainfo(dict(uss_role=None))
    with pytest.raises(ValueError, match='USSPairDataset'):
        model(**data, mode='loss')


def test_predict_and_tensor_modes():
    model = build('stego')
    model.init_weights()
    model.eval()
    batch = pair_batch(batch=2)
    data = model.data_preprocessor(dict(inputs=batch['inputs'][0],
                                        data_samples=batch['data_samples'][0]), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
        codes = model(data['inputs'], mode='tensor')
    assert codes.shape == (2, 6, 4, 4)
    for sample in results:
        assert sample.pred_sem_seg.data.shape == (1, 32, 32)
        assert sample.pred_linear.data.shape == (1, 32, 32)
        assert sample.seg_logits.data.shape == (3, 32, 32)
        assert sample.pred_sem_seg.data.max() < 3
        # cluster ids are the argmax of the cosine similarities
        torch.testing.assert_close(sample.pred_sem_seg.data[0],
                                   sample.seg_logits.data.argmax(dim=0))


def test_frozen_backbone_wraps_an_mmseg_cnn():
    backbone = MODELS.build(dict(
        type='FrozenBackbone', out_channels=128, feature_stride=8, out_index=0,
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(1,))))
    backbone.init_weights()
    stats = backbone.backbone.stem[1].running_mean.clone()
    backbone.train()
    feats = backbone(torch.randn(2, 3, 32, 48))
    assert feats.shape == (2, 128, 4, 6)
    # BatchNorm statistics stay fixed: the wrapped network never trains
    torch.testing.assert_close(backbone.backbone.stem[1].running_mean, stats)


def test_probes_train_ten_times_faster_than_head(repo_root):
    import os.path as osp

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    schedule = Config.fromfile(osp.join(repo_root, 'configs/_base_/schedules/'
                                        'schedule_stego_5k.py'))
    model = build('stego')
    wrapper = build_optim_wrapper(model, schedule.optim_wrapper)
    lr_of = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            lr_of[id(param)] = group['lr']
    for name, param in model.named_parameters():
        if 'probe' in name:
            assert lr_of[id(param)] == pytest.approx(5e-3), name
        elif name.startswith('head.'):
            assert lr_of[id(param)] == pytest.approx(5e-4), name
