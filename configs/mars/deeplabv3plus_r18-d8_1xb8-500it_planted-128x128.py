# CPU-sized DeepLabV3+ on the planted-bias dataset: the BASELINE of the toy Table-6
# ablation (plain mmseg EncoderDecoder trained on Stage 1's baseline pseudo labels).
# Half-width ResNetV1c-18 (base_channels 32), random init, output stride 8, crop 128,
# batch 8, 500 iterations: about 4 minutes on one CPU core. The MARS variants
# (mars-*_planted-128x128.py) inherit this file and change only the segmentor.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/planted_bias.py',
    '../_base_/default_runtime.py',
]
crop_size = (128, 128)
num_classes = 7  # background + the generator's six classes (data_root/meta.json)
label_dir = 'work_dirs/pseudo_labels/planted_bias'  # training labels (any stage)
# Single-process CPU training: BN, not SyncBN.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # random init: no ImageNet weights for a synthetic toy set
    backbone=dict(depth=18, stem_channels=32, base_channels=32, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=256,
        c1_in_channels=32,
        channels=128,
        c1_channels=32,
        # mmseg's (1, 12, 24, 36) are for 64x64 features (crop 512 at stride 8);
        # a 128 crop gives 16x16 features, so the rates shrink by 4.
        dilations=(1, 3, 6, 9),
        num_classes=num_classes,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=64, num_classes=num_classes, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel', label_dir=label_dir),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=1)
test_dataloader = val_dataloader
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator

# Test-time: scales (1.0, 0.5, 1.5, 2.0) + flip from the dataset base's
# tta_pipeline, softmax averaged, then dense CRF (tools/test.py --tta).
tta_model = dict(type='CRFSegTTAModel', crf=dict())

max_iters = 500
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
