# STEGO on COCO 2014 train (80 object classes + background): frozen DINO ViT-B/8,
# 224x224 crops, batch 16, 5000 iterations of Adam (see README.md). Same steps as the
# VOC config; the kNN step handles the 82k images in chunks.
_base_ = [
    '../_base_/models/stego_vit-b8.py', '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_stego_5k.py'
]
dino_checkpoint = 'checkpoints/dino_vitb8_mmpretrain.pth'
knn_file = 'work_dirs/stego_vit-b8_1xb16-5k_coco2014-224x224/knn.npz'
data_root = 'data/coco2014'
crop_size = (224, 224)
num_classes = 81

model = dict(
    backbone=dict(backbone=dict(init_cfg=dict(checkpoint=dino_checkpoint))),
    cluster_probe=dict(num_clusters=num_classes),
    linear_probe=dict(num_classes=num_classes))

uss_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations'),  # ground truth for the linear probe only
    dict(type='RandomResize', scale=(4096, 224), ratio_range=(1.0, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
uss_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(4096, 320), keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs')
]
uss_image_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
knn_cfg = dict(size=(224, 224), centre=False)

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='USSPairDataset',
        knn_file=knn_file,
        num_neighbors=7,
        with_negative=True,
        dataset=dict(
            type='WSSSCOCODataset',
            data_root=data_root,
            data_prefix=dict(img_path='train2014',
                             seg_map_path='SegmentationClass/train2014'),
            ann_file='ImageSets/train2014.txt',
            tag_file='tags/train2014.json',
            pipeline=uss_train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=uss_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='USSMetric', num_clusters=num_classes)
test_evaluator = val_evaluator
