# External pseudo labels + MARS (model-agnostic use): debias another method's VOC
# train_aug labels, e.g. the released RS+EPM masks
# (projects/external_pseudo_labels/README.md), then train and test both Stage-4
# rows. The three CAM stages are skipped.
#   python tools/mars/run_pipeline.py configs/pipelines/rsepm_voc12aug.py
#   python tools/mars/run_pipeline.py configs/pipelines/rsepm_voc12aug.py \
#       --cfg-options pseudo_labels.external=path/to/your/labels
_base_ = ['./voc12aug.py']
work_dir = 'work_dirs/pipelines/rsepm_voc12aug'
# <stem>.png per train_aug image, values 0..20, 255 ignored
pseudo_labels = dict(external='data/rs_epm/pseudo_labels_train_aug')
