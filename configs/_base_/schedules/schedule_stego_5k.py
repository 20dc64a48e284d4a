# STEGO's schedule: Adam, lr 5e-4 for the head, 5e-3 (10x) for the evaluation probes
# (which only see detached codes), 5000 iterations, constant learning rate.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=5e-4),
    paramwise_cfg=dict(custom_keys={
        'cluster_probe': dict(lr_mult=10.0),
        'linear_probe': dict(lr_mult=10.0)
    }))
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=5000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # kill-safe checkpoints, and the random states a resumed run continues
    # (docs/en/reliability.md, "Checkpoints and resuming")
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=2),
    random_state=dict(type='RandomStateHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
