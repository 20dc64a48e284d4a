# STEGO on COCO 2014 train (80 object classes + background): the VOC recipe
# (stego_vit-b8_1xb16-5k_voc12aug-224x224.py); the kNN step handles the 82k images in
# chunks.
_base_ = [
    '../_base_/models/stego_vit-b8.py', '../_base_/datasets/coco2014_wsss.py',
    '../_base_/datasets/uss_pipelines.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_stego_5k.py'
]
knn_file = 'work_dirs/stego_vit-b8_1xb16-5k_coco2014-224x224/knn.npz'
crop_size = (224, 224)  # the crop of uss_train_pipeline
num_classes = 81
model = dict(cluster_probe=dict(num_clusters=num_classes),
             linear_probe=dict(num_classes=num_classes))

train_dataloader = dict(
    batch_size=16,
    dataset=dict(
        _delete_=True,
        type='USSPairDataset',
        knn_file=knn_file,
        num_neighbors=7,
        with_negative=True,
        # images with at least one tag, as the training split of the other stages
        dataset=dict(_base_.train_infer_dataloader.dataset, empty_tags='skip',
                     pipeline=_base_.uss_train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline={{_base_.uss_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='USSMetric', num_clusters=num_classes)
test_evaluator = val_evaluator
