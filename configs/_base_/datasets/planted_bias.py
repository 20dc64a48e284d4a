# The planted-bias dataset (tools/dataset_converters/planted_bias.py), 128x128 images.
# Pipelines for the two kinds of training in MARS:
#   cls_train_pipeline  image tags only (Stage 1 CAM classifier); use it with
#                       train_dataloader = dict(dataset=dict(
#                           pipeline={{_base_.cls_train_pipeline}}))
#   train_pipeline      segmentation on pseudo labels read from `pseudo_label_dir`
#                       (Stage 4); override the LoadPseudoLabel entry's label_dir.
dataset_type = 'PlantedBiasDataset'
data_root = 'data/planted_bias'
crop_size = (128, 128)
pseudo_label_dir = 'work_dirs/pseudo_labels/planted_bias'

cls_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5),
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
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
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
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        empty_tags='keep',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# the train split without augmentation (CAM / embedding export, pseudo-label scoring)
train_infer_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        empty_tags='keep',
        pipeline=test_pipeline))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
