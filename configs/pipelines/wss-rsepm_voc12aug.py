# RS+EPM's VOC 2012 train_aug masks from DHR's "WSS labels" bundle debiased by MARS:
# the paper's main VOC setting (74.4 -> 77.7 val mIoU reported). Bundle layout and
# format: projects/external_pseudo_labels/README.md.
#   python tools/mars/run_pipeline.py configs/pipelines/wss-rsepm_voc12aug.py \
#       [--cfg-options pseudo_labels.external=/path/to/WSS/VOC2012/RSEPM/train_aug]
_base_ = ['./voc12aug.py']
work_dir = 'work_dirs/pipelines/wss-rsepm_voc12aug'
pseudo_labels = dict(external='data/WSS/VOC2012/RSEPM/train_aug')
