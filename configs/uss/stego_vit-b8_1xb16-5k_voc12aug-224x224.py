# STEGO on PASCAL VOC 2012 train_aug: frozen DINO ViT-B/8 (weights: the model base's
# dino_checkpoint), 224x224 crops, batch 16, 5000 iterations of Adam (README.md).
#   1. tools/uss/precompute_knn.py THIS --out work_dirs/<name>/knn.npz
#   2. tools/train.py THIS
#   3. tools/uss/extract_features.py THIS CKPT --out work_dirs/<name>/embeddings
_base_ = [
    '../_base_/models/stego_vit-b8.py', '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/datasets/uss_pipelines.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_stego_5k.py'
]
knn_file = 'work_dirs/stego_vit-b8_1xb16-5k_voc12aug-224x224/knn.npz'
crop_size = (224, 224)  # the crop of uss_train_pipeline

# anchor, one of its 7 nearest neighbours and a random image, from the train split
train_dataloader = dict(
    batch_size=16,
    dataset=dict(
        _delete_=True,
        type='USSPairDataset',
        knn_file=knn_file,
        num_neighbors=7,
        with_negative=True,
        dataset=dict(_base_.train_infer_dataloader.dataset,
                     pipeline=_base_.uss_train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline={{_base_.uss_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='USSMetric', num_clusters=21)
test_evaluator = val_evaluator
