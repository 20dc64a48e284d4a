# Stage 4 network (docs/en/method.md): mmseg's DeepLabV3+ with a ResNetV1c-101 at
# output stride 8, crop 512. The cross-entropy is averaged over labelled pixels
# (avg_non_ignore), the MARS configs' normalisation, so that a baseline trained on
# this base and MARS (mars_deeplabv3plus_r101-d8.py) differ only in the labels and
# the complementing. The VOC/COCO configs add the dataset, the runtime, the schedule
# and the number of classes.
_base_ = ['mmseg::_base_/models/deeplabv3plus_r50-d8.py']
data_preprocessor = dict(size=(512, 512))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101),
    # avg_non_ignore: the spec's sum(W * CE) / #non-ignored pixels (W: pixel weight)
    decode_head=dict(loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(loss_decode=dict(avg_non_ignore=True)))
