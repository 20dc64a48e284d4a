# MARS Stage 4 on PASCAL VOC 2012 + SBD (train_aug): DeepLabV3+ ResNet-101, output
# stride 8, crop 512, batch 16 = 4 GPUs x 4, SGD + poly, trained on Stage 3's
# debiased labels with EMA-teacher complementing and weighted CE
# (Jo, Yu, Kim, ICCV 2023, arXiv 2304.09913; recipe in configs/mars/README.md).
#   tools/dist_train.sh configs/mars/mars-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py 4
_base_ = [
    '../_base_/models/mars_deeplabv3plus_r101-d8.py',
    '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
num_classes = 21
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
custom_hooks = [_base_.teacher_hook, *_base_.custom_hooks]  # + FiniteLossHook
# Stage 3 output (tools/mars/debias.py): values 0..20, 254 = removed, 255 = ignore.
train_dataloader = dict(
    dataset=dict(pseudo_label_dir='work_dirs/mars/debias_voc/labels'))
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
# kill-safe checkpoints, and the random states a resumed run continues
# (docs/en/reliability.md, "Checkpoints and resuming")
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'),
                     random_state=dict(type='RandomStateHook'))
# tools/test.py --tta: scales (1.0, 0.5, 1.5, 2.0) + flip (the dataset base's
# tta_pipeline), softmax averaged, then dense CRF on the original image.
tta_model = dict(type='CRFSegTTAModel', crf=dict())
