# CAM classifier: ResNetV1c-50 at output stride 16 (last stage dilated, not strided)
# and a bias-free 1x1 conv CAM head on global average pooling (IRN, Ahn et al. 2019).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CAMClassifier',
    data_preprocessor=data_preprocessor,
    # ImageNet weights; replace by a local file path where the URL is unreachable
    pretrained='open-mmlab://resnet50_v1c',
    backbone=dict(
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        # IRN freezes the stem and keeps BatchNorm statistics of ImageNet
        frozen_stages=0,
        norm_cfg=norm_cfg,
        norm_eval=True,
        style='pytorch',
        contract_dilation=True),
    head=dict(
        type='CAMHead',
        in_channels=2048,
        num_classes=20,
        # mean BCE over N x C logits = multilabel_soft_margin_loss (IRN)
        loss_cls=dict(type='mmpretrain.CrossEntropyLoss', use_sigmoid=True,
                      loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict())
