# Stage 2 on CPU without any weights and without training: colour (CIE Lab mean and
# spread) and texture (gradient-orientation histogram) statistics per 8x8 cell, plus
# their 3x3-cell neighbourhood mean; 24 channels at stride 8 (mars_mm/core/
# descriptors.py). Chosen across the planted-bias family against a random conv
# filter bank, its hypercolumns, STEGO trained on top, and the Stage-1 CAM
# backbone's features (configs/uss/README.md, "CPU Stage 2"); model-agnostic: it does
# not need the network that made the pseudo labels. Export (no checkpoint):
#   python tools/uss/extract_features.py configs/uss/colourtexture-d8_planted.py \
#       --out work_dirs/embeddings/planted
_base_ = ['../_base_/datasets/planted_bias.py', '../_base_/default_runtime.py']
model = dict(
    type='DenseEmbedder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='FrozenBackbone',
        out_channels=24,
        feature_stride=8,
        backbone=dict(type='ColourTextureEmbedding', stride=8, bins=6, context=3)))
# one scale, no flip: the descriptors are defined at the image's own scale
export = dict(scales=[1.0], flip=False)
