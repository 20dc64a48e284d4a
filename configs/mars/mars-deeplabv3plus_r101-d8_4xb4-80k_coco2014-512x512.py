# MARS Stage 4 on COCO 2014 (81 classes): DeepLabV3+ ResNet-101, output stride 8,
# crop 512, batch 16 = 4 GPUs x 4, SGD + poly, 80k iterations, trained on Stage 3's
# debiased labels with EMA-teacher complementing and weighted CE
# (arXiv 2304.09913; recipe in configs/mars/README.md).
#   tools/dist_train.sh configs/mars/deeplab_r101_coco.py 4
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/coco2014_wsss.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
num_classes = 81
debiased_label_dir = 'work_dirs/mars/debias_coco/labels'
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
    teacher_crf=None)
# EMA teacher, momentum 0.001 = decay 0.999 (see the VOC config)
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
# 81 labels make a full CRF slow (~2 s per image): only background + classes
# predicted somewhere or reaching 0.1 probability enter it.
tta_model = dict(type='CRFSegTTAModel', crf=dict(), candidate_min_prob=0.1)
