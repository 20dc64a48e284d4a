# DHR's (ECCV 2024) COCO 2014 train masks (its released mask bundle,
# WSS/COCO2014/DHR/train/) debiased by MARS, on 8 GPUs. The masks must be named like
# mars_mm's COCO stems (COCO_train2014_<12 digits>.png) with the 81 classes in
# mars_mm's order: projects/external_pseudo_labels/README.md says how to check both.
#   python tools/mars/run_pipeline.py configs/pipelines/wss-dhr_coco2014.py \
#       [--cfg-options pseudo_labels.external=/path/to/WSS/COCO2014/DHR/train]
_base_ = ['./coco2014.py']
work_dir = 'work_dirs/pipelines/wss-dhr_coco2014'
pseudo_labels = dict(external='data/WSS/COCO2014/DHR/train')
