# The BASELINE of MARS Stage 4 on PASCAL VOC 2012 train_aug: mmseg's DeepLabV3+
# R-101 (output stride 8, crop 512, batch 16 = 4 GPUs x 4, 40k iterations) trained on
# Stage 1's pseudo labels, with the MARS config's loss normalisation
# (avg_non_ignore) and test-time model, so that the two differ only in the labels
# and the complementing. The seg_baseline stage of configs/pipelines/voc12aug.py.
#   tools/dist_train.sh configs/mars/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py 4
_base_ = [
    '../_base_/models/deeplabv3plus_r101-d8_wsss.py',
    '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
num_classes = 21
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
# training labels: the dataset base's pseudo_label_dir (Stage 1)
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
# kill-safe checkpoints, and the random states a resumed run continues
# (docs/en/reliability.md, "Checkpoints and resuming")
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))
tta_model = dict(type='CRFSegTTAModel', crf=dict())
