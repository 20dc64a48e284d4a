# MARS Stage 4 (docs/en/method.md): mmseg's DeepLabV3+ with a ResNetV1c-101 at output
# stride 8, trained as MARSEncoderDecoder on Stage 3's debiased labels with
# EMA-teacher complementing and weighted CE. The VOC/COCO configs add the dataset,
# the runtime, the schedule and the number of classes.
_base_ = ['mmseg::_base_/models/deeplabv3plus_r50-d8.py']
data_preprocessor = dict(size=(512, 512))
model = dict(
    type='MARSEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101),
    # avg_non_ignore: the spec's sum(W * CE) / #non-ignored pixels (W: pixel weight)
    decode_head=dict(loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(loss_decode=dict(avg_non_ignore=True)),
    biased_pixels='complement',
    weight_by_confidence=True,
    weight_include_background=False,
    teacher_crf=None)  # dict() refines the teacher with the dense CRF (CPU cost)
# The EMA teacher (momentum 0.001 in mmengine's convention = decay 0.999): built,
# updated after each optimizer step and kept across --resume in
# checkpoint['mars_teacher'] by the hook; the checkpoint's state_dict holds only
# the student (a plain DeepLabV3+).
custom_hooks = [dict(type='EMATeacherHook', momentum=0.001)]
