# PASCAL VOC 2012 + SBD for weak supervision: train on train_aug (10,582 images, tags
# from Annotations/*.xml), evaluate on val (1,449). Prepare with
# tools/dataset_converters/voc_aug.py (docs/en/datasets.md). Pipelines and loader
# settings: wsss_pipelines.py.
_base_ = ['./wsss_pipelines.py']
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
pseudo_label_dir = 'work_dirs/pseudo_labels/voc12aug'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        pseudo_label_dir=pseudo_label_dir))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt'))
test_dataloader = val_dataloader
train_infer_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
        ann_file='ImageSets/Segmentation/train_aug.txt'))

# VOC 2012 test (server evaluation, tools/mars/export_voc_test.py): no masks, no tags
test_server_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='PackWSSSInputs')
]
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
