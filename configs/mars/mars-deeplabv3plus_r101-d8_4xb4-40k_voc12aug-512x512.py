# MARS Stage 4 on PASCAL VOC 2012 + SBD (train_aug): DeepLabV3+ ResNet-101, output
# stride 8, crop 512, batch 16 = 4 GPUs x 4, SGD + poly, trained on Stage 3's
# debiased labels with EMA-teacher complementing and weighted CE
# (Jo, Yu, Kim, ICCV 2023, arXiv 2304.09913; recipe in configs/mars/README.md).
#   tools/dist_train.sh configs/mars/deeplab_r101_voc.py 4
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
num_classes = 21
# Stage 3 output (tools/mars/debias.py): values 0..20, 254 = removed, 255 = ignore.
debiased_label_dir = 'work_dirs/mars/debias_voc/labels'
data_preprocessor = dict(size=crop_size)
model = dict(
    type='MARSEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101),
    # avg_non_ignore: the spec's sum(W * CE) / #non-ignored pixels (W: pixel weight)
    decode_head=dict(num_classes=num_classes, loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(num_classes=num_classes,
                        loss_decode=dict(avg_non_ignore=True)),
    biased_pixels='complement',
    weight_by_confidence=True,
    weight_include_background=False,
    teacher_crf=None)  # dict() refines the teacher with the dense CRF (CPU cost)
# The EMA teacher (momentum 0.001 in mmengine's convention = decay 0.999): built,
# updated after each optimizer step and kept across --resume in
# checkpoint['mars_teacher'] by the hook; the checkpoint's state_dict holds only
# the student (a plain DeepLabV3+).
custom_hooks = [dict(type='EMATeacherHook', momentum=0.001)]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel', label_dir=debiased_label_dir),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator
# tools/test.py --tta: scales (1.0, 0.5, 1.5, 2.0) + flip (the dataset base's
# tta_pipeline), softmax averaged, then dense CRF on the original image.
tta_model = dict(type='CRFSegTTAModel', crf=dict())
