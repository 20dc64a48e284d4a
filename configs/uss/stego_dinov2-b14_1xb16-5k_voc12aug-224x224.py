# STEGO on PASCAL VOC 2012 train_aug over a frozen DINOv2 ViT-B/14 (Oquab et al.,
# 2023): the ViT-B/8 recipe with mmpretrain's DINOv2 ViT (patch 14, layer scale,
# 37 x 37 position grid of the 518-pixel training size, resized per input as DINOv2
# does). 224 crops = 16 x 16 patches. Stage 3 still reads stride-8 embeddings:
# tools/uss/extract_features.py resamples the stride-14 codes onto the stride-8 grid
# (--stride sets another). Weights (README.md, "DINOv2 as the Stage-2 backbone"):
#   python tools/model_converters/dinov2_to_mmpretrain.py \
#       dinov2_vitb14_pretrain.pth checkpoints/dinov2_vitb14_mmpretrain.pth
_base_ = ['./stego_vit-b8_1xb16-5k_voc12aug-224x224.py']
dinov2_checkpoint = 'checkpoints/dinov2_vitb14_mmpretrain.pth'
knn_file = 'work_dirs/stego_dinov2-b14_1xb16-5k_voc12aug-224x224/knn.npz'
model = dict(
    data_preprocessor=dict(size_divisor=14),
    backbone=dict(
        feature_stride=14,
        backbone=dict(
            img_size=518, patch_size=14, layer_scale_init_value=1e-5,
            init_cfg=dict(type='Pretrained', checkpoint=dinov2_checkpoint))))
train_dataloader = dict(dataset=dict(knn_file=knn_file))
