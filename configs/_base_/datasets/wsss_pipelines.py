# Pipelines and dataloaders shared by the WSSS dataset bases (voc12aug_wsss.py,
# coco2014_wsss.py, planted_bias.py), which inherit this file and add their dataset
# fields. The sizes are those of the 512-pixel VOC/COCO recipes.
#   cls_train_pipeline  image tags only: Stage 1 CAM classifier (IRN's recipe: long
#                       side 320-640, flip, 512 crop)
#   cam_pipeline        whole images with tags: CAM export, tag validation
#   train_pipeline      segmentation on the labels of the dataset's
#                       `pseudo_label_dir` (Stage 4); a config points it elsewhere
#                       with train_dataloader = dict(dataset=dict(pseudo_label_dir=...))
crop_size = (512, 512)
cls_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    # long side uniformly in [320, 640], as IRN's resize_long=(320, 640)
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.5, 1.0),
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackWSSSInputs')
]
cam_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='PackWSSSInputs')
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel'),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # masks are loaded after Resize: metrics compare at the original size
    dict(type='LoadCheckedAnnotations'),
    dict(type='LoadImageTags', allow_missing=True),
    dict(type='PackWSSSInputs')
]
img_ratios = [0.5, 1.0, 1.5, 2.0]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True)
             for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadCheckedAnnotations')],
            [dict(type='LoadImageTags', allow_missing=True)],
            [dict(type='PackWSSSInputs')]
        ])
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(empty_tags='keep', pipeline=test_pipeline))
test_dataloader = val_dataloader
# the train split without augmentation (CAM / embedding export, pseudo-label scoring)
train_infer_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(empty_tags='keep', pipeline=test_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
