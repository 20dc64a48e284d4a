# MARS Stage 4 trained on RS+EPM labels debiased by MARS (the paper's main VOC
# setting: 74.4 -> 77.7 val mIoU reported in arXiv 2304.09913).
#   tools/dist_train.sh projects/external_pseudo_labels/configs/\
#       mars-rsepm-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py 4
_base_ = ['../../../configs/mars/mars-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py']

debiased_label_dir = 'work_dirs/rs_epm/debias_voc12aug/labels'  # Stage 3 above
crop_size = (512, 512)
# Pipelines are plain lists in the base, so the one entry that names the label
# folder is written out again here (mmengine merges dicts, not list items).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel', label_dir=debiased_label_dir),
    dict(type='LoadImageTags'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
work_dir = 'work_dirs/rs_epm/deeplabv3plus_r101_voc12aug'
