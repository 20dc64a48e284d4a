# MARS Stage 3 on another WSSS method's pseudo labels: only the input folder changes.
# Any folder of palette PNGs named <image stem>.png with values 0..20 (255 = ignore)
# works, e.g. the released RS+EPM train_aug masks (Jo et al., arXiv 2206.03009).
#   python tools/mars/debias.py \
#       projects/external_pseudo_labels/configs/debias-rsepm_voc12aug.py
_base_ = ['../../../configs/mars/debias_voc12aug.py']

work_dir = 'work_dirs/rs_epm/debias_voc12aug'
debias = dict(
    pseudo_label_dir='data/rs_epm/pseudo_labels_train_aug',
    embedding_dir='work_dirs/embeddings/voc12aug')
