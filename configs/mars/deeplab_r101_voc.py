# Alias of the MARS Stage 4 VOC recipe:
#   tools/dist_train.sh configs/mars/deeplab_r101_voc.py 4
_base_ = ['./mars-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py']
