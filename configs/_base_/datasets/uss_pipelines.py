# STEGO's data (Stage 2), next to a WSSS dataset base in the configs/uss/ configs:
# 224 x 224 training crops, short side 320 for validation, plain images for the kNN
# features and the embedding export. A config wraps the train split in
# USSPairDataset with uss_train_pipeline.
uss_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations'),  # ground truth for the linear probe only
    # short side 224-448, then a 224 crop (STEGO trains on 224 crops)
    dict(type='RandomResize', scale=(4096, 224), ratio_range=(1.0, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(224, 224)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
uss_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(4096, 320), keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs')
]
# kNN features and export read images without augmentation
uss_image_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
# kNN: mean-pooled backbone features of 224 x 224 resized images, not centred
knn_cfg = dict(size=(224, 224), centre=False)
