# IRN's CAM schedule (Ahn et al., CVPR 2019; github.com/jiwoon-ahn/irn, train_cam.py):
# 5 epochs of SGD, lr 0.1 for the backbone and 10x (1.0) for the new CAM head, weight
# decay 1e-4, poly decay (power 0.9) per iteration. IRN's SGD has no momentum.
optimizer = dict(type='SGD', lr=0.1, momentum=0.0, weight_decay=1e-4)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.0)}),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=5, by_epoch=True,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=5, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # kill-safe checkpoints, and the random states a resumed run continues
    # (docs/en/reliability.md, "Checkpoints and resuming")
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=1,
                    max_keep_ckpts=2),
    random_state=dict(type='RandomStateHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
