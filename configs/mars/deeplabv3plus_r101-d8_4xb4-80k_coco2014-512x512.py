# The BASELINE of MARS Stage 4 on COCO 2014: the VOC baseline recipe with 81 classes
# and 80k iterations, trained on Stage 1's pseudo labels (same loss normalisation
# and test-time model as the MARS config). The seg_baseline stage of
# configs/pipelines/coco2014.py.
#   tools/dist_train.sh configs/mars/deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py 4
_base_ = [
    '../_base_/models/deeplabv3plus_r101-d8_wsss.py',
    '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
num_classes = 81
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
# training labels: the dataset base's pseudo_label_dir (Stage 1)
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
# kill-safe checkpoints, and the random states a resumed run continues
# (docs/en/reliability.md, "Checkpoints and resuming")
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))
tta_model = dict(type='CRFSegTTAModel', crf=dict(), candidate_min_prob=0.1)
