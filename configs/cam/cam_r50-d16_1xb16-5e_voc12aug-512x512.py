# CAM classifier on VOC 2012 train_aug (10,582 images), IRN's recipe (see README.md):
# long side resized to 320-640, horizontal flip, 512x512 random crop, batch 16,
# 5 epochs, SGD lr 0.1 backbone / 1.0 head, poly. Tag validation and CAM export read
# whole images (the dataset base's cam_pipeline).
_base_ = [
    '../_base_/models/cam_r50-d16.py', '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_cam_5e.py'
]
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size), head=dict(num_classes=20))

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
