# CAM classifier on COCO 2014 train (images with at least one object), IRN's VOC
# recipe unchanged except for the 80 classes (see README.md and the VOC config).
_base_ = [
    '../_base_/models/cam_r50-d16.py', '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cam_5e.py'
]
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size), head=dict(num_classes=80))

train_dataloader = dict(
    batch_size=16,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline={{_base_.cls_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.cam_pipeline}}))
test_dataloader = val_dataloader
train_infer_dataloader = dict(dataset=dict(pipeline={{_base_.cam_pipeline}}))
val_evaluator = dict(type='TagMetric', _delete_=True)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='tags/mAP', rule='greater'))
log_processor = dict(by_epoch=True)
