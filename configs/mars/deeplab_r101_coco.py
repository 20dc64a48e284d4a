# Alias of the MARS Stage 4 COCO 2014 recipe:
#   tools/dist_train.sh configs/mars/deeplab_r101_coco.py 4
_base_ = ['./mars-deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py']
