# STEGO on the synthetic planted dataset, CPU-sized, on the *Stage-1 CAM
# classifier's* backbone (half-width ResNetV1c-18, configs/cam/cam_r18-d16_...).
# No self-supervised weights exist on the CPU machines; the CAM classifier was trained
# on the image-level tags only, the weak supervision MARS already uses, so Stage 2
# stays free of masks. Its last stage is run dilated at output stride 8 (strides
# (1, 2, 1, 1), dilations (1, 1, 2, 4): same weights, the stride-8 grid the embedding
# format needs). ReLU features are mean-centred over the dataset before any cosine.
# The embedding is the *layer2* output (64 channels, stride 8): on the planted
# run its frozen features gave Stage 3 the best labels of every variant measured
# (deeper layers and the trained STEGO codes carry more of the classifier's own
# context bias); export it with `extract_features.py --what features --scales 1.0
# --no-flip`
# (configs/uss/README.md, "Planted-bias v2").
_base_ = ['./stego_vit-t8-rand_1xb8-1k_planted-128x128.py']
cam_checkpoint = 'work_dirs/cam_r18-d16_1xb16-30e_planted-128x128/epoch_30.pth'
knn_file = 'work_dirs/stego_r18-cam_1xb8-1k_planted-128x128/knn.npz'
feat_dims = 64

model = dict(
    backbone=dict(
        out_channels=feat_dims,
        centre_features=True,
        random_init_seed=None,
        backbone=dict(
            _delete_=True,
            type='ResNetV1c',
            depth=18,
            stem_channels=32,
            base_channels=32,
            num_stages=4,
            out_indices=(1, ),
            strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4),
            norm_cfg=dict(type='BN', requires_grad=False),
            norm_eval=True,
            style='pytorch',
            contract_dilation=True,
            init_cfg=dict(type='Pretrained', checkpoint=cam_checkpoint,
                          prefix='backbone.'))),
    head=dict(in_channels=feat_dims))

train_dataloader = dict(dataset=dict(knn_file=knn_file))
