# The VOC recipe with a ResNetV1c-101 backbone.
_base_ = ['./cam_r50-d16_1xb16-5e_voc12aug-512x512.py']
model = dict(
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101))
