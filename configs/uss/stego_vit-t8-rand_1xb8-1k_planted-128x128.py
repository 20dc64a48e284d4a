# STEGO on the synthetic planted-bias dataset, CPU-sized: a *random-init* frozen ViT
# (mmpretrain VisionTransformer, 192 channels, 4 layers, patch 8; nothing to
# download), seeded so that the kNN step, training and export share the same network.
# Untrained features are mean-centred over the dataset before any cosine (raw random
# features have cosine near 1 everywhere): FrozenBackbone(centre_features=True) keeps
# a running mean, and the kNN step centres the global features (knn_cfg.centre).
_base_ = [
    '../_base_/models/stego_vit-b8.py', '../_base_/datasets/planted_bias.py',
    '../_base_/datasets/uss_pipelines.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_stego_5k.py'
]
knn_file = 'work_dirs/stego_vit-t8-rand_1xb8-1k_planted-128x128/knn.npz'
crop_size = (128, 128)
num_classes = 7
feat_dims = 192

model = dict(
    backbone=dict(
        out_channels=feat_dims,
        centre_features=True,
        random_init_seed=0,
        backbone=dict(
            _delete_=True,
            type='mmpretrain.VisionTransformer',
            arch=dict(embed_dims=feat_dims, num_layers=4, num_heads=3,
                      feedforward_channels=4 * feat_dims),
            img_size=128,
            patch_size=8,
            out_type='featmap',
            final_norm=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            init_cfg=None)),
    head=dict(in_channels=feat_dims),
    cluster_probe=dict(num_clusters=num_classes),
    linear_probe=dict(num_classes=num_classes))

uss_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations'),  # ground truth for the linear probe only
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1.0, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
uss_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs')
]
knn_cfg = dict(size=None, centre=True)

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='USSPairDataset',
        knn_file=knn_file,
        num_neighbors=7,
        with_negative=True,
        dataset=dict(_base_.train_infer_dataloader.dataset,
                     pipeline=uss_train_pipeline)))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=uss_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='USSMetric', num_clusters=num_classes)
test_evaluator = val_evaluator

train_cfg = dict(max_iters=1000, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=500))
randomness = dict(seed=0)
