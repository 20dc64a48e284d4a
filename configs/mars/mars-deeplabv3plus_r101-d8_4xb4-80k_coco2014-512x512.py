# MARS Stage 4 on COCO 2014 (81 classes): the VOC recipe with 80k iterations
# (arXiv 2304.09913; recipe in configs/mars/README.md).
#   tools/dist_train.sh configs/mars/mars-deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py 4
_base_ = [
    '../_base_/models/mars_deeplabv3plus_r101-d8.py',
    '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
num_classes = 81
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
custom_hooks = [_base_.teacher_hook, *_base_.custom_hooks]  # + FiniteLossHook
train_dataloader = dict(
    dataset=dict(pseudo_label_dir='work_dirs/mars/debias_coco/labels'))
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
# kill-safe checkpoints, and the random states a resumed run continues
# (docs/en/reliability.md, "Checkpoints and resuming")
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))
# 81 labels make a full CRF slow (~2 s per image): only background + classes
# predicted somewhere or reaching 0.1 probability enter it.
tta_model = dict(type='CRFSegTTAModel', crf=dict(), candidate_min_prob=0.1)
