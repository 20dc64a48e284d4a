# DHR's (ECCV 2024) VOC 2012 train_aug masks from its "WSS labels" bundle, debiased by
# MARS: the plug-in on a method built on MARS masks. Bundle layout and format:
# projects/external_pseudo_labels/README.md.
#   python tools/mars/run_pipeline.py configs/pipelines/wss-dhr_voc12aug.py \
#       [--cfg-options pseudo_labels.external=/path/to/WSS/VOC2012/DHR/train_aug]
_base_ = ['./voc12aug.py']
work_dir = 'work_dirs/pipelines/wss-dhr_voc12aug'
pseudo_labels = dict(external='data/WSS/VOC2012/DHR/train_aug')
