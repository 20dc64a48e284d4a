# The BASELINE of MARS Stage 4 on COCO 2014: the VOC baseline recipe with 81 classes
# and 80k iterations, trained on Stage 1's pseudo labels (same loss normalisation
# and test-time model as the MARS config). The seg_baseline stage of
# configs/pipelines/coco2014.py.
#   tools/dist_train.sh configs/mars/deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py 4
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
num_classes = 81
data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101),
    decode_head=dict(num_classes=num_classes,
                     loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(num_classes=num_classes,
                        loss_decode=dict(avg_non_ignore=True)))
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
tta_model = dict(type='CRFSegTTAModel', crf=dict(), candidate_min_prob=0.1)
