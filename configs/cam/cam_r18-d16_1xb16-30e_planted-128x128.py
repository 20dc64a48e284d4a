# CPU recipe on the planted-bias dataset (tools/dataset_converters/planted_bias.py):
# a half-width ResNetV1c-18 at output stride 16 trained from scratch (no ImageNet
# weights exist on the CPU machines) for 30 epochs of 25 iterations; about 3 minutes
# on one CPU thread. Another dataset folder: --data-root DIR (every dataloader).
_base_ = [
    '../_base_/models/cam_r50-d16.py', '../_base_/datasets/planted_bias.py',
    '../_base_/default_runtime.py'
]
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        depth=18, stem_channels=32, base_channels=32,
        # from scratch: BatchNorm must learn its statistics and the stem must train
        frozen_stages=-1, norm_eval=False),
    head=dict(in_channels=256, num_classes=6))

train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline={{_base_.cls_train_pipeline}}))
# images at their own size: tag validation and CAM export
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline={{_base_.cam_pipeline}}))
test_dataloader = val_dataloader
train_infer_dataloader = dict(
    num_workers=0, dataset=dict(pipeline={{_base_.cam_pipeline}}))
val_evaluator = dict(type='TagMetric', _delete_=True)
test_evaluator = val_evaluator

# from-scratch training: SGD with momentum, one learning rate for all parameters
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=30, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=10,
                    max_keep_ckpts=1, save_last=True),
    random_state=dict(type='RandomStateHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
randomness = dict(seed=0)
