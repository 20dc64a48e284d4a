# STEGO (Hamilton et al., ICLR 2022) on a frozen DINO ViT-B/8: last-layer patch tokens
# (768 channels, stride 8) -> STEGOHead (linear + MLP 1x1 projections, D = 70).
# Convert the official DINO weights first:
#   python tools/model_converters/dino_to_mmpretrain.py \
#       dino_vitbase8_pretrain.pth checkpoints/dino_vitb8_mmpretrain.pth
# DINOVisionTransformer = mmpretrain's VisionTransformer (same weights) resizing the
# position embeddings for non-square inputs exactly as DINO does; keep img_size=224.
dino_checkpoint = 'checkpoints/dino_vitb8_mmpretrain.pth'
code_dims = 70
num_classes = 21
data_preprocessor = dict(
    type='USSDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=8)
model = dict(
    type='STEGO',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='FrozenBackbone',
        out_channels=768,
        feature_stride=8,
        backbone=dict(
            type='DINOVisionTransformer',
            arch='base',
            img_size=224,
            patch_size=8,
            out_type='featmap',
            final_norm=True,
            norm_cfg=dict(type='LN', eps=1e-6),
            init_cfg=dict(type='Pretrained', checkpoint=dino_checkpoint))),
    head=dict(type='STEGOHead', in_channels=768, channels=code_dims,
              dropout_ratio=0.1),
    # STEGO's ViT-small preset; no VOC/COCO preset exists: tune the shifts so that
    # code correlations track label agreement (--cfg-options model.loss_corr.*)
    loss_corr=dict(
        type='ContrastiveCorrelationLoss',
        grid_size=11,
        num_negatives=5,
        self_weight=0.67, knn_weight=0.25, rand_weight=0.63,
        self_shift=0.18, knn_shift=0.12, rand_shift=0.46,
        pointwise=True),
    cluster_probe=dict(type='ClusterProbe', in_channels=code_dims,
                       num_clusters=num_classes),
    linear_probe=dict(type='LinearProbe', in_channels=code_dims,
                      num_classes=num_classes))
