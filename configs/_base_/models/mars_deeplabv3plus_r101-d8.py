# MARS Stage 4 (docs/en/method.md): mmseg's DeepLabV3+ with a ResNetV1c-101 at output
# stride 8, trained as MARSEncoderDecoder on Stage 3's debiased labels with
# EMA-teacher complementing and weighted CE. The VOC/COCO configs add the dataset,
# the runtime, the schedule and the number of classes.
_base_ = ['./deeplabv3plus_r101-d8_wsss.py']
model = dict(
    type='MARSEncoderDecoder',
    biased_pixels='complement',
    weight_by_confidence=True,
    weight_include_background=False,
    teacher_crf=None)  # dict() refines the teacher with the dense CRF (CPU cost)
# The EMA teacher (momentum 0.001 in mmengine's convention = decay 0.999): built,
# updated after each optimizer step and kept across --resume in
# checkpoint['mars_teacher'] by the hook; the checkpoint's state_dict holds only
# the student (a plain DeepLabV3+). The VOC/COCO configs add it to the runtime's
# custom_hooks (this file and default_runtime.py are bases of the same config,
# which may not both set one key).
teacher_hook = dict(type='EMATeacherHook', momentum=0.001)
