# The planted-bias dataset (tools/dataset_converters/planted_bias.py): small images
# (128 x 128 by default; 110-210 px in the voc-like preset). Loader settings and the
# cam/tta pipelines: wsss_pipelines.py. The training pipelines here keep each image at
# its own scale (RandomRescale jitters it by 0.75-1.5x): resizing every image to one
# target size would shrink small objects out of sight. Tests run at the image size.
_base_ = ['./wsss_pipelines.py']
dataset_type = 'PlantedBiasDataset'
data_root = 'data/planted_bias'
crop_size = (128, 128)
pseudo_label_dir = 'work_dirs/pseudo_labels/planted_bias'

cls_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='RandomRescale', ratio_range=(0.75, 1.5)),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs')
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel'),
    dict(type='LoadImageTags'),
    dict(type='RandomRescale', ratio_range=(0.75, 1.5)),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations'),
    dict(type='LoadImageTags', allow_missing=True),
    dict(type='PackWSSSInputs')
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        pseudo_label_dir=pseudo_label_dir,
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
train_infer_dataloader = dict(
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=test_pipeline))
