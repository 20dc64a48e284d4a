# STEGO on the synthetic planted dataset, CPU-sized, on a *frozen random-init*
# half-width ResNetV1c-18 at output stride 8 (nothing to download; images only).
# Seeded (FrozenBackbone(random_init_seed=0)) so that kNN, training and export see the
# same network; its ReLU features are mean-centred over the dataset before any cosine.
# The unsupervised alternative to stego_r18-cam_... (which uses the tag-trained CAM
# backbone); both are measured in README.md.
_base_ = ['./stego_r18-cam_1xb8-1k_planted-128x128.py']
knn_file = 'work_dirs/stego_r18-rand_1xb8-1k_planted-128x128/knn.npz'

model = dict(
    backbone=dict(
        random_init_seed=0,
        backbone=dict(init_cfg=None)))

train_dataloader = dict(dataset=dict(knn_file=knn_file))
