# The official MARS masks of VOC 2012 train_aug (RS+EPM debiased by the paper's
# authors) from DHR's "WSS labels" bundle, as Stage 1: Stage 4 trains on them
# (baseline row) and on mars_mm's second MARS pass over them (MARS row). Bundle
# layout and format: projects/external_pseudo_labels/README.md. From anywhere the
# bundle was unpacked:
#   python tools/mars/run_pipeline.py configs/pipelines/wss-mars_voc12aug.py \
#       --cfg-options pseudo_labels.external=/path/to/WSS/VOC2012/MARS/train_aug
_base_ = ['./voc12aug.py']
work_dir = 'work_dirs/pipelines/wss-mars_voc12aug'
pseudo_labels = dict(external='data/WSS/VOC2012/MARS/train_aug')
