# PASCAL VOC 2012 + SBD for weak supervision: train on train_aug (10,582 images, tags
# from Annotations/*.xml), evaluate on val (1,449). Prepare with
# tools/dataset_converters/voc_aug.py (docs/en/datasets.md).
#   cls_train_pipeline  image tags only (Stage 1 classifier)
#   train_pipeline      segmentation on pseudo labels from `pseudo_label_dir` (Stage 4)
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (512, 512)
pseudo_label_dir = 'work_dirs/pseudo_labels/voc12aug'

cls_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.6, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel', label_dir=pseudo_label_dir),
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
    dict(type='LoadCheckedAnnotations'),
    dict(type='LoadImageTags', allow_missing=True),
    dict(type='PackWSSSInputs')
]
# the official test split has no masks and no tags
test_server_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
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
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        empty_tags='keep',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# the train split without augmentation (CAM / embedding export, pseudo-label scoring)
train_infer_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        empty_tags='keep',
        pipeline=test_pipeline))
# VOC 2012 test (server evaluation): no masks, no tags
test_server_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/test.txt',
        with_seg_map=False,
        with_tags=False,
        pipeline=test_server_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
