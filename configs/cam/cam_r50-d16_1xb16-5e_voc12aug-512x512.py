# CAM classifier on VOC 2012 train_aug (10,582 images), IRN's recipe (see README.md):
# long side resized to 320-640, horizontal flip, 512x512 random crop, batch 16,
# 5 epochs, SGD lr 0.1 backbone / 1.0 head, poly.
_base_ = [
    '../_base_/models/cam_r50-d16.py', '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cam_5e.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    head=dict(num_classes=20))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    # long side uniformly in [320, 640], as IRN's resize_long=(320, 640)
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.5, 1.0),
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackWSSSInputs'),
]
# images at their own size: for tag validation and for CAM export
cam_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=cam_pipeline))
train_infer_dataloader = dict(dataset=dict(pipeline=cam_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='TagMetric', _delete_=True)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='tags/mAP', rule='greater'))
log_processor = dict(by_epoch=True)
